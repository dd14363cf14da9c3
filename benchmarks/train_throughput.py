"""Training throughput: tokens per second and MFU of the training step for a model / context / batch.

    python benchmarks/train_throughput.py --model gpt2-12-12 --context 768 --micro-batch 32
    python benchmarks/train_throughput.py --model mini --context 512 --micro-batch 64

Runs `pretrain.train.train_step` (AdamW, bf16 autocast and torch.compile on GPU, fp32 on CPU) on random tokens,
after warm-up steps, and prints the median over timed steps. MFU = tokens/s x (6N + 12 L d T) / the device's
bf16 peak. On a CPU there is no published peak: the run measures this machine's fp32 matmul peak (a large square
matmul on all of torch's threads) and reports the achieved FLOP/s as a share of it. Writes a JSON line with --out.

    python benchmarks/train_throughput.py --model laptop --context 512 --micro-batch 16 --vocab 512   # 2-core CPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pretrain.config import compose, to_dataclass
from pretrain.model import ModelConfig, build_model, flops_per_token, n_params, peak_flops
from pretrain.train import RunConfig, TrainConfig, train_step
from pretrain.trainer import make_optimizer


def model_config(name: str) -> ModelConfig:
    return to_dataclass(RunConfig, compose("pretrain", [f"model={name}"])).model


def cpu_matmul_peak(n: int = 1024, repeats: int = 20) -> float:
    """This CPU's fp32 matmul FLOP/s: the best of `repeats` n x n matmuls (the ceiling a training step can reach)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gpt2-12-12", help="a conf/model/ name")
    ap.add_argument("--context", type=int, default=768)
    ap.add_argument("--micro-batch", type=int, default=32)
    ap.add_argument("--vocab", type=int, default=4100, help="tokenizer size (ours: 4,100)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--out", help="append the result as a JSON line")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(model_config(args.model), args.vocab).to(device)
    tc = TrainConfig(steps=1, micro_batch_size=args.micro_batch, batch_size=args.micro_batch, context=args.context)
    optimizer = make_optimizer(model, tc, device)
    gpu = device.type == "cuda"
    if gpu and not args.no_compile:
        model = torch.compile(model)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=gpu)

    times = []
    for i in range(args.warmup + args.steps):
        ids = torch.randint(0, args.vocab, (args.micro_batch, args.context), device=device)
        batch = {"input_ids": ids, "labels": ids}
        if gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_step(model, [batch], optimizer, autocast, 1.0, 1)
        if gpu:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    tps = args.micro_batch * args.context / step
    fpt = flops_per_token(getattr(model, "_orig_mod", model), args.context)
    peak = peak_flops(device)
    cpu_peak = None if gpu else cpu_matmul_peak()
    name = torch.cuda.get_device_name(device) if gpu else f"cpu ({torch.get_num_threads()} threads)"
    result = {
        "model": args.model,
        "parameters": n_params(getattr(model, "_orig_mod", model)),
        "context": args.context,
        "micro_batch": args.micro_batch,
        "device": name,
        "tokens_per_s": tps,
        "step_s": step,
        "mfu": tps * fpt / peak if peak else None,
        "achieved_flops": tps * fpt,
        "cpu_matmul_peak_flops": cpu_peak,
        "share_of_cpu_peak": tps * fpt / cpu_peak if cpu_peak else None,
        "compiled": gpu and not args.no_compile,
        "torch": torch.__version__,
    }
    if result["mfu"] is not None:
        mfu = f"MFU {result['mfu']:.1%}"
    else:
        mfu = (
            f"{tps * fpt / 1e9:.1f} GFLOP/s = {result['share_of_cpu_peak']:.1%} of this CPU's measured fp32 matmul "
            f"peak ({cpu_peak / 1e9:.1f} GFLOP/s)"
        )
    print(
        f"{args.model} ({result['parameters'] / 1e6:.1f}M) context {args.context} micro-batch {args.micro_batch} on "
        f"{name}: {tps:,.0f} tokens/s, {step * 1000:.1f} ms/step, {mfu}"
    )
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
