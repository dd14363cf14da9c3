"""A smoke sweep through Hydra's submitit launcher (local executor): the SLURM path differs from this one only by
the launcher's name (`hydra/launcher=submitit_slurm`), and every job writes to the run directory its config names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install hydra-submitit-launcher (extra: slurm)")

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_submitit_local_sweep_jobs_agree_on_their_run_dirs(smoke_out_root, tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "pretrain.train",
        "-m",
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
        "+experiment=smoke",
        f"out_root={smoke_out_root}",
        f"hydra.sweep.dir={sweep}",
        "train.steps=2",
        "train.log_every=1",
        "train.seed=0,1",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in runs] == ["smoke_smoke_none0.0_s0", "smoke_smoke_none0.0_s1"]
    for run in runs:
        config = OmegaConf.load(run / "config.yaml")
        assert config.run_name == run.name  # the job wrote where its own config says
        final = json.loads((run / "final.json").read_text())
        assert final["steps"] == 2 and Path(final["checkpoint"]).parent.parent == run
    assert (sweep / "multirun.yaml").exists() and (sweep / ".submitit").is_dir()  # the launcher's logs stay inside
