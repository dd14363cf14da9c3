"""What a training run writes about itself in its directory (rank 0 only; the other ranks compute and stay quiet).

    config.yaml         the resolved config            environment.json   versions, git commit, device, command
    metrics.jsonl       one row per logged step        tensorboard/       the same scalars (train.tensorboard=true)
    final.json          the last row and the totals    loss.png           the training loss per step

and on the console, per logged step: `step 100/4000 | loss 0.4123 | lr 2.00e-03 | 1,234,567 tok/s | MFU 41.2% | ETA ..`.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

BOARD_KEYS = ("loss", "lr", "grad_norm", "tokens_per_s", "mfu")


def environment(device: torch.device, world: int) -> dict:
    """Versions, git commit, device and command line: enough to say what produced a run."""
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


class RunLog:
    """Averages the losses between logged steps, measures throughput and ETA, and writes the run directory's records.

    `flops_per_token` and `peak_flops` (all ranks together; None when unknown) give the MFU column.
    """

    def __init__(
        self,
        run_dir: Path,
        main: bool,
        total_steps: int,
        tokens_per_step: int,
        flops_per_token: float,
        peak_flops: float | None,
        device: torch.device,
        tensorboard: bool = False,
    ) -> None:
        self.run_dir, self.main, self.total = Path(run_dir), main, total_steps
        self.tokens_per_step, self.fpt, self.peak, self.device = tokens_per_step, flops_per_token, peak_flops, device
        self.metrics = self.run_dir / "metrics.jsonl"
        self.board = None
        if main and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError("train.tensorboard=true needs the tensorboard package: pip install tensorboard") from None
            self.board = SummaryWriter(str(self.run_dir / "tensorboard"))
        self.losses: list[float] = []
        self.last: dict = {}

    def say(self, message: str) -> None:
        if self.main:
            print(message, flush=True)

    def start(self, step: int, resolved_config: str, environment: dict, banner: str) -> None:
        """Write config.yaml and environment.json, drop metrics logged after the checkpoint resumed from (`step`)."""
        self.first_step = step
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(resolved_config)
            (self.run_dir / "environment.json").write_text(json.dumps(environment, indent=2) + "\n")
            if self.metrics.exists():
                keep = [r for r in self.metrics.read_text().splitlines() if r and json.loads(r)["step"] <= step]
                self.metrics.write_text("".join(r + "\n" for r in keep))
        self.say(banner)
        self.t_start = self.t_last = time.perf_counter()

    def add(self, loss: float) -> None:
        self.losses.append(loss)

    def write(self, step: int, lr: float, grad_norm: float, skipped_examples: int) -> dict:
        """The row of this logged step (mean loss since the last one, throughput, MFU, ...), written by rank 0."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        tps = len(self.losses) * self.tokens_per_step / (now - self.t_last)
        self.last = {
            "step": step,
            "loss": sum(self.losses) / len(self.losses),
            "lr": lr,
            "grad_norm": grad_norm,
            "tokens": step * self.tokens_per_step,
            "tokens_per_s": tps,
            "mfu": tps * self.fpt / self.peak if self.peak else None,
            "skipped_examples": skipped_examples,
            "elapsed_s": now - self.t_start,
        }
        if self.main:
            with self.metrics.open("a") as f:
                f.write(json.dumps(self.last) + "\n")
            if self.board is not None:
                for key in BOARD_KEYS:
                    if self.last[key] is not None:
                        self.board.add_scalar(f"train/{key}", self.last[key], step)
            eta = (now - self.t_start) / (step - self.first_step) * (self.total - step)
            mfu = f" | MFU {self.last['mfu']:.1%}" if self.last["mfu"] is not None else ""
            print(
                f"step {step}/{self.total} | loss {self.last['loss']:.4f} | lr {lr:.2e} | {tps:,.0f} tok/s{mfu}"
                f" | ETA {time.strftime('%H:%M:%S', time.gmtime(eta))}",
                flush=True,
            )
        self.losses, self.t_last = [], now
        return self.last

    def finish(self, **totals) -> dict:
        """final.json (the last row and `totals`) and loss.png; returns what final.json holds ({} off rank 0)."""
        if self.board is not None:
            self.board.close()
        if not self.main:
            return {}
        final = {**self.last, **totals}
        (self.run_dir / "final.json").write_text(json.dumps(final, indent=2) + "\n")
        plot_loss(self.metrics, self.run_dir / "loss.png")
        return final
