"""Generator settings: the papers' presets and the difficulty knobs, validated when built."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from igsm.split import SPLITS
from igsm.vocab import Vocabulary, world_vocabulary

# The papers' settings (spec §1): op drawn "light" in 1..max_op, at most max_edge instance parameters.
PRESETS: dict[str, dict[str, int]] = {
    "med": {"max_op": 15, "max_edge": 20},
    "hard": {"max_op": 21, "max_edge": 28},
}
OP_DISTS = ("light", "uniform")
P_FORMATS = ("pq", "qp")
SYMBOL_ORDERS = ("random", "ordered")


@dataclass(frozen=True)
class GenConfig:
    """What kind of problems to generate. Problem i is a pure function of (this config, seed, i).

    max_op / max_edge: the difficulty (med 15/20, hard 21/28). The target op of each problem is drawn from
    [op_min, op_max] (default [1, max_op]): "light" = the minimum of two uniform draws (the papers' skew to easy
    problems), "uniform" = one uniform draw. op_min = op_max = K forces op K (also above max_op: the papers'
    out-of-distribution tests). split: which template-hash bins are accepted (train, test or all).
    perm_level: statement order, 0-4 local shuffles, 5 full shuffle (papers), 6 none (leaks the solution order).
    hierarchies / groups / items: the world's size, a deterministic cut of the vocabulary file (`Vocabulary.subset`):
    which hierarchies by name (None: all five), the first `groups` sub-groups of each category and the first
    `items` names of each sub-group (None: all). The papers' worlds use everything.
    symbols: how a solution names its parameters: "random" (the papers: letters drawn without replacement from
    a-z, A-Z) or "ordered" (a, b, c, ... in the order of the text). With random letters a model must learn to
    avoid the letters already used, for a gain of only log(52 / 51) nats a step; until it has, greedy decoding
    writes the likeliest letter twice and the solution fails to parse. Small worlds may take that task away.
    """

    max_op: int = 15
    max_edge: int = 20
    op_min: int | None = None
    op_max: int | None = None
    op_dist: str = "light"
    split: str = "train"
    perm_level: int = 5
    p_format: str = "pq"
    max_attempts: int = 20000
    hierarchies: tuple[str, ...] | None = None
    groups: int | None = None
    items: int | None = None
    symbols: str = "random"

    def __post_init__(self) -> None:
        if not isinstance(self.max_op, int) or self.max_op < 1:
            raise ValueError(f"max_op must be an integer >= 1, got {self.max_op!r}")
        if not isinstance(self.max_edge, int) or self.max_edge < 2:
            raise ValueError(f"max_edge must be an integer >= 2, got {self.max_edge!r}")
        lo, hi = self.op_range
        if lo < 1:
            raise ValueError(f"op_min must be >= 1, got {lo}")
        if hi < lo:
            raise ValueError(f"op_max ({hi}) must be >= op_min ({lo})")
        if self.op_dist not in OP_DISTS:
            raise ValueError(f"op_dist must be one of {OP_DISTS}, got {self.op_dist!r}")
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {self.split!r}")
        if self.perm_level not in range(7):
            raise ValueError(f"perm_level must be in 0..6, got {self.perm_level!r}")
        if self.p_format not in P_FORMATS:
            raise ValueError(f"p_format must be one of {P_FORMATS}, got {self.p_format!r}")
        if self.symbols not in SYMBOL_ORDERS:
            raise ValueError(f"symbols must be one of {SYMBOL_ORDERS}, got {self.symbols!r}")
        if self.hierarchies is not None:
            object.__setattr__(self, "hierarchies", tuple(self.hierarchies))
        self.vocabulary()  # validates hierarchies / groups / items

    def vocabulary(self) -> Vocabulary:
        """The world's names (cached): the whole vocabulary file, or the cut that hierarchies/groups/items ask for."""
        return world_vocabulary(self.hierarchies, self.groups, self.items)

    @property
    def op_range(self) -> tuple[int, int]:
        lo = 1 if self.op_min is None else self.op_min
        hi = self.max_op if self.op_max is None else self.op_max
        return lo, hi

    def draw_op(self, rng: random.Random) -> int:
        """The target op count of one problem (drawn per problem, unlike the reference's per-generator draw)."""
        lo, hi = self.op_range
        a = rng.randint(lo, hi)
        if self.op_dist == "uniform":
            return a
        return min(a, rng.randint(lo, hi))

    def with_(self, **changes: Any) -> GenConfig:
        return replace(self, **changes)


def preset(name: str, **overrides: Any) -> GenConfig:
    """`med` or `hard`, with any field overridden (for example op_min=op_max=23 for an OOD test set)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return GenConfig(**{**PRESETS[name], **overrides})
