"""Probing examples: positions land on the right tokens and labels match a hand-checked problem."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from igsm.dataset import DataConfig, MistakeConfig
from igsm.parse import parse_problem
from igsm.split import split_of
from pretrain.tokenizer import SPECIAL_TOKENS, prompt_ids, resolve_roles
from probes.examples import TASKS, build_probe_set, problem_examples, sentence_spans
from tests.conftest import HAND_QUESTION, HAND_STATEMENT

# a solution with two taken-back steps: Lisbon's Park before its children are known (a real mistake), and
# Madrid's Lakeview Park after both Lisbon parameters are known (computable: not a mistake)
SOLUTION = (
    "Define Lisbon's Park as BACK. Define Lisbon's Riverside Park as a; so a = 5. "
    "Define Lisbon's Lakeview Park as b; so b = 13 + a = 13 + 5 = 18. Define Madrid's Lakeview Park as BACK. "
    "Define Lisbon's Park as c; so c = a + b = 5 + 18 = 0."
)


def hand_examples(tokenizer, tasks, per_task=1000, p_format="pq", dep_position="statement_end"):
    (problem,) = parse_problem(HAND_STATEMENT, HAND_QUESTION)
    problem = replace(problem, p_format=p_format)
    roles = resolve_roles(tokenizer, SPECIAL_TOKENS)
    ids, ex = problem_examples(
        problem, SOLUTION, tokenizer, roles, random.Random(0), 0, tasks, per_task, dep_position=dep_position
    )
    return problem, ids, ex


def test_sentence_spans():
    spans = sentence_spans(SOLUTION)
    assert [SOLUTION[a:b] for a, b in spans][:2] == [
        "Define Lisbon's Park as BACK",
        "Define Lisbon's Riverside Park as a; so a = 5",
    ]
    assert all(SOLUTION[b] == "." for _, b in spans)


def test_regret_positions_and_labels(smoke_tokenizer):
    _, ids, ex = hand_examples(smoke_tokenizer, ("regret",))
    got = sorted((e.position, e.names[0], e.label) for e in ex)
    assert [(n, label) for _, n, label in got] == [
        ("Lisbon's Park", 1),
        ("Lisbon's Riverside Park", 0),
        ("Lisbon's Lakeview Park", 0),
        ("Madrid's Lakeview Park", 0),
        ("Lisbon's Park", 0),
    ]
    for pos, name, _ in got:
        assert smoke_tokenizer.decode([ids[pos]]) == " as"
        assert smoke_tokenizer.decode(ids[pos - 12 : pos + 1]).endswith(f"Define {name} as")


def test_step_and_question_positions(smoke_tokenizer):
    problem, ids, ex = hand_examples(smoke_tokenizer, ("nece", "dep", "known", "value", "can_next", "nece_next"))
    roles = resolve_roles(smoke_tokenizer, SPECIAL_TOKENS)
    for e in ex:
        tok = ids[e.position]
        if e.task == "nece":
            assert tok == roles.begin_solution
        elif e.task != "dep":
            assert tok == roles.begin_solution or smoke_tokenizer.decode([tok]) == "."
    # after the 2nd correct step (Lisbon's Lakeview Park): both Lisbon parks known, Lisbon's Park computable
    start = ids.index(roles.begin_solution)
    period_tokens = [i for i, t in enumerate(ids) if i > start and smoke_tokenizer.decode([t]) == "."]
    after_lakeview = period_tokens[2]  # sentences: BACK, Riverside, Lakeview
    rows = {(e.task, e.names[0]): e.label for e in ex if e.position == after_lakeview}
    assert rows[("known", "Lisbon's Lakeview Park")] == 1 and rows[("known", "Lisbon's Park")] == 0
    assert rows[("can_next", "Lisbon's Park")] == 1 and rows[("nece_next", "Madrid's Lakeview Park")] == 0
    assert rows[("can_next", "Madrid's Lakeview Park")] == 1 and rows[("value", "Lisbon's Lakeview Park")] == 18
    assert rows[("value", "Lisbon's Park")] == 23
    nece = {e.names[0]: e.label for e in ex if e.task == "nece"}
    assert nece == {
        "Lisbon's Riverside Park": 1,
        "Lisbon's Lakeview Park": 1,
        "Madrid's Lakeview Park": 0,
        "Lisbon's Park": 1,
        "Madrid's Park": 0,
    }
    dep = {e.names: e.label for e in ex if e.task == "dep"}
    assert dep[("Madrid's Park", "Lisbon's Riverside Park")] == 1 and dep[("Lisbon's Park", "Madrid's Park")] == 0


def test_probe_set_caps_and_splits(smoke_tokenizer):
    roles = resolve_roles(smoke_tokenizer, SPECIAL_TOKENS)
    data = DataConfig(max_op=4, max_edge=6, mistakes=MistakeConfig("retry", 0.5))
    ps = build_probe_set(data, smoke_tokenizer, roles, 40, tuple(TASKS), per_task=3)
    per = {}
    for e in ps.examples:
        per[(e.seq, e.task)] = per.get((e.seq, e.task), 0) + 1
        assert ps.sequences[e.seq][e.position] is not None and 0 <= e.label < TASKS[e.task]
    assert max(per.values()) <= 3
    assert {e.split for e in ps.examples} == {"train", "test"}
    assert all(ps.sequences[e.seq][0] == roles.end for e in ps.examples)  # a model's prompt, as in decoding
    assert any(e.task == "regret" and e.label == 1 for e in ps.examples)


@pytest.mark.parametrize("p_format", ["pq", "qp"])
def test_dep_is_read_at_the_end_of_the_statement(smoke_tokenizer, p_format):
    """Part 2.1 §4.1 fn. 16: dep(A, B) at the statement's last '.', before the question in pq; the text up to there
    is a prefix of the model's prompt (the problem in its own layout)."""
    problem, ids, ex = hand_examples(smoke_tokenizer, ("dep",), p_format=p_format)
    roles = resolve_roles(smoke_tokenizer, SPECIAL_TOKENS)
    prompt = prompt_ids(smoke_tokenizer, roles, problem.prompt)
    assert ids[: len(prompt)] == prompt
    (pos,) = {e.position for e in ex}
    assert {e.split for e in ex} == {split_of(problem.hash_bin)}
    read = smoke_tokenizer.decode(ids[2 : pos + 1])  # after <end> <begin_problem>
    assert read == (" " + HAND_STATEMENT if p_format == "pq" else f" {HAND_QUESTION} {HAND_STATEMENT}")
    _, ids, ex = hand_examples(smoke_tokenizer, ("dep",), p_format=p_format, dep_position="prompt_end")
    assert {ids[e.position] for e in ex} == {roles.begin_solution}  # the option: where nece is read
    with pytest.raises(ValueError, match="dep_position must be one of .* got 'question'"):
        hand_examples(smoke_tokenizer, ("dep",), dep_position="question")
