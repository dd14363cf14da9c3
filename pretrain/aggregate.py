"""Collect the evaluations of a sweep into one table and one plot, like the papers' figures.

    python -m pretrain.aggregate runs/sweeps/retry_sweep_mini
    python -m pretrain.aggregate runs/sweeps/retry_sweep_med --eval greedy,beam4_sample --reduce max

Rows are data variants (preset and mistakes, plus the model when a sweep varies it), columns the test splits
(op <= max, each op, reask), cells the accuracy (%). Several seeds or decodings of one variant are reduced with max
(the papers report the best of 2 seeds x 2 decodings) or mean. Retry-upon-regret evaluations (`rur_<detector>`, from
`probes.rur`) are another method, not a decoding of the papers' best-of: each is a row of its own, never mixed into the
decodings' max. Where the papers report the same setting (`pretrain/published.json`), their number is shown
beside ours. Writes summary.md, summary.json and summary.png into the sweep folder; safe to re-run at any time.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from importlib import resources
from pathlib import Path

from omegaconf import OmegaConf

from igsm.dataset import MistakeConfig


def published() -> list[dict]:
    """The papers' numbers (one data file, transcribed from the papers' figures)."""
    return json.loads(resources.files("pretrain").joinpath("published.json").read_text())["entries"]


def find_runs(sweep: Path) -> list[Path]:
    return sorted(p.parent for p in sweep.rglob("config.yaml") if (p.parent / "eval").is_dir())


def run_results(run: Path, evals: list[str] | None) -> list[dict]:
    """The results.json of the run's newest evaluated checkpoint, one per decoding asked for."""
    found = sorted(run.glob("eval/*/*/results.json"))
    if not found:
        return []
    newest = max(p.parent.parent.name for p in found)
    return [
        json.loads(p.read_text())
        for p in found
        if p.parent.parent.name == newest and (evals is None or p.parent.name in evals)
    ]


RUR_PREFIX = "rur_"  # evaluations by probes.rur are named rur_<detector>


def method(decoding: str) -> str | None:
    """The row family of an evaluation: None for the papers' decodings (reduced together), else its own name."""
    return decoding if decoding.startswith(RUR_PREFIX) else None


def variant(config) -> dict:
    m = config.data.mistakes
    tag = MistakeConfig(m.kind, m.rate, m.include_current, m.mask).tag
    finetune = OmegaConf.select(config, "finetune.method")  # a pretrain.finetune run: on `data` after pretraining
    return {
        "setting": config.data.name,
        "data": tag,
        "model": config.model.name,
        "seed": config.train.seed,
        "finetune": finetune,
    }


def paper_value(
    entries: list[dict],
    setting: str,
    tag: str,
    column: str,
    decoding: str | None,
    exact: bool = False,
    finetune: str | None = None,
) -> float | None:
    """The papers' number for a cell, preferring the same decoding (`exact`: only the same decoding); a finetune's
    cell (`finetune`: its method) only takes an entry of the same finetune, never a pretraining one."""
    for e in sorted(entries, key=lambda e: e["decoding"] != decoding):  # prefer the same decoding
        if exact and e["decoding"] != decoding:
            continue
        if e.get("finetune") != finetune:
            continue
        if e["setting"] == setting and e["data"] == tag and column in e["accuracy"]:
            return e["accuracy"][column]
    return None


def column_order(column: str) -> tuple:
    """The papers' order: op <= max first, then single ops ascending, then reask."""
    if column.startswith("op<="):
        return (0, 0)
    if column.isdigit():
        return (1, int(column))
    return (2, column)


def aggregate(sweep: Path, evals: list[str] | None = None, reduce: str = "max") -> dict:
    """The table as data: rows, columns, our accuracies and the papers' where known."""
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    models, decodings, others = set(), set(), set()
    for run in find_runs(sweep):
        v = variant(OmegaConf.load(run / "config.yaml"))
        models.add(v["model"])
        for res in run_results(run, evals):
            name = res["eval"]["name"]
            (others if method(name) else decodings).add(name)
            for split in res["splits"].values():
                if split["n"]:
                    key = (v["setting"], v["data"], v["model"], method(name) or "", v["finetune"] or "")
                    cells[key][split["column"]].append(100 * split["accuracy"])
    if not cells:
        raise FileNotFoundError(f"no evaluated runs under {sweep} (run `python -m pretrain.evaluate` on each first)")
    pick = max if reduce == "max" else (lambda xs: sum(xs) / len(xs))
    columns = sorted({c for row in cells.values() for c in row}, key=column_order)
    entries = published()
    decoding = next(iter(decodings)) if len(decodings) == 1 else None
    rows = []
    for (setting, tag, model, other, finetune), by_column in sorted(cells.items()):
        show_model = len(models) > 1 or finetune  # a finetune's model name says its method (base+method)
        rows.append(
            {
                "label": f"{setting} {tag}" + (f" {model}" if show_model else "") + (f" {other}" if other else ""),
                "setting": setting,
                "data": tag,
                "model": model,
                "method": other or None,
                "finetune": finetune or None,
                "ours": {c: round(pick(v), 1) for c, v in by_column.items()},
                "runs": {c: len(v) for c, v in by_column.items()},
                "paper": {
                    c: paper_value(entries, setting, tag, c, other or decoding, bool(other), finetune or None)
                    for c in by_column
                },
            }
        )
    return {
        "sweep": str(sweep),
        "reduce": reduce,
        "decodings": sorted(decodings),
        "methods": sorted(others),
        "columns": columns,
        "rows": rows,
    }


def markdown(table: dict) -> str:
    columns = table["columns"]
    lines = [
        f"# {table['sweep']}",
        "",
        f"Accuracy (%), {table['reduce']} over seeds and decodings ({', '.join(table['decodings']) or 'none'}); "
        + (
            f"retry upon regret ({', '.join(table['methods'])}) in rows of its own, over seeds only; "
            if table["methods"]
            else ""
        )
        + "the papers' number in parentheses where they report the same setting.",
        "",
        f"| data | {' | '.join(f'op={c}' if c.isdigit() else c for c in columns)} |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in table["rows"]:
        cells = []
        for c in columns:
            ours, paper = row["ours"].get(c), row["paper"].get(c)
            cell = "-" if ours is None else f"{ours:.1f}"
            cells.append(cell + (f" ({paper:.1f})" if paper is not None else ""))
        lines.append(f"| {row['label']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def plot(table: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, row in enumerate(table["rows"]):
        ops = sorted((c for c in row["ours"] if c.isdigit()), key=int)  # the single-op columns, on an op axis
        (line,) = ax.plot([int(c) for c in ops], [row["ours"][c] for c in ops], marker="o", label=row["label"])
        known = [c for c in ops if row["paper"].get(c) is not None]
        if known:
            ax.plot(
                [int(c) for c in known],
                [row["paper"][c] for c in known],
                ls="--",
                marker="x",
                color=line.get_color(),
                label=f"{row['label']} (paper)" if i == 0 else None,
            )
    ax.set(xlabel="op", ylabel="accuracy (%)", title=Path(table["sweep"]).name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m pretrain.aggregate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("sweep", type=Path, help="a sweep folder (runs/sweeps/<name>) or any folder of runs")
    ap.add_argument("--eval", help="decodings to use, comma-separated (default: every one evaluated)")
    ap.add_argument("--reduce", choices=["max", "mean"], default="max")
    args = ap.parse_args(argv)
    try:
        table = aggregate(args.sweep, args.eval.split(",") if args.eval else None, args.reduce)
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    (args.sweep / "summary.json").write_text(json.dumps(table, indent=2) + "\n")
    (args.sweep / "summary.md").write_text(markdown(table))
    plot(table, args.sweep / "summary.png")
    print(markdown(table))
    print(f"wrote {args.sweep}/summary.md, summary.json, summary.png")


if __name__ == "__main__":
    main()
