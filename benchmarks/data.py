"""Problems and tokens per second of `make data` (generation + mistakes + tokenization + saving), per core and
in total, with 1 and 2 worker processes.

    python benchmarks/data.py [--train-size 20000] [--preset med] [--kind retry --rate 0.2]

Uses (and trains once, if missing) the default tokenizer under data/tokenizers; builds into a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from igsm.dataset import DataConfig, MistakeConfig
from pretrain.data import BuildConfig, build_dataset, ensure_tokenizer
from pretrain.tokenizer import TokenizerConfig

PRESETS = {"med": {}, "hard": {"name": "hard", "max_op": 21, "max_edge": 28}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-size", type=int, default=20_000)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="med")
    ap.add_argument("--kind", default="none")
    ap.add_argument("--rate", type=float, default=0.0)
    args = ap.parse_args()
    data = DataConfig(
        **PRESETS[args.preset],
        train_size=args.train_size,
        test_ops=[],
        reask_ops=[],
        mistakes=MistakeConfig(args.kind, args.rate),
    )
    tok = TokenizerConfig()
    ensure_tokenizer(BuildConfig(data=data, tokenizer=tok))
    print(
        f"{'workers':>7s} {'problems/s':>11s} {'per core':>9s} {'tokens/s':>10s} {'per core':>9s} {'tokens/problem':>15s}"
    )
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = BuildConfig(data=data, tokenizer=tok, out_dir=f"{tmp}/d", num_proc=workers, shard_size=2500)
            t0 = time.perf_counter()
            res = build_dataset(cfg, progress=False)
            dt = time.perf_counter() - t0
        n, t = res.examples["train"], res.tokens["train"]
        print(
            f"{workers:7d} {n / dt:11.0f} {n / dt / workers:9.0f} {t / dt:10.0f} {t / dt / workers:9.0f} {t / n:15.1f}"
        )


if __name__ == "__main__":
    main()
