"""Runs against a base on the same test problems, paired: is a change real?

    python benchmarks/paired_table.py --eval greedy64 runs/L5 runs/ftgrid_L5/ft_*/      # the first run is the base

For each run (its newest evaluated checkpoint's `eval/<step>/<name>/generations.jsonl`) and each split: accuracy with
its 95% Wilson interval, the problems it solves that the base does not (+) and the reverse (-), the exact McNemar
p-value of that change (pretrain.evaluate.mcnemar_p), BACKs per correct and per wrong solution, and the run's final
training loss (final.json). With --unnecessary, also how many of each split's solutions (right or wrong) define a
parameter the question does not need (the verifier's `unnecessary_params`: the papers' "unnecessary parameters").
Problems are paired by (split, index): every run must have evaluated the same ones; the columns are the splits
every run evaluated. `RUN@NAME` takes that run's evaluation NAME rather than --eval's, so two decodings of one model
pair too (retry upon regret against greedy, on the problems both decoded):

    python benchmarks/paired_table.py runs/L6 runs/L6@rur_perfect

Prints a markdown table.

With --seeds K, the runs are taken K at a time, each group one variant's seeds (the first group the base's), and a
row is a variant over its seeds: accuracy pooled over the seeds (their mean) with the pooled count's Wilson interval,
each seed's own accuracy in parentheses, gains and losses summed over the seeds with each seed paired against the
base's run of the same seed, and the exact McNemar p of those sums (a problem's pairs in different seeds counted as
independent). A group's runs must differ in `train.seed` only (their config.yaml), with the base's seeds:

    python benchmarks/paired_table.py --seeds 2 $S/clean_s0 $S/clean_s1 $S/retry0.5_s0 $S/retry0.5_s1
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain.evaluate import mcnemar_p, wilson  # noqa: E402


def p_value(p: float) -> str:
    """Two decimals, or two significant digits below 0.01 (a p of 4e-05 is not "0.00")."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"


def generations(run: Path, name: str) -> dict[tuple[str, int], dict]:
    """The verdicts of the run's newest evaluation named `name`: its generations.jsonl, or a gzipped copy
    (generations.jsonl.gz: how benchmarks/results/ keeps the runs of a sweep without their checkpoints)."""
    found = sorted([*run.glob(f"eval/*/{name}/generations.jsonl"), *run.glob(f"eval/*/{name}/generations.jsonl.gz")])
    if not found:
        raise SystemExit(f"error: {run} has no evaluation named {name!r} (eval/<step>/{name}/generations.jsonl)")
    newest = max(found, key=lambda p: p.parent.parent.name)
    text = gzip.decompress(newest.read_bytes()).decode() if newest.suffix == ".gz" else newest.read_text()
    return {(g["split"], g["index"]): g for g in map(json.loads, text.splitlines())}


def row(
    runs: list[Path], gens: list[dict], base: list[dict], splits: list[str], unnecessary: bool = False
) -> list[str]:
    """A variant's cells over its seeds (`gens[i]` the generations of `runs[i]`, paired with `base[i]`, the base's
    run of the same seed) on `splits`; `gens is base` for the base's own row (no change, no loss)."""
    own = gens is base
    gens = [{k: v for k, v in g.items() if k[0] in splits} for g in gens]
    base = [{k: v for k, v in b.items() if k[0] in splits} for b in base]
    for run, g, b in zip(runs, gens, base, strict=True):
        if g.keys() != b.keys():
            raise SystemExit(f"error: {run} was evaluated on other problems than the base ({len(g)} vs {len(b)})")
    cells = []
    for split in splits:
        right = [sum(g[k]["correct"] for k in g if k[0] == split) for g in gens]
        n = [sum(k[0] == split for k in g) for g in gens]
        lo, hi = wilson(sum(right), sum(n))
        pairs = [
            (g[k]["correct"], b[k]["correct"]) for g, b in zip(gens, base, strict=True) for k in g if k[0] == split
        ]
        gained = sum(ours and not theirs for ours, theirs in pairs)
        lost = sum(theirs and not ours for ours, theirs in pairs)
        cell = f"{100 * sum(right) / sum(n):.1f} [{100 * lo:.1f}-{100 * hi:.1f}]"
        if len(gens) > 1:
            cell += " (" + " / ".join(f"{100 * r / m:.1f}" for r, m in zip(right, n, strict=True)) + ")"
        cells.append(cell + ("" if own else f" +{gained}/-{lost}, p={p_value(mcnemar_p(gained, lost))}"))
    for want in (True, False):
        backs = [[g[k]["n_back"] for g in gens for k in g if k[0] == s and g[k]["correct"] == want] for s in splits]
        cells.append(" / ".join(f"{sum(b) / len(b):.2f}" if b else "-" for b in backs))
    if unnecessary:
        extra = [sum(bool(g[k]["unnecessary_params"]) for g in gens for k in g if k[0] == s) for s in splits]
        cells.append(" / ".join(map(str, extra)))
    finals = [run / "final.json" for run in runs]
    if own or not all(f.exists() for f in finals):
        cells.append("-")
    else:
        losses = [json.loads(f.read_text())["loss"] for f in finals]
        cells.append(f"{sum(losses) / len(losses):.3f}")
    return cells


def seed_groups(runs: list[Path], k: int) -> list[list[Path]]:
    """The runs in groups of k, each sorted by seed; every group a variant's seeds, the same seeds as the first's."""
    from omegaconf import OmegaConf

    if k < 1:
        raise SystemExit(f"error: --seeds must be >= 1 (runs per variant), got {k}")
    if len(runs) % k:
        raise SystemExit(f"error: --seeds {k} needs a multiple of {k} runs, got {len(runs)}")
    groups, base_seeds = [], None
    for start in range(0, len(runs), k):
        configs = {}
        for run in runs[start : start + k]:
            if not (run / "config.yaml").exists():
                raise SystemExit(f"error: --seeds needs each run's config.yaml, {run} has none")
            cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"))
            seed = cfg.get("train", {}).pop("seed", None)
            if seed is None:
                raise SystemExit(f"error: {run}/config.yaml has no train.seed")
            cfg.pop("run_name", None)
            configs[run] = (seed, cfg)
        group = sorted(configs, key=lambda r: configs[r][0])
        first = configs[group[0]][1]
        for run in group[1:]:
            if configs[run][1] != first:
                raise SystemExit(
                    f"error: {run} differs from {group[0]} in more than train.seed: not seeds of one variant"
                )
        seeds = [configs[r][0] for r in group]
        if len(set(seeds)) < k:
            raise SystemExit(f"error: the runs {', '.join(map(str, group))} share a seed ({seeds})")
        base_seeds = base_seeds or seeds
        if seeds != base_seeds:
            raise SystemExit(f"error: {group[0]}'s group has seeds {seeds}, the base's {base_seeds}")
        groups.append(group)
    return groups


def label(group: list[Path]) -> str:
    """A row's name: the run's folder, or a group's first folder without its `_s<seed>` and the group's size."""
    if len(group) == 1:
        return group[0].name
    name = group[0].name
    stem, _, tail = name.rpartition("_s")
    return f"{stem if stem and tail.isdigit() else name} ({len(group)} seeds)"


def run_and_eval(arg: str, default: str) -> tuple[Path, str]:
    """`RUN@NAME` -> (RUN, NAME); a plain run folder (even one whose name has an @) -> (it, default)."""
    run, at, name = arg.rpartition("@")
    if not at or Path(arg).is_dir():
        return Path(arg), default
    if not run or not name:
        raise SystemExit(f"error: {arg!r} is neither a run folder nor RUN@NAME")
    return Path(run), name


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run folders (RUN@NAME: the run's evaluation NAME); the first is the base")
    ap.add_argument("--eval", default="greedy", help="the evaluation's name (eval.name)")
    ap.add_argument("--unnecessary", action="store_true", help="count solutions with an unnecessary parameter")
    ap.add_argument("--seeds", type=int, default=1, help="runs per variant (its seeds), paired seed by seed")
    args = ap.parse_args(argv)
    if args.seeds != 1:
        if any("@" in r for r in args.runs):
            raise SystemExit("error: --seeds takes plain run folders (one --eval for all), not RUN@NAME")
        groups = [[(run, args.eval) for run in g] for g in seed_groups([Path(r) for r in args.runs], args.seeds)]
    else:
        groups = [[run_and_eval(r, args.eval)] for r in args.runs]
    gens_of = [[generations(run, name) for run, name in group] for group in groups]
    common = set.intersection(*({k[0] for k in g} for gs in gens_of for g in gs))
    splits = [s for s in dict.fromkeys(k[0] for k in gens_of[0][0]) if s in common]
    if not splits:
        raise SystemExit("error: no split was evaluated by every run")
    short = [s.removeprefix("test_") for s in splits]
    per = " / ".join(short)
    extra = f" with an unnecessary parameter ({per}) |" if args.unnecessary else ""
    print(f"| run | {' | '.join(short)} | BACK per correct ({per}) | BACK per wrong ({per}) |{extra} final loss |")
    print("|---|" + "---|" * len(splits) + "---:|---:|" + "---:|" * args.unnecessary + "---:|")
    base = gens_of[0]
    for group, gens in zip(groups, gens_of, strict=True):
        runs = [run for run, _ in group]
        name = label(runs) + ("" if all(n == args.eval for _, n in group) else f"@{group[0][1]}")
        print(f"| {name} | {' | '.join(row(runs, gens, base, splits, args.unnecessary))} |")


if __name__ == "__main__":
    main()
