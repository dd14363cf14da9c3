"""The papers' model: GPT-2 with rotary position embeddings instead of learned ones ("GPT2-l-h": l layers, h heads,
hidden size 64 h), no dropout (Part 2.1 App. F).

It is built from `transformers`' GPT-NeoX classes, which have rotary natively: with sequential (not parallel)
residuals, full rotary, LayerNorm, a 4x GELU MLP, biases and tied embeddings, that is GPT-2 + RoPE. Checkpoints are
ordinary `save_pretrained` folders that `AutoModelForCausalLM.from_pretrained` reloads exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


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

    def __post_init__(self) -> None:
        for key in ("n_layer", "n_head", "head_dim", "max_positions"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        if not 0 < self.rotary_fraction <= 1:
            raise ValueError(f"model.rotary_fraction must be in (0, 1], got {self.rotary_fraction}")

    @property
    def hidden(self) -> int:
        return self.n_head * self.head_dim


SPARE_ROWS = 3  # embedding rows no token uses, kept for the probes' query markers ([START], [MID], [END])


def padded_vocab(n: int, multiple: int = 64) -> int:
    """Embedding rows: the tokenizer's size plus the spare rows, rounded up (faster matrix shapes)."""
    return -(-(n + SPARE_ROWS) // multiple) * multiple


def build_model(cfg: ModelConfig, vocab_size: int) -> GPTNeoXForCausalLM:
    """A freshly initialised model; `vocab_size` is the tokenizer's length."""
    config = GPTNeoXConfig(
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
    return GPTNeoXForCausalLM(config)


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
