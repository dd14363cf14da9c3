"""Everything the training loop needs, built from the config: tokenizer and data, model, optimizer and schedule,
restored from the run's latest checkpoint when resuming; and the checkpoint that saves them again. A finetune
(`pretrain.finetune`) is the same run with another first model: `init` builds it in place of a fresh one."""

from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pretrain.checkpoint import (
    latest_checkpoint,
    load_model,
    load_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pretrain.data import BuildConfig, build_dataset, ensure_tokenizer, load_dataset_dir
from pretrain.distributed import all_gather, all_reduce_sum, barrier
from pretrain.loader import ExampleStream, Packer, dataset_examples
from pretrain.model import build_model, check_vocab, flops_per_token, peak_flops
from pretrain.tokenizer import load_tokenizer

if TYPE_CHECKING:
    from pretrain.train import RunConfig, TrainConfig


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to 1, then cosine decay to `min_ratio` at the last step (Part 2.1 App. F.1)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and embeddings only (not biases or LayerNorm), fused on GPU."""
    params = {id(p): (n, p) for n, p in model.named_parameters() if p.requires_grad}.values()
    decay = [p for _, p in params if p.dim() >= 2]
    no_decay = [p for _, p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=device.type == "cuda")


def example_source(cfg: RunConfig, tok_path: Path, rank: int, world: int, start: int) -> Iterator[dict]:
    """This rank's examples from position `start` on: the fresh stream, or the saved training split."""
    if cfg.train.source == "stream":
        from torch.utils.data import DataLoader

        stream = ExampleStream(cfg.data, tok_path, cfg.tokenizer.roles, rank, world, start)
        workers = cfg.train.num_workers
        return iter(
            DataLoader(
                stream,
                batch_size=None,
                num_workers=workers,
                prefetch_factor=8 if workers else None,
                persistent_workers=False,
                worker_init_fn=ignore_stop_signals,
            )
        )
    build = BuildConfig(data=cfg.data, tokenizer=cfg.tokenizer, out_root=cfg.out_root)
    ds, _, _ = load_dataset_dir(build.path)
    return dataset_examples(ds["train"], cfg.train.seed, rank, world, start)


def check_context(cfg: RunConfig, tok_path: Path, n: int = 400) -> None:
    """Stop with the numbers when the context is too short for too many examples (they would be skipped)."""
    src = example_source(replace(cfg, train=replace(cfg.train, num_workers=0)), tok_path, 0, 1, 0)
    lengths = sorted(len(next(src)["input_ids"]) for _ in range(n))
    over = sum(x > cfg.train.context for x in lengths) / n
    if over > cfg.train.max_skip_fraction:
        raise ValueError(
            f"train.context={cfg.train.context} is shorter than {over:.1%} of the examples (longest of {n}: "
            f"{lengths[-1]} tokens, 99th percentile {lengths[int(0.99 * (n - 1))]}); raise train.context"
        )


def check_skipped(packer: Packer, cfg: TrainConfig) -> None:
    """Stop when more examples than `train.max_skip_fraction` were too long for the context (checked as it runs)."""
    if packer.consumed > 1000 and packer.skipped / packer.consumed > cfg.max_skip_fraction:
        raise ValueError(
            f"{packer.skipped} of {packer.consumed} examples are longer than train.context={cfg.context}; raise it"
        )


@dataclass
class Trainer:
    """The state of a run: what the loop reads (model, optimizer, scheduler, packer, step) and how to save it."""

    cfg: RunConfig
    run_dir: Path
    resolved_config: str
    rank: int
    world: int
    device: torch.device
    accum: int  # micro-batches per optimizer step on each rank
    tokenizer: Any
    model: torch.nn.Module  # compiled and DDP-wrapped as configured
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    packer: Packer
    autocast: Callable[[], Any]
    step: int
    resumed: bool
    flops_per_token: float
    peak_flops: float | None  # one device's

    @property
    def main(self) -> bool:
        return self.rank == 0

    def next_micro_batch(self) -> dict[str, torch.Tensor]:
        batch = self.packer.batch(self.cfg.train.micro_batch_size)
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def close(self) -> None:
        """Stop the data workers now: at the interpreter's exit torch leaves them to `multiprocessing`, which ends
        them with SIGTERM, and they ignore it (`ignore_stop_signals`)."""
        shutdown = getattr(self.packer.examples, "_shutdown_workers", None)  # a DataLoader's multi-process iterator
        if shutdown is not None:
            shutdown()

    def save_checkpoint(self) -> None:
        """Checkpoint the current step (rank 0 writes, with every rank's data position); all ranks wait for it."""
        positions = all_gather(self.packer.consumed)
        if self.main:
            state = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "data": positions,
                "rng": rng_state(),
                "config": self.resolved_config,
            }
            save_checkpoint(self.run_dir, self.step, self.model, self.tokenizer, state, self.cfg.train.keep_last)
        barrier()


def setup(
    cfg: RunConfig,
    run_dir: Path,
    resolved_config: str,
    rank: int,
    world: int,
    device: torch.device,
    init: Callable[[Any], torch.nn.Module] | None = None,
) -> Trainer:
    """Build (or restore from the latest checkpoint of `run_dir`) everything a run needs; fail early on bad values.
    `init(tokenizer)` gives the first model (default: a fresh `build_model`); only its trainable parameters train."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    tc = cfg.train
    if tc.batch_size % (tc.micro_batch_size * world):
        raise ValueError(
            f"train.batch_size={tc.batch_size} is not divisible by train.micro_batch_size="
            f"{tc.micro_batch_size} x {world} ranks"
        )
    found = latest_checkpoint(run_dir)
    if found and not tc.resume:
        raise FileExistsError(f"{run_dir} already has checkpoints: add train.resume=true, or choose another run_name")

    # tokenizer and data (rank 0 prepares what is missing, the others wait)
    build = BuildConfig(data=cfg.data, tokenizer=cfg.tokenizer, out_root=cfg.out_root)
    if rank == 0:
        ensure_tokenizer(build)
        if tc.source == "dataset":
            build_dataset(build)
    barrier()
    tok_path = build.tokenizer_path
    tokenizer = load_tokenizer(tok_path)
    check_context(cfg, tok_path)  # on every rank: each stops with the same message rather than waiting for rank 0

    # model, optimizer, schedule; or all of them from the latest checkpoint
    torch.manual_seed(tc.seed)
    state = None
    if found and tc.resume:
        model = load_model(found, trainable=True)  # a LoRA run's checkpoints hold its adapters: trainable again
        state = load_state(found)
    else:
        if tc.resume and rank == 0:
            print(f"train.resume=true but {run_dir} has no checkpoint yet: starting from scratch")
        model = init(tokenizer) if init is not None else build_model(cfg.model, len(tokenizer))
    check_vocab(model, len(tokenizer))
    model.to(device)
    optimizer = make_optimizer(model, tc, device)
    total = tc.total_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tc.warmup_steps, total, tc.min_lr_ratio)
    )
    step, start = 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, start = state["step"], state["data"][rank]
        set_rng_state(state["rng"])
    fpt, peak = flops_per_token(model, tc.context), peak_flops(device)
    use_bf16 = tc.precision == "bf16" or (tc.precision == "auto" and device.type == "cuda")

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    if tc.compile if tc.compile is not None else device.type == "cuda":
        model = torch.compile(model)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    packer = Packer(example_source(cfg, tok_path, rank, world, start), tc.context, tc.loss_on, tc.doc_mask)
    packer.consumed = start
    return Trainer(
        cfg=cfg,
        run_dir=Path(run_dir),
        resolved_config=resolved_config,
        rank=rank,
        world=world,
        device=device,
        accum=tc.batch_size // (tc.micro_batch_size * world),
        tokenizer=tokenizer,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        packer=packer,
        autocast=autocast,
        step=step,
        resumed=state is not None,
        flops_per_token=fpt,
        peak_flops=peak,
    )


def ignore_stop_signals(worker_id: int) -> None:
    """A data worker ignores SIGTERM and SIGINT, which a scheduler, `timeout` or Ctrl-C send to the whole process
    group: the main process stops the run (`StopRequest`), and a worker dying first would fail the step in progress."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class StopRequest:
    """SIGTERM or SIGINT during training (a scheduler ending the job, `kill`, `timeout`, Ctrl-C) asks the loop to
    stop after the step in progress, with a checkpoint to continue from (`train.resume=true`). A second SIGINT acts
    at once, as it would have without this (a second SIGTERM does not: torchrun forwards the one a scheduler sends
    to every process, so a rank can receive it twice). Installed only in the main thread (signal handlers live
    there); data workers ignore both (`ignore_stop_signals`)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.number: int | None = None  # the first signal received
        self._previous: dict = {}

    @property
    def name(self) -> str | None:
        """The first signal received, e.g. "SIGTERM"."""
        return None if self.number is None else signal.Signals(self.number).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        if self.number is None:
            self.number = signum
        elif signum == signal.SIGINT:  # a second Ctrl-C: what it would have done without us
            self.__exit__()
            signal.raise_signal(signum)

    def asked(self, world: int, device: torch.device) -> bool:
        """Whether any rank received a signal (all ranks stop at the same step)."""
        if world == 1:
            return self.number is not None
        return all_reduce_sum(torch.tensor(float(self.number is not None), device=device)).item() > 0
