"""Decoding throughput: problems/s and generated tokens/s of our batched greedy decoder (its step through the model's
forward and a `DynamicCache`, and on a CPU its lean static-cache step) and of `transformers`' `generate` (its default
dynamic cache), on the same model, prompts and batch, in one run; on a CPU also the lean step with the batches
spread over --workers forked processes (`decode.workers`, default: one per thread).

    python benchmarks/eval_throughput.py --checkpoint runs/.../checkpoints/step_0100000 --n 4096 --batch 512
    python benchmarks/eval_throughput.py --model gpt2-12-12 --n 256 --batch 64 --new-tokens 400   # random weights

Prompts are med op=23 test problems (the papers' hardest med split), or with --checkpoint its own world's last test
split (--split picks another). With a trained checkpoint, generation stops at
<end>; with random weights (--model) every sequence generates exactly --new-tokens tokens in both decoders.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from igsm.dataset import DataConfig, make_example
from pretrain.config import compose, to_dataclass
from pretrain.decode import DecodeConfig, generate, left_pad
from pretrain.model import build_model
from pretrain.tokenizer import SPECIAL_TOKENS, Roles, load_tokenizer, prompt_ids, resolve_roles
from pretrain.train import RunConfig


def hf_generate(model, prompts, end_id, max_new, batch, eos) -> list[int]:
    lengths = []
    for s in range(0, len(prompts), batch):
        chunk = prompts[s : s + batch]
        ids, mask = left_pad(chunk, end_id, next(model.parameters()).device)
        width = ids.shape[1]
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=False,
            max_new_tokens=max_new,
            eos_token_id=end_id if eos else None,
            pad_token_id=end_id,
            min_new_tokens=None if eos else max_new,
        )
        for row in out[:, width:].tolist():
            lengths.append(row.index(end_id) + 1 if eos and end_id in row else len(row))
    return lengths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", help="a trained save_pretrained folder (with its tokenizer)")
    ap.add_argument("--model", default="gpt2-12-12", help="conf/model name for random weights (no --checkpoint)")
    ap.add_argument("--tokenizer", help="with --model (default: the med tokenizer `make data` caches)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=400, help="random weights: tokens generated per problem")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--split", help="test split (default: med test_op23, or the checkpoint's last test split)")
    ap.add_argument("--workers", type=int, help="CPU: processes for the 'ours, N processes' row (default: threads)")
    ap.add_argument("--out", help="append the result as a JSON line")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.checkpoint:
        from pretrain.checkpoint import load_model, run_config

        model = load_model(args.checkpoint, dtype=dtype).to(device).eval()
        from pretrain.evaluate import checkpoint_roles

        tok = load_tokenizer(args.checkpoint)
        roles = checkpoint_roles(tok, run_config(args.checkpoint), args.checkpoint)
        eos = True
    else:
        from pretrain.data import BuildConfig

        tok = load_tokenizer(args.tokenizer or BuildConfig().tokenizer_path)
        torch.manual_seed(0)
        model_cfg = to_dataclass(RunConfig, compose("pretrain", [f"model={args.model}"])).model
        model = build_model(model_cfg, len(tok)).to(device=device, dtype=dtype).eval()
        roles = resolve_roles(tok, SPECIAL_TOKENS)  # igsm-lab's own tokenizer (--tokenizer) and its roles
        eos = False
    if args.checkpoint:  # problems of the checkpoint's own world
        from omegaconf import OmegaConf

        data = to_dataclass(DataConfig, OmegaConf.create(run_config(args.checkpoint)["data"]))
        split = args.split or [s for s in data.splits() if s != "train"][-1]
    else:
        data, split = DataConfig(test_ops=[23]), args.split or "test_op23"
    if split not in data.splits():
        raise SystemExit(f"error: --split {split!r} is not a split of data {data.name!r} ({list(data.splits())})")
    prompts = [prompt_ids(tok, roles, make_example(data, split, i)["prompt"]) for i in range(args.n)]
    longest = max(len(p) for p in prompts)
    # random weights: stop on a padding row of the embedding (never a real token), so lengths are fixed
    end = roles.end if eos else model.config.vocab_size - 1
    limit = min(2048, model.config.max_position_embeddings)
    cfg = DecodeConfig(batch_size=args.batch, max_length=limit, max_new_tokens=None if eos else args.new_tokens)
    workers = args.workers or (torch.get_num_threads() if device.type == "cpu" else 1)
    # each of ours names its step: `decode_batch`'s default is the static cache on a CPU and the DynamicCache step on
    # a GPU, where the static cache ran 19x slower (benchmarks/results/gpu-2026-12-04.md: here it is timed on CPU only)
    names = ["transformers.generate", "ours, DynamicCache"]
    if device.type == "cpu":
        names.append("ours, static cache")
    if workers > 1:
        names.append(f"ours, {workers} processes")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def run(name: str) -> int:
        if name.startswith("ours"):  # "ours, DynamicCache": decode_batch's reference step
            run_roles = Roles(roles.begin_problem, roles.begin_solution, roles.begin_answer, end)
            lean = {"ours, DynamicCache": False, "ours, static cache": True}.get(name)  # processes: the default
            run_cfg = replace(cfg, workers=workers) if name.endswith("processes") else cfg
            return sum(len(g) for g in generate(model, prompts, run_roles, run_cfg, lean=lean))
        budget = cfg.max_length - longest if eos else args.new_tokens
        return sum(hf_generate(model, prompts, end, budget, args.batch, eos))

    results = {}
    for name in names:
        best = float("inf")
        for _ in range(args.repeats):  # the best of the repeats: the first run of a process pays one-off costs
            sync()
            t0 = time.perf_counter()
            tokens = run(name)
            sync()
            best = min(best, time.perf_counter() - t0)
        results[name] = {
            "seconds": best,
            "problems_per_s": args.n / best,
            "tokens_per_s": tokens / best,
            "tokens": tokens,
        }
        print(
            f"{name:23s} {args.n} problems in {best:7.1f} s: {args.n / best:8.1f} problems/s, "
            f"{tokens / best:10,.0f} generated tokens/s"
        )
    ours = min(results[n]["seconds"] for n in names[1:])
    print(f"speed-up of ours over generate: {results['transformers.generate']['seconds'] / ours:.2f}x (the fastest of ours)")
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({"args": vars(args), "device": str(device), **results}) + "\n")


if __name__ == "__main__":
    main()
