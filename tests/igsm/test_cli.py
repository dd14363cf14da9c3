"""The README's commands for problems: `python -m igsm.generate` and `python -m igsm.verify`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from igsm.config import preset
from igsm.generator import generate

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, check=check)


def test_generate_prints_json_lines():
    out = run("igsm.generate", "--preset", "med", "--n", "3", "--seed", "0").stdout.splitlines()
    records = [json.loads(line) for line in out]
    assert len(records) == 3
    for i, r in enumerate(records):
        assert {"problem", "question", "solution", "answer", "op", "hash_bin", "split"} <= set(r)
        assert r == generate(preset("med"), 0, i).to_record()


def test_generate_pretty_is_readable():
    out = run("igsm.generate", "--preset", "med", "--n", "2", "--seed", "0", "--pretty").stdout
    assert out.count("Problem:") == 2 and out.count("\nSolution:\n  Define ") == 2 and "Answer: " in out


def test_generate_file_with_workers_and_forced_op(tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    args = ["igsm.generate", "--preset", "med", "--op", "23", "--split", "test", "--n", "12", "--seed", "5"]
    run(*args, "--out", str(one))
    run(*args, "--out", str(two), "--workers", "2")
    assert one.read_bytes() == two.read_bytes()
    records = [json.loads(line) for line in one.read_text().splitlines()]
    assert len(records) == 12 and all(r["op"] == 23 and r["hash_bin"] >= 16 for r in records)
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_generate_rejects_bad_arguments():
    r = run("igsm.generate", "--op", "5", "--op-min", "3", check=False)
    assert r.returncode == 2 and "--op cannot be combined" in r.stderr
    r = run("igsm.generate", "--op", "0", check=False)
    assert r.returncode != 0 and "op_min must be >= 1, got 0" in r.stderr


def test_verify_judges_a_file(tmp_path):
    p = generate(preset("med"), 0, 0)
    good = {"problem": p.problem_text, "question": p.question_text, "solution": p.solution_text, "id": 7}
    bad = {**good, "solution": "Define nothing.", "id": 8}
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    r = run("igsm.verify", "--in", str(src), "--out", str(dst))
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["id"] for o in out] == [7, 8]
    assert out[0]["correct"] and out[0]["strict_correct"] and out[0]["errors"] == []
    assert not out[1]["correct"] and out[1]["errors"][0]["kind"] == "parse_failed"
    assert "2 solutions: correct 50.0%" in r.stderr


def test_verify_names_a_missing_field(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"problem": "x", "question": "y"}) + "\n")
    r = run("igsm.verify", "--in", str(src), check=False)
    assert r.returncode != 0 and "in.jsonl:1" in r.stderr and "'solution'" in r.stderr
