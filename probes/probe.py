"""Probing a checkpoint (Part 2.1 §4-§6, Part 2.2 §3): linear probes per layer, V-probes, controls, regret.

    python -m probes.probe checkpoint=runs/mini_mini_none0.0_s0/checkpoints/step_0004000
    python -m probes.probe checkpoint=... probe.generations=runs/.../eval/step_0004000/greedy/generations.jsonl

For each task: a linear probe on every layer's state at the query's [END], trained on problems of the train template
bins and scored on the test bins (positives and negatives apart), the best layer chosen on a held-out slice of the
train-bin problems; the same probes on a randomly initialised copy of the model; the majority answer; and a V-probe
(rank-8 embedding update + linear head on the last layer). The regret probe of the best layer is saved as the
detector that retry-upon-regret decoding (`probes.rur`) uses.
Writes results.json, results.md and layers.png to <run>/probes/<checkpoint>/<probe.name>/.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import joblib
import numpy as np
import torch

from igsm.dataset import DataConfig, MistakeConfig
from igsm.io import atomic_open
from pretrain.adapters import AdapterSpec
from pretrain.config import store_schema
from probes.adapter_probe import DETECTOR_DIR, AdapterDetector, train_adapter_probe
from probes.examples import DEP_POSITIONS, TASKS, ProbeSet, build_probe_set
from probes.linear import fit, majority, probe_layers, score
from probes.regret import ProbeDetector, regret_report
from probes.states import Markers, end_states, labels_of, probe_inputs
from probes.vprobe import predict, train_vprobe

REGRET_FILE = "regret_probe.joblib"


@dataclass
class ProbeConfig:
    """The papers' probing (Part 2.1 §4, App. E-F; Part 2.2 §3), scaled to one GPU (conf/probe/)."""

    name: str = "default"  # also the output folder: <run>/probes/<checkpoint>/<name>
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    n_problems: int = 2000  # problems; their template bins split them into probe training and test
    per_task: int = 10  # (position, parameter) choices per problem and task (the papers)
    # where dep(A, B) is read: statement_end, the statement's last "." (Part 2.1 §4.1 fn. 16: before the question
    # in pq), or prompt_end, the <begin_solution> token after the whole prompt (where nece is read)
    dep_position: str = "statement_end"
    batch_size: int = 32
    linear_c: float = 1.0  # inverse regularisation of the linear probes
    random_model: bool = True  # the control: the same probes on a randomly initialised model
    vprobe: bool = True  # rank-8 embedding update + linear head on the last layer
    vprobe_steps: int = 2000  # the papers: 100,000 steps at batch 256
    vprobe_batch: int = 64
    vprobe_lr: float = 2e-3
    vprobe_rank: int = 8
    # the finetuned regret detector (P22 §3, detector v2): a LoRA adapter of this name (pretrain.adapters; the
    # paper's: q/v rank 2, embedding rank 32) and a linear head, trained on the regret task with the V-probe's steps,
    # batch and lr; saved as a detector for probes.rur (detector=adapter); None: not trained
    detector_adapter: str | None = "qv2e32"
    # text for the regret task: real mistakes inserted before steps
    regret_mistakes: MistakeConfig = field(default_factory=lambda: MistakeConfig("retry", 0.5))
    generations: str | None = None  # generations.jsonl from pretrain.evaluate, for the regret report
    seed: int = 0
    device: str = "auto"
    out_dir: str | None = None  # default: <run>/probes/<checkpoint>/<name>

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad:
            raise ValueError(f"probe.tasks: unknown {bad}; choose from {list(TASKS)}")
        if self.dep_position not in DEP_POSITIONS:
            raise ValueError(f"probe.dep_position must be one of {DEP_POSITIONS}, got {self.dep_position!r}")
        if self.n_problems < 2:
            raise ValueError(f"probe.n_problems must be >= 2, got {self.n_problems}")
        if self.detector_adapter is not None:
            AdapterSpec.parse(self.detector_adapter, "probe.detector_adapter")
        if "regret" in self.tasks and self.regret_mistakes.kind == "none":
            raise ValueError("the regret task needs probe.regret_mistakes with a mistake kind (e.g. retry)")


store_schema("probe", {"probe": ProbeConfig})


def random_copy(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """The same architecture, freshly initialised: the papers' random-model control."""
    torch.manual_seed(seed)
    fresh = type(model)(model.config)
    return fresh.to(next(model.parameters()).device).eval()


def _split(probe_set: ProbeSet) -> tuple[list[int], list[int]]:
    """Indices of the examples from train-bin and from test-bin problems."""
    tr = [i for i, e in enumerate(probe_set.examples) if e.split == "train"]
    te = [i for i, e in enumerate(probe_set.examples) if e.split == "test"]
    return tr, te


def per_op(pred: np.ndarray, y: np.ndarray, ops: list[int], task: str) -> dict[int, dict]:
    return {op: score(pred[np.array(ops) == op], y[np.array(ops) == op], task) for op in sorted(set(ops))}


def run_probes(model, tokenizer, roles, data: DataConfig, cfg: ProbeConfig, log=print) -> tuple[dict, dict]:
    """(results per task, fitted objects: the regret classifier and its layer)."""
    markers = Markers.for_model(model, len(tokenizer))
    clean = replace(data, mistakes=MistakeConfig())
    control = random_copy(model, cfg.seed) if cfg.random_model else None
    results, fitted = {}, {}
    for task in cfg.tasks:
        source = replace(data, mistakes=cfg.regret_mistakes) if task == "regret" else clean
        pset = build_probe_set(
            source, tokenizer, roles, cfg.n_problems, (task,), cfg.per_task, cfg.seed, cfg.dep_position
        )
        inputs = probe_inputs(pset, tokenizer, markers)
        y = labels_of(pset.examples)
        tr, te = _split(pset)
        if not tr or not te:
            raise ValueError(f"task {task}: {len(tr)} training and {len(te)} test examples; raise probe.n_problems")
        log(f"{task}: {len(tr)} training / {len(te)} test examples, {np.mean(y[te] == 1):.1%} positive")
        groups = [e.seq for e in pset.examples]  # the problem of each example
        states = end_states(model, inputs, cfg.batch_size)
        layers, best, validation = probe_layers(states, y, tr, te, groups, task, cfg.linear_c, cfg.seed)
        probe = fit(states[tr, best], y[tr], cfg.linear_c) if len(np.unique(y[tr])) > 1 else None
        ops = [pset.examples[i].op for i in te]
        res = {
            "n_train": len(tr),
            "n_test": len(te),
            "majority": majority(y[tr], y[te], task),
            "linear": layers,
            "best_layer": best,  # chosen on a validation slice of the train-bin problems
            "linear_validation": validation,
            "linear_by_op": per_op(probe.predict(states[te, best]), y[te], ops, task) if probe is not None else None,
        }
        del states
        if control is not None:
            cs = end_states(control, inputs, cfg.batch_size)
            rnd, res["random_model_best_layer"], _ = probe_layers(cs, y, tr, te, groups, task, cfg.linear_c, cfg.seed)
            res["random_model_linear"] = rnd
            del cs
        if cfg.vprobe:
            train_in, test_in = [inputs[i] for i in tr], [inputs[i] for i in te]
            for key, m in (("vprobe", model), ("random_model_vprobe", control)):
                if m is None:
                    continue
                vp = train_vprobe(
                    m,
                    train_in,
                    y[tr],
                    TASKS[task],
                    cfg.vprobe_steps,
                    cfg.vprobe_batch,
                    cfg.vprobe_lr,
                    cfg.vprobe_rank,
                    cfg.seed,
                    desc=f"{task}: {key}",
                )
                res[key] = score(predict(vp, test_in), y[te], task)
                vp.remove()
            for p in model.parameters():
                p.requires_grad_(True)
        if task == "regret" and cfg.detector_adapter is not None:
            adapter = train_adapter_probe(
                model,
                [inputs[i] for i in tr],
                y[tr],
                TASKS[task],
                AdapterSpec.parse(cfg.detector_adapter),
                cfg.vprobe_steps,
                cfg.vprobe_batch,
                cfg.vprobe_lr,
                seed=cfg.seed,
                desc=f"{task}: adapter {cfg.detector_adapter}",
            )
            res["adapter"] = {
                "name": cfg.detector_adapter,
                **score(predict(adapter, [inputs[i] for i in te]), y[te], task),
            }
            fitted["adapter"] = adapter
        results[task] = res
        if task == "regret" and probe is not None:
            fitted.update(classifier=probe, layer=best, markers=asdict(markers))
        log(
            f"{task}: best layer {best}, accuracy {layers[best]['accuracy']:.3f} (majority "
            f"{res['majority']['accuracy']:.3f})" + (f", V-probe {res['vprobe']['accuracy']:.3f}" if cfg.vprobe else "")
        )
    return results, fitted


def markdown(results: dict, title: str) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.1f}"

    lines = [
        f"# {title}",
        "",
        "Test-bin accuracy (%); for binary tasks: overall / on positives / on negatives. The best layer is chosen on a "
        "validation slice of the train-bin problems.",
        "",
        "| task | majority | linear, best layer | linear, random model | V-probe | V-probe, random model | "
        "finetuned detector |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, r in results.items():
        best = r["linear"][r["best_layer"]]
        rnd = r["random_model_linear"][r["random_model_best_layer"]] if r.get("random_model_linear") else None

        def cell(s, task=task):
            if s is None:
                return "-"
            a, b = ("known", "unknown") if task == "value" else ("positive", "negative")
            return f"{pct(s['accuracy'])} / {pct(s.get(f'{a}_accuracy'))} / {pct(s.get(f'{b}_accuracy'))}"

        lines.append(
            f"| {task} | {cell(r['majority'])} | {cell(best)} (layer {r['best_layer']}) | {cell(rnd)} | "
            f"{cell(r.get('vprobe'))} | {cell(r.get('random_model_vprobe'))} | {cell(r.get('adapter'))} |"
        )
    return "\n".join(lines) + "\n"


def plot_layers(results: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for task, r in results.items():
        layers = [s["layer"] for s in r["linear"]]
        (line,) = ax.plot(layers, [100 * s["accuracy"] for s in r["linear"]], marker="o", label=task)
        if r.get("random_model_linear"):
            ax.plot(layers, [100 * s["accuracy"] for s in r["random_model_linear"]], ls=":", color=line.get_color())
    ax.set(xlabel="layer (0 = embeddings)", ylabel="test accuracy (%)", title=f"{title}\n(dotted: random model)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def load_detector(model, tokenizer, probe_dir: str | Path) -> ProbeDetector:
    """The regret probe saved by `probes.probe`, as a detector for retry-upon-regret decoding."""
    saved = joblib.load(Path(probe_dir) / REGRET_FILE)
    return ProbeDetector(model, tokenizer, Markers(**saved["markers"]), saved["classifier"], saved["layer"])


def main() -> None:
    from omegaconf import DictConfig

    from pretrain.config import run_command, to_dataclass
    from pretrain.evaluate import checkpoint_data, checkpoint_roles, load_checkpoint

    def run(cfg: DictConfig) -> None:
        pc = to_dataclass(ProbeConfig, cfg.probe)
        model, tokenizer, run_config = load_checkpoint(cfg.checkpoint, pc.device, "fp32")
        data_cfg = checkpoint_data(cfg.get("data"), run_config, cfg.checkpoint)
        data = to_dataclass(DataConfig, data_cfg)
        roles = checkpoint_roles(tokenizer, run_config, cfg.checkpoint)
        results, fitted = run_probes(model, tokenizer, roles, data, pc, log=lambda *a: print(*a, flush=True))
        ckpt = Path(cfg.checkpoint)
        out = (
            Path(pc.out_dir)
            if pc.out_dir
            else (
                ckpt.parent.parent / "probes" / ckpt.name / pc.name
                if ckpt.parent.name == "checkpoints"
                else ckpt / "probes" / pc.name
            )
        )
        out.mkdir(parents=True, exist_ok=True)
        adapter = fitted.pop("adapter", None)
        if adapter is not None:
            adapter.save(out / DETECTOR_DIR, Markers.for_model(model, len(tokenizer)))
        if fitted:
            joblib.dump(fitted, out / REGRET_FILE)
        if pc.generations and "regret" in results:
            records = [json.loads(line) for line in Path(pc.generations).read_text().splitlines()]
            if fitted:
                detector = load_detector(model, tokenizer, out)
                results["regret"]["on_generations"] = regret_report(detector, records, tokenizer, roles)
            if adapter is not None:
                detector = AdapterDetector(adapter.eval(), tokenizer, Markers.for_model(model, len(tokenizer)))
                results["regret"]["adapter_on_generations"] = regret_report(detector, records, tokenizer, roles)
        title = f"{ckpt.parent.parent.name or ckpt} / probes {pc.name}"
        with atomic_open(out / "results.json") as f:
            json.dump(
                {
                    "checkpoint": str(ckpt),
                    "probe": asdict(pc),
                    "data": asdict(data),
                    "tasks": results,
                },
                f,
                indent=2,
            )
        with atomic_open(out / "results.md") as f:
            f.write(markdown(results, title))
        plot_layers(results, out / "layers.png", title)
        print(markdown(results, title))
        print(f"wrote {out}")

    run_command("probe", run, errors=(ValueError, FileNotFoundError, RuntimeError))


if __name__ == "__main__":
    main()
