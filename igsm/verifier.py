"""Judging a solution from text alone: problem statement + question + candidate solution -> `Verdict`.

Two verdicts (spec §13, decision 5):
* `correct`: the official evaluator's semantics, leniencies included: steps with " BACK" are skipped; every
  Define step must use exactly the operands the problem gives that parameter (through its intermediates), its
  arithmetic and the values it quotes must be internally consistent, the last step must define the question and
  give the true answer. Constants, operators, the order of steps and unnecessary steps are not checked.
* `strict_correct`: `correct`, and also every constant and operator matches the problem, every defined value is
  the true one, no parameter is unnecessary or defined twice, and each "so <symbol>" names the defined symbol.
`errors` lists every problem found (kind, step, detail), not only the first. `verify` never raises.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from igsm import templates as T
from igsm.parse import ProblemParseError, parse_problem
from igsm.problem import INSTANCE, Expr, ParamId, Problem, apply
from igsm.vocab import Vocabulary

# Error kinds, one place. The first group mirrors the official evaluator's reasons (the names used in
# `../shared/reference/verifier_cases_med.jsonl`); the rest are checks it does not make.
ERROR_KINDS: dict[str, str] = {
    "parse_failed": "the solution does not follow the solution grammar (official: parse failure)",
    "unknown_symbol": "a symbol is used before it is defined",
    "duplicated_symbol": "a symbol is defined twice",
    "wrong_reference_value": "a quoted value differs from the value computed earlier for that symbol",
    "wrong_calculation": "a binary computation is wrong mod 23",
    "wrong_dependencies": "a parameter is computed from operands other than the ones the problem gives it",
    "wrong_final_value": "the last step's value is not the answer",
    "wrong_question_param": "the last step does not define the question's parameter",
    "unknown_parameter": "a step defines a name that is no parameter of the problem",
    "wrong_order": "a symbol is redefined or used before definition (official order check)",
    "too_few_operations": "every check passes but with fewer computations than the problem needs (official: raises)",
    "empty_solution": "the solution is empty",
    "illegal_symbol": "a defined symbol is not a single character",
    "hint_calc_mismatch": "the symbolic and the numeric part of a computation have different sizes",
    "incomplete_step": "a step ends before its value",
    "bad_number": "a number is not an integer 0..22",
    "no_valid_step": "no step could be read",
    "problem_unreadable": "the problem text itself cannot be parsed",
    "wrong_answer": "the given answer differs from the true answer",
    # strict only
    "wrong_constant": "a constant differs from the problem's",
    "wrong_operator": "an operator or the shape of a computation differs from the problem's",
    "wrong_value": "a defined value differs from the parameter's true value",
    "unnecessary_parameter": "a parameter that the question does not need is computed",
    "nonexistent_parameter": "an instance parameter whose items are not linked (the reference lets it pass as 0-ary)",
    "repeated_parameter": "a parameter is defined twice",
    "wrong_so_symbol": "the symbol after 'so' is not the one the step defines",
    "malformed_back": "a BACK step is not exactly 'Define <name> as BACK'",
    "internal_error": "the verifier itself failed (a bug: please report it)",
}
OFFICIAL_PARSE_KINDS = ("unknown_symbol", "duplicated_symbol")
STRICT_ONLY = frozenset(
    {
        "wrong_constant",
        "wrong_operator",
        "wrong_value",
        "unnecessary_parameter",
        "nonexistent_parameter",
        "repeated_parameter",
        "wrong_so_symbol",
        "malformed_back",
    }
)
MAX_SOLUTION = 200_000  # characters; longer inputs are judged unreadable without further work


@dataclass
class Error:
    kind: str
    step: int | None = None  # index of the Define step (BACK steps excluded), when it applies
    detail: str = ""


@dataclass
class Verdict:
    """The judgement of one candidate solution."""

    correct: bool
    strict_correct: bool
    errors: list[Error] = field(default_factory=list)
    answer: int | None = None  # the final value the solution gives
    expected_answer: int | None = None  # the true answer, solved from the problem text
    n_back: int = 0  # BACK steps written
    n_steps: int = 0  # Define steps that are not BACK
    n_ops: int = 0  # computations written (the official `sol_op`)
    unnecessary_params: list[str] = field(default_factory=list)
    unnecessary_ops: int = 0
    ambiguous: bool = False  # the problem text has several readings; judged under the most favourable one

    @property
    def error_kinds(self) -> list[str]:
        return list(dict.fromkeys(e.kind for e in self.errors))

    def to_dict(self) -> dict[str, Any]:
        """The verdict as JSON-ready fields, the one form every report and command writes. `answer` is renamed
        `solution_answer` so that it never overwrites a record's own `answer` (the true one)."""
        d = asdict(self)
        d["solution_answer"] = d.pop("answer")
        d["error_kinds"] = self.error_kinds
        return d


# ---- the official parse ----------------------------------------------------------------------------------------
@dataclass
class _Sub:
    """One computation ('sub-sentence'), as the official parser splits a step."""

    text: str
    step: int  # Define step index
    symbol: str
    param_name: str  # "" for an intermediate
    hint: list[str]
    parents: list[str]
    sign: str | None
    calc: list[int]
    value: int
    so_symbol: str | None = None  # the symbol written after "so" (the final computation of a step)


class _ParseFailure(Exception):
    def __init__(self, kind: str, detail: str = "", step: int | None = None):
        super().__init__(kind)
        self.kind, self.detail, self.step = kind, detail, step


def _is_num(s: str) -> bool:
    return s in T.NUMBER_SET


def _num(s: str) -> int:
    """The official `Num(str)`: int(s) mod 23, failing on non-integers."""
    try:
        return int(s) % T.MOD
    except ValueError:
        raise _ParseFailure("bad_number", s) from None


def _parse_sub(text: str, step: int) -> _Sub:
    parts = text.split(" = ")
    part = parts.pop(0)
    param_name = ""
    if part.startswith("Define"):
        pieces = part[7:].split(T.AS)
        if len(pieces) == 1:
            symbol = pieces[0]
        else:
            param_name, symbol = pieces[0], pieces[1]
    else:
        symbol = part
    if len(symbol) != 1:
        raise _ParseFailure("illegal_symbol", repr(symbol), step)
    hint: list[str] = []
    parents: list[str] = []
    calc: list[int] = []
    sign = None
    while True:
        if not parts:
            raise _ParseFailure("incomplete_step", text[:80], step)
        part = parts.pop(0)
        for op_sign, op_name in zip(T.OP_SIGNS.values(), T.OP_SIGNS, strict=True):
            if op_sign in part:
                pieces = part.split(op_sign)
                if _is_num(pieces[0]) and _is_num(pieces[1]):
                    calc += [_num(x) for x in pieces]
                else:
                    for x in pieces:
                        hint.append(x)
                        if not _is_num(x):
                            parents.append(x)
                sign = op_name
                break
        else:
            if not _is_num(part):
                hint.append(part)
                parents.append(part)
                continue
            if not ((len(hint) == 2 and len(calc) == 2) or (len(hint) < 2 and len(calc) < 2)):
                raise _ParseFailure("hint_calc_mismatch", text[:80], step)
            return _Sub(text, step, symbol, param_name, hint, parents, sign, calc, _num(part))


@dataclass
class _Parsed:
    subs: list[_Sub]
    back: list[str]  # the BACK steps' texts
    n_steps: int


def _official_parse(solution: str) -> _Parsed:
    """Split into steps and computations exactly like the official parser; raises _ParseFailure."""
    if solution.startswith(" "):
        solution = solution[1:]
    if solution.endswith("."):
        solution = solution[:-1]
    subs: list[_Sub] = []
    back: list[str] = []
    symbols: dict[str, _Sub] = {}
    step = 0
    for text in solution.split(". "):
        if " " + T.BACK in text:
            back.append(text)
            continue
        pieces = text.split("; ")
        # the official parser glues the first piece to the last minus its first 4 characters ("so x")
        last = pieces[-1]
        so_symbol = last[3:].split(" ", 1)[0] if last.startswith(T.SO) else None
        texts = [*pieces[1:-1], pieces[0] + last[4:]]
        for k, sub_text in enumerate(texts):
            sub = _parse_sub(sub_text, step)
            if k == len(texts) - 1:
                sub.so_symbol = so_symbol
            unknown = [p for p in sub.parents if p not in symbols]
            if unknown:
                raise _ParseFailure("unknown_symbol", unknown[0], step)
            if sub.symbol in symbols:
                raise _ParseFailure("duplicated_symbol", sub.symbol, step)
            symbols[sub.symbol] = sub
            subs.append(sub)
        step += 1
    if not subs:
        raise _ParseFailure("no_valid_step")
    return _Parsed(subs, back, step)


# ---- judging one reading ---------------------------------------------------------------------------------------
def _names(problem: Problem) -> dict[str, ParamId]:
    """Every name the official evaluator recognises: all consecutive-layer pairs (linked or not) and all abstract
    parameters; of two equal names the later wins, as there."""
    d = problem.d
    pairs = [
        (0, i, j, k)
        for i in range(d - 1)
        for j in range(len(problem.items[i]))
        for k in range(len(problem.items[i + 1]))
    ]
    return {problem.name(p): p for p in pairs + problem.abstract_params()}


def _official_deps(problem: Problem, p: ParamId) -> set[ParamId]:
    """Dependencies in the official whole template: unlinked pairs have none."""
    if p[0] == INSTANCE and p not in problem.formulas:
        return set()
    return set(problem.deps(p))


def _candidate_expr(sub: _Sub, by_symbol: dict[str, _Sub], param_of: dict[str, ParamId]) -> Expr | None:
    """The computation a step writes, as an expression over parameters and constants (None if unreadable)."""

    def leaf(tok: str) -> Expr | None:
        if _is_num(tok):
            return ("const", int(tok))
        if tok in param_of:
            return ("ref", param_of[tok])
        s = by_symbol.get(tok)
        return _candidate_expr(s, by_symbol, param_of) if s is not None else None

    if sub.sign is None:
        if not sub.hint:
            return ("const", sub.value)
        return leaf(sub.hint[0]) if len(sub.hint) == 1 else None
    if len(sub.hint) != 2:
        return None
    a, b = leaf(sub.hint[0]), leaf(sub.hint[1])
    if a is None or b is None:
        return None
    return (sub.sign, a, b)


def _canon(e: Expr) -> Any:
    """A form that ignores the order of operands of + and * (and how sums are grouped)."""
    tag = e[0]
    if tag in ("const", "ref"):
        return e
    if tag == "zero":
        return ("const", 0)
    if tag == "add":
        terms: list[Any] = []
        stack = [e]
        while stack:
            x = stack.pop()
            if x[0] == "add":
                stack += [x[1], x[2]]
            else:
                terms.append(_canon(x))
        return ("add", tuple(sorted(terms, key=repr)))
    if tag == "mul":
        return ("mul", tuple(sorted((_canon(e[1]), _canon(e[2])), key=repr)))
    return ("sub", _canon(e[1]), _canon(e[2]))


def _constants(e: Expr) -> Counter:
    if e[0] == "const":
        return Counter([e[1]])
    if e[0] in ("ref", "zero"):
        return Counter()
    return _constants(e[1]) + _constants(e[2])


def _judge(problem: Problem, parsed: _Parsed, answer: int | None) -> Verdict:
    errors: list[Error] = []
    subs = parsed.subs
    by_symbol = {s.symbol: s for s in subs}
    names = _names(problem)
    nec = problem.necessary
    expected = problem.answer
    final = subs[-1].value

    # official checks, in the official order
    if final != expected:
        errors.append(Error("wrong_final_value", subs[-1].step, f"{final} != {expected}"))
    seen_values: dict[str, set[int]] = {}
    for s in subs:
        if len(s.hint) == 1:
            if s.value not in seen_values.get(s.hint[0], set()):
                errors.append(Error("wrong_reference_value", s.step, f"{s.hint[0]} = {s.value}"))
                seen_values.setdefault(s.hint[0], set()).add(s.value)
        else:
            for tok, v in zip(s.hint, s.calc, strict=True):
                if not _is_num(tok) and v not in seen_values.get(tok, set()):
                    errors.append(Error("wrong_reference_value", s.step, f"{tok} = {v}"))
                    seen_values.setdefault(tok, set()).add(v)
        seen_values.setdefault(s.symbol, set()).add(s.value)
    for s in subs:
        if s.sign is not None and len(s.calc) >= 2 and apply(s.sign, s.calc[0], s.calc[1]) != s.value:
            errors.append(Error("wrong_calculation", s.step, s.text))
    # the operands each Define step uses, through its intermediates
    param_of: dict[str, ParamId] = {}
    defined: list[tuple[_Sub, ParamId]] = []
    for s in subs:
        if not s.param_name:
            continue
        name = s.param_name[1:] if s.param_name.startswith(" ") else s.param_name
        name = name[5:] if name.startswith("each") else name
        p = names.get(name)
        if p is None:
            errors.append(Error("unknown_parameter", s.step, s.param_name))
            continue
        param_of[s.symbol] = p
        defined.append((s, p))
    for s, p in defined:
        used: set[ParamId] = set()
        todo, seen = list(s.parents), set()
        while todo:
            tok = todo.pop()
            if tok in seen:
                continue
            seen.add(tok)
            src = by_symbol[tok]
            if src.param_name:
                used.add(param_of.get(src.symbol, (-2, 0, 0, 0)))
            else:
                todo += src.parents
        want = _official_deps(problem, p)
        if used != want:
            missing = sorted(problem.name(q) for q in want - used)
            extra = sorted(problem.name(q) for q in used - want if q[0] >= 0)
            errors.append(Error("wrong_dependencies", s.step, f"{problem.name(p)}: missing {missing}, extra {extra}"))
    n_ops = len(subs)
    if not errors:
        if subs[-1].param_name != problem.name(problem.question):
            errors.append(Error("wrong_question_param", subs[-1].step, subs[-1].param_name))
        elif n_ops < problem.n_op:
            errors.append(Error("too_few_operations", None, f"{n_ops} < {problem.n_op}"))
    if answer is not None and answer != expected:
        errors.append(Error("wrong_answer", None, f"{answer} != {expected}"))
    correct = not errors

    # strict checks
    unnecessary, unnecessary_ops, seen_params = [], 0, set()
    for s, p in defined:
        pname = problem.name(p)
        if p in seen_params:
            errors.append(Error("repeated_parameter", s.step, pname))
        seen_params.add(p)
        step_ops = sum(1 for x in subs if x.step == s.step)
        if p not in nec:
            unnecessary.append(pname)
            unnecessary_ops += step_ops
            errors.append(Error("unnecessary_parameter", s.step, pname))
        if p[0] == INSTANCE and p not in problem.formulas:
            errors.append(Error("nonexistent_parameter", s.step, pname))
            continue
        if s.value != problem.value(p):
            errors.append(Error("wrong_value", s.step, f"{pname} = {s.value}, true {problem.value(p)}"))
        got = _candidate_expr(s, by_symbol, {k: v for k, v in param_of.items() if k != s.symbol})
        want_e = problem.expression(p)
        if got is None or _canon(got) != _canon(want_e):
            kind = "wrong_constant" if got is not None and _constants(got) != _constants(want_e) else "wrong_operator"
            errors.append(Error(kind, s.step, pname))
        if s.so_symbol is not None and s.so_symbol != s.symbol:
            errors.append(Error("wrong_so_symbol", s.step, f"so {s.so_symbol} after defining {s.symbol}"))
    for text in parsed.back:
        name = text[len(T.DEFINE) : -len(T.AS + T.BACK)]
        if not (text.startswith(T.DEFINE) and text.endswith(T.AS + T.BACK) and T.POSSESSIVE in name):
            errors.append(Error("malformed_back", None, text[:80]))
    return Verdict(
        correct=correct,
        strict_correct=correct and not errors,
        errors=errors,
        answer=final,
        expected_answer=expected,
        n_back=len(parsed.back),
        n_steps=parsed.n_steps,
        n_ops=n_ops,
        unnecessary_params=unnecessary,
        unnecessary_ops=unnecessary_ops,
    )


def _answer_value(answer: int | str | None) -> int | None | str:
    if answer is None or isinstance(answer, int):
        return answer
    a = answer.strip()
    return int(a) if _is_num(a) else "unreadable"


def verify(
    problem: str | Problem | list[Problem],
    question: str | None = None,
    solution: str = "",
    answer: int | str | None = None,
    vocab: Vocabulary | None = None,
) -> Verdict:
    """Judge `solution` for a problem given as text (statement + question) or as parsed `Problem` readings.

    `answer` (optional) is the answer segment a model wrote after its solution (as the official token-level
    check): when given it must equal the true answer too. Never raises: unreadable input gives a verdict whose
    errors say why.
    """
    try:
        return _verify(problem, question, solution, answer, vocab)
    except Exception as e:  # a bug, never an input problem: fuzz tests make sure this stays unreachable
        return Verdict(False, False, [Error("internal_error", None, f"{type(e).__name__}: {e}")])


def _verify(problem, question, solution, answer, vocab) -> Verdict:
    if isinstance(problem, Problem):
        readings = [problem]
    elif isinstance(problem, list):
        readings = problem
    else:
        try:
            readings = parse_problem(problem, question, vocab)
        except ProblemParseError as e:
            return Verdict(False, False, [Error("problem_unreadable", None, str(e))])
    if not isinstance(solution, str) or not solution.strip():
        return Verdict(False, False, [Error("empty_solution")], expected_answer=readings[0].answer)
    if len(solution) > MAX_SOLUTION:
        return Verdict(False, False, [Error("parse_failed", None, f"over {MAX_SOLUTION} characters")])
    given = _answer_value(answer)
    try:
        parsed = _official_parse(solution)
    except _ParseFailure as f:
        errors = [Error("parse_failed", f.step, f.detail)]
        if f.kind != "parse_failed":
            errors.append(Error(f.kind, f.step, f.detail))
        n_back = sum(" " + T.BACK in s for s in solution.split(". "))
        return Verdict(False, False, errors, expected_answer=readings[0].answer, n_back=n_back)
    verdicts = []
    for r in readings:
        v = _judge(r, parsed, None if given == "unreadable" else given)
        if given == "unreadable":
            v.errors.append(Error("wrong_answer", None, f"unreadable answer {answer!r}"))
            v.correct = v.strict_correct = False
        verdicts.append(v)
    best = max(verdicts, key=lambda v: (v.correct, v.strict_correct, -len(v.errors)))
    best.ambiguous = len(readings) > 1
    return best
