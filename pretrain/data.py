"""Saved datasets for training and evaluation: built once, cached under a hash of their config.

`build_dataset` writes a Hugging Face `DatasetDict` (`save_to_disk`; `datasets.load_from_disk` opens it) with the
tokenizer beside it. It is a pure function of the config: shards of consecutive indices are computed in worker
processes and assembled in index order, so any number of workers gives byte-identical files. Finished shards are
kept under `<out>.partial/` so an interrupted build resumes where it stopped; the dataset appears under its final
name only when complete, and an unchanged config is not built twice. Fresh examples generated on the fly (the
papers never repeat a problem) come from `pretrain.loader.ExampleStream` instead.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from igsm.dataset import DataConfig, make_example
from igsm.generator import GenerationError, generate
from igsm.io import atomic_dir
from igsm.split import TRAIN_BINS
from pretrain.config import store_schema
from pretrain.tokenizer import TokenizerConfig, cache_name, encode_batch, load_tokenizer, resolve_roles, train_tokenizer

FORMAT_VERSION = 4  # bump when the examples or their encoding change, so that cached datasets are rebuilt
MARKER = "igsm-lab.json"
TOKENIZER_DIR = "tokenizer"


@dataclass
class BuildConfig:
    """`python -m pretrain.make_data` (conf/make_data.yaml): which dataset to build, and where."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    out_root: str = "data"  # relative to where you run the command
    out_dir: str | None = None  # default: <out_root>/<name>_<mistakes>_s<seed>_<fingerprint[:8]>
    num_proc: int = 2  # worker processes; the output does not depend on it
    shard_size: int = 5000  # examples per shard (the unit of resuming)

    def __post_init__(self) -> None:
        if self.num_proc < 1:
            raise ValueError(f"num_proc must be >= 1, got {self.num_proc}")
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {self.shard_size}")

    def fingerprint(self) -> str:
        blob = json.dumps(
            {
                "format": FORMAT_VERSION,
                "data": asdict(self.data),
                "vocabulary": self.data.gen_config("train").vocabulary().digest,
                "tokenizer": asdict(self.tokenizer),
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def path(self) -> Path:
        if self.out_dir:
            return Path(self.out_dir)
        d = self.data
        return Path(self.out_root) / f"{d.name}_{d.mistakes.tag}_s{d.seed}_{self.fingerprint()[:8]}"

    @property
    def tokenizer_path(self) -> Path:
        """Where the tokenizer comes from: the configured one, or igsm-lab's own cached under out_root."""
        if self.tokenizer.path:
            return Path(self.tokenizer.path)
        return Path(self.out_root) / "tokenizers" / cache_name(self.tokenizer, self.data)


store_schema("make_data", BuildConfig)


@dataclass
class BuildResult:
    path: Path
    examples: dict[str, int]
    tokens: dict[str, int]
    train_bin_share: dict[str, float | None]  # per split: the share of examples with a train-bin template
    cached: bool  # True if the dataset already existed and nothing was done


# ---- workers -------------------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(tokenizer_path: str, roles: dict) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    tok = load_tokenizer(tokenizer_path)
    _WORKER.update(tok=tok, roles=resolve_roles(tok, roles))


def _shard_table(data: DataConfig, split: str, start: int, stop: int) -> pa.Table:
    tok, roles = _WORKER["tok"], _WORKER["roles"]
    examples = [make_example(data, split, i) for i in range(start, stop)]
    enc = encode_batch(tok, roles, examples, data.mistakes.mask if split == "train" else "none")
    columns = {k: [e[k] for e in examples] for k in examples[0]} if examples else {}
    columns.update(enc)
    return pa.table(columns, schema=SCHEMA)


def _run_shard(job: tuple[DataConfig, str, int, int, int, str]) -> tuple[str, int, int, int]:
    data, split, k, start, stop, path = job
    table = _shard_table(data, split, start, stop)
    tmp = f"{path}.tmp{os.getpid()}"
    with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
    return split, k, table.num_rows, sum(len(x) for x in table.column("input_ids").to_pylist())


SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("prompt", pa.string()),
        ("problem", pa.string()),
        ("question", pa.string()),
        ("solution", pa.string()),
        ("clean_solution", pa.string()),
        ("answer", pa.int32()),
        ("op", pa.int32()),
        ("hash_bin", pa.int32()),
        ("n_mistakes", pa.int32()),
        ("mistake_params", pa.list_(pa.string())),
        ("mistake_spans", pa.list_(pa.list_(pa.int32()))),
        ("mistake_name_spans", pa.list_(pa.list_(pa.int32()))),
        ("two_attempts", pa.bool_()),
        ("input_ids", pa.list_(pa.int32())),
        ("loss_mask", pa.list_(pa.int8())),
        ("prompt_length", pa.int32()),
        ("mistake_token_spans", pa.list_(pa.list_(pa.int32()))),
    ]
)


# ---- building ------------------------------------------------------------------------------------------------------
def check_producible(data: DataConfig, attempts: int = 3000) -> None:
    """Fail early, naming the op, when a split's op count cannot be generated under these limits."""
    for split in data.splits():
        config = data.gen_config(split).with_(max_attempts=attempts)
        try:
            generate(config, data.split_seed(split), 0)
        except GenerationError:
            lo, hi = config.op_range
            raise ValueError(
                f"split {split!r}: op {lo}..{hi} cannot be generated with max_edge={data.max_edge} "
                f"(no problem in {attempts} attempts); lower data.test_ops or raise data.max_edge"
            ) from None


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads((path / MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_tokenizer(cfg: BuildConfig) -> Path:
    path = cfg.tokenizer_path
    if cfg.tokenizer.path is None and not (path / "tokenizer.json").exists():
        print(f"training the tokenizer ({cfg.tokenizer.train_problems} problems) -> {path}")
        train_tokenizer(cfg.tokenizer, cfg.data, path)
    return path


def build_dataset(cfg: BuildConfig, progress: bool = True) -> BuildResult:
    """Build (or find already built) the dataset of `cfg`; returns where it is and its sizes."""
    out = cfg.path
    fingerprint = cfg.fingerprint()
    if out.exists():
        marker = _read_marker(out)
        if marker is None:
            raise FileExistsError(f"{out} exists but is not an igsm-lab dataset (no {MARKER}); choose another out_dir")
        if marker["fingerprint"] != fingerprint:
            raise FileExistsError(
                f"{out} holds a dataset built from another config; choose another out_dir or remove it"
            )
        return BuildResult(out, marker["examples"], marker["tokens"], marker["train_bin_share"], cached=True)
    check_producible(cfg.data)
    tok_path = ensure_tokenizer(cfg)
    _init_worker(str(tok_path), cfg.tokenizer.roles)  # fail here, not in a worker, if the roles are wrong

    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    stamp = partial / MARKER
    if stamp.exists() and json.loads(stamp.read_text())["fingerprint"] != fingerprint:
        shutil.rmtree(partial)
        partial.mkdir(parents=True)
    stamp.write_text(json.dumps({"fingerprint": fingerprint}))
    jobs, shard_files = [], {}
    for split, n in cfg.data.splits().items():
        (partial / split).mkdir(exist_ok=True)
        shard_files[split] = []
        for k, start in enumerate(range(0, n, cfg.shard_size)):
            path = partial / split / f"{k:05d}.arrow"
            shard_files[split].append(path)
            if not path.exists():
                jobs.append((cfg.data, split, k, start, min(n, start + cfg.shard_size), str(path)))
    total = sum(j[4] - j[3] for j in jobs)
    bar = tqdm(total=total, desc=f"building {out.name}", unit="ex", disable=not progress or total == 0)
    if cfg.num_proc == 1 or len(jobs) <= 1:
        for job in jobs:
            bar.update(_run_shard(job)[2])
    else:
        ctx = mp.get_context("spawn")  # no fork after the tokenizer's threads have started
        with ctx.Pool(cfg.num_proc, _init_worker, (str(tok_path), cfg.tokenizer.roles)) as pool:
            for _, _, rows, _ in pool.imap_unordered(_run_shard, jobs):
                bar.update(rows)
    bar.close()
    return _assemble(cfg, out, partial, shard_files, tok_path, fingerprint)


def train_bin_share(hash_bins: pa.ChunkedArray) -> float | None:
    """The share of examples whose solution template is in a train bin (None for an empty split). 0 for test_id and
    test_op<K>; test_reask<K> re-asks test-bin problems and, like the official code, does not re-check the new
    template, so a large share of it is train-bin templates (most of med's reask20)."""
    if len(hash_bins) == 0:
        return None
    in_train = pc.is_in(hash_bins, value_set=pa.array(sorted(TRAIN_BINS), pa.int32()))
    return pc.sum(in_train.cast(pa.int64())).as_py() / len(hash_bins)


def _assemble(cfg, out: Path, partial: Path, shard_files, tok_path: Path, fingerprint: str) -> BuildResult:
    import datasets

    splits, examples, tokens, shares = {}, {}, {}, {}
    for split, files in shard_files.items():
        tables = [pa.ipc.open_file(pa.memory_map(str(f))).read_all() for f in files]
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        examples[split] = table.num_rows
        tokens[split] = int(pc.sum(pc.list_value_length(table.column("input_ids"))).as_py() or 0)
        shares[split] = train_bin_share(table.column("hash_bin"))
        share = "-" if shares[split] is None else f"{shares[split]:.1%}"
        info = datasets.DatasetInfo(description=f"igsm-lab {cfg.data.name} {split}: {share} train-bin templates")
        splits[split] = datasets.Dataset(table, info=info, split=datasets.NamedSplit(split))
    with atomic_dir(out) as tmp:
        datasets.disable_progress_bars()
        datasets.DatasetDict(splits).save_to_disk(str(tmp))
        shutil.copytree(tok_path, tmp / TOKENIZER_DIR)
        marker = {
            "fingerprint": fingerprint,
            "format": FORMAT_VERSION,
            "config": {"data": asdict(cfg.data), "tokenizer": asdict(cfg.tokenizer)},
            "examples": examples,
            "tokens": tokens,
            "train_bin_share": shares,
        }
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    shutil.rmtree(partial, ignore_errors=True)
    return BuildResult(out, examples, tokens, shares, cached=False)


def load_dataset_dir(path: str | os.PathLike):
    """(DatasetDict, tokenizer, marker) of a built dataset."""
    import datasets

    path = Path(path)
    marker = _read_marker(path)
    if marker is None:
        raise FileNotFoundError(f"{path} is not an igsm-lab dataset (no {MARKER}); build it with `make data`")
    return datasets.load_from_disk(str(path)), load_tokenizer(path / TOKENIZER_DIR), marker
