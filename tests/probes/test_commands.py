"""The probing commands and the notebook run on the test session's smoke model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

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
    for detector in (
        ["detector=perfect"],
        ["detector=probe", f"probe_dir={out}"],
        ["detector=adapter", f"probe_dir={out}"],
    ):
        r = run(
            "probes.rur",
            f"checkpoint={smoke_checkpoint}",
            "eval=smoke",
            "eval.n=2",
            "eval.decode.max_length=500",
            *detector,
        )
        assert r.returncode == 0, r.stderr[-2000:]
        name = "rur_" + detector[0].split("=")[1]
        res = json.loads(
            (smoke_checkpoint.parent.parent / "eval" / smoke_checkpoint.name / name / "results.json").read_text()
        )
        assert res["splits"]["test_op4"]["n"] == 2 and "detector_calls" in res
    bad = run("probes.rur", f"checkpoint={smoke_checkpoint}", "eval=smoke", "detector=probe")
    assert bad.returncode != 0 and "probe_dir" in bad.stderr


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
