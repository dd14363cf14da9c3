"""`make data`: build a tokenized iGSM dataset (Hydra). See conf/make_data.yaml.

python -m pretrain.make_data                                   # the default preset (data=med)
python -m pretrain.make_data data=hard data.mistakes.kind=retry data.mistakes.rate=0.2
python -m pretrain.make_data -m data=mini data.mistakes.kind=retry data.mistakes.rate=0.05,0.1,0.2
"""

from __future__ import annotations

import time

from omegaconf import DictConfig

from pretrain.config import run_command, to_dataclass
from pretrain.data import BuildConfig, build_dataset


def command(cfg: DictConfig) -> None:
    build = to_dataclass(BuildConfig, cfg)
    t0 = time.perf_counter()
    result = build_dataset(build)
    n, tokens = sum(result.examples.values()), sum(result.tokens.values())
    if result.cached:
        print(f"{result.path} is up to date (same config): nothing to do")
    else:
        print(f"wrote {result.path} in {time.perf_counter() - t0:.0f} s")
    for split, count in result.examples.items():
        share = result.train_bin_share[split]
        bins = "" if share is None else f"  {share:6.1%} train-bin templates"
        print(f"  {split:12s} {count:>9,d} problems {result.tokens[split]:>12,d} tokens{bins}")
    print(f"  {'total':12s} {n:>9,d} problems {tokens:>12,d} tokens")


def main() -> None:
    run_command("make_data", command)


if __name__ == "__main__":
    main()
