"""Shared fixtures. Tests that read `../shared/reference` (the official generator's samples) skip without it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"


@pytest.fixture(scope="session")
def reference() -> Callable[[str], list[dict]]:
    """reference("med_pq.jsonl") -> the records of one reference file (skips if the samples are absent)."""
    if not (REFERENCE / "med_pq.jsonl").exists():
        pytest.skip(f"reference samples not found at {REFERENCE}")

    def load(name: str) -> list[dict]:
        with open(REFERENCE / name, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    return load
