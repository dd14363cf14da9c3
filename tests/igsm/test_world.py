"""World-size knobs: a deterministic cut of the vocabulary, problems that use only its names, a verifier that reads
them, clear errors for impossible worlds, and cache keys that follow the world."""

from __future__ import annotations

import dataclasses

import pytest

from igsm.config import GenConfig
from igsm.dataset import DataConfig
from igsm.generator import generate
from igsm.verifier import verify
from igsm.vocab import load_vocabulary, world_vocabulary

SMALL = GenConfig(max_op=4, max_edge=6, hierarchies=("city",), groups=1, items=6, split="all")


def test_subset_is_the_first_names_of_the_named_hierarchies():
    full, small = load_vocabulary(), SMALL.vocabulary()
    assert small.hierarchies == (full.hierarchies[full.names.index("city")],)
    assert small.size == 4 * 6
    for cat, groups in small.groups.items():
        assert groups == (full.groups[cat][0][:6],)
    assert world_vocabulary(("city",), 1, 6) is small  # cached: one object per world
    assert GenConfig().vocabulary() is full


def test_small_world_problems_use_its_names_and_verify():
    names = set(SMALL.vocabulary().item_category)
    for i in range(40):
        p = generate(SMALL, 3, i)
        assert {x for layer in p.items for x in layer} <= names
        assert set(p.layer_names) <= set(SMALL.vocabulary().hierarchies[0])
        v = verify(p.problem_text, p.question_text, p.solution_text, p.answer)
        assert v.correct and v.strict_correct, (i, v.errors)


def test_world_is_part_of_the_stream():
    assert generate(SMALL, 0, 0).to_record() == generate(SMALL, 0, 0).to_record()
    assert generate(SMALL, 0, 0).to_record() != generate(SMALL.with_(items=8), 0, 0).to_record()


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"hierarchies": ("castle",)}, "castle"),
        ({"hierarchies": ()}, "hierarchies"),
        ({"groups": 0}, "groups=0"),
        ({"groups": 99}, "groups=99"),
        ({"items": 3}, "items=3"),
        ({"items": 500}, "items=500"),
        ({"symbols": "greek"}, "greek"),
    ],
)
def test_impossible_worlds_fail_naming_the_value(knobs, message):
    with pytest.raises(ValueError, match=message):
        GenConfig(**knobs)
    with pytest.raises(ValueError, match=message):
        DataConfig(**{k: list(v) if isinstance(v, tuple) else v for k, v in knobs.items()})


def test_cache_keys_follow_the_world(monkeypatch):
    from pretrain.data import BuildConfig

    big = BuildConfig(data=DataConfig(name="w", max_op=4, max_edge=6))
    small = BuildConfig(data=DataConfig(name="w", max_op=4, max_edge=6, hierarchies=["city"], groups=1, items=6))
    assert big.path != small.path
    assert big.tokenizer_path != small.tokenizer_path
    ordered = BuildConfig(data=DataConfig(name="w", max_op=4, max_edge=6, symbols="ordered"))
    assert ordered.path != big.path
    # the same config over an edited vocabulary file must not reuse what was built from the old one
    before = (small.path, small.tokenizer_path)
    edited = dataclasses.replace(SMALL.vocabulary(), groups={**SMALL.vocabulary().groups, "Park": (("A", "B", "C", "D"),)})
    monkeypatch.setattr("igsm.config.world_vocabulary", lambda *a: edited)
    assert (small.path, small.tokenizer_path) != before


def test_cli_sizes_the_world(capsys):
    import json

    from igsm.generate import main

    main(["--max-op", "4", "--max-edge", "6", "--hierarchies", "city", "--groups", "1", "--items", "6", "--n", "3"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["problem"] for r in records] == [generate(SMALL.with_(split="train"), 0, i).problem_text for i in range(3)]
    with pytest.raises(SystemExit, match="items=2"):
        main(["--items", "2"])


def test_seen_splits_draw_fresh_problems_from_the_train_bins():
    data = DataConfig(max_op=4, max_edge=6, test_ops=[3], seen_ops=[3], hierarchies=["city"], groups=1, items=6)
    assert "test_seen_op3" in data.splits() and DataConfig.column("test_seen_op3") == "seen3"
    from igsm.dataset import make_example
    from igsm.split import TRAIN_BINS

    seen = [make_example(data, "test_seen_op3", i) for i in range(20)]
    assert all(e["op"] == 3 and e["hash_bin"] in TRAIN_BINS for e in seen)
    train = {make_example(data, "train", i)["prompt"] for i in range(200)}
    assert not train & {e["prompt"] for e in seen}


def test_ordered_symbols_are_a_b_c_in_text_order_and_verify():
    """`symbols="ordered"`: every solution names its parameters and intermediates a, b, c, ... as the text meets
    them (with mistakes inserted too); the verifier accepts them; "random" keeps the papers' random letters."""
    import random
    import re

    from igsm.mistakes import insert_mistakes
    from igsm.templates import SYMBOLS

    ordered = SMALL.with_(symbols="ordered")
    shuffled = 0
    for i in range(40):
        p = generate(ordered, 5, i)
        defined = re.findall(r"(?:as |; )([a-zA-Z]) = |as ([a-zA-Z]);", p.solution_text)
        letters = [a or b for a, b in defined]
        assert letters == list(SYMBOLS[: len(letters)]) and letters, (i, p.solution_text)
        v = verify(p.problem_text, p.question_text, p.solution_text, p.answer)
        assert v.correct and v.strict_correct, (i, v.errors)
        wm = insert_mistakes(p, "retry", 0.5, random.Random(i))
        assert verify(p.problem_text, p.question_text, wm.solution, p.answer).correct
        first = re.search(r" as ([a-zA-Z]);", generate(SMALL, 5, i).solution_text).group(1)
        shuffled += first != "a"
    assert shuffled > 30  # random letters: the first symbol is rarely "a"
