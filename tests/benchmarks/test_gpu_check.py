"""benchmarks/gpu_check.sh in its CPU mode: every part runs (tiny sizes, fp32; the big-model throughput is GPU only)
and lands in the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_every_part_on_cpu(smoke_out_root, tmp_path):
    out = tmp_path / "gpu-check.md"
    env = {**os.environ, "GPU_CHECK_OUT": str(out), "GPU_CHECK_DATA": str(smoke_out_root), "PYTHON": sys.executable}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    r = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--cpu"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    report = out.read_text()
    assert r.returncode == 0 and "FAILED" not in report, report[-3000:] + r.stderr[-2000:]
    for section in (
        "## Environment",
        "## A smoke model",
        "## Batched greedy = one-by-one greedy",
        "## Compiled = eager",
        "## Training throughput: mini",
        "## Decoding throughput",
        "## A time-limited mini training run",
    ):
        assert section in report, section
    assert "gpt2-12-12" not in report  # GPU only: on a CPU it would time the mini part's tiny model again
    assert " of 3 generations identical**" in report
    assert "speed-up of ours over generate" in report and "| step | loss |" in report
    assert (tmp_path / "gpu-check-mini-loss.png").stat().st_size > 0
