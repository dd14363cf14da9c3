"""The verifier: every kind of corruption is caught with the right kind, leniencies match the official evaluator,
and no input string makes it raise (hypothesis)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from igsm.config import preset
from igsm.generator import generate
from igsm.parse import ProblemParseError, parse_problem
from igsm.verifier import ERROR_KINDS, STRICT_ONLY, verify
from tests.conftest import HAND_QUESTION as QUESTION
from tests.conftest import HAND_SOLUTION as GOOD
from tests.conftest import HAND_STATEMENT as STATEMENT


def judge(solution: str, **kw):
    return verify(STATEMENT, QUESTION, solution, **kw)


def test_hand_checked_problem_reads_right():
    (p,) = parse_problem(STATEMENT, QUESTION)
    assert p.answer == 0 and p.n_op == 3
    assert [p.value(q) for q in p.default_solution_order()] == [5, 18, 0]
    assert p.layer_names == ["City", "Park"]  # our vocabulary names the layers


def test_good_solution():
    v = judge(GOOD, answer=" 0")
    assert v.correct and v.strict_correct and v.errors == []
    assert (v.answer, v.expected_answer, v.n_steps, v.n_ops, v.n_back) == (0, 0, 3, 3, 0)


def test_verdict_to_dict_is_json_and_keeps_the_records_answer():
    bad = judge(GOOD.replace("13 + 5 = 18", "13 + 6 = 18"), answer=" 0").to_dict()
    assert json.loads(json.dumps(bad)) == bad and "answer" not in bad
    assert bad["solution_answer"] == 0 and bad["expected_answer"] == 0 and not bad["correct"]
    assert bad["error_kinds"] == list(dict.fromkeys(e["kind"] for e in bad["errors"])) and bad["errors"][0]["step"] == 1


@pytest.mark.parametrize(
    "solution,kinds",
    [
        (
            GOOD.replace("so c = a + b = 5 + 18 = 0", "so c = a + b = 5 + 18 = 1"),
            {"wrong_final_value", "wrong_calculation"},
        ),
        (GOOD.replace("13 + 5 = 18", "13 + 6 = 18"), {"wrong_reference_value", "wrong_calculation"}),
        (
            GOOD.replace("Define Lisbon's Lakeview Park as b; so b = 13 + a = 13 + 5 = 18. ", ""),
            {"parse_failed", "unknown_symbol"},
        ),
        (GOOD + " Define Lisbon's Park as c; so c = a + b = 5 + 18 = 0.", {"parse_failed", "duplicated_symbol"}),
        (GOOD.replace("so c = a + b = 5 + 18 = 0", "so c = b = 18"), {"wrong_dependencies", "wrong_final_value"}),
        (GOOD.replace("Lisbon's Park as c", "Lisbon's Garden Park as c"), {"unknown_parameter"}),
        (
            GOOD.replace("so b = 13 + a = 13 + 5 = 18", "so b = 12 + a = 12 + 5 = 17").replace(
                "5 + 18 = 0", "5 + 17 = 22"
            ),
            {"wrong_final_value", "wrong_constant", "wrong_value"},
        ),
        (
            GOOD.replace("so b = 13 + a = 13 + 5 = 18", "so b = 13 * a = 13 * 5 = 19").replace(
                "5 + 18 = 0", "5 + 19 = 1"
            ),
            {"wrong_final_value", "wrong_operator", "wrong_value"},
        ),
        (GOOD.rsplit(" Define", 1)[0], {"wrong_final_value"}),
        ("Define Lisbon's Riverside Park as ab; so ab = 5.", {"parse_failed", "illegal_symbol"}),
        ("Define Lisbon's Riverside Park as a; so a = 5 + 1.", {"parse_failed", "incomplete_step"}),
        ("Define Lisbon's Riverside Park as a; so a = 31.", {"parse_failed"}),
        ("", {"empty_solution"}),
    ],
)
def test_corruptions_are_caught(solution, kinds):
    v = judge(solution)
    assert not v.correct and not v.strict_correct
    assert kinds <= set(v.error_kinds), v.errors


def test_official_leniencies_pass_correct_but_not_strict():
    extra = GOOD.replace(
        "Define Lisbon's Park",
        "Define Madrid's Lakeview Park as d; e = b + a = 18 + 5 = 0; so d = 2 * e = 2 * 0 = 0. Define Lisbon's Park",
    )
    for solution, kind in [
        (extra, "unnecessary_parameter"),
        (GOOD.replace("so a = 5", "so z = 5"), "wrong_so_symbol"),
        (GOOD.replace(". Define Lisbon's Park", ". Lisbon's Park BACK. Define Lisbon's Park"), "malformed_back"),
    ]:
        v = judge(solution)
        assert v.correct and not v.strict_correct and kind in v.error_kinds, (kind, v.errors)
    v = judge(extra)
    assert v.unnecessary_params == ["Madrid's Lakeview Park"] and v.unnecessary_ops == 2


def test_equivalent_forms_are_strict_correct():
    for solution in [
        GOOD.replace("so c = a + b = 5 + 18 = 0", "so c = b + a = 18 + 5 = 0"),  # sums commute
        GOOD.replace(". Define Lisbon's Park", ". Define Madrid's Lakeview Park as BACK. Define Lisbon's Park"),
        " " + GOOD,
    ]:
        v = judge(solution)
        assert v.correct and v.strict_correct, v.errors
    assert (
        judge(GOOD.replace(". Define Lisbon's Park", ". Define Lisbon's Park as BACK. Define Lisbon's Park")).n_back
        == 1
    )


def test_fewer_operations_than_needed_is_not_correct():
    """The official evaluator raises here (a sanity assertion); we answer 'not correct' with a kind."""
    q = "How many Lakeview Park does Madrid have?"
    short = GOOD.split(" Define Lisbon's Park")[0] + " Define Madrid's Lakeview Park as d; so d = b + a = 18 + 5 = 0."
    v = verify(STATEMENT, q, short)
    assert not v.correct and "too_few_operations" in v.error_kinds and "wrong_constant" in v.error_kinds
    full = short.replace("so d = b + a = 18 + 5 = 0", "e = b + a = 18 + 5 = 0; so d = 2 * e = 2 * 0 = 0")
    assert verify(STATEMENT, q, full).strict_correct


def test_answer_segment():
    assert not judge(GOOD, answer=5).correct and "wrong_answer" in judge(GOOD, answer=5).error_kinds
    assert "wrong_answer" in judge(GOOD, answer=" seven").error_kinds
    assert judge(GOOD, answer=0).correct


def test_problem_given_as_prompt_or_parsed():
    assert verify(f" {STATEMENT} {QUESTION}", None, GOOD).strict_correct
    assert verify(f" {QUESTION} {STATEMENT}", None, GOOD).strict_correct
    assert verify(parse_problem(STATEMENT, QUESTION), None, GOOD).strict_correct


def test_unreadable_problem_is_a_verdict():
    v = verify("The number of apples is large.", QUESTION, GOOD)
    assert not v.correct and v.error_kinds == ["problem_unreadable"]


@pytest.mark.parametrize(
    "statement,question,kind",
    [
        ("", QUESTION, "bad_sentence"),
        (STATEMENT, "What now?", "no_question"),
        (STATEMENT + " The number of each Lisbon's Riverside Park equals 4.", QUESTION, "duplicate_sentence"),
        (STATEMENT.replace("equals 5.", "equals 25."), QUESTION, "bad_number"),
        (STATEMENT, "How many Tulip does Lisbon have?", "inconsistent_layers"),
        (
            "The number of each Lisbon's Riverside Park equals 5. The number of each Riverside Park's Lisbon equals 3.",
            QUESTION,
            "inconsistent_layers",
        ),
        (
            "The number of each Lisbon's Riverside Park equals each Riverside Park's Lisbon.",
            QUESTION,
            "unknown_operand",
        ),
        (
            "The number of each Lisbon's Riverside Park equals each Lisbon's Lakeview Park. The number of each Lisbon's "
            "Lakeview Park equals each Lisbon's Riverside Park.",
            QUESTION,
            "cyclic_dependencies",
        ),
    ],
)
def test_problem_parse_errors_have_kinds(statement, question, kind):
    with pytest.raises(ProblemParseError) as e:
        parse_problem(statement, question)
    assert e.value.kind == kind


@st.composite
def mutated_solution(draw):
    """A real solution, cut, spliced or sprinkled with characters from its own grammar."""
    p = generate(preset("med", split="all"), 0, draw(st.integers(0, 30)))
    sol = p.solution_text
    alphabet = st.sampled_from(list("Define as so=+-*;.' 0123456789abcXYZBACK") + [". ", "; ", " = ", " BACK"])
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(sol)))
        op = draw(st.sampled_from(["cut", "insert", "delete", "dup"]))
        if op == "cut":
            sol = sol[:i]
        elif op == "insert":
            sol = sol[:i] + "".join(draw(st.lists(alphabet, max_size=5))) + sol[i:]
        elif op == "delete":
            sol = sol[:i] + sol[i + draw(st.integers(1, 20)) :]
        else:
            sol = sol[:i] + sol[max(0, i - 30) : i] + sol[i:]
    return p, sol


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_solution())
def test_never_raises_on_mutated_solutions(case):
    p, sol = case
    v = verify(p.problem_text, p.question_text, sol)
    assert "internal_error" not in v.error_kinds, v.errors
    assert set(v.error_kinds) <= set(ERROR_KINDS)
    assert v.correct == (not [e for e in v.errors if e.kind not in STRICT_ONLY])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.text(max_size=200))
def test_never_raises_on_arbitrary_text(solution, problem):
    for v in (verify(STATEMENT, QUESTION, solution), verify(problem, QUESTION, GOOD), verify(problem, None, solution)):
        assert "internal_error" not in v.error_kinds, v.errors
        assert not v.correct or v.errors == [] or set(v.error_kinds) <= STRICT_ONLY


def test_never_raises_on_large_input():
    big = (GOOD + " ") * 400  # about 50 KB
    for v in (judge(big), judge("x" * 60_000), verify(STATEMENT * 200, QUESTION, GOOD), judge(GOOD[:-7])):
        assert "internal_error" not in v.error_kinds and not v.correct
