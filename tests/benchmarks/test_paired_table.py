"""benchmarks/paired_table.py pairs each run's verdicts with the base's, problem by problem."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from paired_table import main  # noqa: E402


def fake(
    run: Path, correct: list[bool], backs: list[int], loss: float | None = None, extra: list[list[str]] | None = None
) -> Path:
    out = run / "eval" / "step_0000010" / "greedy"
    out.mkdir(parents=True)
    extra = extra or [[] for _ in correct]
    pairs = enumerate(zip(correct, backs, extra, strict=True))
    rows = [
        {"split": "test_op1", "index": i, "correct": c, "n_back": b, "unnecessary_params": u}
        for i, (c, b, u) in pairs
    ]
    (out / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if loss is not None:
        (run / "final.json").write_text(json.dumps({"loss": loss}))
    return run


def test_gains_losses_and_backs_are_counted_per_problem(tmp_path, capsys):
    base = fake(tmp_path / "base", [True, True, False, False], [0, 0, 0, 0])
    ft = fake(tmp_path / "ft", [True, False, True, True], [0, 2, 1, 0], loss=0.25)
    main([str(base), str(ft)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| base | 50.0 [15.0-85.0] | 0.00 | 0.00 | - |"
    # solves 2 the base does not (+2), loses 1 (-1): McNemar p = 1.0; BACKs 1/3 per correct, 2 per wrong
    assert lines[3] == "| ft | 75.0 [30.1-95.4] +2/-1, p=1.00 | 0.33 | 2.00 | 0.250 |"


def test_solutions_with_unnecessary_parameters_are_counted_right_or_wrong(tmp_path, capsys):
    base = fake(tmp_path / "base", [True, False], [0, 0])
    run = fake(tmp_path / "run", [True, False], [0, 0], loss=0.5, extra=[["Lisbon's Park"], ["a", "b"]])
    main([str(base), str(run), "--unnecessary"])
    lines = capsys.readouterr().out.splitlines()
    assert "with an unnecessary parameter (op1)" in lines[0] and lines[1].count("|") == lines[0].count("|")
    assert lines[2].endswith("| 0 | - |") and lines[3].endswith("| 2 | 0.500 |")


def test_runs_on_other_problems_are_refused(tmp_path):
    base = fake(tmp_path / "base", [True, False], [0, 0])
    other = fake(tmp_path / "other", [True, False, True], [0, 0, 0])
    with pytest.raises(SystemExit, match="other problems than the base"):
        main([str(base), str(other)])
    with pytest.raises(SystemExit, match="no evaluation named 'beam4'"):
        main([str(base), "--eval", "beam4"])


def test_gzipped_generations_read_as_the_plain_file(tmp_path, capsys):
    import gzip

    base = fake(tmp_path / "base", [True, False, False], [0, 0, 0])
    run = fake(tmp_path / "run", [False, True, True], [1, 0, 2], loss=0.5)
    main([str(base), str(run)])
    plain = capsys.readouterr().out
    gens = run / "eval" / "step_0000010" / "greedy" / "generations.jsonl"
    gens.with_suffix(".jsonl.gz").write_bytes(gzip.compress(gens.read_bytes()))
    gens.unlink()
    main([str(base), str(run)])
    assert capsys.readouterr().out == plain


def test_a_small_p_keeps_its_digits():
    from paired_table import p_value

    assert (p_value(1.0), p_value(0.0123), p_value(3.7e-5)) == ("1.00", "0.01", "4e-05")


def seeded(run: Path, seed: int, correct: list[bool], mistakes: str = "none", loss: float = 0.5) -> Path:
    fake(run, correct, [0] * len(correct), loss=loss)
    config = {"data": {"mistakes": mistakes}, "train": {"seed": seed}, "run_name": run.name}
    (run / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    return run


def test_seeds_are_pooled_and_paired_seed_by_seed(tmp_path, capsys):
    clean = [seeded(tmp_path / "clean_s0", 0, [True, True, False, False]), seeded(tmp_path / "clean_s1", 1, [True] * 4)]
    # given out of seed order: paired by seed all the same
    retry = [
        seeded(tmp_path / "retry_s1", 1, [True, True, True, False], "retry", loss=0.3),
        seeded(tmp_path / "retry_s0", 0, [True, True, True, True], "retry", loss=0.1),
    ]
    main(["--seeds", "2", *map(str, clean + retry)])
    lines = capsys.readouterr().out.splitlines()
    # clean: 6 of 8 pooled (50% and 100% per seed); retry: 7 of 8 (100% / 75%): seed 0 gains 2, seed 1 loses 1
    assert lines[2].startswith("| clean (2 seeds) | 75.0 [40.9-92.9] (50.0 / 100.0) |")
    assert lines[3] == "| retry (2 seeds) | 87.5 [52.9-97.8] (100.0 / 75.0) +2/-1, p=1.00 | 0.00 | 0.00 | 0.200 |"


def test_seed_groups_must_be_one_variant_with_the_base_seeds(tmp_path):
    a0, a1 = seeded(tmp_path / "a_s0", 0, [True]), seeded(tmp_path / "a_s1", 1, [True])
    b0, b2 = seeded(tmp_path / "b_s0", 0, [True], "retry"), seeded(tmp_path / "b_s2", 2, [True], "retry")
    c1 = seeded(tmp_path / "c_s1", 1, [True], "retry")
    with pytest.raises(SystemExit, match="--seeds must be >= 1"):
        main(["--seeds", "0", str(a0)])
    with pytest.raises(SystemExit, match="multiple of 2 runs"):
        main(["--seeds", "2", str(a0), str(a1), str(b0)])
    with pytest.raises(SystemExit, match="more than train.seed"):
        main(["--seeds", "2", str(a0), str(c1)])
    with pytest.raises(SystemExit, match=r"seeds \[0, 2\], the base's \[0, 1\]"):
        main(["--seeds", "2", str(a0), str(a1), str(b0), str(b2)])
    with pytest.raises(SystemExit, match="share a seed"):
        main(["--seeds", "2", str(a0), str(seeded(tmp_path / "a_again", 0, [True]))])


def test_another_decoding_of_the_same_run_pairs_on_the_splits_both_decoded(tmp_path, capsys):
    run = fake(tmp_path / "L6", [True, False, False, True], [0, 0, 0, 0], loss=0.04)
    rur = run / "eval" / "step_0000010" / "rur_perfect"
    rur.mkdir()
    rows = [
        {"split": "test_op1", "index": i, "correct": c, "n_back": 0, "unnecessary_params": []}
        for i, c in enumerate([True, True, True, True])
    ]
    rows.append({"split": "test_op2", "index": 0, "correct": True, "n_back": 0, "unnecessary_params": []})
    (rur / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    main([str(run), f"{run}@rur_perfect"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| run | op1 | BACK")  # op2: only the second decoding has it, so no column
    assert lines[3].startswith("| L6@rur_perfect | 100.0 [51.0-100.0] +2/-0, p=0.50 |"), lines[3]
    with pytest.raises(SystemExit, match="RUN@NAME"):
        main([str(run), f"{run}@"])
    with pytest.raises(SystemExit, match="plain run folders"):
        main(["--seeds", "2", str(run), f"{run}@rur_perfect"])
