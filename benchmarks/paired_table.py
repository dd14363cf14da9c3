"""Runs against a base on the same test problems, paired: is a change real?

    python benchmarks/paired_table.py --eval greedy64 runs/L5 runs/ftgrid_L5/ft_*/      # the first run is the base

For each run (its newest evaluated checkpoint's `eval/<step>/<name>/generations.jsonl`) and each split: accuracy with
its 95% Wilson interval, the problems it solves that the base does not (+) and the reverse (-), the exact McNemar
p-value of that change (pretrain.evaluate.mcnemar_p), BACKs per correct and per wrong solution, and the run's final
training loss (final.json). With --unnecessary, also how many of each split's solutions (right or wrong) define a
parameter the question does not need (the verifier's `unnecessary_params`: the papers' "unnecessary parameters").
Problems are paired by (split, index): every run must have evaluated the same ones.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pretrain.evaluate import mcnemar_p, wilson  # noqa: E402


def p_value(p: float) -> str:
    """Two decimals, or two significant digits below 0.01 (a p of 4e-05 is not "0.00")."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.1g}"


def generations(run: Path, name: str) -> dict[tuple[str, int], dict]:
    found = sorted(run.glob(f"eval/*/{name}/generations.jsonl"))
    if not found:
        raise SystemExit(f"error: {run} has no evaluation named {name!r} (eval/<step>/{name}/generations.jsonl)")
    newest = max(found, key=lambda p: p.parent.parent.name)
    return {(g["split"], g["index"]): g for g in map(json.loads, newest.read_text().splitlines())}


def row(run: Path, gens: dict, base: dict, splits: list[str], unnecessary: bool = False) -> list[str]:
    """The run's cells; `gens is base` for the base's own row (no change, no finetune loss)."""
    if gens.keys() != base.keys():
        raise SystemExit(f"error: {run} was evaluated on other problems than the base ({len(gens)} vs {len(base)})")
    cells = []
    for split in splits:
        keys = [k for k in gens if k[0] == split]
        right = sum(gens[k]["correct"] for k in keys)
        lo, hi = wilson(right, len(keys))
        gained = sum(gens[k]["correct"] and not base[k]["correct"] for k in keys)
        lost = sum(base[k]["correct"] and not gens[k]["correct"] for k in keys)
        change = f" +{gained}/-{lost}, p={p_value(mcnemar_p(gained, lost))}" if gens is not base else ""
        cells.append(f"{100 * right / len(keys):.1f} [{100 * lo:.1f}-{100 * hi:.1f}]{change}")
    for want in (True, False):
        backs = [[g["n_back"] for k, g in gens.items() if k[0] == s and g["correct"] == want] for s in splits]
        cells.append(" / ".join(f"{sum(b) / len(b):.2f}" if b else "-" for b in backs))
    if unnecessary:
        extra = [sum(bool(g["unnecessary_params"]) for k, g in gens.items() if k[0] == s) for s in splits]
        cells.append(" / ".join(map(str, extra)))
    final = run / "final.json"
    cells.append(f"{json.loads(final.read_text())['loss']:.3f}" if final.exists() and gens is not base else "-")
    return cells


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="run folders; the first is the base")
    ap.add_argument("--eval", default="greedy", help="the evaluation's name (eval.name)")
    ap.add_argument("--unnecessary", action="store_true", help="count solutions with an unnecessary parameter")
    args = ap.parse_args(argv)
    base = generations(args.runs[0], args.eval)
    splits = list(dict.fromkeys(k[0] for k in base))
    short = [s.removeprefix("test_") for s in splits]
    per = " / ".join(short)
    extra = f" with an unnecessary parameter ({per}) |" if args.unnecessary else ""
    print(f"| run | {' | '.join(short)} | BACK per correct ({per}) | BACK per wrong ({per}) |{extra} final loss |")
    print("|---|" + "---|" * len(splits) + "---:|---:|" + "---:|" * args.unnecessary + "---:|")
    for run in args.runs:
        gens = base if run == args.runs[0] else generations(run, args.eval)
        print(f"| {run.name} | {' | '.join(row(run, gens, base, splits, args.unnecessary))} |")


if __name__ == "__main__":
    main()
