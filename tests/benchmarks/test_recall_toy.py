"""The recall toy's sequences say what its conclusions rely on: distinct keys, the answer is the queried key's value,
the gap's filler sits between the query's key and its "="."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import recall_toy as toy  # noqa: E402


def test_toy_sequences_ask_for_the_value_of_one_stated_key():
    for key, gap in ((1, 0), (2, 6)):
        ids, answers = toy.batch(50, 4, key, gap, torch.Generator().manual_seed(1))
        assert ids.shape == (50, 4 * (key + 3) + 1 + key + gap + 1)
        for row, answer in zip(ids.tolist(), answers.tolist(), strict=True):
            statements = [row[i : i + key + 3] for i in range(0, 4 * (key + 3), key + 3)]
            assert all(s[key] == toy.EQ and s[key + 2] == toy.DOT for s in statements)
            keys = [tuple(s[:key]) for s in statements]
            assert len(set(keys)) == 4 and all(0 <= t < toy.NAMES for k in keys for t in k)
            query = row[4 * (key + 3) :]
            assert query[0] == toy.ASK and query[-1] == toy.EQ
            assert all(toy.FILLER <= t < toy.FILLER + toy.N_FILLER for t in query[1 + key : -1])
            asked = tuple(query[1 : 1 + key])
            assert answer == statements[keys.index(asked)][key + 1]
            assert toy.NAMES <= answer < toy.NAMES + toy.VALUES
