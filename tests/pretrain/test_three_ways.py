"""The three-ways table (issue 12 §3) on hand-written run folders: cells, intervals, token accounting, the budget
flag, errors naming what is missing; and the Makefile chain composes."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from pretrain.config import to_dataclass
from pretrain.evaluate import summarize, wilson
from pretrain.score import two_attempt_metrics
from pretrain.selfcorrect import RLConfig
from pretrain.three_ways import budget, compare, main, markdown

REPO = Path(__file__).resolve().parents[2]
CKPT = "step_0000100"
SPLITS = ("test_op3", "test_op5")
DATA = {"name": "laptop", "max_op": 4, "test_ops": [3, 5], "train_size": 20000, "two_attempts": 0.05}
PARAMS = 1_000_000
CLEAN_TOKENS = 100 * 16 * 512  # 100 steps of 16 x 512
# two RL steps of 8 problems x 4 samples: (prompt, y1, y2) tokens per sample
RL_STEPS = [(50.0, 10.0, 12.0), (50.0, 20.0, 8.0)]
RL_TOKENS = int(32 * sum(p + a + b for p, a, b in RL_STEPS))  # 4,800 = 32 x (72 + 78)


def records(k: int, n: int, tokens: int = 40) -> list[dict]:
    """n evaluation records, the first k correct, each of `tokens` generated tokens."""
    return [
        {
            "op": 3,
            "correct": i < k,
            "strict_correct": i < k,
            "answer_correct": i < k,
            "n_back": 0,
            "unnecessary_params": [],
            "unnecessary_ops": 0,
            "generated_tokens": tokens,
            "finished": True,
            "error_kinds": [] if i < k else ["wrong_value"],
        }
        for i in range(n)
    ]


def write_eval(run: Path, name: str, correct: dict[str, int], n: int = 8, **extra) -> None:
    splits = {s: {"column": s.removeprefix("test_op"), **summarize(records(k, n))} for s, k in correct.items()}
    out = run / "eval" / CKPT / name
    out.mkdir(parents=True)
    (out / "results.json").write_text(json.dumps({"eval": {"name": name}, "splits": splits, **extra}))


def pretraining_run(run: Path, tokens: int, mistakes: str = "none") -> Path:
    run.mkdir(parents=True)
    data = {**DATA, "mistakes": {"kind": mistakes, "rate": 0.5 if mistakes != "none" else 0.0}}
    (run / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    final = {"step": 100, "tokens": tokens, "parameters": PARAMS, "checkpoint": str(run / "checkpoints" / CKPT)}
    (run / "final.json").write_text(json.dumps(final))
    return run


def two_attempts(k1: int, k2: int, n: int = 8) -> dict:
    rows = [{"correct1": i < k1, "correct2": i < k2, "first": "a", "second": "a"} for i in range(n)]
    return {"column": "3", **two_attempt_metrics(rows)}


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    clean = pretraining_run(tmp_path / "clean", CLEAN_TOKENS)
    write_eval(clean, "greedy", {"test_op3": 3, "test_op5": 1, "test_seen_op1": 2})
    write_eval(clean, "beam4", {"test_op3": 4, "test_op5": 1})
    probe = clean / "probes" / CKPT / "default"
    probe.mkdir(parents=True)
    (probe / "results.json").write_text(
        json.dumps({"probe": {"n_problems": 300}, "tasks": {"regret": {"n_train": 2100}}})
    )
    write_eval(clean, "rur_probe", {"test_op3": 5, "test_op5": 2}, probe_dir=str(probe), detector_calls=40)
    retry = pretraining_run(tmp_path / "retry", CLEAN_TOKENS + RL_TOKENS, "retry")
    write_eval(retry, "greedy", {"test_op3": 6, "test_op5": 2})
    score = tmp_path / "score"
    score.mkdir()
    (score / "config.yaml").write_text(yaml.safe_dump({"data": {**DATA, "mistakes": {"kind": "none"}}}))
    evals = {"test_op3": two_attempts(3, 4), "test_op5": two_attempts(1, 1)}
    final = {
        "steps": 2,
        "rl": asdict(RLConfig(prompts_per_step=8, k=4)),
        "base_checkpoint": str(clean / "checkpoints" / CKPT),
        "eval_start": {"test_op3": two_attempts(3, 3), "test_op5": two_attempts(1, 1)},
        "eval": evals,
    }
    (score / "final.json").write_text(json.dumps(final))
    rows = [{"step": 0, "eval": final["eval_start"]}]
    rows += [
        {"step": i + 1, "stage": "I", "tokens_prompt": p, "tokens_t1": a, "tokens_t2": b}
        for i, (p, a, b) in enumerate(RL_STEPS)
    ]
    (score / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"clean": clean, "retry": retry, "score": score}


def test_the_table_has_each_method_with_wilson_intervals_on_the_shared_splits(runs):
    table = compare(runs["clean"], runs["retry"], runs["score"])
    assert table["splits"] == list(SPLITS) and table["left_out"] == ["test_seen_op1"]  # beam has no seen op 1
    rows = {r["key"]: r for r in table["rows"]}
    assert list(rows) == ["greedy", "beam", "retry", "rur", "score_t2", "score_t1", "base_t2"]
    expected = {"greedy": 3, "beam": 4, "retry": 6, "rur": 5, "score_t2": 4, "score_t1": 3, "base_t2": 3}
    for key, k in expected.items():
        cell = rows[key]["splits"]["test_op3"]
        assert (cell["n"], cell["accuracy"]) == (8, k / 8)
        assert cell["ci95"] == pytest.approx(list(wilson(k, 8)))
    text = markdown(table)
    assert "| (c) SCoRe, Acc@t2 | 50.0 [21.5, 78.5] n=8 | 12.5 [2.2, 47.1] n=8 |" in text
    assert rows["greedy"]["decode_tokens"] == 40 and rows["score_t2"]["decode_tokens"] is None


def test_the_token_accounting_and_the_budget_rule(runs):
    table = compare(runs["clean"], runs["retry"], runs["score"])
    score = table["score"]
    assert (score["steps"], score["samples"]) == (2, 64)
    assert score["generated_tokens"] == 32 * (22 + 28) and score["tokens"] == RL_TOKENS == 4800
    assert budget(runs["clean"], runs["score"]) == CLEAN_TOKENS + RL_TOKENS
    rows = {r["key"]: r for r in table["rows"]}
    assert (
        rows["greedy"]["train_tokens"] == rows["rur"]["train_tokens"] == rows["base_t2"]["train_tokens"] == CLEAN_TOKENS
    )
    assert rows["score_t2"]["train_tokens"] == rows["retry"]["train_tokens"] == CLEAN_TOKENS + RL_TOKENS
    assert rows["greedy"]["train_flops"] == 6 * PARAMS * CLEAN_TOKENS
    assert rows["score_t2"]["train_flops"] == 6 * PARAMS * CLEAN_TOKENS + 10 * PARAMS * RL_TOKENS
    assert "2,100 regret examples of 300 problems" in rows["rur"]["extra"]
    b = table["budget"]
    assert b["gap_tokens"] == 0 and b["equal_tokens"] and b["equal_flops"]  # 4,800 RL tokens: a 0.2% FLOPs gap
    assert "**UNEQUAL**" not in markdown(table)


def test_a_budget_gap_over_ten_percent_is_flagged(runs):
    final = runs["retry"] / "final.json"
    final.write_text(json.dumps({**json.loads(final.read_text()), "tokens": int(0.8 * CLEAN_TOKENS)}))
    table = compare(runs["clean"], runs["retry"], runs["score"])
    assert not table["budget"]["equal_tokens"] and table["budget"]["gap_tokens"] < -0.1
    assert "**UNEQUAL**" in markdown(table)


def test_missing_evaluations_splits_and_other_worlds_are_named(runs):
    shutil.rmtree(runs["clean"] / "eval" / CKPT / "beam4")
    with pytest.raises(ValueError, match=rf"no 'beam4' evaluation of .*clean at {CKPT}"):
        compare(runs["clean"], runs["retry"], runs["score"])
    with pytest.raises(ValueError, match="no 'beam16' evaluation"):
        compare(runs["clean"], runs["retry"], runs["score"], beam="beam16")
    write_eval(runs["clean"], "beam4", {"test_op3": 4, "test_op5": 1})
    with pytest.raises(ValueError, match=r"clean, beam4 has no split \['test_seen_op1'\]"):
        compare(runs["clean"], runs["retry"], runs["score"], splits=["test_op3", "test_seen_op1"])
    final = runs["score"] / "final.json"
    kept = final.read_text()
    final.write_text(json.dumps({**json.loads(kept), "rl": asdict(RLConfig(method="star"))}))
    with pytest.raises(ValueError, match="SCoRe run .*score: rl.method is 'star'"):
        compare(runs["clean"], runs["retry"], runs["score"])
    final.write_text(kept)
    config = runs["retry"] / "config.yaml"
    config.write_text(config.read_text().replace("max_op: 4", "max_op: 6"))
    with pytest.raises(ValueError, match="retry-data run .* is not in the clean run's world: data.max_op 6 vs 4"):
        compare(runs["clean"], runs["retry"], runs["score"])


def test_a_score_run_from_another_checkpoint_stops(runs):
    final = runs["score"] / "final.json"
    final.write_text(json.dumps({**json.loads(final.read_text()), "base_checkpoint": "other/checkpoints/step_1"}))
    with pytest.raises(ValueError, match="started from other/checkpoints/step_1, not from the clean run's"):
        compare(runs["clean"], runs["retry"], runs["score"])


def test_the_command_writes_the_table_figure_and_budget(runs, tmp_path, capsys):
    main(["--budget", "--clean", str(runs["clean"]), "--score", str(runs["score"])])
    assert capsys.readouterr().out.strip() == str(CLEAN_TOKENS + RL_TOKENS)
    out = tmp_path / "table"
    main(
        ["--clean", str(runs["clean"]), "--retry", str(runs["retry"]), "--score", str(runs["score"]), "--out", str(out)]
    )
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "summary.md", "summary.png"]
    assert json.loads((out / "summary.json").read_text())["splits"] == list(SPLITS)
    with pytest.raises(SystemExit, match="no 'rur_adapter' evaluation"):
        main(
            [
                "--clean",
                str(runs["clean"]),
                "--retry",
                str(runs["retry"]),
                "--score",
                str(runs["score"]),
                "--detector",
                "adapter",
            ]
        )


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_makefile_chain_composes(composer):
    from pretrain.evaluate import EvalConfig
    from pretrain.train import RunConfig
    from probes.probe import ProbeConfig

    r = subprocess.run(
        ["make", "-n", "--no-print-directory", "cpu-three-ways", "STAMP="],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    budget_call = re.compile(r"\$\(\S+ -m pretrain\.three_ways --budget [^)]*\)")
    newest = re.compile(r"\$\(cat [^)]*\)")
    lines = [budget_call.sub("9000000", x) for x in r.stdout.splitlines() if " -m " in x]
    commands = [shlex.split(newest.sub("NEWEST", x))[1:] for x in lines]
    assert [c[1] for c in commands] == [
        "pretrain.train",
        "pretrain.evaluate",
        "pretrain.evaluate",
        "probes.probe",
        "probes.rur",
        "pretrain.selfcorrect",
        "pretrain.train",
        "pretrain.evaluate",
        "pretrain.three_ways",
    ]
    tw = "runs/cpu/three_ways_laptop_two_attempts"
    assert f"--budget --clean {tw}/clean --score {tw}/score" in r.stdout
    configs = []
    for c in commands[:-1]:
        overrides = [a for a in c[2:] if not a.startswith("hydra.")]
        name = {"pretrain.train": "pretrain", "pretrain.selfcorrect": "selfcorrect"}.get(c[1], c[1].split(".")[1])
        cfg = composer(name, overrides)
        if name == "pretrain":
            configs.append(to_dataclass(RunConfig, cfg))
        elif name == "probe":
            configs.append(to_dataclass(ProbeConfig, cfg.probe))
        elif name == "selfcorrect":
            configs.append(to_dataclass(RLConfig, cfg.rl))
        else:
            configs.append(to_dataclass(EvalConfig, cfg.eval))
    clean, greedy, beam, probe, rur, rl, retry, retry_greedy = configs
    assert (clean.data.mistakes.kind, retry.data.mistakes.kind, retry.data.mistakes.rate) == ("none", "retry", 0.5)
    assert clean.data.two_attempts == retry.data.two_attempts == 0.05
    assert retry.train.tokens == 9000000 and retry.train.steps is None
    assert [e.name for e in (greedy, beam, rur, retry_greedy)] == ["greedy", "beam4", "greedy", "greedy"]
    assert greedy.n == beam.n == rur.n == retry_greedy.n == rl.eval_n == 128  # the same problems
    assert commands[4][2:4] == ["checkpoint=" + f"{tw}/clean/checkpoints/NEWEST", "detector=probe"]
    assert commands[-1][2:] == ["--clean", f"{tw}/clean", "--retry", f"{tw}/retry", "--score", f"{tw}/score"] + [
        "--beam",
        "beam4",
        "--out",
        tw,
    ]
