"""The recall toy's sequences say what its conclusions rely on (distinct keys, each question's target is the value of
its key, the gap's filler sits between a question's key and its "=")."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import recall_toy as toy  # noqa: E402


@pytest.mark.parametrize(("key", "gap", "queries"), [(1, 0, 1), (2, 6, 1), (2, 3, 3)])
def test_toy_questions_ask_for_the_value_of_a_stated_key(key, gap, queries):
    ids, targets = toy.batch(50, 4, key, gap, torch.Generator().manual_seed(1), queries)
    body, question = 4 * (key + 3), key + gap + 4
    assert ids.shape == targets.shape == (50, body + queries * question)
    for row, target in zip(ids.tolist(), targets.tolist(), strict=True):
        statements = [row[i : i + key + 3] for i in range(0, body, key + 3)]
        assert all(s[key] == toy.EQ and s[key + 2] == toy.DOT for s in statements)
        keys = [tuple(s[:key]) for s in statements]
        assert len(set(keys)) == 4 and all(0 <= t < toy.NAMES for k in keys for t in k)
        assert set(target[:body]) == {toy.IGNORE}
        for start in range(body, len(row), question):
            q, t = row[start : start + question], target[start : start + question]
            assert q[0] == toy.ASK and q[key + gap + 1] == toy.EQ and q[-1] == toy.DOT
            assert all(toy.FILLER <= x < toy.FILLER + toy.N_FILLER for x in q[1 + key : 1 + key + gap])
            value = statements[keys.index(tuple(q[1 : 1 + key]))][key + 1]
            assert q[key + gap + 2] == value and toy.NAMES <= value < toy.NAMES + toy.VALUES
            # the one target sits on the "=" and is the token that follows it
            assert t == [toy.IGNORE] * (key + gap + 1) + [value, toy.IGNORE, toy.IGNORE]
