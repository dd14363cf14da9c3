"""The probing commands and the notebook run on the test session's smoke model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient

from pretrain.config import compose
from probes.rur import rur

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "probing.ipynb"


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)


def test_probe_and_retry_upon_regret_commands(smoke_checkpoint):
    r = run("probes.probe", f"checkpoint={smoke_checkpoint}", "probe=smoke")
    assert r.returncode == 0, r.stderr[-2000:]
    out = smoke_checkpoint.parent.parent / "probes" / smoke_checkpoint.name / "smoke"
    res = json.loads((out / "results.json").read_text())
    assert set(res["tasks"]) == {"nece", "dep", "known", "value", "can_next", "nece_next", "regret"}
    regret = res["tasks"]["regret"]
    assert len(regret["linear"]) == 3 and len(regret["random_model_linear"]) == 3  # 2 layers + embeddings
    assert {"accuracy", "positive_accuracy", "negative_accuracy"} <= set(regret["vprobe"])
    assert regret["adapter"]["name"] == "qv2e32" and {"positive_accuracy", "negative_accuracy"} <= set(
        regret["adapter"]
    )
    assert (out / "regret_probe.joblib").exists() and (out / "layers.png").exists()
    assert "| regret |" in (out / "results.md").read_text()
    assert (out / "regret_adapter" / "adapter_model.safetensors").exists() and "finetuned detector" in (
        out / "results.md"
    ).read_text()
    # the command line once (perfect detector); the learned detectors in-process, through the same config
    common = [f"checkpoint={smoke_checkpoint}", "eval=smoke", "eval.n=2", "eval.decode.max_length=500"]
    r = run("probes.rur", *common, "detector=perfect")
    assert r.returncode == 0, r.stderr[-2000:]
    for detector in ("probe", "adapter"):
        rur(compose("rur", [*common, f"detector={detector}", f"probe_dir={out}"]))
    for detector in ("perfect", "probe", "adapter"):
        res = json.loads(
            (
                smoke_checkpoint.parent.parent / "eval" / smoke_checkpoint.name / f"rur_{detector}" / "results.json"
            ).read_text()
        )
        assert res["splits"]["test_op4"]["n"] == 2 and "detector_calls" in res
        assert res["probe_dir"] == (None if detector == "perfect" else str(out))  # the table of three ways reads it
    with pytest.raises(ValueError, match="probe_dir"):
        rur(compose("rur", [*common, "detector=probe"]))


def test_notebook_is_paired_and_stripped():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    script = jupytext.read(REPO / "notebooks" / "probing.py")
    assert [c.source for c in nb.cells] == [c.source for c in script.cells]
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb.cells if c.cell_type == "code")


def test_notebook_runs(smoke_checkpoint):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"IGSM_CHECKPOINT": str(smoke_checkpoint), "IGSM_PROBLEMS": "30"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "regret" in text and "best layer" in text and "Define" in text
