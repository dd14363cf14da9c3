"""Three ways to self-correct in one world, at one stated budget (issue 12 §3): one table and one figure.

    python -m pretrain.three_ways --clean runs/cpu/three_ways_laptop_two_attempts/clean \\
        --retry runs/cpu/three_ways_laptop_two_attempts/retry --score runs/cpu/three_ways_laptop_two_attempts/score
    python -m pretrain.three_ways --budget --clean <clean run> --score <SCoRe run>   # prints (a)'s token budget

Rows: the clean model decoded greedily and by beam search; (a) a model pretrained on retry data (Part 2.2), greedy;
(b) the clean model with retry upon regret and the regret probe as detector (Part 2.2 §3, `rur_<detector>`); (c) SCoRe
on the clean model (arXiv 2409.12917), its second attempt (Acc@t2) and its first (Acc@t1), with the clean model's own
second attempt before RL as a control. Columns: the test splits every row was evaluated on, accuracy (%) with its 95%
Wilson interval and n (the verifier's verdict on the whole solution), then the compute: training tokens (pretraining,
plus SCoRe's RL tokens: prompt and both attempts of every sample), approximate training FLOPs and decoding tokens.

The budget rule: equal training tokens. (a)'s pretraining budget is the clean run's pretraining tokens plus SCoRe's RL
tokens (`--budget` prints it; `make cpu-three-ways` trains (a) with it), so (a) and (c) process as many tokens; the
table states both totals and flags a gap over 10% (tokens or FLOPs). Writes summary.md, summary.json and summary.png
into --out (default <clean run>/three_ways).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from igsm.io import atomic_open
from pretrain.aggregate import RUR_PREFIX
from pretrain.evaluate import wilson

TOLERANCE = 0.10  # a budget gap larger than this (relative to (c)'s) is flagged
RL_FLOPS_PER_TOKEN = 10  # x N: rollout forward (2N), policy forward and backward (6N), reference forward (2N)
WORLD_FREE = ("mistakes", "two_attempts", "train_size")  # data fields that may differ: they shape training only


def _json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ValueError(f"{what}: {path} not found")
    return json.loads(path.read_text())


def pretraining(run: Path, what: str) -> dict:
    """{"run", "checkpoint" (its name), "tokens", "parameters"} of a pretraining run, from its final.json."""
    final = _json(Path(run) / "final.json", f"{what} run {run} has no final.json (train it first)")
    if "tokens" not in final:
        raise ValueError(f"{what} run {run}: final.json has no 'tokens' (not a pretraining run?)")
    if final.get("checkpoint"):
        checkpoint = Path(final["checkpoint"]).name
    else:
        latest = Path(run) / "checkpoints" / "latest"
        if not latest.is_file():
            raise ValueError(f"{what} run {run}: no checkpoint named in final.json nor in {latest}")
        checkpoint = latest.read_text().strip()
    return {"run": str(run), "checkpoint": checkpoint, "tokens": final["tokens"], "parameters": final.get("parameters")}


def evaluation(run: dict, name: str, what: str) -> dict:
    """The results.json of `name` (greedy, beam4, rur_probe, ...) at the run's final checkpoint."""
    path = Path(run["run"]) / "eval" / run["checkpoint"] / name / "results.json"
    return _json(path, f"{what}: no {name!r} evaluation of {run['run']} at {run['checkpoint']}")


def _config(run: Path, what: str):
    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise ValueError(f"{what} run {run} has no config.yaml")
    return OmegaConf.load(path)


def world(config) -> dict:
    """The data config without the fields that only shape training: two runs of one world share their test splits."""
    data = OmegaConf.to_container(config.data, resolve=True)
    return {k: v for k, v in data.items() if k not in WORLD_FREE}


def rl_run(run: Path, clean: dict) -> dict:
    """SCoRe's run from the clean run's checkpoint: its final.json and the tokens its steps sampled and trained on."""
    run = Path(run)
    final = _json(run / "final.json", f"SCoRe run {run} has no final.json (run python -m pretrain.selfcorrect first)")
    rl = final.get("rl") or {}
    if rl.get("method") != "score":
        raise ValueError(f"SCoRe run {run}: rl.method is {rl.get('method')!r}, not 'score'")
    if not final.get("eval"):
        raise ValueError(f"SCoRe run {run}: final.json has no evaluation")
    base = Path(final["base_checkpoint"])
    same = base.name == clean["checkpoint"]
    if same and base.parent.parent.is_dir():
        same = base.parent.parent.resolve() == Path(clean["run"]).resolve()
    if not same:
        raise ValueError(
            f"SCoRe run {run} started from {base}, not from the clean run's checkpoint "
            f"{Path(clean['run']) / 'checkpoints' / clean['checkpoint']}"
        )
    metrics = run / "metrics.jsonl"
    if not metrics.is_file():
        raise ValueError(f"SCoRe run {run}: {metrics} not found")
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "tokens_t1" in r and r["step"] <= final["steps"]]
    if not steps:
        raise ValueError(f"SCoRe run {run}: {metrics} has no RL steps (rows with tokens_t1)")
    samples = rl["prompts_per_step"] * rl["k"]
    generated = sum(samples * (r["tokens_t1"] + r["tokens_t2"]) for r in steps)
    prompts_logged = all("tokens_prompt" in r for r in steps)
    trained = generated + sum(samples * r.get("tokens_prompt", 0.0) for r in steps)
    return {
        "run": str(run),
        "final": final,
        "steps": len(steps),
        "samples": samples * len(steps),
        "generated_tokens": round(generated),
        "tokens": round(trained),
        "prompts_logged": prompts_logged,  # older runs: the attempts' tokens only, a lower bound
    }


def budget(clean_run: Path, score_run: Path) -> int:
    """(a)'s pretraining token budget: the clean run's pretraining tokens plus SCoRe's RL tokens."""
    clean = pretraining(clean_run, "clean")
    return clean["tokens"] + rl_run(score_run, clean)["tokens"]


def _cell(n: int, accuracy: float, ci95=None) -> dict:
    lo, hi = ci95 if ci95 is not None else wilson(round(accuracy * n), n)
    return {"n": n, "accuracy": accuracy, "ci95": [lo, hi]}


def _eval_row(label: str, key: str, results: dict) -> dict:
    splits = {}
    for split, s in results["splits"].items():
        if s["n"]:
            splits[split] = _cell(s["n"], s["accuracy"], s["accuracy_ci95"]) | {"column": s["column"]}
            splits[split]["decode_tokens"] = s.get("generated_tokens")
    return {"label": label, "key": key, "splits": splits}


def _score_row(label: str, key: str, summary: dict, attempt: str) -> dict:
    splits = {
        split: _cell(s["n"], s[f"acc_{attempt}"]) | {"column": s["column"], "decode_tokens": None}
        for split, s in summary.items()
        if s.get("n")
    }
    return {"label": label, "key": key, "splits": splits}


def _probe(rur: dict) -> dict | None:
    """The regret probe that served retry upon regret: its training examples (from probes.probe's results.json)."""
    probe_dir = rur.get("probe_dir")
    path = Path(probe_dir) / "results.json" if probe_dir else None
    if path is None or not path.is_file():
        return None
    res = json.loads(path.read_text())
    regret = res.get("tasks", {}).get("regret", {})
    return {"dir": probe_dir, "n_train": regret.get("n_train"), "n_problems": res.get("probe", {}).get("n_problems")}


def compare(
    clean_run: Path,
    retry_run: Path,
    score_run: Path,
    beam: str = "beam4",
    detector: str = "probe",
    splits: list[str] | None = None,
    tolerance: float = TOLERANCE,
) -> dict:
    """The table as data: rows (method, cells per split), the compute of each row and the budget check."""
    clean = pretraining(clean_run, "clean")
    retry = pretraining(retry_run, "retry-data")
    score = rl_run(score_run, clean)
    clean_world = world(_config(clean_run, "clean"))
    for name, run in (("retry-data", retry_run), ("SCoRe", score_run)):
        other = world(_config(run, name))
        diff = sorted(k for k in set(clean_world) | set(other) if clean_world.get(k) != other.get(k))
        if diff:
            raise ValueError(
                f"the {name} run {run} is not in the clean run's world: data."
                + ", data.".join(f"{k} {other.get(k)!r} vs {clean_world.get(k)!r}" for k in diff)
            )
    rur_name = f"{RUR_PREFIX}{detector}"
    rur = evaluation(clean, rur_name, "(b) retry upon regret")
    final = score["final"]
    rows = [
        _eval_row("clean, greedy", "greedy", evaluation(clean, "greedy", "greedy baseline")),
        _eval_row(f"clean, {beam}", "beam", evaluation(clean, beam, "beam baseline")),
        _eval_row("(a) retry-data pretraining, greedy", "retry", evaluation(retry, "greedy", "(a)")),
        _eval_row(f"(b) retry upon regret ({detector} detector)", "rur", rur),
        _score_row("(c) SCoRe, Acc@t2", "score_t2", final["eval"], "t2"),
        _score_row("(c) SCoRe, Acc@t1", "score_t1", final["eval"], "t1"),
        _score_row("clean, 2nd attempt (no RL), Acc@t2", "base_t2", final["eval_start"], "t2"),
    ]
    available = [set(r["splits"]) for r in rows]
    if splits:
        for row, have in zip(rows, available, strict=True):
            missing = [s for s in splits if s not in have]
            if missing:
                raise ValueError(f"{row['label']} has no split {missing} (it has {sorted(have)})")
        shared = list(splits)
    else:
        shared = [s for s in rows[0]["splits"] if all(s in have for have in available)]
        if not shared:
            raise ValueError(
                "no test split is shared by every evaluation: "
                + "; ".join(f"{r['label']}: {sorted(r['splits'])}" for r in rows)
            )
    left_out = sorted(set().union(*available) - set(shared))
    for row in rows:
        row["splits"] = {s: row["splits"][s] for s in shared}
    n_differs = {s: sorted({r["splits"][s]["n"] for r in rows}) for s in shared}
    n_differs = {s: ns for s, ns in n_differs.items() if len(ns) > 1}

    # compute: training tokens and approximate FLOPs (6 N per pretraining token, 10 N per RL token)
    n_clean, n_retry = clean["parameters"], retry["parameters"]
    probe = _probe(rur)
    pre_flops = 6 * n_clean * clean["tokens"] if n_clean else None
    rl_flops = RL_FLOPS_PER_TOKEN * n_clean * score["tokens"] if n_clean else None
    compute = {
        "clean": {"tokens": clean["tokens"], "flops": pre_flops, "extra": ""},
        "retry": {
            "tokens": retry["tokens"],
            "flops": 6 * n_retry * retry["tokens"] if n_retry else None,
            "extra": "",
        },
        "score": {
            "tokens": clean["tokens"] + score["tokens"],
            "flops": pre_flops + rl_flops if n_clean else None,
            "extra": f"+ RL {score['tokens']:,} tokens ({score['steps']} steps, {score['samples']:,} samples"
            + ("" if score["prompts_logged"] else "; attempts only: a lower bound")
            + ")",
        },
    }
    rur_extra = (
        f"+ probe: {probe['n_train']:,} regret examples of {probe['n_problems']:,} problems (forward passes)"
        if probe and probe["n_train"] is not None
        else "+ probe (its results.json not found)"
    )
    for row in rows:
        c = compute[
            "score" if row["key"] in ("score_t2", "score_t1") else "retry" if row["key"] == "retry" else "clean"
        ]
        row |= {"train_tokens": c["tokens"], "train_flops": c["flops"], "extra": c["extra"]}
        if row["key"] == "rur":
            row["extra"] = rur_extra
        if row["key"] == "base_t2":
            row["extra"] = "the starting point of (c)"
        known = [(s["decode_tokens"], s["n"]) for s in row["splits"].values() if s["decode_tokens"] is not None]
        row["decode_tokens"] = sum(t * n for t, n in known) / sum(n for _, n in known) if known else None
    a, c = compute["retry"], compute["score"]
    gap_tokens = a["tokens"] / c["tokens"] - 1
    gap_flops = a["flops"] / c["flops"] - 1 if a["flops"] and c["flops"] else None
    return {
        "clean": clean,
        "retry": retry,
        "score": {k: v for k, v in score.items() if k != "final"},
        "probe": probe,
        "rur": {"detector_calls": rur.get("detector_calls"), "detector_flags": rur.get("detector_flags")},
        "splits": shared,
        "left_out": left_out,
        "n_differs": n_differs,
        "budget": {
            "rule": "equal training tokens: (a)'s pretraining tokens = the clean run's pretraining tokens + SCoRe's "
            "RL tokens ((c)'s total)",
            "a_tokens": a["tokens"],
            "c_tokens": c["tokens"],
            "gap_tokens": gap_tokens,
            "a_flops": a["flops"],
            "c_flops": c["flops"],
            "gap_flops": gap_flops,
            "tolerance": tolerance,
            "equal_tokens": abs(gap_tokens) <= tolerance,
            "equal_flops": gap_flops is not None and abs(gap_flops) <= tolerance,
        },
        "rows": rows,
    }


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.2f}{unit}"
    return f"{x:.0f}"


def markdown(table: dict) -> str:
    b = table["budget"]
    verdict = "equal within {:.0%}".format(b["tolerance"]) if b["equal_tokens"] else "**UNEQUAL**"
    flops = (
        f" Approximate training FLOPs (6 N per pretraining token, {RL_FLOPS_PER_TOKEN} N per RL token): (a) "
        f"{_num(b['a_flops'])} vs (c) {_num(b['c_flops'])} ({b['gap_flops']:+.1%}"
        + ("" if b["equal_flops"] else f", **more than {b['tolerance']:.0%} apart**")
        + ")."
        if b["gap_flops"] is not None
        else ""
    )
    lines = [
        f"# Three ways to self-correct: {table['clean']['run']}",
        "",
        f"Budget rule: {b['rule']}. Training tokens: (a) {_num(b['a_tokens'])} vs (c) {_num(b['c_tokens'])} "
        f"({b['gap_tokens']:+.1%}): {verdict}.{flops} The baselines and (b) spend the clean pretraining only.",
        "",
        "Accuracy (%) with its 95% Wilson interval and n (the verifier's verdict on the whole solution); "
        "decoding tokens: the mean tokens of the kept output per problem (beam: per beam; retry upon regret: "
        "re-sampled steps not counted; SCoRe: not logged).",
    ]
    if table["left_out"]:
        lines.append(f"Splits not evaluated by every row, left out: {', '.join(table['left_out'])}.")
    if table["n_differs"]:
        lines.append(
            "**n differs between rows** on "
            + ", ".join(f"{s} ({'/'.join(map(str, ns))})" for s, ns in table["n_differs"].items())
            + ": those rows score different numbers of the split's first problems."
        )
    lines += [
        "",
        "| method | "
        + " | ".join(table["splits"])
        + " | train tokens | ≈ train FLOPs | decode tokens / problem | extra |",
        "|---|" + "---:|" * len(table["splits"]) + "---:|---:|---:|---|",
    ]
    for row in table["rows"]:
        cells = [
            f"{100 * s['accuracy']:.1f} [{100 * s['ci95'][0]:.1f}, {100 * s['ci95'][1]:.1f}] n={s['n']}"
            for s in row["splits"].values()
        ]
        decode = "-" if row["decode_tokens"] is None else f"{row['decode_tokens']:.1f}"
        lines.append(
            f"| {row['label']} | {' | '.join(cells)} | {row['train_tokens']:,} | {_num(row['train_flops'])} | "
            f"{decode} | {row['extra']} |"
        )
    return "\n".join(lines) + "\n"


def plot(table: dict, out: Path) -> None:
    """Accuracy per split, one bar per method with its 95% interval, written atomically to `out` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits, rows = table["splits"], table["rows"]
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(splits) + 2), 5))
    for i, row in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(splits))]
        acc = [100 * row["splits"][s]["accuracy"] for s in splits]
        err = [
            [a - 100 * row["splits"][s]["ci95"][0] for a, s in zip(acc, splits, strict=True)],
            [100 * row["splits"][s]["ci95"][1] - a for a, s in zip(acc, splits, strict=True)],
        ]
        ax.bar(xs, acc, width=width, yerr=err, capsize=2, label=row["label"])
    ax.set_xticks(range(len(splits)), splits, rotation=20, ha="right", fontsize=8)
    b = table["budget"]
    ax.set(
        ylabel="accuracy (%)",
        ylim=(0, 100),
        title=f"tokens: (a) {_num(b['a_tokens'])}, (c) {_num(b['c_tokens'])} ({b['gap_tokens']:+.0%})",
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.tight_layout()
    with atomic_open(out, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def write(table: dict, out: Path) -> None:
    """summary.json, summary.md and summary.png in `out`, each written atomically."""
    with atomic_open(Path(out) / "summary.json") as f:
        json.dump(table, f, indent=2)
        f.write("\n")
    with atomic_open(Path(out) / "summary.md") as f:
        f.write(markdown(table))
    plot(table, Path(out) / "summary.png")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m pretrain.three_ways", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clean", type=Path, required=True, help="the clean base run (greedy, beam, rur evaluations)")
    ap.add_argument("--retry", type=Path, help="the retry-data pretraining run of the same world (greedy evaluation)")
    ap.add_argument("--score", type=Path, required=True, help="the SCoRe run (pretrain.selfcorrect) from the clean run")
    ap.add_argument("--budget", action="store_true", help="print (a)'s token budget (clean + RL tokens) and stop")
    ap.add_argument("--beam", default="beam4", help="the beam evaluation's name (default beam4)")
    ap.add_argument("--detector", default="probe", help="the rur_<detector> evaluation (default probe)")
    ap.add_argument("--splits", help="test splits, comma-separated (default: every one all rows share)")
    ap.add_argument("--out", type=Path, help="output folder (default <clean>/three_ways)")
    args = ap.parse_args(argv)
    try:
        if args.budget:
            print(budget(args.clean, args.score))
            return
        if args.retry is None:
            raise ValueError("--retry <retry-data run> is needed for the table")
        table = compare(
            args.clean,
            args.retry,
            args.score,
            args.beam,
            args.detector,
            args.splits.split(",") if args.splits else None,
        )
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    out = args.out or args.clean / "three_ways"
    write(table, out)
    print(markdown(table))
    print(f"wrote {out}/summary.md, summary.json, summary.png")


if __name__ == "__main__":
    main()
