"""Collect the evaluations of a sweep into one table and one plot, like the papers' figures.

    python -m pretrain.aggregate runs/sweeps/retry_sweep_mini
    python -m pretrain.aggregate runs/sweeps/retry_sweep_med --eval greedy,beam4_sample --reduce max
    python -m pretrain.aggregate runs/sweeps/finetune_grid_laptop runs/<base run> --eval greedy64   # + the base

Rows are data variants (preset and mistakes, plus the model when a sweep varies it), columns the test splits
(op <= max, each op, reask), cells the accuracy (%). Several seeds or decodings of one variant are reduced with max
(the papers report the best of 2 seeds x 2 decodings) or mean. Retry-upon-regret evaluations (`rur_<detector>`, from
`probes.rur`) are another method, not a decoding of the papers' best-of: each is a row of its own, never mixed into the
decodings' max. Where the papers report the same setting (`pretrain/published.json`), their number is shown
beside ours. Writes summary.md, summary.json and summary.png into the (first) sweep folder; safe to re-run at any time.

A sweep over training data (several data variants, e.g. `laptop_retry_sweep`) is plotted as P22 Figs. 4 and 8 are:
accuracy against the data variant, one panel per column, each seed a dot, the reduced value with its 95% Wilson
interval, the papers' number as a cross where they report the same setting. A finetune grid (`pretrain.finetune -m`;
rows with a finetune method) is plotted as P22 Fig. 7 is: accuracy against the method (LoRA by rank, then full), a
line per data variant, one panel per column, the base model (a run folder given after the sweep) as a dashed line.
A last panel draws the papers' figure for the same data variants (`REFERENCE`: iGSM-med, op = 20 and 23): always
beside a finetune grid, beside a data sweep when its world is not one the papers ran (no cell has their number). Any
other sweep (one data variant, e.g. models) is drawn against op.
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


REFERENCE = ("med", ("20", "23"))  # the papers' setting and columns drawn beside a sweep of a world they did not run


def method_order(finetune: str) -> tuple:
    """The papers' order of finetune methods: LoRA adapters by rank (then embedding rank), then full finetuning."""
    from pretrain.adapters import AdapterSpec
    from pretrain.finetune import FULL

    if finetune == FULL:
        return (1, 0, 0)
    spec = AdapterSpec.parse(finetune)
    return (0, spec.rank, spec.embedding_rank)


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
    two = OmegaConf.select(config, "data.two_attempts", default=0.0)
    if two:  # SCoRe's two-attempt documents in the training data: another data variant (the laptop base, L5)
        tag += f"+two_attempts{two:g}"
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
    """The papers' order: op <= max first, then the in-distribution columns of templates seen in training (seen<op>,
    a small world's), then single ops ascending, then reask."""
    if column.startswith("op<="):
        return (0, 0)
    if column.startswith("seen") and column[4:].isdigit():
        return (1, int(column[4:]))
    if column.isdigit():
        return (2, int(column))
    return (3, column)


def aggregate(sweep: Path, evals: list[str] | None = None, reduce: str = "max", also: tuple[Path, ...] = ()) -> dict:
    """The table as data: rows, columns, our accuracies and the papers' where known. `also`: more folders of runs
    (e.g. the base model of a finetune grid), tabled with the sweep's."""
    cells: dict[tuple, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))  # (correct, n)
    models, decodings, others = set(), set(), set()
    for run in dict.fromkeys(r.resolve() for folder in (sweep, *also) for r in find_runs(folder)):  # each run once
        v = variant(OmegaConf.load(run / "config.yaml"))
        models.add(v["model"])
        for res in run_results(run, evals):
            name = res["eval"]["name"]
            (others if method(name) else decodings).add(name)
            for split in res["splits"].values():
                if split["n"]:
                    key = (v["setting"], v["data"], v["model"], method(name) or "", v["finetune"] or "")
                    cells[key][split["column"]].append((round(split["accuracy"] * split["n"]), split["n"]))
    if not cells:
        where = ", ".join(str(f) for f in (sweep, *also))
        raise FileNotFoundError(f"no evaluated runs under {where} (run `python -m pretrain.evaluate` on each first)")

    def pick(counts: list[tuple[int, int]]) -> tuple[float, list[float]]:
        """The reduced accuracy (%) and its 95% Wilson interval: the best run's own, or all runs' pooled (the mean
        of runs of equal n)."""
        if reduce == "max":
            k, n = max(counts, key=lambda kn: kn[0] / kn[1])
        else:
            k, n = sum(k for k, _ in counts), sum(n for _, n in counts)
        from pretrain.evaluate import wilson  # not at the top: it brings torch, which tabling does not need

        lo, hi = wilson(k, n)
        return 100 * k / n, [round(100 * lo, 1), round(100 * hi, 1)]

    columns = sorted({c for row in cells.values() for c in row}, key=column_order)
    entries = published()
    decoding = next(iter(decodings)) if len(decodings) == 1 else None
    rows = []

    def order(item):  # finetunes after their base, in the papers' method order (qv4e8 before qv16e32)
        setting, tag, model, other, finetune = item[0]
        return (setting, tag, bool(finetune), method_order(finetune) if finetune else (), model, other)

    for (setting, tag, model, other, finetune), by_column in sorted(cells.items(), key=order):
        reduced = {c: pick(v) for c, v in by_column.items()}  # column -> (accuracy, interval)
        show_model = len(models) > 1 or finetune  # a finetune's model name says its method (base+method)
        rows.append(
            {
                "label": f"{setting} {tag}" + (f" {model}" if show_model else "") + (f" {other}" if other else ""),
                "setting": setting,
                "data": tag,
                "model": model,
                "method": other or None,
                "finetune": finetune or None,
                "ours": {c: round(acc, 1) for c, (acc, _) in reduced.items()},
                "ci95": {c: ci for c, (_, ci) in reduced.items()},
                "values": {c: [round(100 * k / n, 1) for k, n in v] for c, v in by_column.items()},  # each run's
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

    if any(row["finetune"] for row in table["rows"]):
        return plot_finetune(table, out, plt)
    if len({row["data"] for row in table["rows"]}) > 1:
        return plot_variants(table, out, plt)
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


def paper_panel(ax, tags: list[str], color: dict, finetunes: list[str] | None = None) -> None:
    """The papers' figure for the same data variants (`REFERENCE`), on the x axis of our panels: data variants (P22
    Figs. 4 and 8), or finetune methods (`finetunes`, P22 Fig. 7, a line per variant and the clean model dashed)."""
    setting, columns = REFERENCE
    entries = published()
    for c, style in zip(columns, ({"marker": "o"}, {"marker": "s", "ls": ":"}), strict=True):
        if finetunes is None:  # the variants they report, joined over those they do not
            known = [(x, paper_value(entries, setting, tag, c, None)) for x, tag in enumerate(tags)]
            known = [(x, y) for x, y in known if y is not None]
            if known:
                ax.plot([x for x, _ in known], [y for _, y in known], label=f"op={c}", color="k", **style)
            continue
        for tag in tags:
            ys = [paper_value(entries, setting, tag, c, None, finetune=m) for m in finetunes]
            ax.plot(
                range(len(finetunes)),
                [float("nan") if y is None else y for y in ys],
                label=f"{tag}, op={c}",
                color=color[tag],
                **style,
            )
        clean = paper_value(entries, setting, "clean", c, None)
        if clean is not None:
            ax.axhline(clean, ls="--", color="grey", lw=1)
            ax.annotate(
                f"clean, op={c}", (0, clean), textcoords="offset points", xytext=(2, 3), fontsize=7, color="grey"
            )
    if not ax.get_legend_handles_labels()[0]:
        ax.text(0.5, 0.5, "the papers report none\nof these variants", transform=ax.transAxes, ha="center", fontsize=8)
    figure = "P22 Figs. 4(b), 8" if finetunes is None else "P22 Fig. 7"
    ax.set(title=f"{figure} (iGSM-{setting})", ylabel="accuracy (%)", ylim=(0, 100))
    ax.grid(alpha=0.3)


def plot_variants(table: dict, out: Path, plt) -> None:
    """P22 Figs. 4 and 8's shape: accuracy against the data variant, a panel per column, a method (greedy's best-of,
    retry upon regret) per colour, each run a dot, the reduced value with its Wilson interval, the papers' number a
    cross; the papers' figure in a last panel when none of our cells has their number."""
    rows, columns = table["rows"], table["columns"]
    tags = list(dict.fromkeys(r["data"] for r in rows))  # the table's order
    methods = list(dict.fromkeys(r["method"] for r in rows))
    reference = not any(y is not None for r in rows for y in r["paper"].values())
    n = len(columns) + reference
    fig, axes = plt.subplots(1, n, figsize=(2.9 * n + 0.6, 3.9), squeeze=False)
    for ax, c in zip(axes[0], columns, strict=False):
        for j, m in enumerate(methods):
            shift = 0.12 * (j - (len(methods) - 1) / 2)  # methods side by side at each variant
            for r in (r for r in rows if r["method"] == m and c in r["ours"]):
                x = tags.index(r["data"]) + shift
                lo, hi = r["ci95"][c]
                y = r["ours"][c]
                first = r is next(q for q in rows if q["method"] == m and c in q["ours"])
                ax.errorbar(
                    x,
                    y,
                    yerr=[[y - lo], [hi - y]],
                    fmt="o",
                    color=f"C{j}",
                    capsize=3,
                    label=(m or ", ".join(table["decodings"])) if first else None,
                )
                ax.plot([x] * len(r["values"][c]), r["values"][c], ".", color=f"C{j}", alpha=0.5)
                if r["paper"].get(c) is not None:
                    ax.plot(x, r["paper"][c], "x", color=f"C{j}", ms=8)
        ax.set_xticks(range(len(tags)), tags, rotation=45, ha="right", fontsize=8)
        ax.set(title=f"ours, {f'op={c}' if c.isdigit() else c}", ylabel="accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)
    if reference:
        paper_panel(axes[0][-1], tags, {})
        axes[0][-1].set_xticks(range(len(tags)), tags, rotation=45, ha="right", fontsize=8)
    axes[0][0].legend(fontsize=7)
    if reference and axes[0][-1].get_legend_handles_labels()[0]:
        axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{Path(table['sweep']).name}: {table['reduce']} over runs, 95% Wilson intervals", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def plot_finetune(table: dict, out: Path, plt) -> None:
    """P22 Fig. 7's shape: accuracy against the finetune method, a line per data variant, a panel per column; the
    runs without a finetune (the base) as dashed lines; the paper's Fig. 7 (`REFERENCE`) in the last panel."""
    rows = [r for r in table["rows"] if not r["method"]]  # retry-upon-regret rows are no finetune method
    methods = sorted({r["finetune"] for r in rows if r["finetune"]}, key=method_order)
    tags = sorted({r["data"] for r in rows if r["finetune"]})
    color = {tag: f"C{i}" for i, tag in enumerate(tags)}  # one colour per data variant, in every panel
    columns = table["columns"]
    fig, axes = plt.subplots(1, len(columns) + 1, figsize=(3.6 * (len(columns) + 1), 3.8), squeeze=False)
    x = range(len(methods))

    def panel(ax, title, lines, bases):
        for label, ys, style in lines:
            ax.plot(x, ys, marker="o", label=label, **style)
        for label, y in bases:
            ax.axhline(y, ls="--", color="grey", lw=1)
            ax.annotate(label, (0, y), textcoords="offset points", xytext=(2, 3), fontsize=7, color="grey")
        ax.set_xticks(list(x), methods, rotation=45, ha="right", fontsize=8)
        ax.set(title=title, ylabel="accuracy (%)", ylim=(0, 100))
        ax.grid(alpha=0.3)

    for ax, c in zip(axes[0][:-1], columns, strict=True):
        name = f"op={c}" if c.isdigit() else c
        lines = []
        for tag in tags:
            by_method = {r["finetune"]: r["ours"].get(c) for r in rows if r["data"] == tag and r["finetune"]}
            ys = [by_method.get(m) for m in methods]
            lines.append((tag, [float("nan") if y is None else y for y in ys], {"color": color[tag]}))
        bases = [(f"base: {r['label']}", r["ours"][c]) for r in rows if not r["finetune"] and c in r["ours"]]
        panel(ax, f"ours, {name}", lines, bases)
    paper_panel(axes[0][-1], tags, color, methods)
    axes[0][-1].set_xticks(list(x), methods, rotation=45, ha="right", fontsize=8)
    for ax in axes[0]:
        ax.legend(fontsize=7)
    fig.suptitle(Path(table["sweep"]).name, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m pretrain.aggregate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("sweep", type=Path, help="a sweep folder (runs/sweeps/<name>) or any folder of runs")
    ap.add_argument("also", type=Path, nargs="*", help="more run folders to table beside it (e.g. a finetune's base)")
    ap.add_argument("--eval", help="decodings to use, comma-separated (default: every one evaluated)")
    ap.add_argument("--reduce", choices=["max", "mean"], default="max")
    args = ap.parse_args(argv)
    try:
        table = aggregate(args.sweep, args.eval.split(",") if args.eval else None, args.reduce, tuple(args.also))
    except FileNotFoundError as e:
        raise SystemExit(f"error: {e}") from None
    (args.sweep / "summary.json").write_text(json.dumps(table, indent=2) + "\n")
    (args.sweep / "summary.md").write_text(markdown(table))
    plot(table, args.sweep / "summary.png")
    print(markdown(table))
    print(f"wrote {args.sweep}/summary.md, summary.json, summary.png")


if __name__ == "__main__":
    main()
