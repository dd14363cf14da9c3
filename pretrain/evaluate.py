"""Evaluating a checkpoint: decode the test splits, judge every solution with the verifier, report per op.

    python -m pretrain.evaluate checkpoint=runs/mini_mini_none0.0_s0/checkpoints/step_0004000
    python -m pretrain.evaluate checkpoint=... eval=beam4_sample            # the papers' second decoding
    python -m pretrain.evaluate checkpoint=... eval.n=512 eval.splits=[test_op12]

Accuracy is the papers' (Part 2.1 §3): the official evaluator's verdict on the whole solution plus the answer
segment, not the final number alone. Writes results.json, results.md, accuracy.png and generations.jsonl (every
generation with its verdict, for probing and error analysis) to <run>/eval/<checkpoint>/<eval.name>/.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from igsm.dataset import DataConfig, make_example
from igsm.io import atomic_open, write_jsonl
from igsm.verifier import verify
from pretrain.config import store_schema
from pretrain.decode import DecodeConfig, Triggers, generate, split_generation
from pretrain.tokenizer import Roles, prompt_ids, resolve_roles


@dataclass
class EvalConfig:
    """An evaluation (conf/eval/); the defaults are greedy decoding (the papers' "beam1, no sample")."""

    name: str = "greedy"  # also the output folder: <run>/eval/<checkpoint>/<name>
    splits: list[str] | None = None  # default: every test split of the data config
    n: int | None = None  # problems per split (default: all of data.test_size; the papers use 4,096)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto: bf16 on GPU, fp32 on CPU | fp32 | bf16
    out_dir: str | None = None

    def __post_init__(self) -> None:
        if self.n is not None and self.n < 1:
            raise ValueError(f"eval.n must be >= 1, got {self.n}")
        if self.dtype not in ("auto", "fp32", "bf16"):
            raise ValueError(f"eval.dtype must be auto, fp32 or bf16, got {self.dtype!r}")


store_schema("evaluate", {"eval": EvalConfig})  # conf/evaluate.yaml and conf/rur.yaml


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value of paired verdicts that changed b times one way and c times the other (a
    binomial test of b against b + c at 1/2): is a change between two attempts on the same problems real?"""
    if b < 0 or c < 0:
        raise ValueError(f"mcnemar_p needs counts >= 0, got {b} and {c}")
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def judge(example: dict, solution: str, answer: str | None) -> dict:
    """The verdict fields of one generation (answer None: the model never reached <begin_answer>)."""
    v = verify(example["problem"], example["question"], solution, answer=answer if answer is not None else "")
    return {**v.to_dict(), "answer_correct": answer is not None and answer.strip() == str(example["answer"])}


def summarize(records: list[dict]) -> dict[str, Any]:
    """Per-split figures: accuracy with its 95% interval, strict and answer-only accuracy, BACK steps per problem on
    correct and wrong solutions (Part 2.2 Fig. 5), unnecessary parameters and operations per correct solution."""
    n = len(records)
    ok = [r for r in records if r["correct"]]
    bad = [r for r in records if not r["correct"]]
    k = len(ok)

    def mean(rows, key):
        return sum(r[key] for r in rows) / len(rows) if rows else None

    ops = {r["op"] for r in records}
    return {
        "n": n,
        "op": ops.pop() if len(ops) == 1 else None,  # None: the split mixes op counts (test_id, reask)
        "accuracy": k / n if n else None,
        "accuracy_ci95": list(wilson(k, n)),
        "strict_accuracy": mean(records, "strict_correct"),
        "answer_accuracy": mean(records, "answer_correct"),
        "back_per_correct": mean(ok, "n_back"),
        "back_per_wrong": mean(bad, "n_back"),
        "unnecessary_params_per_correct": sum(len(r["unnecessary_params"]) for r in ok) / k if ok else None,
        "unnecessary_ops_per_correct": mean(ok, "unnecessary_ops"),
        "generated_tokens": mean(records, "generated_tokens"),
        "unfinished": sum(not r["finished"] for r in records),
        "error_kinds": dict(Counter(kind for r in bad for kind in r["error_kinds"]).most_common()),
    }


def _per_example(regret, examples: list[dict], prompts: list[list[int]]):
    """The decoder's `regret(prompt, generated)` for a detector that also takes the example being solved."""
    if regret is None:
        return None
    by_prompt = {tuple(p): e for p, e in zip(prompts, examples, strict=True)}

    def judge_step(prompt: list[int], generated: list[int]) -> bool:
        return regret(by_prompt[tuple(prompt)], prompt, generated)

    return judge_step


def evaluate_model(
    model, tokenizer, roles: Roles, data: DataConfig, cfg: EvalConfig, progress: bool = True, regret=None
):
    """(summary per split, one record per problem) for `model` on the test splits of `data`; with a `regret`
    detector, `regret(example, prompt, generated)`, decoding retries upon regret (`pretrain.decode.decode_with_regret`)."""
    splits = cfg.splits or [s for s in data.splits() if s != "train"]
    summary, records = {}, []
    for split in splits:
        if split not in data.splits():
            raise ValueError(f"eval.splits: {split!r} is not a split of data {data.name!r} ({list(data.splits())})")
        n = cfg.n or data.splits()[split]
        examples = [make_example(data, split, i) for i in range(n)]
        prompts = [prompt_ids(tokenizer, roles, e["prompt"]) for e in examples]
        bar = tqdm(total=n, desc=f"{split} ({cfg.name})", unit="problem", disable=not progress)
        triggers = Triggers.of(tokenizer) if regret is not None else None
        gens = generate(model, prompts, roles, cfg.decode, bar, _per_example(regret, examples, prompts), triggers)
        bar.close()
        rows = []
        for e, g in zip(examples, gens, strict=True):
            solution, answer = split_generation(tokenizer, g, roles)
            rows.append(
                {
                    "split": split,
                    "index": e["index"],
                    "op": e["op"],
                    "prompt": e["prompt"],
                    "problem": e["problem"],
                    "question": e["question"],
                    "answer": e["answer"],
                    "reference_solution": e["solution"],
                    "generated_solution": solution,
                    "generated_answer": answer,
                    "generated_tokens": len(g),
                    "finished": bool(g) and g[-1] == roles.end,
                    **judge(e, solution, answer),
                }
            )
        column = DataConfig.column(split)
        summary[split] = {"column": f"op<={data.max_op}" if column == "id" else column, **summarize(rows)}
        records += rows
    return summary, records


def markdown(summary: dict[str, dict], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        "| split | column | n | accuracy (95% CI) | strict | answer only | BACK / correct | "
        "BACK / wrong | unnecessary ops / correct |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]

    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    def num(x):
        return "-" if x is None else f"{x:.2f}"

    for split, s in summary.items():
        lo, hi = s["accuracy_ci95"]
        lines.append(
            f"| {split} | {s['column']} | {s['n']} | {pct(s['accuracy'])} ({pct(lo)}-{pct(hi)}) | "
            f"{pct(s['strict_accuracy'])} | {pct(s['answer_accuracy'])} | {num(s['back_per_correct'])} | "
            f"{num(s['back_per_wrong'])} | {num(s['unnecessary_ops_per_correct'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_accuracy(summary: dict[str, dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((int(s["column"]), s) for s in summary.values() if s["n"] and s["column"].isdigit())
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ops = [op for op, _ in rows]
    acc = [100 * s["accuracy"] for _, s in rows]
    err = [
        [100 * (s["accuracy"] - s["accuracy_ci95"][0]) for _, s in rows],
        [100 * (s["accuracy_ci95"][1] - s["accuracy"]) for _, s in rows],
    ]
    ax.errorbar(ops, acc, yerr=err, marker="o", capsize=3)
    others = [
        f"{s['column']}: {100 * s['accuracy']:.1f}%" for s in summary.values() if s["n"] and not s["column"].isdigit()
    ]
    ax.set(
        xlabel="op (operations needed)" + (f"   [{', '.join(others)}]" if others else ""),
        ylabel="accuracy (%)",
        ylim=(0, 101),
        title=title,
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def write_report(out_dir: Path, summary: dict, records: list[dict], meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(out_dir / "results.json") as f:
        json.dump({**meta, "splits": summary}, f, indent=2)
        f.write("\n")
    with atomic_open(out_dir / "results.md") as f:
        f.write(markdown(summary, meta.get("title", "evaluation")))
    write_jsonl(out_dir / "generations.jsonl", records)
    plot_accuracy(summary, out_dir / "accuracy.png", meta.get("title", ""))


def load_checkpoint(checkpoint: str | Path, device: str = "auto", dtype: str = "auto"):
    """(model in eval mode, tokenizer, the training run's config or None) of a checkpoint (a save_pretrained folder,
    or a LoRA adapter, merged into its base model)."""
    from pretrain.checkpoint import load_model, run_config
    from pretrain.tokenizer import load_tokenizer

    path = Path(checkpoint)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("eval.device=cuda but no GPU is visible")
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    torch_dtype = torch.bfloat16 if dtype == "bf16" or (dtype == "auto" and dev.type == "cuda") else torch.float32
    model = load_model(path, dtype=torch_dtype).to(dev).eval()
    return model, load_tokenizer(path), run_config(path)


def default_out_dir(checkpoint: Path, name: str) -> Path:
    checkpoint = Path(checkpoint)
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "eval" / checkpoint.name / name
    return checkpoint / "eval" / name


def checkpoint_data(data_override, run_config, checkpoint):
    """The test data: `data=<preset>` if given, else the data the checkpoint was trained on."""
    data_cfg = data_override or (run_config.get("data") if run_config is not None else None)
    if data_cfg is None:
        raise ValueError(f"{checkpoint} has no training config: give the test data with data=<preset>")
    return data_cfg


def checkpoint_roles(tokenizer, run_config, checkpoint) -> Roles:
    """The token ids playing each role for `checkpoint`: its run's `tokenizer.roles` (strings or ids), so a model
    trained with other role tokens (e.g. GPT-2's ids) is evaluated, probed and decoded with its own."""
    from omegaconf import OmegaConf

    roles = OmegaConf.select(run_config, "tokenizer.roles") if run_config is not None else None
    if roles is None:
        raise ValueError(
            f"{checkpoint} has no run config with tokenizer.roles (<run>/config.yaml beside <run>/checkpoints/, or "
            "the checkpoint's training state): the tokens playing each role are unknown"
        )
    return resolve_roles(tokenizer, OmegaConf.to_container(roles, resolve=True))


def report(checkpoint: str, ev: EvalConfig, data: DataConfig, summary: dict, records: list[dict], **extra) -> Path:
    """Write and print the evaluation of `checkpoint` under its run (or ev.out_dir); returns the folder."""
    out = Path(ev.out_dir) if ev.out_dir else default_out_dir(Path(checkpoint), ev.name)
    title = f"{Path(checkpoint).parent.parent.name or checkpoint} / {ev.name}"
    meta = {
        "title": title,
        "checkpoint": str(checkpoint),
        "eval": asdict(ev),
        "data": asdict(data),
        **extra,
    }
    write_report(out, summary, records, meta)
    print(markdown(summary, title))
    print(f"wrote {out}/results.json, results.md, accuracy.png, generations.jsonl")
    return out


def main() -> None:
    from omegaconf import DictConfig, OmegaConf

    from pretrain.config import run_command, to_dataclass

    def run(cfg: DictConfig) -> None:
        ev = to_dataclass(EvalConfig, cfg.eval)
        model, tokenizer, run_config = load_checkpoint(cfg.checkpoint, ev.device, ev.dtype)
        data = to_dataclass(DataConfig, checkpoint_data(cfg.get("data"), run_config, cfg.checkpoint))
        roles = checkpoint_roles(tokenizer, run_config, cfg.checkpoint)
        summary, records = evaluate_model(model, tokenizer, roles, data, ev)
        run_info = OmegaConf.to_container(run_config, resolve=True) if run_config is not None else None
        report(cfg.checkpoint, ev, data, summary, records, run=run_info)

    run_command("evaluate", run, errors=(ValueError, FileNotFoundError, RuntimeError))


if __name__ == "__main__":
    main()
