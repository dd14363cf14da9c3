"""One table and one figure for the self-correction runs of a base model: the base model, then each method.

    python -m pretrain.selfcorrect_summary runs/cpu/laptop_two_attempts/selfcorrect

Reads `final.json` of every run folder under the given folder (`pretrain.selfcorrect` writes it): the base model's
row is the first evaluation of a run (before any step; all runs of one base model agree on it, else it stops), each
run's row its last. Columns per test split: Acc@t1, Acc@t2, Δ, Δ i→c, Δ c→i, unchanged (greedy, the verifier's
verdicts). Writes summary.md, summary.json and summary.png (Acc@t1 and Acc@t2 per method and split) into the folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
            cells = [f"{100 * s[c]:+.1f}" if c == "delta" else f"{100 * s[c]:.1f}" for c in COLUMNS]
            lines.append(f"| {row['method']} | {row['steps']} | {s['n']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(table: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(table["rows"][0]["splits"])
    fig, axes = plt.subplots(1, len(splits), figsize=(3.2 * len(splits), 3.4), squeeze=False, sharey=True)
    for ax, split in zip(axes[0], splits, strict=True):
        xs = range(len(table["rows"]))
        for offset, (key, label) in enumerate((("acc_t1", "Acc@t1"), ("acc_t2", "Acc@t2"))):
            values = [100 * r["splits"][split][key] for r in table["rows"]]
            ax.bar([x + 0.4 * offset - 0.2 for x in xs], values, width=0.4, label=label)
        ax.set_xticks(list(xs), [r["method"] for r in table["rows"]], rotation=30, ha="right", fontsize=8)
        ax.set(title=split, ylim=(0, 100))
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
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
    (folder / "summary.json").write_text(json.dumps(table, indent=2) + "\n")
    (folder / "summary.md").write_text(markdown(table))
    plot(table, folder / "summary.png")
    print(markdown(table))
    print(f"wrote {folder}/summary.md, summary.json, summary.png")


if __name__ == "__main__":
    main()
