"""The iGSM problem type: structure, dependency graph, values, and the text of statement and solution.

Both the generator (`igsm.graph`) and the text parser (`igsm.parse`) build a `Problem`, so the two paths meet in one type.

Parameters are 4-tuples, as in the reference code:
  (0, i, j, k)  instance parameter: how many item (i+1, k) are in each item (i, j); exists iff that edge exists;
  (1, i, j, k)  abstract parameter: how many things of layer k (k > i) are in one item (i, j);
  RNG = (-1, 0, 0, 0) stands for the constant of a sentence.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from igsm import split
from igsm import templates as T

ParamId = tuple[int, int, int, int]
RNG: ParamId = (-1, 0, 0, 0)
INSTANCE, ABSTRACT = 0, 1

# Expression trees: ("const", c) | ("ref", param) | ("zero",) | (op, left, right) with op in add / sub / mul.
Expr = tuple


@dataclass(frozen=True, slots=True)
class Formula:
    """How one instance parameter is computed: one statement sentence (spec §7).

    `const` is the sentence's number (None if the RNG is not an operand); `outer` says how it combines with the
    operands ("add": "N more than", "mul": "N times as much as"); `inner` combines the operands ("sum" or "diff",
    diff only with two operands).
    """

    operands: tuple[ParamId, ...]
    const: int | None = None
    outer: str | None = None
    inner: str = "sum"


def apply(op: str, a: int, b: int) -> int:
    if op == "add":
        return (a + b) % T.MOD
    if op == "sub":
        return (a - b) % T.MOD
    return (a * b) % T.MOD


def fold_sum(terms: list[Expr]) -> Expr:
    """Left fold into binary additions: o1..o4 -> ((o1 + o2) + o3) + o4 (spec §8)."""
    if not terms:
        return ("zero",)
    acc = terms[0]
    for t in terms[1:]:
        acc = ("add", acc, t)
    return acc


def abstract_deps(a: ParamId, children: list[list[list[int]]]) -> list[ParamId]:
    """What abstract parameter (1, i, j, k) is made of (spec §4): the instance parameters of item (i, j)'s children
    and, when category k lies deeper than them, those children's own totals of k."""
    _, i, j, k = a
    kids = children[i][j]
    deps = [(0, i, j, x) for x in kids]
    if k > i + 1:
        deps += [(1, i + 1, x, k) for x in kids]
    return deps


def count_nodes(e: Expr) -> int:
    if e[0] in ("const", "ref", "zero"):
        return 0
    return 1 + count_nodes(e[1]) + count_nodes(e[2])


def _letters_in_order() -> Callable[[], str]:
    """A symbol source giving a, b, c, ... (then "..." once the 52 letters run out)."""
    letters = iter(T.SYMBOLS)
    return lambda: next(letters, "...")


@dataclass
class Problem:
    """One iGSM problem. `formulas` holds one entry per structure edge (every edge is one statement sentence)."""

    layer_names: list[str]
    items: list[list[str]]
    formulas: dict[ParamId, Formula]
    question: ParamId
    statement_order: list[ParamId]
    solution_order: list[ParamId] | None = None
    solution: list[str] | None = None  # solution sentences, once rendered
    p_format: str = "pq"
    meta: dict[str, Any] = field(default_factory=dict)
    symbol_order: str = "random"  # how a rendered solution names its parameters (`GenConfig.symbols`)

    # ---- structure -------------------------------------------------------------------------------------------
    @property
    def d(self) -> int:
        return len(self.items)

    @cached_property
    def children(self) -> list[list[list[int]]]:
        """children[i][j] = sorted k such that edge (i, j) -> (i+1, k) exists."""
        ch = [[[] for _ in layer] for layer in self.items[:-1]]
        for _, i, j, k in self.formulas:
            ch[i][j].append(k)
        for layer in ch:
            for kids in layer:
                kids.sort()
        return ch

    @property
    def edges(self) -> list[tuple[int, int, int]]:
        return sorted((i, j, k) for _, i, j, k in self.formulas)

    def abstract_params(self) -> list[ParamId]:
        """Every abstract parameter of the structure, childless ones (value 0) included."""
        return [
            (1, i, j, k) for i in range(self.d - 1) for j in range(len(self.items[i])) for k in range(i + 1, self.d)
        ]

    def params(self) -> list[ParamId]:
        """The parameters that exist: instance parameters (edges) in index order, then every abstract parameter."""
        return sorted(self.formulas) + self.abstract_params()

    def exists(self, p: ParamId) -> bool:
        if p[0] == INSTANCE:
            return p in self.formulas
        _, i, j, k = p
        return p[0] == ABSTRACT and 0 <= i < k < self.d and 0 <= j < len(self.items[i])

    def deps(self, p: ParamId) -> list[ParamId]:
        """Direct dependencies (RNG excluded), in operand order for instance parameters."""
        if p[0] == INSTANCE:
            return list(self.formulas[p].operands)
        return abstract_deps(p, self.children)

    def expression(self, p: ParamId) -> Expr:
        """The binary computation the solution writes for `p` (spec §8); values and op counts come from it."""
        cache = self._exprs
        if p not in cache:
            cache[p] = self._expression(p)
        return cache[p]

    @cached_property
    def _exprs(self) -> dict[ParamId, Expr]:
        return {}

    def _expression(self, p: ParamId) -> Expr:
        if p[0] == INSTANCE:
            f = self.formulas[p]
            refs = [("ref", q) for q in f.operands]
            if len(refs) == 2 and f.inner == "diff":
                ops: Expr = ("sub", refs[0], refs[1])
            elif refs:
                ops = fold_sum(refs)
            else:
                return ("const", f.const)
            if f.const is None:
                return ops
            return ("add" if f.outer == "add" else "mul", ("const", f.const), ops)
        _, i, j, k = p
        kids = self.children[i][j]
        if k == i + 1:
            return fold_sum([("ref", (0, i, j, x)) for x in kids])
        return fold_sum([("mul", ("ref", (0, i, j, x)), ("ref", (1, i + 1, x, k))) for x in kids])

    def op_count(self, p: ParamId) -> int:
        """Operations to compute `p` (spec §6): the binary computations of its solution sentence, at least 1."""
        return max(1, count_nodes(self.expression(p)))

    # ---- names -------------------------------------------------------------------------------------------------
    def name(self, p: ParamId) -> str:
        kind, i, j, k = p
        if kind == INSTANCE:
            return T.param_name(self.items[i][j], self.items[i + 1][k])
        if kind == ABSTRACT:
            return T.param_name(self.items[i][j], self.layer_names[k])
        return "RNG"

    def param_named(self, name: str) -> ParamId | None:
        """The existing parameter called `name` ("A's B"), or None."""
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, ParamId]:
        return {self.name(p): p for p in reversed(self.params())}  # of two equal names, the first wins

    # ---- values and the necessary set --------------------------------------------------------------------------
    def value(self, p: ParamId) -> int:
        """The value of `p` (mod 23), computed on demand from its dependencies."""
        vals = self._vals
        if p not in vals:
            vals[p] = self._eval(self.expression(p))
        return vals[p]

    def _eval(self, e: Expr) -> int:
        tag = e[0]
        if tag == "const":
            return e[1]
        if tag == "ref":
            return self.value(e[1])
        if tag == "zero":
            return 0
        return apply(tag, self._eval(e[1]), self._eval(e[2]))

    @cached_property
    def _vals(self) -> dict[ParamId, int]:
        return {}

    @property
    def values(self) -> dict[ParamId, int]:
        """Values of every existing parameter."""
        return {p: self.value(p) for p in self.params()}

    @property
    def answer(self) -> int:
        return self.value(self.question)

    @cached_property
    def necessary(self) -> frozenset[ParamId]:
        """The question and everything it transitively depends on."""
        seen = {self.question}
        stack = [self.question]
        while stack:
            for q in self.deps(stack.pop()):
                if q not in seen:
                    seen.add(q)
                    stack.append(q)
        return frozenset(seen)

    @property
    def n_op(self) -> int:
        return sum(self.op_count(p) for p in self.necessary)

    def default_solution_order(self) -> list[ParamId]:
        """A topological order of the necessary parameters (the question last), for problems read from text."""
        order: list[ParamId] = []
        done: set[ParamId] = set()

        def visit(p: ParamId) -> None:
            if p in done:
                return
            done.add(p)
            for q in self.deps(p):
                visit(q)
            order.append(p)

        visit(self.question)
        return order

    # ---- text --------------------------------------------------------------------------------------------------
    def statement_sentence(self, p: ParamId) -> str:
        f = self.formulas[p]
        return T.statement_sentence(self.name(p), f.const, f.outer, [self.name(q) for q in f.operands], f.inner)

    @property
    def problem_text(self) -> str:
        """Statement sentences in statement order, joined, with a final period (the reference's `problem` field)."""
        return T.join_statement([self.statement_sentence(p) for p in self.statement_order])

    @property
    def question_text(self) -> str:
        kind, i, j, k = self.question
        target = self.items[i + 1][k] if kind == INSTANCE else self.layer_names[k]
        return T.question_sentence(self.items[i][j], target)

    @property
    def prompt(self) -> str:
        """Model-facing problem text (leading space, `p_format` order)."""
        return T.prompt_text(self.problem_text, self.question_text, self.p_format)

    def render_solution(
        self, rng: random.Random | None = None, symbols: Iterable[str] | None = None
    ) -> tuple[list[str], dict[ParamId, str]]:
        """Solution sentences for `solution_order`, with symbols drawn without replacement from the 52 letters.

        Intermediate symbols are drawn before the parameter's own (children first), as in the reference.
        `symbols`, if given, supplies the symbols in that drawing order instead (to re-write a known solution).
        With `symbol_order` "ordered" the symbols are a, b, c, ... in the order the text shows them.
        """
        if symbols is not None:
            it = iter(symbols)
            return self._render(lambda: next(it, "..."), template=False)
        if self.symbol_order == "ordered":
            return self._render(_letters_in_order(), template=False, own_first=True)
        rng = rng or random.Random(0)
        pool = list(T.SYMBOLS)

        def draw() -> str:
            if not pool:
                return "..."
            return pool.pop(int(rng.random() * len(pool)))

        return self._render(draw, template=False)

    def solution_template(self) -> str:
        """The solution's hash sketch (spec §10) rendered directly: names as Inst/Inter, numbers as 0, symbols
        renamed by first appearance. Equals `split.sketch` of the solution when no parameter name of the structure
        contains another or a digit, which `Vocabulary.sketch_safe` guarantees for a vocabulary.
        """
        sentences, _ = self._render(_letters_in_order(), template=True, own_first=True)
        return " " + T.join_solution(sentences).replace(";", ".")

    def _render(
        self, draw: Callable[[], str], template: bool, own_first: bool = False
    ) -> tuple[list[str], dict[ParamId, str]]:
        """own_first: draw each parameter's symbol before its intermediates' (the order the text shows them);
        otherwise after them, as the reference draws."""
        order = self.solution_order or self.default_solution_order()
        value = (lambda p: 0) if template else self.value  # a template writes every number as 0
        num = (lambda v: "0") if template else str
        sym: dict[ParamId, str] = {}
        sentences = []
        clauses: list[str] = []

        def visit(e: Expr) -> tuple[str, int]:
            """Symbol (or number) and value of a sub-expression; intermediates become clauses."""
            tag = e[0]
            if tag == "const":
                return num(e[1]), e[1]
            if tag == "ref":
                return sym[e[1]], value(e[1])
            ln, lv = visit(e[1])
            rn, rv = visit(e[2])
            v = apply(tag, lv, rv)
            t = draw()
            sign = T.OP_SIGNS[tag]
            clauses.append(f"{t} = {ln}{sign}{rn} = {num(lv)}{sign}{num(rv)} = {num(v)}")
            return t, v

        for p in order:
            clauses.clear()
            own = draw() if own_first else ""
            e = self.expression(p)
            tag = e[0]
            if tag in ("add", "sub", "mul"):
                ln, lv = visit(e[1])
                rn, rv = visit(e[2])
                sign = T.OP_SIGNS[tag]
                own = own or draw()
                tail = f"{own} = {ln}{sign}{rn} = {num(lv)}{sign}{num(rv)} = {num(value(p))}"
            elif tag == "ref":
                own = own or draw()
                tail = f"{own} = {sym[e[1]]} = {num(value(p))}"
            else:  # a bare constant, or a childless abstract parameter (0)
                own = own or draw()
                tail = f"{own} = {num(value(p))}"
            sym[p] = own
            name = ("Inst" if p[0] == INSTANCE else "Inter") if template else self.name(p)
            sentences.append("; ".join([f"{T.DEFINE}{name}{T.AS}{own}", *clauses, T.SO + tail]))
        return sentences, sym

    @property
    def solution_text(self) -> str:
        """The `solution` field (no leading space); renders the solution with a fixed seed if not done yet."""
        if self.solution is None:
            self.solution = self.render_solution()[0]
        return T.join_solution(self.solution)

    @cached_property
    def hash_bin(self) -> int:
        """The template-hash bin of the clean solution (the generator fills this in as it checks the split)."""
        return split.hash_bin(self.solution_text, self.items, self.layer_names)

    # ---- records -----------------------------------------------------------------------------------------------
    def to_record(self) -> dict[str, Any]:
        """One JSON object, with the reference samples' field names and formats (`../shared/reference/README.md`)."""
        b = self.hash_bin
        return {
            "problem": self.problem_text,
            "question": self.question_text,
            "solution": self.solution_text,
            "answer": self.answer,
            "op": self.n_op,
            "hash_bin": b,
            "split": split.split_of(b),
            **self.meta,
            "structure": self.structure_record(),
        }

    def structure_record(self) -> dict[str, Any]:
        """The `structure` field, in the reference samples' layout (`../shared/reference/README.md`)."""
        nec = self.necessary
        vals = self.values
        in_statement = set(self.formulas)
        params = []
        order = self.solution_order or self.default_solution_order()
        listed = list(self.statement_order) + [p for p in self.abstract_params() if p in nec or self._used(p)]
        for p in listed:
            f = self.formulas.get(p)
            deps = (["RNG"] if f is not None and f.const is not None else []) + [self.name(q) for q in self.deps(p)]
            params.append(
                {
                    "id": list(p),
                    "name": self.name(p),
                    "kind": "instance" if p[0] == INSTANCE else "abstract",
                    "value": vals[p],
                    "deps": deps,
                    "necessary": p in nec,
                    "in_statement": p in in_statement,
                }
            )
        return {
            "d": self.d,
            "layer_names": list(self.layer_names),
            "items": [list(layer) for layer in self.items],
            "edges": [list(e) for e in self.edges],
            "n_op": self.n_op,
            "question_param": self.name(self.question),
            "question_kind": "instance" if self.question[0] == INSTANCE else "abstract",
            "topological_order": [self.name(p) for p in order],
            "params": params,
        }

    @cached_property
    def _operand_set(self) -> frozenset[ParamId]:
        """Abstract parameters the dependency graph contains: operands, and what those depend on."""
        seen: set[ParamId] = set()
        stack = [q for f in self.formulas.values() for q in f.operands if q[0] == ABSTRACT] + [self.question]
        while stack:
            p = stack.pop()
            if p in seen or p[0] != ABSTRACT:
                continue
            seen.add(p)
            stack.extend(self.deps(p))
        return frozenset(seen)

    def _used(self, p: ParamId) -> bool:
        return p in self._operand_set
