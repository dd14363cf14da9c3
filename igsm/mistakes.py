"""Mistakes and their corrections (spec §11, decision 4; Part 2.2 §4, §6).

Before each correct solution step, with probability `rate` a wrong parameter is written and taken back,
` Define <A's B> as BACK.`; with probability rate^2 a second one, and so on (a truncated geometric count, mean about
rate / (1 - rate) per step), each drawn uniformly from the step's candidates without repeating within the step:

  retry       real mistakes: a parameter that cannot be computed yet (can_next = 0) and has not been computed;
  retry_weak  fake mistakes: a necessary parameter of a later step (`include_current` also allows the step's own
              parameter, the reference's default, which makes about 40% of its "mistakes" not mistakes);
  retry_miss  fake mistakes: a parameter named in the statement (or needed later) that has not appeared yet.

The mistake stream is independent of the problem stream, so the same problems come with every rate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from igsm import templates as T
from igsm.labels import compute_labels
from igsm.problem import ParamId, Problem

KINDS = ("none", "retry", "retry_weak", "retry_miss")


@dataclass(frozen=True)
class Mistake:
    """One taken-back wrong step: which parameter, before which correct step, and where it sits in the text."""

    param: ParamId
    name: str
    before_step: int  # index of the correct step it precedes
    span: tuple[int, int]  # character span of "Define <name> as BACK." in the solution with mistakes
    name_span: tuple[int, int]  # character span of <name>
    computable: bool  # can_next at that point: a fake mistake that was in fact a valid next step


@dataclass
class WithMistakes:
    solution: str  # the solution text with the mistakes (the `solution` field format: no leading space)
    clean_solution: str
    mistakes: list[Mistake]


def _candidates(kind: str, step: int, include_current: bool, labels, named: list[ParamId]) -> list[ParamId]:
    """The parameters a mistake before correct step `step` may name (the module docstring's definitions)."""
    order = labels.order
    done = set(order[:step])
    if kind == "retry":
        row = labels.can_next[step]
        return [p for c, p in enumerate(labels.params) if not row[c] and p not in done]
    if kind == "retry_weak":
        return list(order[step if include_current else step + 1 :])
    # retry_miss: named in the statement or needed later, not computed yet, not the step's own parameter
    later = order[step + 1 :]
    return [p for p in dict.fromkeys(named + later) if p not in done and p != order[step]]


def insert_mistakes(
    problem: Problem, kind: str, rate: float, rng: random.Random, include_current: bool = False
) -> WithMistakes:
    """The problem's solution with mistakes inserted at `rate` (0 <= rate < 1)."""
    if kind not in KINDS:
        raise ValueError(f"unknown mistake kind {kind!r}; choose one of {KINDS}")
    if not 0 <= rate < 1:
        raise ValueError(f"mistake rate must be in [0, 1), got {rate}")
    steps = problem.solution or problem.render_solution(rng)[0]
    clean = T.join_solution(steps)
    if kind == "none" or rate == 0:
        return WithMistakes(clean, clean, [])
    labels = compute_labels(problem)
    col = {p: c for c, p in enumerate(labels.params)}
    named = list(problem.formulas) + [q for f in problem.formulas.values() for q in f.operands if q[0] == 1]
    parts: list[str] = []
    pos = 0  # length of the text so far, including the ". " separators
    mistakes = []
    for i, step_text in enumerate(steps):
        cands = _candidates(kind, i, include_current, labels, named)
        while cands and rng.random() < rate:
            p = cands.pop(int(rng.random() * len(cands)))
            name = problem.name(p)
            text = T.back_sentence(name)
            start = pos + (2 if parts else 0)
            name_start = start + len(T.DEFINE)
            mistakes.append(
                Mistake(
                    p,
                    name,
                    i,
                    (start, start + len(text) + 1),
                    (name_start, name_start + len(name)),
                    bool(labels.can_next[i, col[p]]),
                )
            )
            parts.append(text)
            pos = start + len(text)
        parts.append(step_text)
        pos += (2 if len(parts) > 1 else 0) + len(step_text)
    return WithMistakes(T.join_solution(parts), clean, mistakes)
