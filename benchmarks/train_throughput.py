"""Training throughput: tokens per second and MFU of the training step for a model / context / batch.

    python benchmarks/train_throughput.py --model gpt2-12-12 --context 768 --micro-batch 32
    python benchmarks/train_throughput.py --model mini --context 512 --micro-batch 64

Runs `pretrain.train.train_step` (AdamW, bf16 autocast and torch.compile on GPU, fp32 on CPU) on random tokens,
after warm-up steps, and prints the median over timed steps. MFU = tokens/s x (6N + 12 L d T) / the device's
bf16 peak (none on a CPU). Writes a JSON line with --out.
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
    name = torch.cuda.get_device_name(device) if gpu else "cpu"
    result = {
        "model": args.model,
        "parameters": n_params(getattr(model, "_orig_mod", model)),
        "context": args.context,
        "micro_batch": args.micro_batch,
        "device": name,
        "tokens_per_s": tps,
        "step_s": step,
        "mfu": tps * fpt / peak if peak else None,
        "compiled": gpu and not args.no_compile,
        "torch": torch.__version__,
    }
    mfu = f"{result['mfu']:.1%}" if result["mfu"] is not None else "n/a (no bf16 peak known for this device)"
    print(
        f"{args.model} ({result['parameters'] / 1e6:.1f}M) context {args.context} micro-batch {args.micro_batch} on "
        f"{name}: {tps:,.0f} tokens/s, {step * 1000:.1f} ms/step, MFU {mfu}"
    )
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
