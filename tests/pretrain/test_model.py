"""The model: GPT-2 + RoPE from transformers' GPT-NeoX classes, reloading exactly."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

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
