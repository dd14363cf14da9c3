"""LoRA adapters through `peft`, named as in Part 2.2 (App. D.3): "qv<r>e<R>" is rank r on the query and value
projections and rank R on the embedding (the paper's grid: qv4e8 ... qv256e512, R = 2r).

GPT-NeoX fuses q, k and v into one `query_key_value` Linear whose output rows are interleaved per head: transformers
views the output as (heads, 3 * head_dim) and chunks the last axis, so rows [3hd, 3hd + d) are head h's query,
[3hd + d, 3hd + 2d) its key and [3hd + 2d, 3hd + 3d) its value (d = head_dim). A LoRA on the fused layer would adapt
k too and share one rank across q, k and v. So before attaching adapters each fused layer is split (`SplitQKV`) into
three Linears `query`, `key`, `value` holding exactly those rows, re-interleaved in the forward pass: the same
outputs, and peft adapts `query` and `value` alone, each with its own rank r. `fuse_qkv` puts the fused layer back,
so a merged model is a plain GPT-NeoX checkpoint again.

The embedding adapter updates the input embedding only. The output head keeps the pretrained (tied) matrix: peft's
`ensure_weight_tying` shares storage between two separate Parameters (AdamW would update the shared matrix twice),
and the paper's detector and V-probe update the input embedding alone. A merged export therefore unties the head.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

TARGETS = {"q": "query", "k": "key", "v": "value"}  # letters of an adapter name -> SplitQKV's Linears
ADAPTER_CONFIG = "adapter_config.json"  # peft's file: its presence marks an adapter checkpoint


@dataclass(frozen=True)
class AdapterSpec:
    """A LoRA adapter by the paper's name: `targets` (among query, key, value) at rank `rank`, embedding at
    `embedding_rank`."""

    targets: tuple[str, ...]
    rank: int
    embedding_rank: int

    @classmethod
    def parse(cls, name: str, key: str = "finetune.method") -> AdapterSpec:
        m = re.fullmatch(r"([a-z]+)(-?\d+)e(-?\d+)", name)
        if m is None:
            raise ValueError(
                f"{key}={name!r} is no adapter name: write it as the paper does, e.g. qv8e16 (rank 8 on query and "
                "value, rank 16 on the embedding)"
            )
        letters, rank, emb = m.group(1), int(m.group(2)), int(m.group(3))
        bad = [c for c in letters if c not in TARGETS]
        if bad or len(set(letters)) != len(letters):
            raise ValueError(
                f"{key}={name!r}: adapter target {''.join(bad) or letters!r} does not exist; the targets are "
                f"{', '.join(f'{c} ({t})' for c, t in TARGETS.items())}, each at most once"
            )
        if rank < 1 or emb < 1:
            raise ValueError(f"{key}={name!r}: ranks must be >= 1, got {rank} (attention) and {emb} (embedding)")
        return cls(tuple(TARGETS[c] for c in letters), rank, emb)

    def n_params(self, hidden: int, n_layer: int, vocab_rows: int) -> int:
        """Trainable parameters: r (d + d) per adapted projection and layer, R (V + d) for the embedding."""
        return n_layer * len(self.targets) * self.rank * 2 * hidden + self.embedding_rank * (vocab_rows + hidden)


class SplitQKV(nn.Module):
    """A fused GPT-NeoX `query_key_value` Linear as three Linears with the same outputs (see the module doc)."""

    def __init__(self, fused: nn.Linear, n_head: int):
        super().__init__()
        hidden = fused.in_features
        head_dim = hidden // n_head
        self.n_head, self.head_dim = n_head, head_dim
        w = fused.weight.detach().view(n_head, 3, head_dim, hidden)
        b = fused.bias.detach().view(n_head, 3, head_dim) if fused.bias is not None else None
        for j, name in enumerate(TARGETS.values()):
            lin = nn.Linear(hidden, hidden, bias=b is not None, device=w.device, dtype=w.dtype)
            lin.weight.data.copy_(w[:, j].reshape(hidden, hidden))
            if b is not None:
                lin.bias.data.copy_(b[:, j].reshape(hidden))
            setattr(self, name, lin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (*x.shape[:-1], self.n_head, 1, self.head_dim)
        parts = [getattr(self, name)(x).view(shape) for name in TARGETS.values()]
        return torch.cat(parts, dim=-2).flatten(-3)  # (..., heads, 3, head_dim): transformers' layout

    def fused(self) -> nn.Linear:
        """The equivalent fused Linear (exact copies of the weights)."""
        q = self.query
        out = nn.Linear(q.in_features, 3 * q.out_features, bias=q.bias is not None)
        out = out.to(device=q.weight.device, dtype=q.weight.dtype)
        shape = (self.n_head, 1, self.head_dim, q.in_features)
        w = torch.cat([getattr(self, n).weight.detach().view(shape) for n in TARGETS.values()], dim=1)
        out.weight.data.copy_(w.reshape(-1, q.in_features))
        if q.bias is not None:
            bshape = (self.n_head, 1, self.head_dim)
            out.bias.data.copy_(
                torch.cat([getattr(self, n).bias.detach().view(bshape) for n in TARGETS.values()], 1).flatten()
            )
        return out


def _attentions(model: nn.Module) -> list[nn.Module]:
    found = [m for m in model.modules() if hasattr(m, "query_key_value")]
    if not found:
        raise ValueError(f"{type(model).__name__} has no query_key_value layer: not one of our GPT-NeoX models")
    return found


def split_qkv(model: nn.Module) -> nn.Module:
    """Replace every fused `query_key_value` by a `SplitQKV` (in place; the outputs do not change)."""
    for attn in _attentions(model):
        if not isinstance(attn.query_key_value, SplitQKV):
            attn.query_key_value = SplitQKV(attn.query_key_value, model.config.num_attention_heads)
    return model


def fuse_qkv(model: nn.Module) -> nn.Module:
    """Undo `split_qkv` (in place)."""
    for attn in _attentions(model):
        if isinstance(attn.query_key_value, SplitQKV):
            attn.query_key_value = attn.query_key_value.fused()
    return model


def add_lora(model: nn.Module, spec: AdapterSpec, base: str | Path | None = None):
    """`model` (a plain model of ours, changed in place) with trainable LoRA adapters of `spec`, everything else
    frozen; `base`, the checkpoint it was loaded from, is recorded in the adapter's config (`base_model_name_or_path`)."""
    from peft import LoraConfig, get_peft_model

    split_qkv(model)
    if base is not None:  # peft records the model's name_or_path (as given, maybe relative): make it the absolute path
        model.name_or_path = str(Path(base).resolve())
    emb = model.get_input_embeddings()
    emb_name = next(n for n, m in model.named_modules() if m is emb)
    config = LoraConfig(
        r=spec.rank,
        lora_alpha=spec.rank,  # scaling alpha / r = 1, on every adapted matrix
        target_modules=rf".*\.query_key_value\.({'|'.join(spec.targets)})|{re.escape(emb_name)}",  # a full match
        rank_pattern={emb_name: spec.embedding_rank},
        alpha_pattern={emb_name: spec.embedding_rank},
        lora_dropout=0.0,  # the papers' models have no dropout
    )
    with quiet_peft():
        return get_peft_model(model, config)


@contextlib.contextmanager
def quiet_peft():
    """peft's warnings that do not apply: the tied head is left unadapted on purpose (module doc), and a transformers
    deprecation peft triggers."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tie_word_embeddings.*")
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        yield


def is_adapter(checkpoint: str | Path) -> bool:
    return (Path(checkpoint) / ADAPTER_CONFIG).exists()


def adapter_base(checkpoint: str | Path) -> Path:
    """The base checkpoint an adapter checkpoint was trained on (its `base_model_name_or_path`)."""
    import json

    base = json.loads((Path(checkpoint) / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base or not (Path(base) / "config.json").exists():
        raise FileNotFoundError(
            f"{checkpoint} is a LoRA adapter whose base model {base!r} (base_model_name_or_path in its "
            f"{ADAPTER_CONFIG}) is not a save_pretrained checkpoint"
        )
    return Path(base)


def load_adapter(checkpoint: str | Path, trainable: bool = False, dtype: torch.dtype = torch.float32):
    """The PeftModel of an adapter checkpoint, on its base model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    import pretrain.model  # noqa: F401  registers the canon model type, should the base be one

    model = AutoModelForCausalLM.from_pretrained(adapter_base(checkpoint), dtype=dtype)
    with quiet_peft():
        return PeftModel.from_pretrained(split_qkv(model), str(checkpoint), is_trainable=trainable)


def merge(peft_model) -> nn.Module:
    """The plain model with the adapters merged into its weights: fused q/k/v again, and the output head untied
    (it keeps the pretrained matrix, as during finetuning)."""
    base = peft_model.get_base_model()
    head = base.get_output_embeddings()
    if head.weight is base.get_input_embeddings().base_layer.weight:
        head.weight = nn.Parameter(head.weight.detach().clone())
    base.config.tie_word_embeddings = False
    base.config.get_text_config().tie_word_embeddings = False
    return fuse_qkv(peft_model.merge_and_unload())
