"""The tokenizer: a standard transformers artifact, exact round trips, single tokens where the grammar needs them,
and loss masks that cover exactly the mistake tokens."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from igsm import templates as T
from igsm.dataset import DataConfig, MistakeConfig, make_example
from pretrain.tokenizer import (
    OPTIONAL_ROLES,
    SINGLE_TOKEN_WORDS,
    SPECIAL_TOKENS,
    TokenizerConfig,
    encode_batch,
    layout,
    prompt_ids,
    resolve_roles,
    train_tokenizer,
)

RETRY = DataConfig(mistakes=MistakeConfig("retry", 0.4))
HARD_MISS = DataConfig(max_op=21, max_edge=28, mistakes=MistakeConfig("retry_miss", 0.3))


def test_reloads_with_autotokenizer(smoke_tokenizer_dir, smoke_tokenizer):
    again = AutoTokenizer.from_pretrained(str(smoke_tokenizer_dir))
    text = make_example(RETRY, "train", 0)["prompt"]
    assert again(text).input_ids == smoke_tokenizer(text).input_ids
    assert len(again) <= 1024 + len(SPECIAL_TOKENS)


def test_single_tokens(smoke_tokenizer):
    for word in SINGLE_TOKEN_WORDS:
        assert len(smoke_tokenizer(word, add_special_tokens=False).input_ids) == 1, word
    for tok in SPECIAL_TOKENS.values():
        assert len(smoke_tokenizer(tok, add_special_tokens=False).input_ids) == 1, tok
    assert {" BACK", " 22", " Z"} <= set(SINGLE_TOKEN_WORDS)


@pytest.mark.parametrize("cfg", [RETRY, HARD_MISS])
def test_exact_round_trip(smoke_tokenizer, cfg):
    for i in range(150):
        e = make_example(cfg, "train", i)
        for text in (e["prompt"], " " + e["solution"], f" {e['answer']}", e["prompt"] + " " + e["solution"]):
            ids = smoke_tokenizer(text, add_special_tokens=False).input_ids
            assert smoke_tokenizer.decode(ids) == text


def test_sequence_layout_and_masks(smoke_tokenizer):
    tok = smoke_tokenizer
    roles = resolve_roles(tok, SPECIAL_TOKENS)
    examples = [make_example(RETRY, "train", i) for i in range(40)]
    with_mistakes = [e for e in examples if e["n_mistakes"]]
    assert with_mistakes
    none, name, step = (encode_batch(tok, roles, examples, m) for m in ("none", "name", "step"))
    for k, e in enumerate(examples):
        ids = none["input_ids"][k]
        p = none["prompt_length"][k]
        assert ids[0] == roles.begin_problem and ids[p - 1] == roles.begin_solution and ids[-1] == roles.end
        assert tok.decode(ids[1 : p - 1]) == e["prompt"]
        assert prompt_ids(tok, roles, e["prompt"]) == [roles.end, *ids[:p]]  # a model's prompt: the same layout
        a = ids.index(roles.begin_answer)
        assert tok.decode(ids[p:a]) == " " + e["solution"] and tok.decode(ids[a + 1 : -1]) == f" {e['answer']}"
        assert all(none["loss_mask"][k])
        masked_name = "".join(tok.decode([t]) for t, m in zip(ids, name["loss_mask"][k], strict=True) if not m)
        assert masked_name == "".join(" " + n for n in e["mistake_params"])
        masked_step = "".join(tok.decode([t]) for t, m in zip(ids, step["loss_mask"][k], strict=True) if not m)
        assert masked_step == "".join(f" {T.DEFINE}{n}{T.AS.rstrip()}" for n in e["mistake_params"])
        spans = none["mistake_token_spans"][k]
        assert [tok.decode(ids[a:b]) for a, b in spans] == [f" {T.back_sentence(n)}." for n in e["mistake_params"]]
    assert prompt_ids(tok, roles, "x")[:2] == [roles.end, roles.begin_problem]
    with pytest.raises(ValueError, match="needs its answer"):
        layout(roles, [1], [2])


def test_roles_by_id_and_bad_roles(smoke_tokenizer):
    by_name = resolve_roles(smoke_tokenizer, SPECIAL_TOKENS)
    by_id = resolve_roles(smoke_tokenizer, {r: getattr(by_name, r) for r in SPECIAL_TOKENS})
    assert by_id == by_name
    with pytest.raises(ValueError, match="tokenizer.roles.begin_answer = '<|nope|>'"):
        resolve_roles(smoke_tokenizer, {**SPECIAL_TOKENS, "begin_answer": "<|nope|>"})
    with pytest.raises(ValueError, match="tokenizer.roles.end = 999999"):
        resolve_roles(smoke_tokenizer, {**SPECIAL_TOKENS, "end": 999999})
    with pytest.raises(ValueError, match="lacks"):
        TokenizerConfig(roles={"end": "x"})


def test_training_is_deterministic(tmp_path):
    cfg = TokenizerConfig(vocab_size=1024, train_problems=400)
    a = train_tokenizer(cfg, DataConfig(), tmp_path / "a")
    b = train_tokenizer(cfg, DataConfig(), tmp_path / "b")
    assert a.get_vocab() == b.get_vocab()
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


def test_a_small_world_gets_a_small_tokenizer(tmp_path):
    """The tokenizer is trained on the world it serves: 24 names fit in 512 tokens with every number, symbol and
    BACK still one token (train_tokenizer checks that), and names take a few tokens on average."""
    world = DataConfig(max_op=4, max_edge=6, hierarchies=["city"], groups=1, items=6)
    tok = train_tokenizer(TokenizerConfig(vocab_size=512, train_problems=600), world, tmp_path / "t")
    assert len(tok) <= 512 + len(OPTIONAL_ROLES)  # the optional roles' tokens come on top of the BPE's size
    names = world.gen_config("train").vocabulary().item_category
    lengths = [len(tok(" " + n, add_special_tokens=False).input_ids) for n in names]
    assert sum(lengths) / len(lengths) <= 3, lengths


def test_whole_names_make_every_item_name_one_token(tmp_path):
    """tokenizer.whole_names: each item name of the world is one token (so a parameter is always three), text
    still round-trips exactly, and the cache never confuses it with the plain tokenizer."""
    from pretrain.tokenizer import cache_name

    world = DataConfig(max_op=4, max_edge=6, hierarchies=["city"], groups=1, items=6)
    cfg = TokenizerConfig(vocab_size=512, train_problems=300, whole_names=True)
    tok = train_tokenizer(cfg, world, tmp_path / "t")
    names = world.gen_config("train").vocabulary().item_category
    assert len(tok) <= 512 + len(OPTIONAL_ROLES) + len(names)
    for name in names:
        assert len(tok(f" {name}", add_special_tokens=False).input_ids) == 1, name
        assert len(tok(f" {name}'s", add_special_tokens=False).input_ids) == 2, name
    for i in range(60):
        e = make_example(world, "train", i)
        text = e["prompt"] + " " + e["solution"]
        assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    assert cache_name(cfg, world) != cache_name(TokenizerConfig(vocab_size=512, train_problems=300), world)


def test_two_attempt_examples_restate_the_clean_solution_after_retry(smoke_tokenizer):
    """data.two_attempts writes that share of training examples (and no test example) as two attempts: the usual
    example, then <retry>, the clean solution and the answer again, all trained on; older roles without the retry
    token still resolve (retry None)."""
    tok = smoke_tokenizer
    roles = resolve_roles(tok, SPECIAL_TOKENS)
    cfg = DataConfig(max_op=4, max_edge=6, two_attempts=0.3, mistakes=MistakeConfig("retry", 0.3))
    examples = [make_example(cfg, "train", i) for i in range(200)]
    assert 0.2 < sum(e["two_attempts"] for e in examples) / 200 < 0.4
    assert not any(make_example(cfg, "test_op4", i)["two_attempts"] for i in range(50))
    assert not any(make_example(DataConfig(max_op=4, max_edge=6), "train", i)["two_attempts"] for i in range(50))
    twice = [e for e in examples if e["two_attempts"]][:5]
    enc = encode_batch(tok, roles, twice, "name")
    for k, e in enumerate(twice):
        ids = enc["input_ids"][k]
        r = ids.index(roles.retry)
        assert ids[r - 1] == roles.end and ids.count(roles.retry) == 1 and ids[-1] == roles.end
        assert ids[:r] == encode_batch(tok, roles, [{**e, "two_attempts": False}], "name")["input_ids"][0]
        a = ids.index(roles.begin_answer, r)
        assert (
            tok.decode(ids[r + 1 : a]) == " " + e["clean_solution"] and tok.decode(ids[a + 1 : -1]) == f" {e['answer']}"
        )
        assert all(enc["loss_mask"][k][r:])
    old = resolve_roles(tok, {k: v for k, v in SPECIAL_TOKENS.items() if k != "retry"})
    assert old.retry is None and old.end == roles.end
    assert roles.retry == len(tok) - 1  # appended last: every other id is that of a tokenizer trained without it
    with pytest.raises(ValueError, match="two_attempts must be in"):
        DataConfig(two_attempts=1.5)
