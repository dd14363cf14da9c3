"""Two-attempt self-correction from a pretrained checkpoint: SCoRe's two-stage RL, or its SFT baselines.

    python -m pretrain.selfcorrect checkpoint=runs/<run>/checkpoints/step_0001000 rl=smoke
    python -m pretrain.selfcorrect checkpoint=... rl=laptop rl.stages=[I,II,I,II]      # interleaved stages
    python -m pretrain.selfcorrect checkpoint=... rl=laptop rl.method=star             # the SFT baselines
    python -m pretrain.selfcorrect checkpoint=... rl=laptop rl.resume=true             # continue a stopped run

A step: sample k pairs of attempts (y1, then y2 after <retry>) for each of `prompts_per_step` training problems,
score each attempt with the verifier, and take one optimizer step. method=score: REINFORCE with a leave-one-out
baseline, credit per attempt, exact KL to the frozen checkpoint (`pretrain.score.stage_terms` says which stage puts
what where). method=star: SFT on the second attempts of wrong-then-right pairs; method=pair_sft: SFT on a wrong
first attempt followed by a right first attempt of the same problem (both from samples of the frozen base model, as
in the paper, on fresh problems every step).
Every `eval_every` steps the test splits are decoded greedily, twice, and judged (`evaluate_two_attempts`).

The run directory (runs/<run_name>) holds config.yaml, environment.json, metrics.jsonl (one row per step, and the
evaluations), final.json, eval.md (before and after), generations/step_<N>.jsonl (both attempts of every evaluated
problem with their verdicts) and checkpoints/ (save_pretrained folders plus optimizer and sampler states).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from igsm.dataset import DataConfig, make_example
from igsm.io import atomic_open, write_jsonl
from pretrain.config import store_schema
from pretrain.decode import DecodeConfig, generate, split_generation
from pretrain.score import (
    STAGES,
    attempt_reward,
    pair_sft_pairs,
    policy_loss,
    rollout,
    sft_batch,
    sft_loss,
    shaped_second_reward,
    stage_terms,
    star_pairs,
    two_attempt_batch,
    two_attempt_metrics,
)
from pretrain.tokenizer import Roles, prompt_ids, second_prompt

METHODS = ("score", "star", "pair_sft")


@dataclass
class RLConfig:
    """Self-correction training (conf/rl/). Defaults: SCoRe's Table 8 (alpha 10, beta1 0.01, beta2 0.1, temperature
    1.0); stages I then II, `steps_per_stage` optimizer steps each (list them again to interleave)."""

    name: str = "default"
    method: str = "score"  # score (RL) | star | pair_sft (the SFT baselines)
    stages: list[str] = field(default_factory=lambda: ["I", "II"])  # score: in order, steps_per_stage each
    steps_per_stage: int = 100  # optimizer steps per stage (the SFT baselines: len(stages) * steps_per_stage)
    prompts_per_step: int = 16  # training problems per step
    k: int = 4  # samples per problem (the leave-one-out baseline needs >= 2)
    alpha: float = 10.0  # Stage II's bonus on y2: r2 + alpha (r2 - r1)
    beta1: float = 0.01  # KL to the base model on both attempts (Stage I: on y2 only)
    beta2: float = 0.1  # Stage I's strong KL on y1
    temperature: float = 1.0  # sampling temperature of the rollouts
    max_new_tokens: int = 512  # per attempt; an attempt cut off earns 0
    lr: float = 1e-5
    grad_clip: float = 1.0
    micro_batch_size: int = 16  # sequences per forward pass (the loss adds up over them)
    decode_batch_size: int = 128  # sequences decoded together
    eval_every: int = 50  # steps between greedy two-attempt evaluations (and one at the start and the end)
    eval_n: int = 64  # problems per test split in those evaluations
    eval_splits: list[str] | None = None  # default: every test split of the data
    ckpt_every: int = 50
    keep_last: int = 2
    resume: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"rl.method must be one of {METHODS}, got {self.method!r}")
        bad = [s for s in self.stages if s not in STAGES]
        if bad or not self.stages:
            raise ValueError(f"rl.stages must be a non-empty list of {STAGES}, got {self.stages}")
        if self.k < 2:
            raise ValueError(
                f"rl.k must be >= 2 (the leave-one-out baseline and Pair-SFT need two samples), got {self.k}"
            )
        for key in ("alpha", "beta1", "beta2", "grad_clip"):
            if getattr(self, key) < 0:
                raise ValueError(f"rl.{key} must be >= 0, got {getattr(self, key)}")
        for key in ("steps_per_stage", "prompts_per_step", "max_new_tokens", "micro_batch_size", "decode_batch_size"):
            if getattr(self, key) < 1:
                raise ValueError(f"rl.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("eval_every", "eval_n", "ckpt_every", "keep_last"):
            if getattr(self, key) < 1:
                raise ValueError(f"rl.{key} must be >= 1, got {getattr(self, key)}")
        if self.temperature <= 0 or self.lr <= 0:
            raise ValueError(f"rl.temperature and rl.lr must be > 0, got {self.temperature}, {self.lr}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"rl.device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def total_steps(self) -> int:
        return len(self.stages) * self.steps_per_stage

    def stage(self, step: int) -> str:
        """The stage of optimizer step `step` (0-based)."""
        return self.stages[step // self.steps_per_stage]

    def sampling(self) -> DecodeConfig:
        return DecodeConfig(
            mode="sample",
            temperature=self.temperature,
            batch_size=self.decode_batch_size,
            max_new_tokens=self.max_new_tokens,
        )


store_schema("selfcorrect", {"rl": RLConfig})  # conf/selfcorrect.yaml; checkpoint and data are given as in evaluate


def check_format(tokenizer, roles: Roles, checkpoint) -> None:
    """Fail when the checkpoint's tokenizer or roles lack the two-attempt format's <retry> token."""
    if roles.retry is None:
        raise ValueError(
            f"checkpoint {checkpoint} has no 'retry' role in its run config's tokenizer.roles: it was trained "
            "without the two-attempt format; pretrain a model with a tokenizer that has <|retry|> (and data.two_attempts > 0)"
        )
    if not 0 <= roles.retry < len(tokenizer):
        raise ValueError(f"checkpoint {checkpoint}: tokenizer.roles.retry = {roles.retry} is outside its vocabulary")


def verifier_rewards(tokenizer, roles: Roles, examples: list[dict]):
    """The `reward_fn` of a step on `examples`: the verifier's (r1, r2) of problem i's attempts (no y2: 0)."""

    def reward(i: int, y1: list[int], y2: list[int]) -> tuple[float, float]:
        r2 = attempt_reward(tokenizer, roles, examples[i], y2) if y2 else 0.0
        return attempt_reward(tokenizer, roles, examples[i], y1), r2

    return reward


# ---- one step ------------------------------------------------------------------------------------------------------
def rl_step(policy, ref, optimizer, prompts, reward_fn, stage: str, cfg: RLConfig, roles: Roles, generator) -> dict:
    """One SCoRe step on `prompts` (token ids): rollout, rewards `reward_fn(problem, y1, y2) -> (r1, r2)`, per-attempt
    advantages and KL weights of `stage`, one optimizer step. Returns the step's figures."""
    policy.eval()
    r = rollout(policy, prompts, roles, cfg.k, cfg.sampling(), generator)
    rewards = [reward_fn(i // cfg.k, y1, y2) for i, (y1, y2) in enumerate(zip(r.first, r.second, strict=True))]
    device = next(policy.parameters()).device
    r1 = torch.tensor([a for a, _ in rewards], dtype=torch.float32, device=device).view(-1, cfg.k)
    r2 = torch.tensor([b for _, b in rewards], dtype=torch.float32, device=device).view(-1, cfg.k)
    adv1, adv2, kl1, kl2 = stage_terms(stage, r1, r2, cfg.alpha, cfg.beta1, cfg.beta2)
    policy.train()
    totals = {"kl1_sum": 0.0, "kl2_sum": 0.0, "tokens1": 0.0, "tokens2": 0.0}
    n = len(r.prompts)
    for s in range(0, n, cfg.micro_batch_size):
        part = slice(s, s + cfg.micro_batch_size)
        sub = type(r)(r.k, r.prompts[part], r.first[part], r.second[part])
        loss, stats = policy_loss(
            policy, ref, two_attempt_batch(roles, sub, device), adv1[part], adv2[part], kl1, kl2, n
        )
        loss.backward()
        totals = {key: totals[key] + stats[key] for key in totals}
    grad_norm = _step(policy, optimizer, cfg)
    return {
        "stage": stage,
        "reward": objective(stage, r1, r2, cfg.alpha),
        "acc_t1": r1.mean().item(),  # of the sampled attempts
        "acc_t2": r2.mean().item(),
        "kl_t1": totals["kl1_sum"] / max(totals["tokens1"], 1),
        "kl_t2": totals["kl2_sum"] / max(totals["tokens2"], 1),
        "tokens_t1": totals["tokens1"] / n,
        "tokens_t2": totals["tokens2"] / n,
        "tokens_prompt": sum(len(p) for p in r.prompts) / n,  # with y1 and y2: the tokens a step trains on
        "grad_norm": grad_norm,
    }


def sft_step(policy, ref, optimizer, prompts, reward_fn, cfg: RLConfig, roles: Roles, generator) -> dict:
    """One step of a SFT baseline: sample from the frozen base model `ref` (k per problem), keep STaR's or
    Pair-SFT's pairs, and take one cross-entropy step on their second attempts (none kept: no step)."""
    r = rollout(ref, prompts, roles, cfg.k, cfg.sampling(), generator, second=cfg.method == "star")
    second = r.second or [[] for _ in r.first]
    rewards = [reward_fn(i // cfg.k, y1, y2) for i, (y1, y2) in enumerate(zip(r.first, second, strict=True))]
    r1 = [a for a, _ in rewards]
    r2 = [b for _, b in rewards]
    pairs = star_pairs(r, r1, r2) if cfg.method == "star" else pair_sft_pairs(r, r1)
    device = next(policy.parameters()).device
    policy.train()
    n_tokens = sum(len(y) for _, y in pairs)
    loss_sum = 0.0
    for s in range(0, len(pairs), cfg.micro_batch_size):
        loss = sft_loss(policy, sft_batch(roles, pairs[s : s + cfg.micro_batch_size], device), n_tokens)
        loss.backward()
        loss_sum += loss.item()
    grad_norm = _step(policy, optimizer, cfg) if pairs else 0.0
    return {
        "stage": cfg.method,
        "acc_t1": sum(r1) / len(r1),
        "acc_t2": sum(r2) / len(r2) if cfg.method == "star" else None,
        "pairs": len(pairs),
        "sft_loss": loss_sum if pairs else None,
        "grad_norm": grad_norm,
    }


def objective(stage: str, r1: torch.Tensor, r2: torch.Tensor, alpha: float) -> float:
    """The mean reward a stage maximises per sample: r2 (Stage I), r1 + r2 + alpha (r2 - r1) (Stage II)."""
    if stage == "I":
        return r2.mean().item()
    return (r1 + shaped_second_reward(r1, r2, alpha)).mean().item()


def _step(policy, optimizer, cfg: RLConfig) -> float:
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(grad_norm)


# ---- evaluation ----------------------------------------------------------------------------------------------------
def evaluate_two_attempts(
    model, tokenizer, roles: Roles, data: DataConfig, splits: list[str] | None, n: int, decode: DecodeConfig
) -> tuple[dict[str, dict], list[dict]]:
    """(per split: `two_attempt_metrics`, records): each test problem decoded with `decode` (greedy), then again
    after <retry>, both attempts judged by the verifier."""
    from pretrain.evaluate import judge

    splits = splits or [s for s in data.splits() if s != "train"]
    summary, records = {}, []
    was_training = model.training
    model.eval()
    for split in splits:
        if split not in data.splits():
            raise ValueError(f"rl.eval_splits: {split!r} is not a split of data {data.name!r} ({list(data.splits())})")
        examples = [make_example(data, split, i) for i in range(min(n, data.splits()[split]))]
        prompts = [prompt_ids(tokenizer, roles, e["prompt"]) for e in examples]
        first = generate(model, prompts, roles, decode)
        second = generate(
            model, [second_prompt(roles, p + y) for p, y in zip(prompts, first, strict=True)], roles, decode
        )
        rows = []
        for e, y1, y2 in zip(examples, first, second, strict=True):
            row = {"split": split, "index": e["index"], "op": e["op"]}
            for t, ids in (("1", y1), ("2", y2)):
                solution, answer = split_generation(tokenizer, ids, roles)
                verdict = judge(e, solution, answer)
                finished = bool(ids) and ids[-1] == roles.end
                row[f"solution{t}"], row[f"answer{t}"] = solution, answer
                row[f"correct{t}"] = bool(verdict["correct"]) and finished and answer is not None
            row["first"] = f"{row['solution1']} = {row['answer1']}"
            row["second"] = f"{row['solution2']} = {row['answer2']}"
            rows.append(row)
        summary[split] = {"column": DataConfig.column(split), **two_attempt_metrics(rows)}
        records += rows
    model.train(was_training)
    return summary, records


def format_eval(summary: dict[str, dict]) -> str:
    return " ; ".join(
        f"{split}: Acc@t1 {s['acc_t1']:.3f} Acc@t2 {s['acc_t2']:.3f} delta {s['delta']:+.3f} "
        f"i->c {s['delta_i_to_c']:.3f} c->i {s['delta_c_to_i']:.3f} unchanged {s['unchanged']:.2f}"
        for split, s in summary.items()
    )


def markdown(summary: dict[str, dict], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        "| split | n | Acc@t1 | Acc@t2 | Δ(t1,t2) | Δ i→c | Δ c→i | unchanged | edit distance |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for split, s in summary.items():
        lines.append(
            f"| {split} | {s['n']} | {100 * s['acc_t1']:.1f} | {100 * s['acc_t2']:.1f} | {100 * s['delta']:+.1f} | "
            f"{100 * s['delta_i_to_c']:.1f} | {100 * s['delta_c_to_i']:.1f} | {100 * s['unchanged']:.1f} | "
            f"{s['edit_distance']:.3f} |"
        )
    return "\n".join(lines) + "\n"


# ---- the run -------------------------------------------------------------------------------------------------------
def train(cfg: RLConfig, checkpoint: str | Path, data_override, run_dir: Path) -> dict:
    """Self-correction training from `checkpoint` in `run_dir` (resuming from its latest checkpoint if asked);
    returns the final figures (also in final.json). The run's config.yaml is the base run's with this run's data,
    `rl` and `base_checkpoint`, so that `pretrain.evaluate` reads its checkpoints like any run's."""
    import transformers
    from omegaconf import OmegaConf
    from transformers import AutoModelForCausalLM

    from pretrain.checkpoint import latest_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state
    from pretrain.config import to_dataclass
    from pretrain.evaluate import checkpoint_data, checkpoint_roles, load_checkpoint
    from pretrain.runlog import environment

    transformers.utils.logging.disable_progress_bar()
    run_dir = Path(run_dir)
    device_name = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    ref, tokenizer, run_config = load_checkpoint(checkpoint, device_name, "fp32")
    for p in ref.parameters():
        p.requires_grad_(False)
    data = to_dataclass(DataConfig, checkpoint_data(data_override, run_config, checkpoint))
    roles = checkpoint_roles(tokenizer, run_config, checkpoint)
    check_format(tokenizer, roles, checkpoint)
    own = {"data": asdict(data), "rl": asdict(cfg), "base_checkpoint": str(checkpoint)}
    resolved_config = OmegaConf.to_yaml(OmegaConf.merge(run_config, own), resolve=True)
    found = latest_checkpoint(run_dir)
    if found and not cfg.resume:
        raise FileExistsError(f"{run_dir} already has checkpoints: add rl.resume=true, or choose another run_name")
    device = ref.device
    import pretrain.model  # noqa: F401  registers the canon model type, should the base be one

    policy = AutoModelForCausalLM.from_pretrained(found if found else checkpoint, dtype=torch.float32).to(device)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    step = 0
    if found:
        state = load_state(found)
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["sampler"].to(generator.get_state().device))
        set_rng_state(state["rng"])
        step = state["step"]

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(resolved_config)
    (run_dir / "environment.json").write_text(json.dumps(environment(device, 1), indent=2) + "\n")
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():  # drop what was logged after the checkpoint resumed from
        keep = [r for r in metrics.read_text().splitlines() if r and json.loads(r)["step"] <= step]
        metrics.write_text("".join(r + "\n" for r in keep))
    greedy = DecodeConfig(batch_size=cfg.decode_batch_size, max_new_tokens=cfg.max_new_tokens)

    def log(row: dict) -> None:
        with metrics.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def evaluate(at: int) -> dict:
        summary, records = evaluate_two_attempts(policy, tokenizer, roles, data, cfg.eval_splits, cfg.eval_n, greedy)
        log({"step": at, "eval": summary})
        write_jsonl(run_dir / "generations" / f"step_{at:07d}.jsonl", records)
        print(f"eval step {at} (greedy, {cfg.eval_n} per split) | {format_eval(summary)}", flush=True)
        return summary

    print(
        f"self-correction ({cfg.method}) from {checkpoint}: {cfg.total_steps} steps of {cfg.prompts_per_step} problems "
        f"x {cfg.k} samples on {device}" + (f", resuming at step {step}" if found else ""),
        flush=True,
    )
    if step == 0:
        evaluate(0)
    t0 = time.perf_counter()
    row: dict = {}
    while step < cfg.total_steps:
        examples = [
            make_example(data, "train", cfg.seed * 1_000_003 + step * cfg.prompts_per_step + j)
            for j in range(cfg.prompts_per_step)
        ]
        prompts = [prompt_ids(tokenizer, roles, e["prompt"]) for e in examples]

        reward = verifier_rewards(tokenizer, roles, examples)
        if cfg.method == "score":
            row = rl_step(policy, ref, optimizer, prompts, reward, cfg.stage(step), cfg, roles, generator)
        else:
            row = sft_step(policy, ref, optimizer, prompts, reward, cfg, roles, generator)
        step += 1
        row = {"step": step, **row, "elapsed_s": time.perf_counter() - t0}
        log(row)
        print(progress_line(row, cfg.total_steps), flush=True)
        if step % cfg.eval_every == 0 or step == cfg.total_steps:
            evaluate(step)
        if step % cfg.ckpt_every == 0 or step == cfg.total_steps:
            state = {"optimizer": optimizer.state_dict(), "sampler": generator.get_state(), "rng": rng_state()}
            save_checkpoint(run_dir, step, policy, tokenizer, {**state, "config": resolved_config}, cfg.keep_last)
    final_eval = [json.loads(r) for r in metrics.read_text().splitlines() if r and "eval" in json.loads(r)]
    final = {
        **row,
        "steps": step,
        "rl": asdict(cfg),
        "base_checkpoint": str(checkpoint),
        "checkpoint": str(latest_checkpoint(run_dir)),
        "eval": final_eval[-1]["eval"] if final_eval else None,
        "eval_start": final_eval[0]["eval"] if final_eval else None,
    }
    with atomic_open(run_dir / "final.json") as f:
        json.dump(final, f, indent=2)
        f.write("\n")
    if final["eval"]:
        (run_dir / "eval.md").write_text(
            markdown(final["eval_start"], f"{checkpoint} (before)")
            + "\n"
            + markdown(final["eval"], f"{run_dir.name} (after)")
        )
    return final


def progress_line(row: dict, total: int) -> str:
    def num(key: str, fmt: str) -> str:
        return "-" if row.get(key) is None else format(row[key], fmt)

    line = f"step {row['step']}/{total} [{row['stage']}]"
    if "kl_t1" in row:
        line += f" | reward {row['reward']:.3f} | KL t1 {num('kl_t1', '.2e')} t2 {num('kl_t2', '.2e')}"
    else:
        line += f" | pairs {row['pairs']} | SFT loss {num('sft_loss', '.4f')}"
    line += f" | sampled Acc@t1 {num('acc_t1', '.3f')} Acc@t2 {num('acc_t2', '.3f')}"
    return line + f" | grad {row['grad_norm']:.2f} | {row['elapsed_s']:.0f}s"


def main() -> None:
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    from pretrain.config import run_command, to_dataclass

    def selfcorrect(cfg: DictConfig) -> None:
        rl = to_dataclass(RLConfig, cfg.rl)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        train(rl, cfg.checkpoint, cfg.get("data"), run_dir)

    run_command("selfcorrect", selfcorrect, errors=(ValueError, FileNotFoundError, FileExistsError, RuntimeError))


if __name__ == "__main__":
    main()
