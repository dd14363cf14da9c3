"""Building datasets: byte-identical for any number of workers, cached, atomic, resumable, loud on bad input;
and the on-the-fly stream."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch
from torch.utils.data import DataLoader

import pretrain.data as D
from igsm.dataset import DataConfig, MistakeConfig, make_example
from pretrain import make_data
from pretrain.data import BuildConfig, build_dataset, load_dataset_dir
from pretrain.loader import ExampleStream
from pretrain.tokenizer import SPECIAL_TOKENS, TokenizerConfig

REPO = Path(__file__).resolve().parents[2]
SMOKE = DataConfig(
    name="smoke",
    max_op=4,
    max_edge=6,
    train_size=120,
    test_ops=[4, 6],
    reask_ops=[4],
    test_size=24,
    mistakes=MistakeConfig("retry", 0.3, mask="name"),
)
SPLITS = {"train": 120, "test_id": 24, "test_op4": 24, "test_op6": 24, "test_reask4": 24}


def config(tok_dir, out, **kw) -> BuildConfig:
    return BuildConfig(
        data=kw.pop("data", SMOKE),
        tokenizer=TokenizerConfig(path=str(tok_dir)),
        out_dir=str(out),
        shard_size=kw.pop("shard_size", 25),
        **kw,
    )


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_any_number_of_workers_gives_identical_files(smoke_tokenizer_dir, tmp_path):
    one = build_dataset(config(smoke_tokenizer_dir, tmp_path / "one", num_proc=1), progress=False)
    two = build_dataset(config(smoke_tokenizer_dir, tmp_path / "two", num_proc=2), progress=False)
    assert not one.cached and one.examples == SPLITS
    assert files(one.path) == files(two.path)
    assert not list(tmp_path.glob("*.partial")) and not list(tmp_path.glob(".*"))


def test_saved_dataset_opens_with_datasets(smoke_tokenizer_dir, tmp_path):
    res = build_dataset(config(smoke_tokenizer_dir, tmp_path / "d"), progress=False)
    dd = datasets.load_from_disk(str(res.path))
    assert set(dd) == set(SPLITS)
    assert {
        "prompt",
        "solution",
        "answer",
        "op",
        "n_mistakes",
        "mistake_spans",
        "hash_bin",
        "input_ids",
        "loss_mask",
    } <= set(dd["train"].column_names)
    assert all(op == 6 for op in dd["test_op6"]["op"]) and all(b >= 16 for b in dd["test_op6"]["hash_bin"])
    assert all(b >= 16 for b in dd["test_id"]["hash_bin"]) and max(dd["test_id"]["op"]) <= 4
    assert len(set(dd["test_reask4"]["op"])) > 1  # a re-asked question needs its own number of operations
    assert all(b <= 15 for b in dd["train"]["hash_bin"]) and sum(dd["train"]["n_mistakes"]) > 0
    ds, tok, marker = load_dataset_dir(res.path)
    row = ds["train"][5]
    tokens = ("input_ids", "loss_mask", "prompt_length", "mistake_token_spans")
    assert row == make_example(SMOKE, "train", 5) | {k: row[k] for k in tokens}
    assert tok.decode(row["input_ids"]).startswith(SPECIAL_TOKENS["begin_problem"] + row["prompt"])
    assert sum(res.tokens.values()) == sum(len(x) for s in ds.values() for x in s["input_ids"]) > 0
    assert marker["examples"] == res.examples and marker["config"]["data"]["mistakes"]["kind"] == "retry"


def test_each_split_records_its_share_of_train_bin_templates(smoke_tokenizer_dir, tmp_path):
    res = build_dataset(config(smoke_tokenizer_dir, tmp_path / "d"), progress=False)
    dd, _, marker = load_dataset_dir(res.path)
    share = {s: sum(b <= 15 for b in dd[s]["hash_bin"]) / len(dd[s]) for s in SPLITS}
    assert marker["train_bin_share"] == res.train_bin_share == share
    assert share["train"] == 1.0 and share["test_id"] == share["test_op4"] == share["test_op6"] == 0.0
    # re-asked problems come from the test bins, but their new templates are not re-checked (the official code's way)
    assert 0 < share["test_reask4"] < 1
    assert f"{share['test_reask4']:.1%} train-bin templates" in dd["test_reask4"].info.description
    assert build_dataset(config(smoke_tokenizer_dir, tmp_path / "d"), progress=False).train_bin_share == share


def test_rebuild_is_a_no_op_and_foreign_dirs_are_refused(smoke_tokenizer_dir, tmp_path):
    cfg = config(smoke_tokenizer_dir, tmp_path / "d")
    first = build_dataset(cfg, progress=False)
    stamp = (first.path / D.MARKER).stat().st_mtime_ns
    again = build_dataset(cfg, progress=False)
    assert again.cached and again.examples == first.examples and (first.path / D.MARKER).stat().st_mtime_ns == stamp
    other = config(smoke_tokenizer_dir, tmp_path / "d", data=DataConfig(**{**SMOKE.__dict__, "seed": 1}))
    with pytest.raises(FileExistsError, match="another config"):
        build_dataset(other, progress=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an igsm-lab dataset"):
        build_dataset(config(smoke_tokenizer_dir, tmp_path / "mine"), progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_interrupted_build_leaves_nothing_loadable_and_resumes(smoke_tokenizer_dir, tmp_path, monkeypatch):
    cfg = config(smoke_tokenizer_dir, tmp_path / "d", num_proc=1)
    real, calls = D._run_shard, []

    def flaky(job):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(job)
        return real(job)

    monkeypatch.setattr(D, "_run_shard", flaky)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(cfg, progress=False)
    assert not (tmp_path / "d").exists()
    with pytest.raises(FileNotFoundError):
        datasets.load_from_disk(str(tmp_path / "d"))
    assert len(list((tmp_path / "d.partial").rglob("*.arrow"))) == 3
    monkeypatch.setattr(D, "_run_shard", lambda job: calls.append(job) or real(job))
    resumed = build_dataset(cfg, progress=False)
    assert len(calls) == 3 + len(range(0, 120, 25)) + 4 - 3  # only the missing shards were computed
    monkeypatch.undo()
    fresh = build_dataset(config(smoke_tokenizer_dir, tmp_path / "fresh"), progress=False)
    assert files(resumed.path) == files(fresh.path)


def test_unproducible_op_is_named():
    with pytest.raises(ValueError, match="split 'test_op90': op 90..90 cannot be generated"):
        D.check_producible(DataConfig(max_op=4, max_edge=6, test_ops=[90], train_size=1), attempts=300)


def run_make_data(tmp_path, *overrides) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "pretrain.make_data",
        "data=smoke",
        "tokenizer=smoke",
        f"out_root={tmp_path}",
        "num_proc=1",
        *overrides,
    ]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_make_data_command(tmp_path):
    r = run_make_data(tmp_path, "data.mistakes.kind=retry", "data.mistakes.rate=0.2")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "total" in r.stdout and "problems" in r.stdout and "tokens" in r.stdout
    built = [p for p in tmp_path.iterdir() if p.name.startswith("smoke_retry0.2")]
    assert len(built) == 1 and (built[0] / "tokenizer" / "tokenizer.json").exists()
    r = run_make_data(tmp_path, "data.mistakes.kind=retry", "data.mistakes.rate=0.2")
    assert r.returncode == 0 and "up to date" in r.stdout
    r = run_make_data(tmp_path, "data.mistakes.rate=1.5")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "rate must be in [0, 1)" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.mistakes.rate=1.5", "data.mistakes.rate must be in [0, 1), got 1.5"),
        ("data.mistakes.kind=typo", "data.mistakes.kind must be one of"),
        ("data.max_op=0", "max_op must be an integer >= 1, got 0"),
        ("data=nope", "nope"),
        ("data.test_ops=[90]", "op 90..90 cannot be generated"),
        ("data.bogus=1", "bogus"),
    ],
)
def test_make_data_bad_input(composer, tmp_path, override, message):
    """In-process, as `python -m pretrain.make_data` runs it (test_make_data_command checks the command's exit)."""
    from hydra.errors import HydraException

    with pytest.raises((ValueError, HydraException)) as raised:
        overrides = ["data=smoke", "tokenizer=smoke", f"out_root={tmp_path}", "num_proc=1", override]
        make_data.command(composer("make_data", overrides))
    assert message in str(raised.value)


def test_stream_is_deterministic_per_rank_and_worker(smoke_tokenizer_dir):
    def first(stream, n):
        it = iter(stream)
        return [next(it) for _ in range(n)]

    a = first(ExampleStream(SMOKE, smoke_tokenizer_dir, SPECIAL_TOKENS, chunk=4), 6)
    b = first(ExampleStream(SMOKE, smoke_tokenizer_dir, SPECIAL_TOKENS, chunk=5), 6)
    assert [x["index"] for x in a] == list(range(6))
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b, strict=True))
    r1 = ExampleStream(SMOKE, smoke_tokenizer_dir, SPECIAL_TOKENS, rank=1, world_size=2, start=10)
    assert [next(iter(r1.indices(w, 3))) for w in range(3)] == [21, 23, 25]
    it = r1.indices(1, 3)
    assert [next(it) for _ in range(3)] == [23, 29, 35]
    loader = DataLoader(
        ExampleStream(SMOKE, smoke_tokenizer_dir, SPECIAL_TOKENS, chunk=2), batch_size=None, num_workers=2
    )
    got = []
    for x in loader:
        got.append(x["index"])
        if len(got) == 8:
            break
    assert sorted(got) == list(range(8))
    with pytest.raises(ValueError, match="rank"):
        ExampleStream(SMOKE, smoke_tokenizer_dir, SPECIAL_TOKENS, rank=2, world_size=2)


def readme_commands(prefix: str) -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.startswith(prefix)]


def test_readme_data_commands_run(tmp_path):
    """Every `python -m pretrain.make_data` line of the README, shrunk to smoke sizes (GPT-2's needs its files)."""
    commands = [c for c in readme_commands("python -m pretrain.make_data") if "tokenizer=gpt2" not in c]
    assert len(commands) >= 3
    shrink = ["data.train_size=30", "data.test_size=4", "tokenizer=smoke", f"out_root={tmp_path}", "num_proc=1"]
    shrink.append(f"hydra.sweep.dir={tmp_path / 'sweep'}")  # Hydra's multirun.yaml, out of the source tree
    stray = REPO / "multirun.yaml"
    before = stray.stat().st_mtime_ns if stray.exists() else None
    for command in commands:
        args = command.split()[3:]
        r = subprocess.run(
            [sys.executable, "-m", "pretrain.make_data", *args, *shrink], cwd=REPO, capture_output=True, text=True
        )
        assert r.returncode == 0, (command, r.stderr[-2000:])
        assert "problems" in r.stdout
    assert (tmp_path / "sweep" / "multirun.yaml").exists()
    assert (stray.stat().st_mtime_ns if stray.exists() else None) == before  # nothing written into the repository
