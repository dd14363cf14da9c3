"""A lean one-token forward for `transformers`' GPT-NeoX over a static KV cache: the fast path of
`pretrain.decode.decode_batch` for small models on CPU.

With a small model (the laptop model: 6 layers of hidden 128), a decoding step through `model(...)` spends most of its
time outside the matrix products: building the 4D attention mask, concatenating to the `DynamicCache`, re-slicing
it when sequences finish. Here the step runs through the model's own submodules (embedding, layer norms, the fused
query_key_value, its rotary embedding, dense, MLP, head: the same weights, no copy) with the keys and values written
in place into buffers preallocated as [layers, batch, heads, capacity, head_dim], and attention by
`scaled_dot_product_attention` under the left-padding mask, in blocks of rows that skip the padding columns no row of
theirs needs. The prompts are prefilled by the model's own forward, so the cache starts as `transformers` computes it.
A Canon model (`pretrain.model.CanonNeoXForCausalLM`) runs here too: each layer's last `canon_kernel - 1`
convolution inputs are kept per row beside the KV buffers, taken from the prefill's cache.
`decode_batch` drops finished rows (`select`) only once enough of them have piled up, since a compaction moves rows.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

import torch
import torch.nn.functional as F
from transformers import DynamicCache, GPTNeoXForCausalLM
from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

GROW = 64  # cache columns added at a time (at least; or as many as generated so far): growing copies the cache
PREFILL_ROWS = 8  # prompts prefilled together, grouped by length
ATTN_ROWS = 16  # rows that attend together in a step, over the columns the longest of their prompts needs


def supports(model: torch.nn.Module) -> bool:
    """Whether `StaticNeoX` runs this model exactly: a GPT-NeoX causal LM of ours, plain or with Canon layers (not,
    e.g., wrapped by peft), not training with dropout (the step applies none)."""
    from pretrain.model import CanonNeoXForCausalLM  # not at the top: pretrain.model imports this module

    if type(model) not in (GPTNeoXForCausalLM, CanonNeoXForCausalLM):
        return False
    c = model.config
    return not (model.training and (c.hidden_dropout or c.attention_dropout))


def with_cache(model: torch.nn.Module, kv: DynamicCache) -> dict:
    """The keyword that hands a KV cache to the model's forward: `cache` from transformers 5.x on (which warns that
    `past_key_values`, the older name, goes away in 5.40), `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper: its model's
    return {cache_keyword(type(base)): kv}


@lru_cache
def cache_keyword(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


class StaticNeoX:
    """The decoding state of a batch of left-padded prompts on a GPT-NeoX model: `prefill()` gives the logits after
    the prompts, each `step(tokens)` feeds one token per row and gives the logits after it, `select(rows)` keeps some
    rows. Rows are the batch's rows in their order, minus those dropped by `select`."""

    def __init__(self, model: GPTNeoXForCausalLM, ids: torch.Tensor, mask: torch.Tensor, max_len: int):
        """`ids` and `mask`: [batch, width], left-padded; `max_len`: the most columns the cache will ever hold
        (prompt width + the tokens fed by `step`)."""
        if not supports(model):
            raise TypeError(f"StaticNeoX runs a GPTNeoXForCausalLM, got {type(model).__name__}")
        c = model.config
        self.model, self.net = model, model.gpt_neox
        self.n_layer = c.num_hidden_layers
        self.canon = getattr(c, "canon_kernel", 0)  # > 0: each layer's attention input is convolved (CanonNorm)
        self.conv = None  # then [layers, rows, canon - 1, hidden]: each row's last convolution inputs per layer
        # each layer's convolution weights oldest input first, flipped once here rather than in every step
        self.conv_w = [layer.input_layernorm.weight.detach().flip(0) for layer in self.net.layers] if self.canon else []
        self.n_head = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.ids, self.mask0 = ids, mask
        self.max_len = max_len
        self.width = ids.shape[1]
        self.col = self.width  # the column the next token's key and value go to
        self.pos = (mask.cumsum(-1) - 1).clamp(min=0)  # rotary positions: each row counts from its first real token
        self._blocks((self.width - mask.sum(-1)).tolist())
        self.k = self.v = self.mask = None

    @property
    def rows(self) -> int:
        return self.k.shape[1]

    @torch.inference_mode()
    def prefill(self) -> torch.Tensor:
        """Next-token logits [batch, vocab] after the prompts, through the model's own forward; its keys and values
        become the first columns of the static cache. Rows of similar length are prefilled together
        (`PREFILL_ROWS` at a time), each group padded only to its own longest prompt: with prompts of 40 to 300
        tokens, padding to the batch's longest would double the prefill's work."""
        batch, width, device = self.ids.shape[0], self.width, self.ids.device
        lengths = self.mask0.sum(-1)
        order = lengths.argsort(descending=True, stable=True)
        logits = None
        for start in range(0, batch, PREFILL_ROWS):
            rows = order[start : start + PREFILL_ROWS]
            w = int(lengths[rows].max())  # this group's columns: the last w of the batch's
            cache = DynamicCache()
            out = self.model(
                input_ids=self.ids[rows, width - w :],
                attention_mask=self.mask0[rows, width - w :],
                position_ids=self.pos[rows, width - w :],
                **with_cache(self.model, cache),
                use_cache=True,
                logits_to_keep=1,
            ).logits[:, -1]
            if logits is None:
                cap = min(self.max_len, width + GROW)
                shape = (self.n_layer, batch, self.n_head, cap, self.head_dim)
                dtype = cache.layers[0].keys.dtype
                # only columns < width (prefill) and those `step` writes are ever read: no need to zero the rest
                self.k = torch.empty(shape, dtype=dtype, device=device)
                self.v = torch.empty(shape, dtype=dtype, device=device)
                self.k[:, :, :, :width] = 0  # the padding columns a group does not cover: masked, but must be finite
                self.v[:, :, :, :width] = 0
                logits = out.new_empty(batch, out.shape[-1])
                if self.canon:  # zeros before a short prompt: never read (the convolution masks by position)
                    self.conv = out.new_zeros(self.n_layer, batch, self.canon - 1, self.model.config.hidden_size)
            logits[rows] = out
            for i, layer in enumerate(cache.layers[: self.n_layer]):
                self.k[i, rows, :, width - w : width] = layer.keys
                self.v[i, rows, :, width - w : width] = layer.values
            for i, layer in enumerate(cache.layers[self.n_layer :] if self.canon else ()):
                last = layer.keys[:, 0, -(self.canon - 1) :]  # [rows, <= canon - 1, hidden]: the inputs so far
                self.conv[i, rows, self.canon - 1 - last.shape[1] :] = last
        self.mask = torch.ones(batch, self.k.shape[3], dtype=torch.bool, device=device)
        self.mask[:, :width] = self.mask0.bool()
        self.pos = self.pos[:, -1:]
        return logits

    def select(self, keep: torch.Tensor) -> None:
        """Keep only the rows `keep` (increasing indices into the current rows)."""
        # In place, row by row: each kept row moves up over a dropped one, its filled columns only. Several times
        # faster than an index_select of the buffer, which copies every row and column; rows only move up, so a
        # row is always read before anything is written over it.
        kept = keep.tolist()
        if kept != sorted(set(kept)):
            raise ValueError("select: the rows to keep must be increasing")
        for j, r in enumerate(kept):
            if r != j:
                self.k[:, j, :, : self.col] = self.k[:, r, :, : self.col]
                self.v[:, j, :, : self.col] = self.v[:, r, :, : self.col]
        n = len(kept)
        self.k, self.v = self.k[:, :n], self.v[:, :n]
        self.mask, self.pos = self.mask[keep], self.pos[keep]
        if self.conv is not None:
            self.conv = self.conv[:, keep]
        self._blocks([self.first[r] for r in kept])

    def _blocks(self, first: list[int]) -> None:
        """Split the rows into blocks of `ATTN_ROWS` for attention, each with the first column any of its rows needs:
        a block of short prompts skips the padding columns (half of a batch's prompt columns, when `generate` sorts
        the prompts by length), whose keys and values dominate the memory a step reads."""
        self.first = first
        self.blocks = [(a, a + ATTN_ROWS, min(first[a : a + ATTN_ROWS])) for a in range(0, len(first), ATTN_ROWS)]

    def _grow(self) -> None:
        """Add columns to the cache: at least `GROW`, or as many as generated so far (amortised copies)."""
        n = self.col
        cap = min(self.max_len, n + max(GROW, n - self.width))
        k, v, mask = self.k, self.v, self.mask
        self.k = k.new_empty((*k.shape[:3], cap, self.head_dim))
        self.v = v.new_empty((*v.shape[:3], cap, self.head_dim))
        self.k[:, :, :, :n] = k[:, :, :, :n]
        self.v[:, :, :, :n] = v[:, :, :, :n]
        self.mask = mask.new_ones((mask.shape[0], cap))
        self.mask[:, :n] = mask[:, :n]

    @torch.inference_mode()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [rows, vocab] after feeding `tokens` [rows], one per row, at the next column."""
        if self.col >= self.k.shape[3]:
            if self.col >= self.max_len:
                raise RuntimeError(f"the static cache is full ({self.max_len} columns)")
            self._grow()
        self.pos = self.pos + 1
        col, batch = self.col, tokens.shape[0]
        h = self.net.embed_in(tokens[:, None])  # [rows, 1, hidden]
        cos, sin = self.net.rotary_emb(h, self.pos)
        mask = self.mask[:, None, None, : col + 1]
        valid = None
        if self.canon:  # which of the window's inputs (oldest first) belong to the row: position >= their distance
            reach = torch.arange(self.canon - 1, -1, -1, device=h.device)
            valid = (self.pos >= reach).to(h.dtype)[..., None]  # [rows, canon, 1]
        for i, layer in enumerate(self.net.layers):
            att = layer.attention
            x = self._canon(i, layer.input_layernorm, h, valid) if self.canon else layer.input_layernorm(h)
            qkv = att.query_key_value(x)
            # transformers' layout: the fused output is (heads, 3 * head_dim), chunked into q, k, v per head
            q, k, v = qkv.view(batch, 1, self.n_head, 3 * self.head_dim).transpose(1, 2).chunk(3, dim=-1)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)  # rotates the first rotary_ndims dims (partial rotary too)
            self.k[i, :, :, col] = k[:, :, 0]
            self.v[i, :, :, col] = v[:, :, 0]
            ks, vs = self.k[i, :, :, : col + 1], self.v[i, :, :, : col + 1]
            o = torch.cat(
                [
                    F.scaled_dot_product_attention(
                        q[a:b], ks[a:b, :, c:], vs[a:b, :, c:], attn_mask=mask[a:b, :, :, c:], scale=att.scaling
                    )
                    for a, b, c in self.blocks
                ]
            )
            o = att.dense(o.transpose(1, 2).reshape(batch, 1, -1))
            if layer.use_parallel_residual:
                h = layer.mlp(layer.post_attention_layernorm(h)) + o + h
            else:
                o = o + h
                h = layer.mlp(layer.post_attention_layernorm(o)) + o
        self.col += 1
        return self.model.lm_head(self.net.final_layer_norm(h))[:, -1]

    def _canon(self, i: int, canon: torch.nn.Module, h: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """`CanonNorm` for one new token per row: its norm, plus the convolution over this layer's window (the kept
        inputs, then the new one), which then slides by one."""
        n = canon.norm(h)  # [rows, 1, hidden]
        window = torch.cat([self.conv[i], n], dim=1)  # [rows, canon, hidden], oldest first
        self.conv[i] = window[:, 1:]
        return n + canon.bias + (window * valid * self.conv_w[i]).sum(1, keepdim=True)
