"""Can our model class learn the one skill every iGSM step needs, binding a parameter's name to its number, and how
fast? A toy with iGSM's shape and nothing else: m statements "a b = v ." (a key of `--key` name tokens, a value of 23),
then `--queries` questions "? a b <gap> = v ." whose v must be predicted (keys drawn with replacement); `--gap` filler
tokens between a question's key and its "=" stand for iGSM's " as g; so g" (with the laptop tokenizer a solution
step's name sits 6-10 tokens before its " ="). The model is ours (`pretrain.model.build_model`, GPT-2 with rotary),
trained from scratch by AdamW with the loss on the questions' values only, one fresh batch per step; the figure is the
accuracy of the value of one question on 1,024 fresh sequences (chance: 1 / statements).

    python benchmarks/recall_toy.py                                   # key 1 and 2, gap 0 and 6, 2 x 64 model
    python benchmarks/recall_toy.py --key 2 --gap 0 --queries 4 --canon 4
    python benchmarks/recall_toy.py --key 2 --gap 6 --queries 4 --canon 4 --first-gap 0 --first-steps 750

Two things can be switched on to see what the binding needs:
- `--canon K`: the model's `canon_kernel` (`pretrain.model.CanonNorm`): a causal depthwise convolution over the last
  K positions on every attention's input, zero-initialised, as Part 4.1 of the papers' series ("Canon layers")
  adds to make associative recall learnable. The papers' GPT-2 has none (K = 0).
- a curriculum: the first `--first-steps` steps train on keys of `--first-key` tokens and gaps of `--first-gap`.

The laptop search (benchmarks/results/laptop-search.md) uses it to tell whether the binding that the iGSM runs never
learn is out of reach for this model and optimiser, or a matter of iGSM's text.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from pretrain.model import ModelConfig, build_model

NAMES, VALUES = 24, 23
# token ids: names, values, then "=", ".", "?" and the gap's filler tokens
EQ, DOT, ASK = NAMES + VALUES, NAMES + VALUES + 1, NAMES + VALUES + 2
FILLER = NAMES + VALUES + 3
N_FILLER = 8
IGNORE = -100


def batch(
    n: int, pairs: int, key: int, gap: int, g: torch.Generator, queries: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [n, length], targets [n, length]): `pairs` statements with distinct keys, then `queries` questions of
    stated keys, each "? key <gap> = value ."; targets[i, t] is the token ids[i, t + 1] must be (the value) after
    each question's "=", IGNORE elsewhere."""
    rows, targets = [], []
    for _ in range(n):
        keys: set[tuple[int, ...]] = set()
        while len(keys) < pairs:
            keys.add(tuple(torch.randint(0, NAMES, (key,), generator=g).tolist()))
        keys_l = list(keys)
        values = torch.randint(0, VALUES, (pairs,), generator=g).tolist()
        seq: list[int] = []
        for k, v in zip(keys_l, values, strict=True):
            seq += [*k, EQ, NAMES + v, DOT]
        target = [IGNORE] * len(seq)
        for _ in range(queries):
            q = int(torch.randint(0, pairs, (1,), generator=g))
            filler = (FILLER + torch.randint(0, N_FILLER, (gap,), generator=g)).tolist()
            seq += [ASK, *keys_l[q], *filler, EQ, NAMES + values[q], DOT]
            target += [IGNORE] * (key + gap + 1) + [NAMES + values[q], IGNORE, IGNORE]
        rows.append(seq)
        targets.append(target)
    return torch.tensor(rows), torch.tensor(targets)


def value_accuracy(model: torch.nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> float:
    logits = model(input_ids=ids).logits
    at = targets != IGNORE
    return float((logits.argmax(-1)[at] == targets[at]).float().mean())


def run(args, key: int, gap: int) -> list[tuple[int, float]]:
    torch.manual_seed(args.seed)
    cfg = ModelConfig(
        n_layer=args.layers,
        n_head=args.heads,
        head_dim=args.width // args.heads,
        max_positions=512,
        init_std=args.init_std,
        rope_theta=args.rope_theta,
        canon_kernel=args.canon,
    )
    model = build_model(cfg, FILLER + N_FILLER)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=args.wd)
    g = torch.Generator().manual_seed(args.seed)
    test = batch(1024, args.pairs, key, gap, torch.Generator().manual_seed(10_000 + args.seed))
    curve = []
    for step in range(1, args.steps + 1):
        lr = args.lr * min(1.0, step / 20)
        for group in opt.param_groups:
            group["lr"] = lr
        first = step <= args.first_steps
        k = args.first_key if first and args.first_key is not None else key
        gp = args.first_gap if first and args.first_gap is not None else gap
        ids, targets = batch(args.batch, args.pairs, k, gp, g, args.queries)
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                curve.append((step, value_accuracy(model, *test)))
            model.train()
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key", type=int, nargs="+", default=[1, 2], help="name tokens per key")
    ap.add_argument("--gap", type=int, nargs="+", default=[0, 6], help="filler tokens between a question's key and =")
    ap.add_argument("--pairs", type=int, default=4, help="statements per sequence (chance: 1 / pairs among them)")
    ap.add_argument("--queries", type=int, default=1, help="questions per training sequence, each with a loss")
    ap.add_argument("--canon", type=int, default=0, help="the model's canon_kernel (0: none)")
    ap.add_argument("--first-steps", type=int, default=0, help="curriculum: steps trained on --first-key/--first-gap")
    ap.add_argument("--first-key", type=int, default=None, help="key length of the first steps (default: the cell's)")
    ap.add_argument("--first-gap", type=int, default=None, help="gap of the first steps (default: the cell's)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--init-std", type=float, default=0.02)
    ap.add_argument("--rope-theta", type=float, default=10000.0)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name in ("pairs", "queries", "steps", "batch", "every"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name} must be >= 1, got {getattr(args, name)}")
    print(
        f"{args.layers} x {args.width} ({args.heads} heads), {args.pairs} statements, {args.queries} questions, "
        f"canon {args.canon}, first {args.first_steps} steps at key {args.first_key} gap {args.first_gap}, "
        f"batch {args.batch}, lr {args.lr}, init_std {args.init_std}, rope_theta {args.rope_theta}, wd {args.wd}, "
        f"seed {args.seed}, {torch.get_num_threads()} threads; value accuracy of one question on 1,024 fresh sequences"
    )
    for key in args.key:
        for gap in args.gap:
            t0 = time.perf_counter()
            curve = run(args, key, gap)
            points = "  ".join(f"{s}: {100 * a:5.1f}%" for s, a in curve)
            print(f"key {key} gap {gap} ({time.perf_counter() - t0:5.0f} s)  {points}", flush=True)


if __name__ == "__main__":
    main()
