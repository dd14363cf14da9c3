"""Accuracy against training time: every checkpoint of a run, evaluated greedily on chosen splits.

    python benchmarks/learning_curve.py runs/T2 --splits test_seen_op1 test_seen_op2 test_op3 --n 128

For each `checkpoints/step_N` of the run: its step, tokens and wall-clock minutes (from metrics.jsonl, so the
minutes are the training's own, not this script's) and the accuracy with its 95% interval per split. Prints a
markdown table and writes curve.json and curve.png into the run directory.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

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
    ap.add_argument("--splits", nargs="+", required=True, help="test splits of the run's data")
    ap.add_argument("--n", type=int, default=128, help="problems per split")
    ap.add_argument("--max-length", type=int, default=512, help="prompt + generation tokens")
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    if not (args.run / "checkpoints").is_dir():
        raise SystemExit(f"error: {args.run} has no checkpoints/ folder")
    print(f"torch threads: {torch.get_num_threads()}")
    print("| step | tokens | minutes | loss | " + " | ".join(DataConfig.column(s) for s in args.splits) + " |")
    print("|---:|---:|---:|---:|" + "---|" * len(args.splits))
    points = curve(args.run, args.splits, args.n, args.max_length, args.batch_size)
    with atomic_open(args.run / "curve.json") as f:
        json.dump({"splits": args.splits, "n": args.n, "points": points}, f, indent=1)
    plot(points, args.splits, args.run / "curve.png", args.run.name)
    print(f"wrote {args.run}/curve.json, curve.png")


if __name__ == "__main__":
    main()
