"""Building one problem's structure graph and dependency graph (spec §2-§5), written for speed.

`build` runs one design attempt for given shape parameters (d, w0, w1, e, p and the op budgets n, m, s) and returns a
`Problem`, or None when the backward sort gets stuck (the caller then retries). The steps follow the reference's
`Graph`: layer widths, edges, necessary abstract parameters chosen under a budget, a backward sort that makes every
chosen parameter an ancestor of the question, operands spread to reach s operations, then distractor sentences.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from itertools import accumulate

from igsm.problem import ABSTRACT, INSTANCE, RNG, Formula, ParamId, Problem, abstract_deps
from igsm.split import N_BINS, bin_of_sketch, hash_bin
from igsm.templates import join_solution
from igsm.vocab import Vocabulary

MAX_OPERANDS = 4  # including the constant: "N times as much as the sum of A, B and C"
GRAPH_TRIES = 1000  # graph attempts per shape before drawing a new shape (reference `try_num`)
_CENTRES = (0.2, 0.5, 0.8)


def draw_shape(rng: random.Random, s: int, max_edge: int) -> tuple[int, int, int, int, int, float, int]:
    """The "light" shape draw for a target op count s (spec §2): n, m, d, w0, w1, p, e."""
    n = max(rng.randint(1, s), rng.randint(1, s))
    m = rng.randint(n, s)
    cum = _width_weights(s, max_edge)
    d = rng.choices((2, 3, 4), cum_weights=cum)[0]
    t0 = rng.choices((2, 3, 4), cum_weights=cum)[0]
    t1 = rng.choices((2, 3, 4), cum_weights=cum)[0]
    w0, w1 = min(t0, t1), max(t0, t1)
    p = rng.random()
    min_e = (d - 1) * w0
    e = min_e if max_edge < min_e else min(rng.randint(min_e, max_edge), rng.randint(min_e, max_edge))
    return n, m, d, w0, w1, p, e


@lru_cache(maxsize=1024)
def _width_weights(s: int, max_edge: int) -> list[float]:
    """Cumulative softmax weights (temperature 1) of d, t0, t1 in {2, 3, 4}: -(rel - c)^2, c = 0.2 / 0.5 / 0.8."""
    rel = (s - 1) / (max_edge - 1)
    logits = [-((rel - c) ** 2) for c in _CENTRES]
    top = max(logits)  # subtract the maximum so that far-out targets (op >> max_edge) do not underflow
    return list(accumulate(math.exp(x - top) for x in logits))


class _Attempt:
    """State of one design attempt. Parameter lists keep insertion order so that runs are reproducible."""

    def __init__(self, rng: random.Random, d: int, w0: int, w1: int, e: int, p: float):
        self.rng = rng
        self.d = d
        e = max(min(e, (d - 1) * w1 * w1), (d - 1) * w0)
        widths = [w0] * d
        while True:
            max_v = sum(widths[i] * widths[i + 1] for i in range(d - 1))
            if max_v < e:
                widths[rng.choice([i for i, x in enumerate(widths) if x < w1])] += 1
            elif sum(widths[1:]) == e:
                break
            elif rng.random() < p:
                pool = [i for i, x in enumerate(widths) if x < w1]
                if not pool:
                    break
                widths[rng.choice(pool)] += 1
            else:
                break
        self.widths = widths
        # every lower item gets one parent, then the remaining edges are drawn among the missing pairs
        edges = [(0, i, rng.randrange(widths[i]), k) for i in range(d - 1) for k in range(widths[i + 1])]
        have = set(edges)
        missing = [
            (0, i, j, k)
            for i in range(d - 1)
            for j in range(widths[i])
            for k in range(widths[i + 1])
            if (0, i, j, k) not in have
        ]
        edges += rng.sample(missing, e - len(edges))
        self.children: list[list[list[int]]] = [[[] for _ in range(widths[i])] for i in range(d - 1)]
        self.parents: list[list[list[int]]] = [[[] for _ in range(w)] for w in widths]
        for _, i, j, k in edges:
            self.children[i][j].append(k)
            self.parents[i + 1][k].append(j)
        for layer in self.children:
            for kids in layer:
                kids.sort()
        self.remain: list[ParamId] = edges  # instance parameters not chosen yet
        self.inter: dict[ParamId, None] = {
            (1, i, j, k): None for i in range(d - 1) for j in range(widths[i]) for k in range(i + 1, d)
        }
        self.inter_by_span: list[list[ParamId]] = [[a for a in self.inter if a[3] - a[1] == diff] for diff in range(d)]
        self.chosen: dict[ParamId, None] = {}

    def name(self, vocab: Vocabulary) -> None:
        """One hierarchy, d consecutive categories of it, and per layer items of one sub-group (spec §3).

        Names never influence the design, so they are drawn once the graph is settled.
        """
        rng = self.rng
        hierarchy = rng.choice(vocab.hierarchies)
        off = rng.randrange(len(hierarchy) - self.d + 1)
        self.layer_names = list(hierarchy[off : off + self.d])
        self.items = [rng.sample(rng.choice(vocab.groups[c]), self.widths[i]) for i, c in enumerate(self.layer_names)]

    # ---- choosing the necessary parameters --------------------------------------------------------------------
    def _total(self) -> int:
        """Upper bound on the abstract budget n (the reference's `total`)."""
        total = len(self.remain)
        for i in range(self.d - 1):
            for kids in self.children[i]:
                c = len(kids)
                total += max(2 * c - 1, 0) * (self.d - i - 2) + (c - 1 if c > 1 else c)
        return total

    def _try(self, a: ParamId, take_abs: dict, take_inst: dict) -> int:
        """Ops needed to add abstract parameter `a` with whatever it needs that is not chosen yet."""
        _, i, j, k = a
        take_abs[a] = None
        kids = self.children[i][j]
        cost = 0
        remain = self._remain_set
        if k == i + 1:
            for x in kids:
                q = (0, i, j, x)
                if q in remain and q not in take_inst:
                    take_inst[q] = None
                    cost += 1
            return cost + (len(kids) - 1 if len(kids) > 1 else 1)
        for x in kids:
            sub = (1, i + 1, x, k)
            if sub in self.inter and sub not in take_abs:
                cost += self._try(sub, take_abs, take_inst)
            q = (0, i, j, x)
            if q in remain and q not in take_inst:
                take_inst[q] = None
                cost += 1
        return cost + max(2 * len(kids) - 1, 1)

    def _commit(self, take: tuple[dict, dict]) -> None:
        take_abs, take_inst = take
        for a in take_abs:
            del self.inter[a]
            self.inter_by_span[a[3] - a[1]].remove(a)
            self.chosen[a] = None
        for q in take_inst:
            self.remain.remove(q)
            self.chosen[q] = None

    def _fix_instances(self, count: int) -> int:
        count = min(count, len(self.remain))
        for q in self.rng.sample(self.remain, count):
            self.remain.remove(q)
            self.chosen[q] = None
        return count

    def choose(self, n: int, m: int) -> None:
        """Necessary abstract parameters greedily under budget n, then m - n instance ones (spec §5.1)."""
        rng = self.rng
        n = min(n, self._total())
        n_fix = m - n
        self._remain_set = set(self.remain)
        lowest, highest = 1, self.d - 1
        previous: tuple[dict, dict] = ({}, {})
        previous_count = 0
        while n > 0:
            progressed = False
            for diff in range(1, self.d):
                try_set = self.inter_by_span[diff]
                if not try_set:
                    if diff == lowest:
                        lowest += 1
                    elif diff == highest:
                        highest -= 1
                    continue
                take: tuple[dict, dict] = ({}, {})
                count = self._try(rng.choice(try_set), *take)
                if diff == lowest and count > n:  # even the cheapest does not fit: spend the rest on instances
                    fixed = self._fix_instances(n + n_fix)
                    self.n_op_min = m - n - n_fix + fixed
                    return
                if count <= n:
                    if diff < highest:
                        previous, previous_count = take, count
                        continue
                    self._commit(take)
                    self._remain_set = set(self.remain)
                    n -= count
                else:
                    self._commit(previous)
                    self._remain_set = set(self.remain)
                    n -= previous_count
                progressed = True
                break
            if not progressed:
                break
        self.n_op_min = m - n_fix + self._fix_instances(n_fix)

    # ---- the dependency graph -----------------------------------------------------------------------------------
    def _structural_deps(self, a: ParamId) -> list[ParamId]:
        return abstract_deps(a, self.children)

    def sort(self) -> bool:
        """Order the chosen parameters backwards from the question so that all are its ancestors (spec §5.3).

        Returns False when stuck (no placeable parameter is needed by the ones placed so far).
        """
        rng = self.rng
        p0 = rng.random()
        p1 = abs(rng.gauss(0.0, 1.0))
        w_abs, w_free, w_both = math.exp(p1), math.exp(p1), math.exp(2 * p1)
        preds: dict[ParamId, list[ParamId]] = {q: [] for q in self.chosen}
        out_degree = dict.fromkeys(self.chosen, 0)
        for a in self.chosen:
            if a[0] == ABSTRACT:
                deps = self._structural_deps(a)
                preds[a] = deps
                for q in deps:
                    out_degree[q] += 1
        zero_out = [q for q in self.chosen if out_degree[q] == 0]
        remain = dict(self.chosen)
        stack: set[ParamId] = set()  # parameters that placed ones depend on (only membership matters)
        order: list[ParamId] = []
        pool = zero_out
        while remain:
            if not pool:
                return False
            param = pool[int(rng.random() * len(pool))]
            order.append(param)
            del remain[param]
            zero_out.remove(param)
            for v in preds[param]:
                out_degree[v] -= 1
                if out_degree[v] == 0:
                    zero_out.append(v)
            stack.discard(param)
            if param[0] == INSTANCE:
                need_to_pick = stack.isdisjoint(zero_out)
                if (need_to_pick or rng.random() < p0) and remain:
                    cands = zero_out if need_to_pick else list(remain)
                    if cands:
                        # softmax over +p1 for abstract parameters and +p2 (= p1) for ones not yet needed
                        weights = [
                            (w_abs if x in stack else w_both) if x[0] == ABSTRACT else (1.0 if x in stack else w_free)
                            for x in cands
                        ]
                        r = rng.random() * sum(weights)
                        pick = len(cands) - 1
                        for idx, w in enumerate(weights):
                            r -= w
                            if r < 0:
                                pick = idx
                                break
                        src = cands[pick]
                        preds[param].append(src)
                        stack.add(src)
            else:
                stack.update(preds[param])
            pool = [x for x in zero_out if x in stack]
        order.reverse()
        self.order = order
        self.preds = preds
        return True

    def _max_extra(self) -> list[int]:
        """Extra operands each solution position can take: at most 4 operands with the constant (spec §5.4)."""
        return [max(min(i + 1, MAX_OPERANDS) - 2, 0) if p[0] == INSTANCE else 0 for i, p in enumerate(self.order)]

    def planned_ops(self, s: int) -> int:
        """The op count `design(s)` will reach, known before any operand is drawn."""
        base = 0
        for p in self.order:
            if p[0] == INSTANCE:
                base += 1
            else:
                _, i, j, k = p
                c = len(self.children[i][j])
                base += max(c - 1, 1) if k == i + 1 else max(2 * c - 1, 1)
        return base + min(max(self.n_op_min, s) - self.n_op_min, sum(self._max_extra()))

    def design(self, s: int) -> None:
        """Give each necessary instance parameter its operands so the op count reaches s (spec §5.4)."""
        rng = self.rng
        order = self.order
        max_extra = self._max_extra()
        addable = [i for i, x in enumerate(max_extra) if x > 0]
        n_fix = min(max(self.n_op_min, s) - self.n_op_min, sum(max_extra))
        extra = [0] * len(order)
        while n_fix > 0:
            idx = rng.choice(addable)
            n_fix -= 1
            extra[idx] += 1
            if extra[idx] == max_extra[idx]:
                addable.remove(idx)
        self.formulas: dict[ParamId, Formula] = {}
        for i, param in enumerate(order):
            if param[0] != INSTANCE:
                continue
            existing = self.preds[param]  # at most the one operand the backward sort added
            n_sample = (1 if rng.random() < 0.5 else 2) if extra[i] == 0 else extra[i] + 2
            n_sample = min(n_sample, i + 1, MAX_OPERANDS)
            if n_sample == i + 1:  # the whole pool: the constant and every earlier parameter
                const = True
                operands = existing + [q for q in order[:i] if q not in existing]
            else:
                n_sample -= len(existing)
                const = False
                pool = [RNG] + [q for q in order[:i] if q not in existing]
                if rng.random() < 0.5 and n_sample > 0:
                    n_sample -= 1
                    const = True
                    pool.remove(RNG)
                picked = rng.sample(pool, n_sample)  # the RNG can also be drawn here, as in the reference
                if RNG in picked:
                    picked.remove(RNG)
                    const = True
                operands = existing + picked
            self.formulas[param] = self._formula(operands, const)

    def _formula(self, operands: list[ParamId], const: bool) -> Formula:
        """Draw the sentence's wording: constant, "more than" / "times as much as", sum / difference."""
        rng = self.rng
        n = len(operands)
        inner = "diff" if n == 2 and rng.random() >= 0.5 else "sum"
        if not const:
            return Formula(tuple(operands), None, None, inner)
        if n == 0:
            return Formula((), rng.randint(0, 22))
        if rng.random() < 0.5:
            return Formula(tuple(operands), rng.randint(0, 22), "add", inner)
        return Formula(tuple(operands), rng.randint(1, 22), "mul", inner)

    # ---- distractors --------------------------------------------------------------------------------------------
    def _determined(self, a: ParamId) -> bool:
        _, i, j, k = a
        for x in self.children[i][j]:
            if (0, i, j, x) not in self.formulas:
                return False
            if k > i + 1 and (1, i + 1, x, k) not in self.available:
                return False
        return True

    def _refresh(self, i: int, j: int) -> None:
        """Abstract parameters of item (i, j) and its ancestors that became computable join the operand pool."""
        for k in range(i + 1, self.d):
            a = (1, i, j, k)
            if a not in self.available and self._determined(a):
                self.available[a] = None
                self.pool.append(a)
        if i > 0:
            for up in self.parents[i][j]:
                self._refresh(i - 1, up)

    def _add_abstract(self, a: ParamId) -> None:
        if a in self.in_graph:
            return
        for q in self._structural_deps(a):
            if q[0] == ABSTRACT:
                self._add_abstract(q)
        self.in_graph[a] = None
        self.creation.append(a)

    def distract(self) -> None:
        """One sentence per unused edge; distractors never feed a necessary parameter (spec §5.6)."""
        rng = self.rng
        self.in_graph: dict[ParamId, None] = dict.fromkeys(self.order)
        self.creation: list[ParamId] = list(self.order)
        self.available: dict[ParamId, None] = {a: None for a in self.order if a[0] == ABSTRACT}
        self.pool: list[ParamId] = list(self.order)
        for i in range(self.d - 2, -1, -1):
            for j in range(self.widths[i]):
                self._refresh(i, j)
        independent: list[ParamId] = []
        while self.remain:
            q = rng.choice(self.remain)
            indep = rng.random() < 0.5
            pool = independent if indep else self.pool
            n_sample = 1
            cap = min(len(pool) + 1, MAX_OPERANDS)
            while n_sample < cap and rng.random() > 0.5:
                n_sample += 1
            if n_sample == len(pool) + 1:
                const, operands = True, list(pool)
            else:
                const = rng.random() < 0.5
                operands = rng.sample(pool, n_sample - const)
            for v in operands:
                if v[0] == ABSTRACT:
                    self._add_abstract(v)
            self.formulas[q] = self._formula(operands, const)
            self.remain.remove(q)
            self.in_graph[q] = None
            self.creation.append(q)
            self.pool.append(q)
            if indep:
                independent.append(q)
            self._refresh(q[1], q[2])

    # ---- statement order ----------------------------------------------------------------------------------------
    def statement_order(self, perm_level: int) -> list[ParamId]:
        """Sentence order: 5 = full shuffle (papers), 0-4 = local shuffles of a random topological order, 6 = none."""
        rng = self.rng
        inst = [p for p in self.creation if p[0] == INSTANCE]
        if perm_level == 5:
            rng.shuffle(inst)
            return inst
        if perm_level == 6:
            return inst
        order = self._random_topological_order()
        keys: dict[int, list[ParamId]] = {}
        for idx, p in enumerate(order):
            keys.setdefault(idx + rng.randint(0, perm_level), []).append(p)
        out: list[ParamId] = []
        for key in sorted(keys):
            group = keys[key]
            rng.shuffle(group)
            out += group
        return [p for p in out if p[0] == INSTANCE]

    def _random_topological_order(self) -> list[ParamId]:
        """A uniformly random linear extension step by step (Kahn's algorithm, random choice), RNG excluded."""
        preds = {
            p: (list(self.formulas[p].operands) if p[0] == INSTANCE else self._structural_deps(p))
            for p in self.creation
        }
        succs: dict[ParamId, list[ParamId]] = {p: [] for p in self.creation}
        indeg = {}
        for p, ds in preds.items():
            indeg[p] = len(ds)
            for q in ds:
                succs[q].append(p)
        ready = [p for p in self.creation if indeg[p] == 0]
        out = []
        while ready:
            p = ready.pop(self.rng.randrange(len(ready)))
            out.append(p)
            for s in succs[p]:
                indeg[s] -= 1
                if indeg[s] == 0:
                    ready.append(s)
        return out


def build(
    rng: random.Random,
    vocab: Vocabulary,
    shape: tuple[int, int, int, int, int, float, int],
    s: int,
    target: int,
    bins: frozenset[int],
    perm_level: int = 5,
    p_format: str = "pq",
    symbols: str = "random",
) -> Problem | None:
    """One problem for the given shape with `target` ops and a solution template in `bins`, or None.

    The checks run as early as they can: the op count right after the backward sort, the template hash right
    after the necessary parameters get their operands (distractors never change the solution).
    """
    n, m, d, w0, w1, p, e = shape
    for _ in range(GRAPH_TRIES):
        att = _Attempt(rng, d, w0, w1, e, p)
        att.choose(n, m)
        if att.sort():
            break
    else:
        return None
    if att.planned_ops(s) != target:
        return None
    att.name(vocab)
    att.design(s)
    question = att.order[-1]
    core = Problem(
        att.layer_names, att.items, dict(att.formulas), question, [], att.order, p_format=p_format, symbol_order=symbols
    )
    if len(bins) < N_BINS:
        if vocab.sketch_safe:
            b = bin_of_sketch(core.solution_template())
        else:
            b = hash_bin(join_solution(core.render_solution(random.Random(0))[0]), att.items, att.layer_names)
        if b not in bins:
            return None
    sentences, _ = core.render_solution(rng)
    att.distract()
    problem = Problem(
        layer_names=att.layer_names,
        items=att.items,
        formulas=att.formulas,
        question=question,
        statement_order=att.statement_order(perm_level),
        solution_order=att.order,
        solution=sentences,
        p_format=p_format,
        symbol_order=symbols,
    )
    if len(bins) < N_BINS:
        problem.__dict__["hash_bin"] = b  # already computed (cached_property storage)
    return problem
