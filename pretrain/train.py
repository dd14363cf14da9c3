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
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from igsm.dataset import DataConfig
from pretrain.checkpoint import latest_checkpoint, load_state, rng_state, save_checkpoint, set_rng_state, unwrap
from pretrain.data import BuildConfig, build_dataset, ensure_tokenizer, load_dataset_dir
from pretrain.loader import ExampleStream, Packer, dataset_examples
from pretrain.model import ModelConfig, build_model, check_vocab, flops_per_token, n_params, peak_flops
from pretrain.tokenizer import TokenizerConfig, load_tokenizer


@dataclass
class TrainConfig:
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
    num_workers: int = 4  # DataLoader workers generating the stream
    loss_on: str = "all"  # all (papers) | solution (the prompt gets no loss)
    doc_mask: bool = False  # no attention across the examples of a window
    precision: str = "auto"  # auto: bf16 autocast on GPU, fp32 on CPU | bf16 | fp32
    compile: bool | None = None  # torch.compile; None: on GPU only
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 10
    tensorboard: bool = False  # also write the logged figures as TensorBoard scalars (pip install tensorboard)
    ckpt_every: int = 1000
    keep_last: int = 2
    resume: bool = False
    stop_at: int | None = None  # stop after this step with a checkpoint (a time-limited job); resume later
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
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=1))
    out_root: str = "data"  # datasets and tokenizers are cached here
    run_name: str = "run"
    sweep_name: str = "sweep"


# ---- pieces the loop is made of (also used by finetuning) ---------------------------------------------------------
def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); under torchrun, joins the process group."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no GPU is visible")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        dist.all_reduce(x)
    return x


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


def example_source(cfg: RunConfig, tok_path: Path, rank: int, world: int, start: int):
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


def environment(device: torch.device, world: int) -> dict:
    import transformers

    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "command": " ".join(sys.argv),
        "git_commit": commit,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "world_size": world,
        "host": platform.node(),
    }


def plot_loss(metrics_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
    ax.set(xlabel="step", ylabel="training loss", yscale="log", title=out.parent.name)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


# ---- the loop ------------------------------------------------------------------------------------------------------
def train(cfg: RunConfig, run_dir: Path, resolved_config: str = "") -> dict:
    """Train `cfg` in `run_dir` (resuming from its latest checkpoint if asked) and return the final metrics."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    tc = cfg.train
    rank, world, device = setup_distributed(tc.device)
    main = rank == 0
    if tc.batch_size % (tc.micro_batch_size * world):
        raise ValueError(
            f"train.batch_size={tc.batch_size} is not divisible by train.micro_batch_size="
            f"{tc.micro_batch_size} x {world} ranks"
        )
    accum = tc.batch_size // (tc.micro_batch_size * world)
    total = tc.total_steps
    run_dir = Path(run_dir)
    found = latest_checkpoint(run_dir)
    if found and not tc.resume:
        raise FileExistsError(f"{run_dir} already has checkpoints: add train.resume=true, or choose another run_name")

    # tokenizer and data (rank 0 prepares what is missing, the others wait)
    build = BuildConfig(data=cfg.data, tokenizer=cfg.tokenizer, out_root=cfg.out_root)
    if main:
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
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(found)
        state = load_state(found)
    else:
        if tc.resume and main:
            print(f"train.resume=true but {run_dir} has no checkpoint yet: starting from scratch")
        model = build_model(cfg.model, len(tokenizer))
    check_vocab(model, len(tokenizer))
    model.to(device)
    optimizer = make_optimizer(model, tc, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, tc.warmup_steps, total, tc.min_lr_ratio)
    )
    step, start = 0, 0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, start = state["step"], state["data"][rank]
        set_rng_state(state["rng"])
    fpt = flops_per_token(model, tc.context)
    peak = peak_flops(device)
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

    metrics_path = run_dir / "metrics.jsonl"
    board = None
    if main and tc.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("train.tensorboard=true needs the tensorboard package: pip install tensorboard") from None
        board = SummaryWriter(str(run_dir / "tensorboard"))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(resolved_config)
        (run_dir / "environment.json").write_text(json.dumps(environment(device, world), indent=2) + "\n")
        if metrics_path.exists():  # drop what was logged after the checkpoint we resume from
            keep = [line for line in metrics_path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
            metrics_path.write_text("".join(line + "\n" for line in keep))
        print(
            f"{cfg.run_name}: {n_params(unwrap(model)) / 1e6:.1f}M parameters, {total} steps of {tc.batch_size} x "
            f"{tc.context} tokens ({accum} micro-batches of {tc.micro_batch_size} x {world} ranks) on {device}"
            + (f", resuming at step {step}" if state else "")
        )

    def checkpoint(at: int) -> None:
        positions = [packer.consumed]
        if dist.is_initialized():
            positions = [None] * world
            dist.all_gather_object(positions, packer.consumed)
        if main:
            save_checkpoint(
                run_dir,
                at,
                model,
                tokenizer,
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "data": positions,
                    "rng": rng_state(),
                    "config": resolved_config,
                },
                tc.keep_last,
            )
        barrier()

    model.train()
    losses, t_last, t_start, step_start = [], time.perf_counter(), time.perf_counter(), step
    last = {}
    while step < total:
        micro = [
            {k: v.to(device, non_blocking=True) for k, v in packer.batch(tc.micro_batch_size).items()}
            for _ in range(accum)
        ]
        loss, gnorm = train_step(model, micro, optimizer, autocast, tc.grad_clip, world)
        scheduler.step()
        step += 1
        losses.append(loss)
        if not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {step}; lower train.lr or check the data")
        if step % tc.log_every == 0 or step == total:
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            tps = len(losses) * tc.batch_size * tc.context / (now - t_last)
            last = {
                "step": step,
                "loss": sum(losses) / len(losses),
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": gnorm,
                "tokens": step * tc.batch_size * tc.context,
                "tokens_per_s": tps,
                "mfu": tps * fpt / (peak * world) if peak else None,
                "skipped_examples": packer.skipped,
                "elapsed_s": now - t_start,
            }
            if main:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(last) + "\n")
                if board is not None:
                    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "mfu"):
                        if last[key] is not None:
                            board.add_scalar(f"train/{key}", last[key], step)
                eta = (now - t_start) / (step - step_start) * (total - step)
                mfu = f" | MFU {last['mfu']:.1%}" if last["mfu"] is not None else ""
                print(
                    f"step {step}/{total} | loss {last['loss']:.4f} | lr {last['lr']:.2e} | {tps:,.0f} tok/s{mfu}"
                    f" | ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}",
                    flush=True,
                )
            losses, t_last = [], now
            if packer.consumed > 1000 and packer.skipped / packer.consumed > tc.max_skip_fraction:
                raise ValueError(
                    f"{packer.skipped} of {packer.consumed} examples are longer than train.context="
                    f"{tc.context}; raise it"
                )
        if step % tc.ckpt_every == 0 or step == total or step == tc.stop_at:
            checkpoint(step)
        if step == tc.stop_at:
            if main:
                print(f"stopped at step {step} as asked (train.stop_at); continue with train.resume=true")
            break
    if board is not None:
        board.close()
    if main:
        final = {
            **last,
            "steps": step,
            "total_steps": total,
            "parameters": n_params(unwrap(model)),
            "checkpoint": str(latest_checkpoint(run_dir)),
        }
        (run_dir / "final.json").write_text(json.dumps(final, indent=2) + "\n")
        plot_loss(metrics_path, run_dir / "loss.png")
        return final
    return {}


def main() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig, OmegaConf

    from pretrain.config import to_dataclass

    @hydra.main(config_path="../conf", config_name="pretrain", version_base="1.3")
    def run(cfg: DictConfig) -> None:
        try:
            run_cfg = to_dataclass(RunConfig, cfg)
            train(run_cfg, Path(HydraConfig.get().runtime.output_dir), OmegaConf.to_yaml(cfg, resolve=True))
        except (ValueError, FileExistsError) as e:
            sys.exit(f"error: {e}")
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()

    run()


if __name__ == "__main__":
    main()
