"""The Makefile's CPU pipeline: its targets run the pipeline's commands in order, with overrides that compose."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from pretrain.config import to_dataclass

REPO = Path(__file__).resolve().parents[1]
CONFIG_OF = {"pretrain.train": "pretrain", "pretrain.evaluate": "evaluate", "probes.probe": "probe", "probes.rur": "rur"}


def pipeline_commands(*variables: str) -> list[list[str]]:
    """The `python -m ...` lines `make cpu-pipeline` would run (dry run), split into words; the shell's
    `$(cat <run>/checkpoints/latest)` (the newest checkpoint's name, known only once trained) becomes NEWEST."""
    r = subprocess.run(
        ["make", "-n", "--no-print-directory", "cpu-pipeline", *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line for line in r.stdout.splitlines() if " -m pretrain." in line or " -m probes." in line]
    newest = re.compile(r"\$\(cat (runs/cpu/\w+)/checkpoints/latest\)")
    return [shlex.split(newest.sub("NEWEST", line))[1:] for line in lines]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    "variables",
    [[], ["EXP=smoke", "EVAL_ARGS=eval=smoke", "PROBE_ARGS=probe=smoke", "RUR_ARGS=eval=smoke eval.n=2"]],
)
def test_cpu_pipeline_targets_compose(composer, variables):
    from pretrain.evaluate import EvalConfig
    from pretrain.train import RunConfig
    from probes.probe import ProbeConfig

    commands = pipeline_commands(*variables)
    modules = [c[1] for c in commands]
    assert modules == ["pretrain.train", "pretrain.evaluate", "probes.probe", "probes.rur", "pretrain.aggregate"]
    exp = "smoke" if variables else "cpu_tiny"
    assert commands[0][2:] == [f"+experiment={exp}", f"hydra.run.dir=runs/cpu/{exp}"]
    assert commands[-1][2:] == ["runs/cpu"]
    for command in commands[:-1]:
        overrides = [a for a in command[2:] if not a.startswith("hydra.")]
        for a in overrides:
            if a.startswith("checkpoint="):
                assert a == f"checkpoint=runs/cpu/{exp}/checkpoints/NEWEST"
            if a.startswith("probe.generations="):
                assert a == f"probe.generations=runs/cpu/{exp}/eval/NEWEST/greedy/generations.jsonl"
        cfg = composer(CONFIG_OF[command[1]], overrides)
        if command[1] == "pretrain.train":
            to_dataclass(RunConfig, cfg)
        elif command[1] == "probes.probe":
            to_dataclass(ProbeConfig, cfg.probe)
        else:
            to_dataclass(EvalConfig, cfg.eval)
