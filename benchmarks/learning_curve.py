"""Accuracy against training time: every checkpoint of a run, evaluated greedily on chosen splits.

    python benchmarks/learning_curve.py runs/T2 --splits test_seen_op1 test_seen_op2 test_op3 --n 128

For each `checkpoints/step_N` of the run: its step, tokens and wall-clock minutes (from metrics.jsonl, so the
minutes are the training's own, not this script's) and the accuracy with its 95% interval per split. Prints a
markdown table and writes curve.json and curve.png into the run directory.

    python benchmarks/learning_curve.py runs/L6 --from-json --target 0.95 --fit-last 6

`--target` says where the curve would get: per split, a straight line through the last `--fit-last` points in
logit(accuracy) against log(tokens), and the tokens (and minutes, at the run's own rate) at which that line reaches
the target. A rough guide, not a prediction: the checkpoints of one cosine schedule are not ends of shorter runs,
and nothing says the trend holds beyond the run. `--from-json` reuses the run's curve.json instead of evaluating.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from igsm.dataset import DataConfig
from igsm.io import atomic_open, read_jsonl
from pretrain.config import to_dataclass
from pretrain.decode import DecodeConfig
from pretrain.evaluate import EvalConfig, checkpoint_roles, evaluate_model, load_checkpoint


def curve(run: Path, splits: list[str], n: int, max_length: int, batch_size: int) -> list[dict]:
    metrics = {m["step"]: m for m in read_jsonl(run / "metrics.jsonl") if "step" in m and "elapsed_s" in m}
    points = []
    for ckpt in sorted(run.glob("checkpoints/step_*")):
        model, tok, run_config = load_checkpoint(ckpt, device="cpu")
        data = with_splits(to_dataclass(DataConfig, OmegaConf.create(run_config["data"])), splits)
        ev = EvalConfig(splits=splits, n=n, decode=DecodeConfig(max_length=max_length, batch_size=batch_size))
        roles = checkpoint_roles(tok, run_config, ckpt)
        summary, _ = evaluate_model(model, tok, roles, data, ev, progress=False)
        step = int(ckpt.name.removeprefix("step_"))
        m = metrics.get(step, {})
        points.append(
            {
                "step": step,
                "tokens": m.get("tokens"),
                "minutes": m["elapsed_s"] / 60 if "elapsed_s" in m else None,
                "loss": m.get("loss"),
                **{s: {"accuracy": summary[s]["accuracy"], "ci95": summary[s]["accuracy_ci95"]} for s in splits},
            }
        )
        print(row(points[-1], splits), flush=True)
    return points


def with_splits(data: DataConfig, splits: list[str]) -> DataConfig:
    """The run's data with any test_op<K> / test_seen_op<K> split it lacks added (the world is unchanged)."""
    test_ops, seen_ops = list(data.test_ops), list(data.seen_ops)
    for s in splits:
        for prefix, ops in (("test_seen_op", seen_ops), ("test_op", test_ops)):
            if s.startswith(prefix) and s.removeprefix(prefix).isdigit() and int(s.removeprefix(prefix)) not in ops:
                ops.append(int(s.removeprefix(prefix)))
                break
    return dataclasses.replace(data, test_ops=test_ops, seen_ops=seen_ops)


def logit_fit(points: list[dict], split: str, n: int, target: float, last: int) -> dict:
    """A least-squares line through the last `last` points with tokens, logit(accuracy) against ln(tokens), and the
    tokens at which it reaches `target`. Accuracies are k/n; logit((k + 0.5) / (n + 1)) keeps 0 and n finite.
    tokens_at_target is None when the line does not rise (slope <= 0)."""
    if not 0 < target < 1:
        raise ValueError(f"target must lie strictly between 0 and 1, got {target}")
    pts = [p for p in points if p.get("tokens")][-last:]
    if len(pts) < 2:
        raise ValueError(f"a line needs at least 2 points with tokens, got {len(pts)} (last={last})")
    xs = [math.log(p["tokens"]) for p in pts]
    ys = []
    for p in pts:
        k = round(p[split]["accuracy"] * n)
        q = (k + 0.5) / (n + 1)
        ys.append(math.log(q / (1 - q)))
    slope, intercept = (float(c) for c in np.polyfit(xs, ys, 1))
    fit = {"split": split, "points": len(pts), "from_step": pts[0]["step"], "slope": slope, "target": target}
    fit["tokens_at_target"] = None
    fit["minutes_at_target"] = None
    if slope > 0:
        tokens = math.exp((math.log(target / (1 - target)) - intercept) / slope)
        fit["tokens_at_target"] = tokens
        last_point = pts[-1]
        if last_point.get("minutes"):
            fit["minutes_at_target"] = tokens / last_point["tokens"] * last_point["minutes"]
    return fit


def fit_line(fit: dict) -> str:
    where = f"{DataConfig.column(fit['split'])}: {fit['points']} points from step {fit['from_step']}, "
    where += f"logit slope {fit['slope']:.2f} per ln(tokens)"
    if fit["tokens_at_target"] is None:
        return where + f": not rising, never reaches {100 * fit['target']:.0f}%"
    minutes = f", ~{fit['minutes_at_target']:.3g} minutes at this run's rate" if fit["minutes_at_target"] else ""
    return where + f": {100 * fit['target']:.0f}% at ~{fit['tokens_at_target']:.3g} tokens{minutes}"


def row(p: dict, splits: list[str]) -> str:
    minutes = f"{p['minutes']:.1f}" if p["minutes"] is not None else "-"
    tokens = f"{p['tokens'] / 1e6:.2f}M" if p["tokens"] else "-"
    cells = [f"{100 * p[s]['accuracy']:.1f} ({100 * p[s]['ci95'][0]:.1f}-{100 * p[s]['ci95'][1]:.1f})" for s in splits]
    return f"| {p['step']} | {tokens} | {minutes} | {p['loss']:.3f} | " + " | ".join(cells) + " |"


def plot(points: list[dict], splits: list[str], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = [p["minutes"] if p["minutes"] is not None else p["step"] for p in points]
    for s in splits:
        y = [100 * p[s]["accuracy"] for p in points]
        lo = [100 * p[s]["ci95"][0] for p in points]
        hi = [100 * p[s]["ci95"][1] for p in points]
        ax.plot(x, y, marker="o", label=DataConfig.column(s))
        ax.fill_between(x, lo, hi, alpha=0.15)
    ax.set_xlabel("training minutes" if points and points[0]["minutes"] is not None else "step")
    ax.set_ylabel("greedy accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run directory (with checkpoints/ and metrics.jsonl)")
    ap.add_argument("--splits", nargs="+", help="test splits of the run's data (with --from-json: curve.json's)")
    ap.add_argument("--n", type=int, default=128, help="problems per split")
    ap.add_argument("--max-length", type=int, default=512, help="prompt + generation tokens")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--from-json", action="store_true", help="reuse the run's curve.json (no evaluation)")
    ap.add_argument("--target", type=float, help="where would each split reach this accuracy (0-1)? see above")
    ap.add_argument("--fit-last", type=int, default=4, help="points (the last ones) the --target line goes through")
    args = ap.parse_args()
    if args.target is not None and not 0 < args.target < 1:
        raise SystemExit(f"error: --target is an accuracy strictly between 0 and 1, got {args.target}")
    if args.fit_last < 2:
        raise SystemExit(f"error: --fit-last needs at least 2 points for a line, got {args.fit_last}")
    if args.from_json:
        if not (args.run / "curve.json").is_file():
            raise SystemExit(f"error: {args.run} has no curve.json (run without --from-json first)")
        saved = json.loads((args.run / "curve.json").read_text())
        splits, n = args.splits or saved["splits"], saved["n"]
        if missing := [s for s in splits if s not in saved["splits"]]:
            raise SystemExit(f"error: {args.run}/curve.json has no {missing} (it has {saved['splits']})")
    else:
        if not args.splits:
            raise SystemExit("error: --splits is needed to evaluate (only --from-json takes curve.json's)")
        if not (args.run / "checkpoints").is_dir():
            raise SystemExit(f"error: {args.run} has no checkpoints/ folder")
        splits, n = args.splits, args.n
        print(f"torch threads: {torch.get_num_threads()}")
    print("| step | tokens | minutes | loss | " + " | ".join(DataConfig.column(s) for s in splits) + " |")
    print("|---:|---:|---:|---:|" + "---|" * len(splits))
    if args.from_json:
        points = saved["points"]
        for p in points:
            print(row(p, splits))
    else:
        points = curve(args.run, splits, n, args.max_length, args.batch_size)
        with atomic_open(args.run / "curve.json") as f:
            json.dump({"splits": splits, "n": n, "points": points}, f, indent=1)
        plot(points, splits, args.run / "curve.png", args.run.name)
        print(f"wrote {args.run}/curve.json, curve.png")
    if args.target is not None:
        print()
        for s in splits:
            print(fit_line(logit_fit(points, s, n, args.target, args.fit_last)))


if __name__ == "__main__":
    main()
