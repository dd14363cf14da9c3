"""The parts of `benchmarks/gpu_check.sh` that are not other scripts; each prints a Markdown fragment.

    python benchmarks/gpu_check.py env                                    # versions, GPU name
    python benchmarks/gpu_check.py greedy --checkpoint <ckpt> --n 64      # batched greedy == one-by-one greedy?
    python benchmarks/gpu_check.py compile --steps 5                      # compiled == eager first losses?
    python benchmarks/gpu_check.py curve --run <run dir> --png <file>     # a run's loss curve, as a table and a plot
    python benchmarks/gpu_check.py tokenizer --preset igsm --out-root <dir>   # train a tokenizer once, print its path

On a GPU they run in bf16 with inductor (as training and evaluation do there); `--cpu` runs the same code in fp32 at
tiny sizes, with `torch.compile(backend="aot_eager")` (graph capture and autograd without compiling kernels), so the
CPU test exercises everything but the kernels. They exit non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch


def env(args) -> bool:
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    rows = {
        "GPU": gpu,
        "CUDA (torch)": torch.version.cuda or "none",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "host": platform.node(),
        "CPU cores": str(os.cpu_count()),
    }
    print("| | |\n|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {v} |")
    return True


def greedy(args) -> bool:
    """Batched greedy decoding equals decoding each prompt alone (bf16 on GPU, where padding changes the numerics)."""
    from igsm.dataset import make_example
    from pretrain.config import to_dataclass
    from pretrain.decode import DecodeConfig, generate
    from pretrain.evaluate import load_checkpoint
    from pretrain.tokenizer import SPECIAL_TOKENS, prompt_ids, resolve_roles
    from pretrain.train import RunConfig

    device = "cpu" if args.cpu else "cuda"
    model, tok, run_config = load_checkpoint(args.checkpoint, device, "fp32" if args.cpu else "bf16")
    data = to_dataclass(RunConfig, run_config).data
    roles = resolve_roles(tok, SPECIAL_TOKENS)
    split = next(s for s in data.splits() if s.startswith("test_op"))
    prompts = [prompt_ids(tok, roles, make_example(data, split, i)["prompt"]) for i in range(args.n)]
    cfg = DecodeConfig(batch_size=args.n, max_length=args.max_length)
    batched = generate(model, prompts, roles, cfg)
    alone = [generate(model, [p], roles, DecodeConfig(batch_size=1, max_length=args.max_length))[0] for p in prompts]
    same = sum(a == b for a, b in zip(batched, alone, strict=True))
    first = [
        next((t for t, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
        for a, b in zip(batched, alone, strict=True)
        if a != b
    ]
    dtype = next(model.parameters()).dtype
    print(f"{args.n} `{split}` prompts of {args.checkpoint} ({dtype}, one batch of {args.n} vs one at a time):")
    print(f"**{same} of {args.n} generations identical**" + (f"; first differences at tokens {first[:10]}" if first else ""))
    print(f"({sum(map(len, batched)):,} generated tokens)")
    # reported, not judged: a barely trained model has near-tied logits that padding's rounding can flip (seen on a
    # 6-step CPU model in fp32); tests/pretrain/test_evaluate.py holds the exact fp32 equality on the 30-step model
    return True


def compile_vs_eager(args) -> bool:
    """The first training losses with and without torch.compile, from the same initial weights and batches."""
    from pretrain.config import compose, to_dataclass
    from pretrain.model import build_model
    from pretrain.train import RunConfig, train_step
    from pretrain.trainer import make_optimizer

    cfg = to_dataclass(RunConfig, compose("pretrain", [f"model={args.model}", "train=smoke"]))
    device = torch.device("cpu" if args.cpu else "cuda")
    vocab, context, batch = 1024, args.context, args.micro_batch
    torch.manual_seed(0)
    batches = [torch.randint(0, vocab, (batch, context), device=device) for _ in range(args.steps)]

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=not args.cpu)

    curves = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = build_model(cfg.model, vocab).to(device)
        optimizer = make_optimizer(model, cfg.train, device)
        if name == "compiled":
            model = torch.compile(model, backend="aot_eager" if args.cpu else "inductor")
        model.train()
        curves[name] = [
            train_step(model, [{"input_ids": x, "labels": x}], optimizer, autocast, 1.0, 1)[0] for x in batches
        ]
    diff = max(abs(a - b) for a, b in zip(curves["eager"], curves["compiled"], strict=True))
    print(f"model `{args.model}`, {args.steps} steps of {batch} x {context} random tokens, {'fp32' if args.cpu else 'bf16'}:\n")
    print("| step | eager | compiled |\n|---:|---:|---:|")
    for i, (a, b) in enumerate(zip(curves["eager"], curves["compiled"], strict=True), 1):
        print(f"| {i} | {a:.4f} | {b:.4f} |")
    print(f"\nlargest difference {diff:.2e} (tolerance {args.tolerance})")
    return diff <= args.tolerance


def tokenizer(args) -> bool:
    """Train (once) the tokenizer of a conf/tokenizer/ preset under --out-root and print its path (for the shell)."""
    from pretrain.config import compose, to_dataclass
    from pretrain.data import BuildConfig, ensure_tokenizer

    build = to_dataclass(BuildConfig, compose("make_data", [f"tokenizer={args.preset}", f"out_root={args.out_root}"]))
    print(ensure_tokenizer(build))
    return True


def curve(args) -> bool:
    """The loss curve of a (possibly interrupted) run: a few rows of metrics.jsonl and loss.png."""
    from pretrain.runlog import plot_loss

    run = Path(args.run)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    if not rows:
        print(f"no logged step in {run}/metrics.jsonl")
        return False
    plot_loss(run / "metrics.jsonl", Path(args.png))
    keep = rows[:: max(1, len(rows) // 10)] + ([rows[-1]] if len(rows) % 10 else [])
    print("| step | loss | tokens/s | MFU | elapsed |\n|---:|---:|---:|---:|---:|")
    for r in keep:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        print(f"| {r['step']} | {r['loss']:.4f} | {r['tokens_per_s']:,.0f} | {mfu} | {r['elapsed_s']:.0f} s |")
    print(f"\n![loss]({Path(args.png).name})")
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["env", "greedy", "compile", "curve", "tokenizer"])
    ap.add_argument("--cpu", action="store_true", help="fp32, tiny sizes, no inductor")
    ap.add_argument("--checkpoint")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-length", type=int, default=1024)
    ap.add_argument("--model", default="mini")
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--tolerance", type=float, default=0.05)
    ap.add_argument("--run")
    ap.add_argument("--png")
    ap.add_argument("--preset", default="igsm", help="tokenizer: a conf/tokenizer/ name")
    ap.add_argument("--out-root", default="data")
    args = ap.parse_args()
    if args.part in ("greedy", "compile") and not args.cpu and not torch.cuda.is_available():
        sys.exit("error: no GPU is visible; use --cpu for the CPU version of this check")
    parts = {"env": env, "greedy": greedy, "compile": compile_vs_eager, "curve": curve, "tokenizer": tokenizer}
    ok = parts[args.part](args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
