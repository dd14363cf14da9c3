"""The lean static-cache decoder (`pretrain.static_cache`) against `transformers`' own forward with a dynamic cache:
the same logits at every step, the same greedy tokens, the same samples, under every length limit."""

from __future__ import annotations

import pytest
import torch
from transformers import GPTNeoXForCausalLM

from pretrain import decode, static_cache
from pretrain.decode import DecodeConfig, DynamicStep, decode_batch, generate_beam, lean_by_default, left_pad
from pretrain.model import CanonNeoXForCausalLM, ModelConfig, build_model
from pretrain.static_cache import StaticNeoX, supports


def tiny_model(init_std: float = 0.02, canon_kernel: int = 0, **changes) -> torch.nn.Module:
    """A 2-layer model of ours, random weights; `changes` to its GPT-NeoX config try the layouts ours does not use.
    With `canon_kernel`, a Canon model whose convolutions are random too (they start at zero in training)."""
    shape = ModelConfig(
        n_layer=2, n_head=2, head_dim=16, max_positions=256, init_std=init_std, canon_kernel=canon_kernel
    )
    config = build_model(shape, 60).config
    for key, value in changes.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    model = (CanonNeoXForCausalLM if canon_kernel else GPTNeoXForCausalLM)(config)
    for layer in model.gpt_neox.layers if canon_kernel else ():
        torch.nn.init.normal_(layer.input_layernorm.weight, std=0.5)
        torch.nn.init.normal_(layer.input_layernorm.bias, std=0.1)
    return model.eval()


def random_prompts(lengths: tuple[int, ...] = (5, 31, 1, 17, 40, 9, 23, 12, 3, 28)) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 60, (n,), generator=g).tolist() for n in lengths]


@pytest.fixture(scope="module")
def chatty():
    """A random model whose large weights make its greedy text depend on the prompt, prompts of mixed lengths, and
    a stop token it writes in some rows, at different steps, but not in all (the role of <end>)."""
    model, ps = tiny_model(init_std=0.3), random_prompts()
    free = decode_batch(model, ps, 0, DecodeConfig(max_new_tokens=60), lean=False)
    firsts = {t: {x.index(t) for x in free if t in x} for t in set(sum(free, []))}
    stop = max(firsts, key=lambda t: (sum(t in x for x in free) < len(ps), len(firsts[t])))
    assert sum(stop in x for x in free) < len(ps) and len(firsts[stop]) > 2
    return model, stop, ps


LAYOUTS = {
    "ours": {},
    "parallel residual": {"use_parallel_residual": True},
    "partial rotary": {"rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}},
    "canon": {"canon_kernel": 12},  # a window longer than the shortest prompts: their padding must stay out
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_step_logits_equal_transformers(layout, monkeypatch):
    """Prefill and 80 one-token steps of StaticNeoX give the logits of the model's own forward (random weights;
    prompts prefilled in groups of 3, attending in blocks of 2; rows dropped along the way; enough steps to grow the cache)."""
    monkeypatch.setattr(static_cache, "PREFILL_ROWS", 3)
    monkeypatch.setattr(static_cache, "ATTN_ROWS", 2)
    model, prompts = tiny_model(**LAYOUTS[layout]), random_prompts((5, 31, 1, 17, 40, 9, 23))
    ids, mask = left_pad(prompts, 0)
    lean, ref = StaticNeoX(model, ids, mask, ids.shape[1] + 80), DynamicStep(model, ids, mask)
    with torch.inference_mode():
        a, b = lean.prefill(), ref.prefill()
        for step in range(80):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
            if step in (10, 30):  # finished rows leave the batch
                keep = torch.tensor([0, 2, 3, 5, 6] if step == 10 else [1, 2, 4])
                lean.select(keep)
                ref.select(keep)
                a, b = a[keep], b[keep]
            tokens = a.argmax(-1)
            a, b = lean.step(tokens), ref.step(tokens)
    assert lean.rows == ref.rows == 3 and lean.k.shape[3] > ids.shape[1] + static_cache.GROW


@pytest.mark.parametrize("limits", [{}, {"max_new_tokens": 7}, {"max_length": 50}])
def test_lean_greedy_equals_transformers(chatty, limits):
    """Same tokens as the dynamic-cache reference, under max_length, max_new_tokens or neither: rows finish at
    <end> or at their budget at different steps."""
    model, end, ps = chatty
    assert supports(model)
    longest = max(len(p) for p in ps)
    cfg = DecodeConfig(**{"max_length": longest + 60, **limits})
    lean = decode_batch(model, ps, end, cfg)
    assert lean == decode_batch(model, ps, end, cfg, lean=False)
    budgets = [min(cfg.max_length - len(p), cfg.max_new_tokens or cfg.max_length) for p in ps]
    assert all(len(x) <= b for x, b in zip(lean, budgets, strict=True))
    assert any(x[-1] == end for x in lean) and not all(x[-1] == end for x in lean)


def test_the_static_cache_is_the_default_on_a_cpu_only(chatty, monkeypatch):
    """Unless told, `decode_batch` takes the static cache for our models on a CPU, and the DynamicCache step on a GPU
    (there the static cache measured 19x slower) or for a model it does not run exactly."""
    model, end, ps = chatty
    assert lean_by_default(model, torch.device("cpu"))
    assert not lean_by_default(model, torch.device("cuda"))
    assert not lean_by_default(torch.nn.Linear(2, 2), torch.device("cpu"))
    cfg = DecodeConfig(max_new_tokens=3)
    reference = decode_batch(model, ps, end, cfg, lean=False)
    taken = []
    monkeypatch.setattr(static_cache.StaticNeoX, "prefill", lambda self: taken.append("static") or 1 / 0)
    with pytest.raises(ZeroDivisionError):  # on this CPU: the static cache
        decode_batch(model, ps, end, cfg)
    assert taken == ["static"]
    asked = []  # as on a GPU: decode_batch asks lean_by_default with the model's device and follows its answer
    monkeypatch.setattr(decode, "lean_by_default", lambda m, device: asked.append((m, device)) or False)
    assert decode_batch(model, ps, end, cfg) == reference and taken == ["static"]
    assert asked == [(model, torch.device("cpu"))]


def test_lean_sampling_draws_as_transformers(chatty):
    """With the same generator, sampling (and nucleus sampling) draws the same tokens as the reference."""
    model, end, ps = chatty
    for top_p in (1.0, 0.8):
        cfg = DecodeConfig(mode="sample", top_p=top_p, max_length=max(len(p) for p in ps) + 40)
        runs = [decode_batch(model, ps, end, cfg, torch.Generator().manual_seed(3), lean=x) for x in (True, False)]
        assert runs[0] == runs[1]


def test_forked_workers_give_the_same_generations(chatty):
    """`decode.workers=2` (batches decoded by two forked one-thread processes) returns every prompt's tokens, in the
    prompts' order, as one process does, greedy and beam; sampling refuses workers (its draws span the batches)."""
    from pretrain.decode import generate
    from pretrain.tokenizer import Roles

    model, end, ps = chatty
    roles = Roles(**{role: end for role in Roles.__dataclass_fields__})
    for mode in ({}, {"mode": "beam", "num_beams": 2}):
        cfg = dict(max_length=max(len(p) for p in ps) + 30, batch_size=3, **mode)
        one = generate(model, ps, roles, DecodeConfig(**cfg))
        assert generate(model, ps, roles, DecodeConfig(**cfg, workers=2)) == one
        assert generate(model, ps, roles, DecodeConfig(**{**cfg, "batch_size": 64}, workers=2)) == one
    with pytest.raises(ValueError, match="workers > 1 needs a deterministic mode"):
        DecodeConfig(mode="sample", workers=2)
    with pytest.raises(ValueError, match="decode.workers must be >= 1, got 0"):
        DecodeConfig(workers=0)


def test_canon_model_decodes_as_its_uncached_forward():
    """A canon model (its convolutions' inputs ride in the KV cache) decodes, through `StaticNeoX` and through
    `DynamicStep`, the tokens that re-running the whole sequence each step gives, for left-padded prompts of mixed
    lengths, rows finishing early; `generate` (beam search), which hands it no position ids, gives the same greedy
    tokens and pads nothing in."""
    model = tiny_model(init_std=0.3, canon_kernel=4)
    assert supports(model)
    prompts = random_prompts((5, 31, 1, 17))
    got = decode_batch(model, prompts, 7, DecodeConfig(max_new_tokens=25))
    assert decode_batch(model, prompts, 7, DecodeConfig(max_new_tokens=25), lean=False) == got
    with torch.inference_mode():
        for prompt, out in zip(prompts, got, strict=True):
            seq = list(prompt)
            while len(seq) - len(prompt) < 25 and (len(seq) == len(prompt) or seq[-1] != 7):
                seq.append(int(model(input_ids=torch.tensor([seq])).logits[0, -1].argmax()))
            assert out == seq[len(prompt) :]
    assert generate_beam(model, prompts, 7, DecodeConfig(mode="beam", num_beams=1, max_new_tokens=25)) == got
    beam = DecodeConfig(mode="beam", num_beams=3, max_new_tokens=12)
    assert generate_beam(model, prompts[:2], 7, beam)[0] == generate_beam(model, prompts[:1], 7, beam)[0]
