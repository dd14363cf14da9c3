"""Shared fixtures. Tests that read `../shared/reference` (the official generator's samples) skip without it; a small
tokenizer and a smoke model are trained once per session for the tests of pretrain/ and probes/; a hand-checked
problem (`from tests.conftest import HAND_STATEMENT, ...`) serves the verifier, label and probing tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

# One torch thread per test process (and per subprocess a test starts): `make test` runs two pytest workers on two
# cores, and torch's spinning worker threads slow every process down many times over when cores are shared.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from igsm.dataset import DataConfig
from pretrain.tokenizer import TokenizerConfig, cache_name, load_tokenizer, train_tokenizer

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"

# A hand-checked problem. RP = 5, LP = 13 + RP = 18, Lisbon's Park = RP + LP = 0 (mod 23),
# Madrid's LP = 2 * (LP + RP) = 0 (a distractor unless asked).
HAND_STATEMENT = (
    "The number of each Lisbon's Riverside Park equals 5. "
    "The number of each Lisbon's Lakeview Park equals 13 more than each Lisbon's Riverside Park. "
    "The number of each Madrid's Lakeview Park equals 2 times as much as the sum of each Lisbon's Lakeview Park "
    "and each Lisbon's Riverside Park."
)
HAND_QUESTION = "How many Park does Lisbon have?"
HAND_SOLUTION = (
    "Define Lisbon's Riverside Park as a; so a = 5. "
    "Define Lisbon's Lakeview Park as b; so b = 13 + a = 13 + 5 = 18. "
    "Define Lisbon's Park as c; so c = a + b = 5 + 18 = 0."
)


@pytest.fixture(scope="session")
def reference() -> Callable[[str], list[dict]]:
    """reference("med_pq.jsonl") -> the records of one reference file (skips if the samples are absent)."""
    if not (REFERENCE / "med_pq.jsonl").exists():
        pytest.skip(f"reference samples not found at {REFERENCE}")

    def load(name: str) -> list[dict]:
        with open(REFERENCE / name, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    return load


SMOKE_TOKENIZER = TokenizerConfig(vocab_size=1024, train_problems=1500)
SMOKE_DATA = DataConfig(name="smoke", max_op=4, max_edge=6)  # the world of conf/data/smoke.yaml


@pytest.fixture(scope="session")
def smoke_tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / cache_name(SMOKE_TOKENIZER, SMOKE_DATA)
    train_tokenizer(SMOKE_TOKENIZER, SMOKE_DATA, path)
    return path


@pytest.fixture(scope="session")
def smoke_tokenizer(smoke_tokenizer_dir):
    return load_tokenizer(smoke_tokenizer_dir)


@pytest.fixture(scope="session")
def smoke_out_root(tmp_path_factory, smoke_tokenizer_dir):
    """A data root with the smoke tokenizer already in its cache (as `make data` would leave it)."""
    import shutil

    root = tmp_path_factory.mktemp("data")
    shutil.copytree(smoke_tokenizer_dir, root / "tokenizers" / smoke_tokenizer_dir.name)
    return root


@pytest.fixture
def composer():
    from pretrain.config import compose

    return compose


SMOKE_RUN = ["+experiment=smoke", "train.log_every=1"]  # the golden loss curve (tests/pretrain/) is per step


@pytest.fixture(scope="session")
def smoke_checkpoint(tmp_path_factory, smoke_out_root):
    """A smoke model trained for 30 steps on a CPU (a few seconds): a real checkpoint, if not a good one. Its run
    directory (`checkpoint.parent.parent`) is the one the tests of the training loop inspect."""
    from omegaconf import OmegaConf

    from pretrain.config import compose, to_dataclass
    from pretrain.train import RunConfig, train

    run = tmp_path_factory.mktemp("run") / "smoke"
    cfg = compose("pretrain", [*SMOKE_RUN, f"out_root={smoke_out_root}"])
    final = train(to_dataclass(RunConfig, cfg), run, OmegaConf.to_yaml(cfg, resolve=True))
    return Path(final["checkpoint"])
