"""The laptop world: its sweep's variants compose into distinct runs with the same budget."""

from __future__ import annotations

from pathlib import Path

from pretrain.config import to_dataclass
from pretrain.train import RunConfig

CONF = Path(__file__).resolve().parents[2] / "conf"
VARIANTS = sorted(p.stem for p in (CONF / "mistakes").glob("*.yaml"))


def test_retry_sweep_variants_are_distinct_runs_with_one_budget(composer):
    runs = [
        to_dataclass(RunConfig, composer("pretrain", ["+experiment=laptop_retry_sweep", f"+mistakes={v}"]))
        for v in VARIANTS
    ]
    assert len(VARIANTS) == 6
    assert len({r.run_name for r in runs}) == len(runs)
    assert len({r.data.mistakes.tag for r in runs}) == len(runs)
    assert len({(r.train.total_steps, r.train.batch_size, r.train.context) for r in runs}) == 1
