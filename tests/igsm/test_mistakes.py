"""Mistake insertion: each kind's definition, the configured rate, the spans, and verdicts equal to the clean ones."""

from __future__ import annotations

import pytest

from igsm.config import preset
from igsm.dataset import DataConfig, MistakeConfig, make_example
from igsm.generator import derive_rng, generate
from igsm.labels import compute_labels
from igsm.mistakes import insert_mistakes
from igsm.verifier import verify

MED = preset("med", split="all")


def candidates(problem, kind, step, include_current=False):
    """The definitions of spec §11, written out independently of igsm.mistakes."""
    lab = compute_labels(problem)
    done = set(lab.order[:step])
    if kind == "retry":
        return {p for c, p in enumerate(lab.params) if not lab.can_next[step, c] and p not in done}
    if kind == "retry_weak":
        return set(lab.order[step:] if include_current else lab.order[step + 1 :])
    named = set(problem.formulas) | {q for f in problem.formulas.values() for q in f.operands}
    return (named | set(lab.order[step + 1 :])) - done - {lab.order[step]}


@pytest.mark.parametrize("kind", ["retry", "retry_weak", "retry_miss"])
def test_every_mistake_fits_its_definition(kind):
    for i in range(150):
        p = generate(MED, 0, i)
        wm = insert_mistakes(p, kind, 0.4, derive_rng(0, i, 1))
        lab = compute_labels(p)
        for m in wm.mistakes:
            assert m.param in candidates(p, kind, m.before_step)
            if kind == "retry":  # a real mistake: not computable at that point, and not computed yet
                assert not lab.can_next[m.before_step, lab.column(m.param)] and not m.computable
            if kind == "retry_weak":  # a later necessary parameter
                assert m.param in p.necessary and lab.order.index(m.param) > m.before_step


def test_weak_include_current_reproduces_the_reference_quirk():
    same = total = 0
    for i in range(200):
        p = generate(MED, 0, i)
        for m in insert_mistakes(p, "retry_weak", 0.3, derive_rng(0, i, 1), include_current=True).mistakes:
            total += 1
            same += m.param == p.solution_order[m.before_step]
    assert 0.3 < same / total < 0.5  # the reference: 40% of its retry_weak "mistakes" are the next step itself


@pytest.mark.parametrize("kind,rate", [("retry", 0.3), ("retry_weak", 0.3), ("retry_miss", 0.2)])
def test_count_per_step_is_truncated_geometric(kind, rate):
    """Over 10,000 steps the mistakes per step match E = sum_k rate^k over k <= #candidates, and for the kinds with
    many candidates approach rate / (1 - rate)."""
    steps = observed = 0
    expected = 0.0
    i = 0
    while steps < 10_000:
        p = generate(MED, 1, i)
        wm = insert_mistakes(p, kind, rate, derive_rng(1, i, 1))
        for s in range(len(p.solution_order)):
            c = len(candidates(p, kind, s))
            expected += rate * (1 - rate**c) / (1 - rate)
        observed += len(wm.mistakes)
        steps += len(p.solution_order)
        i += 1
    assert observed / steps == pytest.approx(expected / steps, rel=0.05)
    if kind != "retry_weak":
        assert observed / steps == pytest.approx(rate / (1 - rate), abs=0.03)


def test_spans_and_verdicts():
    cfg = DataConfig(mistakes=MistakeConfig("retry", 0.4))
    seen = 0
    for i in range(100):
        e = make_example(cfg, "train", i)
        sol = e["solution"]
        for (a, b), (c, d), name in zip(e["mistake_spans"], e["mistake_name_spans"], e["mistake_params"], strict=True):
            assert sol[a:b] == f"Define {name} as BACK." and sol[c:d] == name
            seen += 1
        cut = sol
        for a, b in reversed(e["mistake_spans"]):
            cut = cut[:a] + cut[b + 1 :]  # drop the sentence and the space after it
        assert cut == e["clean_solution"]
        v, w = verify(e["problem"], e["question"], sol), verify(e["problem"], e["question"], e["clean_solution"])
        assert v.correct and v.strict_correct and w.strict_correct and v.n_back == e["n_mistakes"]
        assert (v.answer, v.n_ops, v.n_steps) == (w.answer, w.n_ops, w.n_steps)
    assert seen > 50


def test_same_problems_at_every_rate():
    clean = [make_example(DataConfig(), "train", i) for i in range(20)]
    for rate in (0.1, 0.5):
        noisy = [make_example(DataConfig(mistakes=MistakeConfig("retry", rate)), "train", i) for i in range(20)]
        assert [e["clean_solution"] for e in noisy] == [e["solution"] for e in clean]
        assert [e["prompt"] for e in noisy] == [e["prompt"] for e in clean]


def test_test_splits_have_no_mistakes():
    cfg = DataConfig(mistakes=MistakeConfig("retry", 0.5), test_ops=[15])
    assert all(make_example(cfg, "test_op15", i)["n_mistakes"] == 0 for i in range(10))


@pytest.mark.parametrize(
    "kwargs,fragment",
    [
        ({"kind": "retry", "rate": 1.0}, "rate must be in [0, 1), got 1.0"),
        ({"kind": "retry", "rate": -0.1}, "got -0.1"),
        ({"kind": "oops"}, "'oops'"),
        ({"kind": "none", "rate": 0.2}, "kind is 'none'"),
        ({"mask": "all"}, "'all'"),
    ],
)
def test_bad_mistake_config(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace(")", r"\)").replace("(", r"\(")):
        MistakeConfig(**kwargs)


def test_bad_data_config():
    with pytest.raises(ValueError, match="max_op"):
        DataConfig(max_op=0)
    with pytest.raises(ValueError, match="train_size"):
        DataConfig(train_size=-1)
