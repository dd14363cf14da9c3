"""Atomic writes: a folder appears complete under its name or not at all, and a failed write keeps the old one."""

from __future__ import annotations

import pytest

from igsm.io import atomic_dir


def test_atomic_dir_replaces_only_when_complete(tmp_path):
    out = tmp_path / "sub" / "folder"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not out.exists()  # nothing under the final name while writing
    assert (out / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError, match="interrupted"), atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("two")
        raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "one"
    with atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("three")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # the old folder is replaced, not merged
    assert sorted(p.name for p in out.parent.iterdir()) == ["folder"]  # no temporary folder left behind
