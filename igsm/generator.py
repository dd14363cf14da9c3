"""Generating problems: a pure function of (config, seed, index), with the reference's rejection loop.

The target op is drawn per problem; shapes are drawn for that target (the reference's forced-op path) and a design is
accepted when its op count equals the target and its template-hash bin belongs to the configured split.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import lru_cache
from itertools import accumulate

from igsm.config import GenConfig
from igsm.graph import build, draw_shape
from igsm.problem import Problem
from igsm.split import bins_of
from igsm.vocab import Vocabulary

STREAM_PROBLEM = 0  # independent random streams per example; other modules (mistakes) use other ids


class GenerationError(RuntimeError):
    """The configuration could not produce a problem within its attempt budget."""


def derive_rng(seed: int, index: int, stream: int = STREAM_PROBLEM) -> random.Random:
    """The random stream of example `index` under master `seed`: distinct for every (seed, index, stream)."""
    if seed < 0 or index < 0 or not 0 <= stream < 256:
        raise ValueError(f"seed and index must be >= 0 and stream in 0..255, got {seed}, {index}, {stream}")
    return random.Random((((seed << 64) | index) << 8) | stream)


def _design_target(config: GenConfig, rng: random.Random, target: int) -> int:
    """The op count s the design step aims at (spec §2), given the problem's target op.

    The reference draws s "light" in 1..max_op independently of the target and keeps designs whose op count equals
    the target. A design never has more ops than s, so drawing s from the same law restricted to s >= target and
    keeping the same designs gives exactly the reference's distribution with far fewer rejections. A forced op
    (op_min == op_max) or a target at or beyond max_op designs for the target itself, as the reference's `op=`.
    """
    lo, hi = config.op_range
    if lo == hi or target >= config.max_op:
        return target
    weights = _light_tail(config.max_op, target)
    return rng.choices(range(target, config.max_op + 1), cum_weights=weights)[0]


@lru_cache(maxsize=4096)
def _light_tail(max_op: int, target: int) -> list[int]:
    """Cumulative P(min(U, U) = s) * max_op**2 = 2 (max_op - s) + 1 for s = target..max_op."""
    return list(accumulate(2 * (max_op - s) + 1 for s in range(target, max_op + 1)))


def generate(config: GenConfig, seed: int, index: int, vocab: Vocabulary | None = None) -> Problem:
    """Problem `index` of the stream (config, seed); it never depends on problems 0..index-1."""
    vocab = vocab or config.vocabulary()
    rng = derive_rng(seed, index)
    target = config.draw_op(rng)
    bins = bins_of(config.split)
    for _ in range(config.max_attempts):
        s = _design_target(config, rng, target)
        shape = draw_shape(rng, s, config.max_edge)
        problem = build(rng, vocab, shape, s, target, bins, config.perm_level, config.p_format, config.symbols)
        if problem is not None:
            problem.meta.update(seed=seed, index=index)
            return problem
    raise GenerationError(
        f"no problem with op={target} (max_edge={config.max_edge}, split={config.split!r}) "
        f"after {config.max_attempts} attempts; this configuration cannot produce that op count"
    )


def generate_many(config: GenConfig, seed: int, n: int, start: int = 0) -> Iterator[Problem]:
    """Problems start..start+n-1 of the stream (config, seed)."""
    vocab = config.vocabulary()
    for i in range(start, start + n):
        yield generate(config, seed, i, vocab)


def reask(problem: Problem, rng: random.Random) -> Problem:
    """The same statement with the question re-drawn uniformly among its parameters (Part 2.1 §2.4, "reask"): the
    solution is a random topological order of what the new question needs, so its op count changes too."""
    question = rng.choice(problem.params())
    new = Problem(
        problem.layer_names,
        problem.items,
        problem.formulas,
        question,
        problem.statement_order,
        p_format=problem.p_format,
        symbol_order=problem.symbol_order,
        meta={**problem.meta, "reask": True},
    )
    needed = new.necessary
    waiting = {p: [q for q in new.deps(p) if q in needed] for p in needed}
    order: list = []
    ready = sorted(p for p, ds in waiting.items() if not ds)
    while ready:
        p = ready.pop(int(rng.random() * len(ready)))
        order.append(p)
        for q, ds in waiting.items():
            if p in ds:
                ds.remove(p)
                if not ds and q not in order and q not in ready:
                    ready.append(q)
    new.solution_order = order
    new.solution = new.render_solution(rng)[0]
    return new
