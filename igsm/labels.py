"""Probing labels (spec §12, decision 6): what a model could know at each point of a solution.

Columns are the parameters that exist in the problem: instance parameters (structure edges) and every abstract
parameter, in `Problem.params()` order; the reference's unlinked item pairs are left out. Row t of the per-step
labels is the state after the first t solution sentences: row 0 is the end of the question.

  nece[p]          p is needed to answer the question (an ancestor of it, or the question itself)
  dep[a, b]        a depends on b, directly or through other parameters (RNG excluded)
  known[t, p]      p is among the first t computed parameters
  value[t, p]      p's value (0..22) if known, else 23
  can_next[t, p]   p is not known yet and all of its dependencies are known, so it can be computed next
  nece_next[t, p]  can_next and nece
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from igsm.problem import ParamId, Problem
from igsm.templates import MOD

UNKNOWN_VALUE = MOD  # the value label of a parameter not computed yet
STEP_KEYS = ("known", "value", "can_next", "nece_next")


@dataclass
class Labels:
    problem: Problem
    params: list[ParamId]  # the columns
    order: list[ParamId]  # the solution order the rows follow
    nece: np.ndarray  # (P,) bool
    known: np.ndarray  # (T+1, P) bool
    can_next: np.ndarray  # (T+1, P) bool
    nece_next: np.ndarray  # (T+1, P) bool

    def column(self, p: ParamId) -> int:
        return self.params.index(p)

    @cached_property
    def value(self) -> np.ndarray:
        """(T+1, P) int8: the value if known, else 23."""
        values = np.array([self.problem.value(p) for p in self.params], dtype=np.int8)
        return np.where(self.known, values[None, :], UNKNOWN_VALUE).astype(np.int8)

    @cached_property
    def dep(self) -> np.ndarray:
        """(P, P) bool: dep[a, b] = a depends on b (computed on first use)."""
        return dependency_closure(self.problem, self.params)


def dependency_closure(problem: Problem, params: list[ParamId]) -> np.ndarray:
    """dep[a, b] = 1 if parameter a depends on b, directly or transitively."""
    index = {p: i for i, p in enumerate(params)}
    reach: dict[ParamId, int] = {}  # bitset over columns

    def closure(p: ParamId) -> int:
        if p not in reach:
            bits = 0
            for q in problem.deps(p):
                bits |= (1 << index[q]) | closure(q)
            reach[p] = bits
        return reach[p]

    dep = np.zeros((len(params), len(params)), dtype=bool)
    for a, p in enumerate(params):
        bits = closure(p)
        for b in range(len(params)):
            if bits >> b & 1:
                dep[a, b] = True
    return dep


def compute_labels(problem: Problem, order: list[ParamId] | None = None) -> Labels:
    """Labels along `order` (default: the problem's solution order; a model's own order works too, as long as
    it names parameters of the problem)."""
    order = list(order if order is not None else (problem.solution_order or problem.default_solution_order()))
    params = problem.params()
    index = {p: i for i, p in enumerate(params)}
    n, rows = len(params), len(order) + 1
    nece = np.array([p in problem.necessary for p in params], dtype=bool)
    deps = [[index[q] for q in problem.deps(p)] for p in params]
    known = np.zeros((rows, n), dtype=bool)
    for t, p in enumerate(order, start=1):
        known[t] = known[t - 1]
        known[t, index[p]] = True
    can_next = np.zeros((rows, n), dtype=bool)
    for j, ds in enumerate(deps):
        can_next[:, j] = ~known[:, j] & (known[:, ds].all(axis=1) if ds else True)
    return Labels(
        problem=problem,
        params=params,
        order=order,
        nece=nece,
        known=known,
        can_next=can_next,
        nece_next=can_next & nece[None, :],
    )
