"""Pretraining from scratch (Part 2.1 App. F; Part 2.2): one readable loop, from one GPU to many.

    python -m pretrain.train data=smoke model=smoke train=smoke                 # seconds, on a CPU
    python -m pretrain.train +experiment=mini                                   # one GPU, ~10 minutes
    torchrun --nproc_per_node=8 -m pretrain.train +experiment=med_pq            # the papers' iGSM-med run
    python -m pretrain.train -m +experiment=retry_sweep_mini                    # one run per mistake rate
    python -m pretrain.train +experiment=mini train.resume=true                 # continue a stopped run

The run directory (runs/<run_name>) holds the resolved config, the environment, metrics.jsonl, loss.png and
checkpoints/ (save_pretrained folders plus the training state). Every rank derives the same directory from the
config, so torchrun needs nothing more.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from omegaconf import MISSING

from igsm.dataset import DataConfig
from pretrain.checkpoint import latest_checkpoint, unwrap
from pretrain.config import run_command, store_schema, to_dataclass
from pretrain.distributed import all_reduce_sum, setup_distributed, teardown_distributed
from pretrain.model import ModelConfig, n_params
from pretrain.runlog import RunLog, environment
from pretrain.tokenizer import TokenizerConfig
from pretrain.trainer import StopRequest, Trainer, check_skipped, setup

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclass
class TrainConfig:
    """Optimisation and the loop (conf/train/). The defaults are the papers' iGSM-med run (Part 2.1 App. F.1):
    batch 512 x context 768, peak lr 0.002, 1,000 warmup steps then cosine to 0.01x, weight decay 0.05, AdamW
    (0.9, 0.98), fresh problems throughout; a preset gives the number of steps (med: 100,000, 39.3B tokens)."""

    seed: int = 0
    steps: int | None = None  # optimizer steps; or give `tokens`
    tokens: int | None = None  # token budget: steps = tokens / (batch_size * context), equal for every data variant
    batch_size: int = 512  # windows per optimizer step, all ranks together
    micro_batch_size: int = 32  # windows per forward pass on one rank
    context: int = 768  # window length (768 med, 1024 hard in the papers)
    lr: float = 2e-3
    min_lr_ratio: float = 0.01  # cosine decay to this fraction of lr
    warmup_steps: int = 1000
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    grad_clip: float = 1.0
    source: str = "stream"  # stream: fresh problems (papers); dataset: the saved training split, reshuffled
    # stream generators per rank: each makes about 600 med problems/s (benchmarks/results/data-cpu.txt) and one med
    # step of 512 x 768 tokens holds about 1,300 problems, so a GPU step of about a second needs several
    num_workers: int = 12
    loss_on: str = "all"  # all (papers) | solution (the prompt gets no loss)
    doc_mask: bool = False  # no attention across the examples of a window
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU | bf16 | fp32
    compile: bool | None = None  # torch.compile; None: on GPU only
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 50  # steps between console/metrics.jsonl lines
    tensorboard: bool = False  # also write the logged figures as TensorBoard scalars (pip install tensorboard)
    ckpt_every: int = 5000  # steps between checkpoints (and one at the end)
    keep_last: int = 2  # checkpoints kept
    resume: bool = False  # continue from runs/<run_name>/checkpoints/latest
    stop_at: int | None = None  # stop after this step with a checkpoint (a time-limited job); resume later
    # (SIGTERM or SIGINT also stop the run after the step in progress, with a checkpoint: `pretrain.trainer.StopRequest`)
    max_skip_fraction: float = 0.01  # fail when more examples than this are longer than the context

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if (self.steps is None) == (self.tokens is None):
            raise ValueError(f"give exactly one of train.steps and train.tokens (got {self.steps}, {self.tokens})")
        for key in ("batch_size", "micro_batch_size", "context", "log_every", "ckpt_every", "keep_last"):
            if getattr(self, key) < 1:
                raise ValueError(f"train.{key} must be >= 1, got {getattr(self, key)}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("train.warmup_steps, train.weight_decay and train.grad_clip must be >= 0")
        if self.source not in ("stream", "dataset"):
            raise ValueError(f"train.source must be 'stream' or 'dataset', got {self.source!r}")
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"train.precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train.device must be auto, cpu or cuda, got {self.device!r}")

    @property
    def total_steps(self) -> int:
        return self.steps if self.steps is not None else math.ceil(self.tokens / (self.batch_size * self.context))


@dataclass
class RunConfig:
    """`python -m pretrain.train` (conf/pretrain.yaml picks a preset of each group; studies in conf/experiment/)."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = MISSING  # a conf/train/ preset: it gives the number of steps
    out_root: str = "data"  # datasets and tokenizers are cached here (relative to where you run the command)
    # runs/<run_name>; every rank of a torchrun job derives the same name from the config
    run_name: str = "${data.name}_${model.name}_${data.mistakes.kind}${data.mistakes.rate}_s${train.seed}"
    sweep_name: str = "sweep"  # multirun: runs/sweeps/<sweep_name>/<run_name>


store_schema("pretrain", RunConfig)


# ---- one optimizer step -------------------------------------------------------------------------------------------
def lm_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the labelled targets, and their number."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs, use_cache=False).logits[:, :-1]  # transformers builds a KV cache unless told not to
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum")
    return loss, int((targets != -100).sum())


def train_step(model, micro_batches, optimizer, autocast, grad_clip: float, world: int) -> tuple[float, float]:
    """One optimizer step over gradient-accumulation micro-batches; the loss is the mean over every labelled token
    of the global batch. Returns (loss, gradient norm)."""
    n_local = sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro_batches)
    device = micro_batches[0]["input_ids"].device
    n_global = all_reduce_sum(torch.tensor(float(n_local), device=device)).item()
    total = torch.zeros((), device=device)
    for i, batch in enumerate(micro_batches):
        sync = i == len(micro_batches) - 1 or not hasattr(model, "no_sync")
        with contextlib.nullcontext() if sync else model.no_sync(), autocast():
            loss_sum, _ = lm_loss_sum(model, batch)
        (loss_sum * world / max(n_global, 1.0)).backward()  # DDP averages over ranks; this makes it a global mean
        total += loss_sum.detach()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip if grad_clip > 0 else float("inf"))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return all_reduce_sum(total).item() / max(n_global, 1.0), float(grad_norm)


# ---- the loop ------------------------------------------------------------------------------------------------------
def train(cfg: RunConfig, run_dir: Path, resolved_config: str = "", init=None) -> dict:
    """Train `cfg` in `run_dir` (resuming from its latest checkpoint if asked) and return the final metrics;
    `init(tokenizer)` gives the first model when it is not a fresh one (a finetune: `pretrain.finetune`)."""
    tc = cfg.train
    rank, world, device = setup_distributed(tc.device)
    t = setup(cfg, Path(run_dir), resolved_config, rank, world, device, init)
    peak = t.peak_flops * world if t.peak_flops else None  # all ranks together
    tokens_per_step = tc.batch_size * tc.context
    log = RunLog(t.run_dir, t.main, tc.total_steps, tokens_per_step, t.flops_per_token, peak, device, tc.tensorboard)
    log.start(t.step, resolved_config, environment(device, world), banner(t))
    t.model.train()
    with StopRequest() as stop, contextlib.closing(t):  # closing: the data workers stop when the loop ends
        while t.step < tc.total_steps:
            micro_batches = [t.next_micro_batch() for _ in range(t.accum)]
            loss, grad_norm = train_step(t.model, micro_batches, t.optimizer, t.autocast, tc.grad_clip, world)
            t.scheduler.step()
            t.step += 1
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss is {loss} at step {t.step}; lower train.lr or check the data")
            log.add(loss)
            signalled = stop.asked(world, device)
            if t.step % tc.log_every == 0 or t.step == tc.total_steps or signalled:
                log.write(t.step, t.scheduler.get_last_lr()[0], grad_norm, t.packer.skipped)
                check_skipped(t.packer, tc)
            if t.step % tc.ckpt_every == 0 or t.step in (tc.total_steps, tc.stop_at) or signalled:
                t.save_checkpoint()
            if t.step == tc.stop_at or signalled:
                why = f"by {stop.name or 'a signal to another rank'}" if signalled else "as asked (train.stop_at)"
                log.say(f"stopped at step {t.step} {why}; continue with train.resume=true")
                break
    parameters = n_params(unwrap(t.model))
    checkpoint = str(latest_checkpoint(t.run_dir))
    cut = stop.number is not None and t.step < tc.total_steps  # (a signal during the last step stops nothing)
    stopped = {"stopped_by": stop.name} if cut else {}
    final = log.finish(steps=t.step, total_steps=tc.total_steps, parameters=parameters, checkpoint=checkpoint, **stopped)
    if cut:  # after final.json: the caller (a shell, a scheduler, a sweep) sees the run was stopped
        raise Stopped(stop.number)
    return final


class Stopped(SystemExit):
    """The run stopped on a signal, its checkpoint saved: exits with the shell's status for it, 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


def banner(t: Trainer) -> str:
    tc = t.cfg.train
    model = unwrap(t.model)
    trainable = sum(p.numel() for p in {id(p): p for p in model.parameters() if p.requires_grad}.values())
    frozen = n_params(model) - trainable
    return (
        f"{t.cfg.run_name}: {n_params(model) / 1e6:.1f}M parameters"
        + (f" ({trainable:,} trainable)" if frozen else "")
        + f", {tc.total_steps} steps of "
        f"{tc.batch_size} x {tc.context} tokens ({t.accum} micro-batches of {tc.micro_batch_size} x {t.world} ranks)"
        f" on {t.device}" + (f", resuming at step {t.step}" if t.resumed else "")
    )


def command(cfg: DictConfig) -> None:
    """`python -m pretrain.train ...`: the run directory is Hydra's output directory, the same on every rank."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    try:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        train(to_dataclass(RunConfig, cfg), run_dir, OmegaConf.to_yaml(cfg, resolve=True))
    finally:
        teardown_distributed()


def main() -> None:
    # `python -m pretrain.train` runs this file as __main__; the launcher plugins (submitit) pickle the task, and a
    # __main__ function travels by value, its dataclasses' annotations unresolvable in the job. Import it by name.
    from pretrain.train import command as task

    run_command("pretrain", task, errors=(ValueError, FileExistsError))


if __name__ == "__main__":
    main()
