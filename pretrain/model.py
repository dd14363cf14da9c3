"""The papers' model: GPT-2 with rotary position embeddings instead of learned ones ("GPT2-l-h": l layers, h heads,
hidden size 64 h), no dropout (Part 2.1 App. F).

It is built from `transformers`' GPT-NeoX classes, which have rotary natively: with sequential (not parallel)
residuals, full rotary, LayerNorm, a 4x GELU MLP, biases and tied embeddings, that is GPT-2 + RoPE. Checkpoints are
ordinary `save_pretrained` folders that `AutoModelForCausalLM.from_pretrained` reloads exactly.

`canon_kernel > 0` adds one thing the papers' model does not have: a causal depthwise convolution over the last
`canon_kernel` positions on every attention's input ("Canon layers", Physics of Language Models Part 4.1), which the
laptop search found makes a two-name key learnable at CPU scale (benchmarks/results/laptop-search.md). That model is
`CanonNeoXForCausalLM`, registered with `transformers`' Auto classes under its own model type when this module is
imported; its KV cache also carries each layer's convolution input, so every decoder of ours runs it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache, GPTNeoXConfig, GPTNeoXForCausalLM
from transformers.cache_utils import DynamicLayer

from pretrain.static_cache import cache_keyword


@dataclass
class ModelConfig:
    """GPT-2 with rotary positions and no dropout (conf/model/). The defaults are GPT2-12-12, the papers' main model
    ("GPT2-small", hidden 768); the papers' depth/width grid GPT2-<n_layer>-<n_head> (Part 2.1 App. F) keeps
    head_dim 64, so hidden = 64 n_head."""

    name: str = "gpt2-12-12"
    n_layer: int = 12
    n_head: int = 12
    head_dim: int = 64  # hidden size = n_head * head_dim (the papers: 64 h)
    rope_theta: float = 10_000.0
    rotary_fraction: float = 1.0  # share of each head's dims that rotary rotates (the rest match by content only)
    max_positions: int = 2048  # the papers evaluate at context 2048
    tie_embeddings: bool = True
    attn_implementation: str = "sdpa"
    init_std: float = 0.02
    canon_kernel: int = 0  # > 0: a causal convolution over that many positions on each attention's input (not GPT-2)

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head", "head_dim", "max_positions"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        if self.canon_kernel < 0 or self.canon_kernel == 1:
            raise ValueError(f"model.canon_kernel must be 0 (none) or >= 2 positions, got {self.canon_kernel}")
        if not 0 < self.rotary_fraction <= 1:
            raise ValueError(f"model.rotary_fraction must be in (0, 1], got {self.rotary_fraction}")

    @property
    def hidden(self) -> int:
        return self.n_head * self.head_dim


SPARE_ROWS = 3  # embedding rows no token uses, kept for the probes' query markers ([START], [MID], [END])


def padded_vocab(n: int, multiple: int = 64) -> int:
    """Embedding rows: the tokenizer's size plus the spare rows, rounded up (faster matrix shapes)."""
    return -(-(n + SPARE_ROWS) // multiple) * multiple


class CanonNorm(torch.nn.Module):
    """A layer's input LayerNorm, then a causal depthwise convolution over the last `kernel` positions added to its
    output: y_t = n_t + b + sum_j w_j * n_(t-j) (j < kernel), n = norm(x), zero-initialised (so a new model starts as
    GPT-2 + RoPE). Position t uses n_(t-j) only where its position id is >= j: the convolution never reaches into
    left padding or across the documents of a packed window. The owning model sets `context` (its cache, this
    layer's slot in the cache, the position ids) around each forward."""

    def __init__(self, norm: torch.nn.Module, kernel: int):
        super().__init__()
        if kernel < 2:
            raise ValueError(f"canon kernel must be >= 2 positions, got {kernel}")
        width = norm.weight.shape[0]
        self.norm, self.kernel = norm, kernel
        self.weight = torch.nn.Parameter(torch.zeros(kernel, width))  # weight[j] multiplies n_(t-j)
        self.bias = torch.nn.Parameter(torch.zeros(width))
        self.context: tuple[DynamicCache | None, int, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm(x)
        cache, slot, pos = self.context
        batch, t, width = n.shape
        past = n.new_zeros(batch, self.kernel - 1, width)
        if cache is not None:  # the convolution's inputs so far live in the cache, as a layer of their own
            while len(cache.layers) <= slot:
                cache.layers.append(DynamicLayer())
            history, _ = cache.layers[slot].update(n[:, None], n.new_zeros(batch, 1, t, 1))
            past = torch.cat([past, history[:, 0, : history.shape[2] - t]], dim=1)[:, -(self.kernel - 1) :]
        window = torch.cat([past, n], dim=1)  # [batch, kernel - 1 + t, width]: n_(t-j) is window[:, kernel-1-j+t]
        out = n + self.bias
        for j in range(self.kernel):
            valid = (pos >= j).to(n.dtype)[..., None]  # [batch or 1, t, 1]
            out = out + valid * window[:, self.kernel - 1 - j : self.kernel - 1 - j + t] * self.weight[j]
        return out


class CanonNeoXConfig(GPTNeoXConfig):
    model_type = "igsm_canon_neox"

    def __init__(self, canon_kernel: int = 4, **kwargs):
        self.canon_kernel = canon_kernel
        super().__init__(**kwargs)


class CanonNeoXForCausalLM(GPTNeoXForCausalLM):
    """GPT-NeoX with a `CanonNorm` on every attention's input. Its forward takes the same arguments; the cache it is
    given (or makes, when use_cache) holds, after the attention layers, one layer per convolution's input."""

    config_class = CanonNeoXConfig

    def __init__(self, config: CanonNeoXConfig):
        super().__init__(config)
        for layer in self.gpt_neox.layers:
            layer.input_layernorm = CanonNorm(layer.input_layernorm, config.canon_kernel)

    def _init_weights(self, module):
        if isinstance(module, CanonNorm):  # zero: a new model starts as the plain one
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def forward(self, input_ids=None, cache=None, **kwargs):
        cache = cache if cache is not None else kwargs.pop("past_key_values", None)
        use_cache = kwargs.get("use_cache")
        if cache is None and (use_cache if use_cache is not None else self.config.use_cache):
            cache = DynamicCache()  # made here, so that it carries the convolutions' inputs too
        pos, mask = kwargs.get("position_ids"), kwargs.get("attention_mask")
        if pos is None:  # count from each row's first token, as our decoders do (`generate` does not)
            t = (input_ids if input_ids is not None else kwargs["inputs_embeds"]).shape[1]
            if mask is not None and mask.dim() == 2:  # [batch, past + t], zeros on the left padding
                pos = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -t:]
            else:
                seen = cache.get_seq_length() if cache is not None else 0
                pos = torch.arange(seen, seen + t, device=self.device)[None]
        layers = self.gpt_neox.layers
        try:
            for i, layer in enumerate(layers):
                layer.input_layernorm.context = (cache, len(layers) + i, pos)
            return super().forward(input_ids=input_ids, **{cache_keyword(GPTNeoXForCausalLM): cache}, **kwargs)
        finally:
            for layer in layers:
                layer.input_layernorm.context = None


AutoConfig.register(CanonNeoXConfig.model_type, CanonNeoXConfig)
AutoModelForCausalLM.register(CanonNeoXConfig, CanonNeoXForCausalLM)
MODEL_TYPES = ("gpt_neox", CanonNeoXConfig.model_type)  # the model types of our checkpoints


def build_model(cfg: ModelConfig, vocab_size: int) -> GPTNeoXForCausalLM:
    """A freshly initialised model; `vocab_size` is the tokenizer's length."""
    kind, extra = (CanonNeoXConfig, {"canon_kernel": cfg.canon_kernel}) if cfg.canon_kernel else (GPTNeoXConfig, {})
    config = kind(
        **extra,
        vocab_size=padded_vocab(vocab_size),
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        intermediate_size=4 * cfg.hidden,
        hidden_act="gelu",
        attention_dropout=0.0,
        hidden_dropout=0.0,
        max_position_embeddings=cfg.max_positions,
        initializer_range=cfg.init_std,
        use_parallel_residual=False,
        tie_word_embeddings=cfg.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta, "partial_rotary_factor": cfg.rotary_fraction},
        attn_implementation=cfg.attn_implementation,
        bos_token_id=None,
        eos_token_id=None,
    )
    return (CanonNeoXForCausalLM if cfg.canon_kernel else GPTNeoXForCausalLM)(config)


def check_vocab(model: torch.nn.Module, tokenizer_len: int) -> None:
    """Fail loudly when the tokenizer has ids the model cannot embed."""
    n = model.get_input_embeddings().weight.shape[0]
    if n < tokenizer_len:
        raise ValueError(f"tokenizer has {tokenizer_len} tokens but the model embeds only {n}: wrong tokenizer?")


def n_params(model: torch.nn.Module) -> int:
    """Parameters, shared (tied) ones counted once."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def flops_per_token(model: torch.nn.Module, context: int) -> float:
    """Training FLOPs per token: 6 N for the weights plus 12 L d T for attention (PaLM appendix B; nanoGPT)."""
    c = model.config
    return 6 * n_params(model) + 12 * c.num_hidden_layers * c.hidden_size * context


# bf16 dense peak FLOP/s of common accelerators, for MFU
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)
