"""One table and one figure for the self-correction runs of a base model: the base model, then each method.

    python -m pretrain.selfcorrect_summary runs/cpu/laptop_two_attempts/selfcorrect

Reads `final.json` of every run folder under the given folder (`pretrain.selfcorrect` writes it): the base model's
row is the first evaluation of a run (before any step; all runs of one base model agree on it, else it stops), each
run's row its last. Columns per test split: Acc@t1 and Acc@t2 with 95% Wilson intervals, Δ with the exact McNemar
p-value of its changes (Δ i→c against Δ c→i on the same problems), Δ i→c, Δ c→i, unchanged (greedy, the verifier's
verdicts). Writes summary.md, summary.json and summary.png (Acc@t1 and Acc@t2 per method and split, with their
intervals) into the folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from igsm.io import atomic_open
from pretrain.evaluate import mcnemar_p, wilson

COLUMNS = ("acc_t1", "acc_t2", "delta", "delta_i_to_c", "delta_c_to_i", "unchanged")
HEADERS = ("Acc@t1", "Acc@t2", "Δ", "Δ i→c", "Δ c→i", "unchanged")


def summarize(folder: Path) -> dict:
    """{"base": checkpoint, "rows": [{"method", "run", "steps", "splits": {split: metrics}}]}, the base model first."""
    finals = [(p.parent.name, json.loads(p.read_text())) for p in sorted(Path(folder).glob("*/final.json"))]
    runs = [(name, f) for name, f in finals if "rl" in f and f.get("eval")]  # not pretraining runs
    if not runs:
        raise FileNotFoundError(f"no self-correction runs (*/final.json with rl and eval) under {folder}")
    bases = {f["base_checkpoint"] for _, f in runs}
    if len(bases) > 1:
        raise ValueError(f"{folder} holds runs of several base checkpoints: {sorted(bases)}")
    name, first = runs[0]
    rows = [{"method": "base", "run": name, "steps": 0, "splits": first["eval_start"]}]
    for name, f in runs:
        rl = f["rl"]
        method = rl["method"] if rl["method"] != "score" else "score " + "/".join(rl["stages"])
        rows.append({"method": method, "run": name, "steps": f["steps"], "splits": f["eval"]})
    return {"base": bases.pop(), "rows": rows}


def markdown(table: dict) -> str:
    splits = list(table["rows"][0]["splits"])
    lines = [f"# Self-correction from {table['base']}", ""]
    for split in splits:
        lines += [f"## {split} (greedy; %)", "", "| method | steps | n | " + " | ".join(HEADERS) + " |"]
        lines.append("|---|---:|---:|" + "---:|" * len(COLUMNS))
        for row in table["rows"]:
            s = row["splits"][split]
            cells = [_cell(s, c) for c in COLUMNS]
            lines.append(f"| {row['method']} | {row['steps']} | {s['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _count(s: dict, key: str) -> int:
    return round(s[key] * s["n"])


def _cell(s: dict, key: str) -> str:
    """A table cell in %: accuracies with their 95% Wilson interval, Δ with its McNemar p-value."""
    if key in ("acc_t1", "acc_t2"):
        lo, hi = wilson(_count(s, key), s["n"])
        return f"{100 * s[key]:.1f} ({100 * lo:.1f}-{100 * hi:.1f})"
    if key == "delta":
        return f"{100 * s[key]:+.1f} (p {mcnemar_p(_count(s, 'delta_i_to_c'), _count(s, 'delta_c_to_i')):.2g})"
    return f"{100 * s[key]:.1f}"


def plot(table: dict, out) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(table["rows"][0]["splits"])
    fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 3.4), squeeze=False, sharey=True)
    for ax, split in zip(axes[0], splits, strict=True):
        xs = range(len(table["rows"]))
        for offset, (key, label) in enumerate((("acc_t1", "Acc@t1"), ("acc_t2", "Acc@t2"))):
            cells = [r["splits"][split] for r in table["rows"]]
            values = [100 * s[key] for s in cells]
            bounds = [wilson(_count(s, key), s["n"]) for s in cells]
            errors = [[v - 100 * lo for v, (lo, _) in zip(values, bounds, strict=True)]]
            errors.append([100 * hi - v for v, (_, hi) in zip(values, bounds, strict=True)])
            ax.bar([x + 0.4 * offset - 0.2 for x in xs], values, width=0.4, label=label, yerr=errors, capsize=2)
        ax.set_xticks(list(xs), [r["method"] for r in table["rows"]], rotation=30, ha="right", fontsize=8)
        ax.set(title=split, ylim=(0, 100))
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m pretrain.selfcorrect_summary",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("folder", type=Path, help="a folder of self-correction runs of one base model")
    folder = ap.parse_args(argv).folder
    try:
        table = summarize(folder)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    with atomic_open(folder / "summary.json") as f:
        f.write(json.dumps(table, indent=2) + "\n")
    with atomic_open(folder / "summary.md") as f:
        f.write(markdown(table))
    with atomic_open(folder / "summary.png", "wb") as f:
        plot(table, f)
    print(markdown(table))
    print(f"wrote {folder}/summary.md, summary.json, summary.png")


if __name__ == "__main__":
    main()
