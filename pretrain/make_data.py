"""`make data`: build a tokenized iGSM dataset (Hydra). See conf/make_data.yaml.

python -m pretrain.make_data                                   # the default preset (data=med)
python -m pretrain.make_data data=hard data.mistakes.kind=retry data.mistakes.rate=0.2
python -m pretrain.make_data -m data=mini data.mistakes.kind=retry data.mistakes.rate=0.05,0.1,0.2
"""

from __future__ import annotations

import sys
import time

import hydra
from omegaconf import DictConfig

from pretrain.config import to_dataclass
from pretrain.data import BuildConfig, build_dataset


@hydra.main(config_path="../conf", config_name="make_data", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        build = to_dataclass(BuildConfig, cfg)
    except ValueError as e:
        sys.exit(f"error: {e}")
    t0 = time.perf_counter()
    try:
        result = build_dataset(build)
    except (ValueError, FileExistsError) as e:
        sys.exit(f"error: {e}")
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


if __name__ == "__main__":
    main()
