"""The train/test split: a hash of the solution's template (spec §10), the reference's bins exactly.

The sketch replaces every parameter name of the structure (all consecutive-layer item pairs, then all abstract
names, by plain substring replacement in index order, reproducing the reference's prefix quirk), every number by
"0", and renames the symbols by first appearance. Its SHA-256 mod 23 is the bin; bins 0-15 train, 16-22 test.
"""

from __future__ import annotations

import hashlib

from igsm import templates as T

N_BINS = T.MOD
TRAIN_BINS = frozenset(range(16))
TEST_BINS = frozenset(range(16, N_BINS))
SPLITS = {"train": TRAIN_BINS, "test": TEST_BINS, "all": frozenset(range(N_BINS))}
_NUMBERS_DESC = [str(i) for i in range(N_BINS - 1, 0, -1)]


def bins_of(split: str) -> frozenset[int]:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    return SPLITS[split]


def split_of(hash_bin: int) -> str:
    return "train" if hash_bin in TRAIN_BINS else "test"


def structure_names(items: list[list[str]], layer_names: list[str]) -> tuple[list[str], list[str]]:
    """All instance names (every consecutive-layer pair, edge or not) and all abstract names, in index order."""
    d = len(items)
    inst = [T.param_name(a, b) for i in range(d - 1) for a in items[i] for b in items[i + 1]]
    abst = [T.param_name(a, layer_names[k]) for i in range(d - 1) for a in items[i] for k in range(i + 1, d)]
    return inst, abst


def sketch(solution: str, inst_names: list[str], abstract_names: list[str]) -> str:
    """The template of a clean solution (its `solution` field, no leading space)."""
    s = " " + solution
    for name in inst_names:
        s = s.replace(name, "Inst")
    for name in abstract_names:
        s = s.replace(name, "Inter")
    for num in _NUMBERS_DESC:
        s = s.replace(num, "0")
    sentences = [part.split(" ") for part in s.replace(";", ".").split(". ")]
    canon: dict[str, str] = {}
    for words in sentences:
        for w in words:
            if w in T.SYMBOL_SET and w not in canon:
                canon[w] = T.SYMBOLS[len(canon)]
    return ". ".join(" ".join(canon.get(w, w) for w in words) for words in sentences)


def bin_of_sketch(sketch_text: str) -> int:
    """SHA-256 of the sketch's UTF-8 bytes, mod 23."""
    return int(hashlib.sha256(sketch_text.encode("utf-8")).hexdigest(), 16) % N_BINS


def hash_bin(solution: str, items: list[list[str]], layer_names: list[str]) -> int:
    """The bin (0..22) of a clean solution of the problem with these items and layer names."""
    inst, abst = structure_names(items, layer_names)
    return bin_of_sketch(sketch(solution, inst, abst))
