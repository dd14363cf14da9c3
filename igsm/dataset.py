"""Dataset examples as text: what a training or test set is made of, as a pure function of (config, split, index).

Tokens are not igsm's business: `pretrain.data` turns these records into token ids and saves the datasets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from igsm.config import PRESETS, GenConfig
from igsm.generator import derive_rng, generate, reask
from igsm.mistakes import KINDS, insert_mistakes
from igsm.vocab import Vocabulary

STREAM_MISTAKES = 1  # random stream of the mistakes, independent of the problem's (stream 0)
STREAM_REASK = 2  # random stream of a re-asked question
STREAM_TWO_ATTEMPTS = 3  # random stream of the choice to write a training example as two attempts
MASK_MODES = ("none", "name", "step")


@dataclass
class MistakeConfig:
    """kind: none, retry, retry_weak, retry_miss; rate in [0, 1). mask: which mistake tokens get no loss (the
    papers' "with mask"): none, name (the wrong parameter's name, as the paper says), or step (" Define <name> as",
    the reference code's second helper), keeping " BACK." as the target either way."""

    kind: str = "none"
    rate: float = 0.0
    include_current: bool = False
    mask: str = "none"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"data.mistakes.kind must be one of {KINDS}, got {self.kind!r}")
        if not 0 <= self.rate < 1:
            raise ValueError(f"data.mistakes.rate must be in [0, 1), got {self.rate}")
        if self.mask not in MASK_MODES:
            raise ValueError(f"data.mistakes.mask must be one of {MASK_MODES}, got {self.mask!r}")
        if self.kind == "none" and self.rate > 0:
            raise ValueError(f"data.mistakes.rate is {self.rate} but data.mistakes.kind is 'none'")

    @property
    def tag(self) -> str:
        if self.kind == "none" or self.rate == 0:
            return "clean"
        tag = f"{self.kind}{self.rate:g}"
        return tag + ("-cur" if self.include_current else "") + ("" if self.mask == "none" else f"-mask{self.mask}")


@dataclass
class DataConfig:
    """A dataset: a training split (with mistakes, train template bins) and clean test splits (Part 2.1 §2.4):

    test_id           problems drawn as for training (op <= max_op), test template bins: the papers' "op <= 15" column;
    test_op<K>        problems with exactly K operations, test template bins, for each K in test_ops (K > max_op: out
                      of distribution);
    test_reask<K>     test-bin problems of K operations whose question is then re-drawn among all their parameters
                      (the papers' "reask" column; the op count changes), for each K in reask_ops. As in the official
                      code, only the problem before the re-ask is drawn from the test bins: the re-asked solution has a
                      new template, often a train-bin one (most of med's reask20); the built dataset records the share
                      per split (`train_bin_share` in igsm-lab.json);
    test_seen_op<K>   fresh problems with exactly K operations from the *train* template bins, for each K in
                      seen_ops: templates training draws from (not a papers' column; in small worlds it tells
                      "has not learned" from "has not generalised to unseen templates").

    Small worlds: the split is by solution template, and low ops have only a few templates, so test_id of a tiny
    world measures something other than the papers' column. In the smoke world (op <= 4, max_edge 6) op 1 has one
    template per half (training: " Define Inst as a. so a = 0.", test: " Define Inter as a. so a = 0."), op 2 has 5
    training and 2 test templates, and 44% / 32% of test_id is op 1 / op 2 (3,000 training and 600 test_id problems
    measured): test_id is mostly three templates that training never shows. Larger worlds draw most test_id problems
    at higher ops, where templates are many (smoke's op 4 already: 97 templates in 182 training problems).

    The defaults are iGSM-med (Part 2.1): max_op 15 (largest op of training problems, drawn by op_dist: light = the
    min of two uniform draws, the papers; uniform = one draw), max_edge 20 (most instance parameters, i.e. statement
    sentences), p_format pq (statement then question; qp: question first), perm_level 5 (statement order: 5 full
    shuffle, the papers; 0-4 local shuffles; 6 none), train_size examples saved (the papers stream fresh ones
    instead: train.source=stream), test_size examples per test split (the papers' cell size 4,096), test_ops
    [15, 20, 21, 22, 23] and reask_ops [20] (the papers' med columns). mistakes: see MistakeConfig.
    two_attempts: the share of training examples written as two attempts (SCoRe's format, `pretrain.tokenizer.layout`)
    whose second attempt restates the clean solution: a base model learns the format without learning to correct,
    SCoRe's starting point (base models that rarely change their answer). 0: none, as in the papers.
    hierarchies / groups / items size the world (`GenConfig`): a cut of the vocabulary every split draws from
    (None: the whole vocabulary file). symbols: "random" letters (the papers) or "ordered" (`GenConfig.symbols`).
    """

    name: str = "med"
    max_op: int = PRESETS["med"]["max_op"]
    max_edge: int = PRESETS["med"]["max_edge"]
    op_dist: str = "light"
    p_format: str = "pq"
    perm_level: int = 5
    train_size: int = 100_000
    test_ops: list[int] = field(default_factory=lambda: [15, 20, 21, 22, 23])
    test_id: bool = True
    reask_ops: list[int] = field(default_factory=lambda: [20])
    seen_ops: list[int] = field(default_factory=list)
    test_size: int = 4096
    seed: int = 0
    hierarchies: list[str] | None = None
    groups: int | None = None
    items: int | None = None
    symbols: str = "random"
    mistakes: MistakeConfig = field(default_factory=MistakeConfig)
    two_attempts: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.mistakes, dict):
            self.mistakes = MistakeConfig(**self.mistakes)
        if not 0 <= self.two_attempts <= 1:
            raise ValueError(f"data.two_attempts must be in [0, 1], got {self.two_attempts}")
        for key in ("train_size", "test_size", "seed"):
            if getattr(self, key) < 0:
                raise ValueError(f"data.{key} must be >= 0, got {getattr(self, key)}")
        for split in self.splits():  # validates max_op, max_edge, op_dist, the ops, ...
            self.gen_config(split)

    def splits(self) -> dict[str, int]:
        """Split name -> number of examples."""
        tests = (["test_id"] if self.test_id else []) + [f"test_op{op}" for op in self.test_ops]
        tests += [f"test_reask{op}" for op in self.reask_ops]
        tests += [f"test_seen_op{op}" for op in self.seen_ops]
        return {"train": self.train_size, **dict.fromkeys(tests, self.test_size)}

    @staticmethod
    def column(split: str) -> str:
        """The papers' column name of a test split: "op<=15" (test_id needs max_op), "20", "reask20" ("seen3")."""
        if split.startswith("test_seen_op"):
            return "seen" + split.removeprefix("test_seen_op")
        if split.startswith("test_op"):
            return split.removeprefix("test_op")
        return split.removeprefix("test_")

    def gen_config(self, split: str) -> GenConfig:
        common = {
            "max_op": self.max_op,
            "max_edge": self.max_edge,
            "op_dist": self.op_dist,
            "p_format": self.p_format,
            "perm_level": self.perm_level,
            "hierarchies": None if self.hierarchies is None else tuple(self.hierarchies),
            "groups": self.groups,
            "items": self.items,
            "symbols": self.symbols,
        }
        if split == "train":
            return GenConfig(**common, split="train")
        if split == "test_id":
            return GenConfig(**common, split="test")
        for prefix, key, bins in (
            ("test_op", "test_ops", "test"),
            ("test_reask", "reask_ops", "test"),
            ("test_seen_op", "seen_ops", "train"),
        ):
            if split.startswith(prefix) and split.removeprefix(prefix).isdigit():
                op = int(split.removeprefix(prefix))
                if op < 1:
                    raise ValueError(f"data.{key} must be >= 1, got {op}")
                return GenConfig(**common, op_min=op, op_max=op, split=bins)
        raise ValueError(f"unknown split {split!r}")

    def split_seed(self, split: str) -> int:
        """Each split draws from its own stream of the master seed."""
        return int.from_bytes(hashlib.sha256(f"{self.seed}/{split}".encode()).digest()[:8], "big")


def make_example(cfg: DataConfig, split: str, index: int, vocab: Vocabulary | None = None) -> dict[str, Any]:
    """Example `index` of `split`: the problem's text fields, its solution with mistakes (training split only),
    the mistakes' character spans, metadata columns, and whether it is written as two attempts (training only)."""
    seed = cfg.split_seed(split)
    problem = generate(cfg.gen_config(split), seed, index, vocab)
    if split.startswith("test_reask"):
        problem = reask(problem, derive_rng(seed, index, STREAM_REASK))
    m = cfg.mistakes if split == "train" else MistakeConfig()
    wm = insert_mistakes(problem, m.kind, m.rate, derive_rng(seed, index, STREAM_MISTAKES), m.include_current)
    return {
        "index": index,
        "prompt": problem.prompt,
        "problem": problem.problem_text,
        "question": problem.question_text,
        "solution": wm.solution,
        "clean_solution": wm.clean_solution,
        "answer": problem.answer,
        "op": problem.n_op,
        "hash_bin": problem.hash_bin,
        "n_mistakes": len(wm.mistakes),
        "mistake_params": [x.name for x in wm.mistakes],
        "mistake_spans": [list(x.span) for x in wm.mistakes],
        "mistake_name_spans": [list(x.name_span) for x in wm.mistakes],
        "two_attempts": split == "train"
        and cfg.two_attempts > 0
        and derive_rng(seed, index, STREAM_TWO_ATTEMPTS).random() < cfg.two_attempts,
    }
