"""The model: GPT-2 + RoPE from transformers' GPT-NeoX classes, reloading exactly."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from pretrain.decode import left_pad
from pretrain.model import ModelConfig, build_model, check_vocab, flops_per_token, n_params, padded_vocab

SMALL = ModelConfig(name="t", n_layer=2, n_head=2, head_dim=16, max_positions=256)


def test_architecture_is_gpt2_with_rope():
    m = build_model(SMALL, 1000)
    c = m.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.hidden_size, c.intermediate_size) == (2, 2, 32, 128)
    assert not c.use_parallel_residual and c.rope_parameters["partial_rotary_factor"] == 1.0
    assert c.attention_dropout == 0 and c.hidden_dropout == 0 and c.hidden_act == "gelu"
    assert m.get_output_embeddings().weight is m.get_input_embeddings().weight  # tied, as GPT-2
    assert c.vocab_size == padded_vocab(1000) == 1024
    assert not any("position" in n and "embed" in n for n, _ in m.named_parameters())  # no learned positions


def test_paper_model_sizes():
    for layers, heads, millions in [(12, 12, 85), (20, 9, 80), (4, 21, 85), (8, 15, 87)]:
        m = build_model(ModelConfig(n_layer=layers, n_head=heads), 4100)
        assert n_params(m) / 1e6 == pytest.approx(millions + 64 * heads * 4160 / 1e6, rel=0.05)


def test_reload_gives_the_same_logits(tmp_path):
    torch.manual_seed(0)
    m = build_model(SMALL, 1000).eval()
    x = torch.randint(0, 1000, (2, 200))
    m.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(m(x).logits, again(x).logits)
    # the rotary frequencies are not saved; they must come back exactly (the known trap)
    inv = 1.0 / (10_000.0 ** (torch.arange(0, 16, 2, dtype=torch.float32) / 16))
    assert torch.equal(again.gpt_neox.rotary_emb.inv_freq, inv)
    assert again.gpt_neox.rotary_emb.inv_freq.dtype == torch.float32


def test_vocab_mismatch_is_refused():
    m = build_model(SMALL, 1000)
    check_vocab(m, 1024)
    with pytest.raises(ValueError, match="tokenizer has 1100 tokens but the model embeds only 1024"):
        check_vocab(m, 1100)


def test_flops_per_token():
    m = build_model(ModelConfig(), 4100)
    assert flops_per_token(m, 768) == 6 * n_params(m) + 12 * 12 * 768 * 768


def test_partial_rotary_leaves_the_other_dims_unrotated(tmp_path):
    """model.rotary_fraction: rotary turns that share of each head's dims (so a content match on the rest does not
    depend on distance), survives a reload, and a value outside (0, 1] is refused by name."""
    from dataclasses import replace

    torch.manual_seed(0)
    m = build_model(replace(SMALL, rotary_fraction=0.25), 1000).eval()
    assert m.config.rope_parameters["partial_rotary_factor"] == 0.25
    assert m.gpt_neox.rotary_emb.inv_freq.numel() == 2  # 4 of the 16 dims of a head rotate: 2 frequencies
    m.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = torch.randint(0, 1000, (1, 50))
    with torch.no_grad():
        assert torch.equal(m(x).logits, again(x).logits)
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match=f"model.rotary_fraction must be in \\(0, 1\\], got {bad}"):
            ModelConfig(rotary_fraction=bad)


CANON = ModelConfig(name="c", n_layer=2, n_head=2, head_dim=8, max_positions=64, canon_kernel=3)


def _canon_model(seed: int = 0):
    """A canon model with non-zero convolutions (a new one starts with zeros)."""
    torch.manual_seed(seed)
    m = build_model(CANON, 30).eval()
    for layer in m.gpt_neox.layers:
        torch.nn.init.normal_(layer.input_layernorm.weight, std=0.5)
        torch.nn.init.normal_(layer.input_layernorm.bias, std=0.5)
    return m


def test_canon_model_starts_as_the_plain_one_and_never_looks_ahead():
    torch.manual_seed(0)
    plain = build_model(dataclasses.replace(CANON, canon_kernel=0), 30).eval()
    canon = build_model(CANON, 30).eval()
    assert n_params(canon) - n_params(plain) == 2 * (3 + 1) * 16  # per layer: kernel x width weights, width biases
    canon.load_state_dict({k.replace("input_layernorm.", "input_layernorm.norm."): v for k, v in plain.state_dict().items()}, strict=False)
    ids = torch.randint(0, 30, (2, 12))
    with torch.no_grad():
        assert torch.equal(plain(input_ids=ids).logits, canon(input_ids=ids).logits)
        m = _canon_model()
        before = m(input_ids=ids).logits
        changed = ids.clone()
        changed[:, 7] = (changed[:, 7] + 1) % 30
        after = m(input_ids=changed).logits
    assert torch.equal(before[:, :7], after[:, :7]) and not torch.allclose(before[:, 7:], after[:, 7:])
    with pytest.raises(ValueError, match="model.canon_kernel must be 0 \\(none\\) or >= 2 positions, got 1"):
        ModelConfig(canon_kernel=1)


def test_canon_model_caches_its_convolutions_and_reloads(tmp_path):
    """Token by token through a KV cache = the whole sequence at once; a crop rewinds the convolutions too; left
    padding and the documents of a packed window (position ids restarting at 0) are not convolved across."""
    m = _canon_model()
    ids = torch.randint(0, 30, (3, 12))
    with torch.no_grad():
        full = m(input_ids=ids, use_cache=False).logits
        kv = DynamicCache()
        steps = [m(input_ids=ids[:, :5], cache=kv).logits] + [m(input_ids=ids[:, t : t + 1], cache=kv).logits for t in range(5, 12)]
        assert torch.allclose(torch.cat(steps, 1), full, atol=1e-5)
        kv.crop(-4)
        assert torch.allclose(m(input_ids=ids[:, 8:], cache=kv).logits, full[:, 8:], atol=1e-5)
        x, mask = left_pad([ids[0, :9].tolist(), ids[1, :4].tolist()], 0)
        padded = m(input_ids=x, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits
        assert torch.allclose(padded[1, -4:], m(input_ids=ids[1:2, :4]).logits[0], atol=1e-5)
        two_docs = torch.cat([ids[0, :5], ids[1, :7]])[None]
        pos = torch.cat([torch.arange(5), torch.arange(7)])[None]
        mask4d = torch.zeros(1, 1, 12, 12, dtype=torch.bool)
        mask4d[..., :5, :5] = mask4d[..., 5:, 5:] = True
        mask4d &= torch.ones(12, 12, dtype=torch.bool).tril()
        second = m(input_ids=two_docs, position_ids=pos, attention_mask=mask4d).logits[0, 5:]
        assert torch.allclose(second, m(input_ids=ids[1:2, :7]).logits[0], atol=1e-5)
    m.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(again) is type(m) and again.config.canon_kernel == 3
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids).logits, m(input_ids=ids).logits)
