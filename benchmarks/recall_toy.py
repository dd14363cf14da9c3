"""Can our model class learn the one skill every iGSM step needs, binding a parameter's name to its number, and how
fast? A toy with iGSM's shape and nothing else: m statements "a b = v ." (a key of `--key` name tokens, a value of 23),
then one query "? a b <gap> = " whose next token must be the value of that key; `--gap` filler tokens between the
query's key and its "=" stand for iGSM's " as g; so g" (the solution step's name is 5-9 tokens before its " =").
The model is ours (`pretrain.model.build_model`, GPT-2 with rotary), trained from scratch by AdamW with the loss on
the value only, one fresh batch per step; the figure is the accuracy of the value on 1,024 fresh sequences.

    python benchmarks/recall_toy.py                                   # key 1 and 2, gap 0 and 6, 2 x 64 model
    python benchmarks/recall_toy.py --key 2 --gap 6 --pairs 5 --steps 3000 --layers 4 --width 128

The laptop search (benchmarks/results/laptop-search.md) uses it to tell whether the binding that the iGSM runs
never learn is out of reach for this model and optimiser, or a matter of iGSM's text.
"""

from __future__ import annotations

import argparse
import time

import torch

from pretrain.model import ModelConfig, build_model

NAMES, VALUES = 24, 23
# token ids: names, values, then "=", ".", "?" and the gap's filler tokens
EQ, DOT, ASK = NAMES + VALUES, NAMES + VALUES + 1, NAMES + VALUES + 2
FILLER = NAMES + VALUES + 3
N_FILLER = 8


def batch(n: int, pairs: int, key: int, gap: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids [n, length], value [n]): `pairs` statements with distinct keys, then the query of one of them."""
    rows, answers = [], []
    for _ in range(n):
        keys: set[tuple[int, ...]] = set()
        while len(keys) < pairs:
            keys.add(tuple(torch.randint(0, NAMES, (key,), generator=g).tolist()))
        keys_l = list(keys)
        values = torch.randint(0, VALUES, (pairs,), generator=g).tolist()
        seq = []
        for k, v in zip(keys_l, values, strict=True):
            seq += [*k, EQ, NAMES + v, DOT]
        q = int(torch.randint(0, pairs, (1,), generator=g))
        filler = (FILLER + torch.randint(0, N_FILLER, (gap,), generator=g)).tolist()
        seq += [ASK, *keys_l[q], *filler, EQ]
        rows.append(seq)
        answers.append(NAMES + values[q])
    return torch.tensor(rows), torch.tensor(answers)


def run(args, key: int, gap: int) -> list[tuple[int, float]]:
    torch.manual_seed(args.seed)
    cfg = ModelConfig(
        n_layer=args.layers,
        n_head=args.heads,
        head_dim=args.width // args.heads,
        max_positions=256,
        init_std=args.init_std,
        rope_theta=args.rope_theta,
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
        ids, y = batch(args.batch, args.pairs, key, gap, g)
        logits = model(input_ids=ids).logits[:, -1]
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                acc = float((model(input_ids=test[0]).logits[:, -1].argmax(-1) == test[1]).float().mean())
            model.train()
            curve.append((step, acc))
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--key", type=int, nargs="+", default=[1, 2], help="name tokens per key")
    ap.add_argument("--gap", type=int, nargs="+", default=[0, 6], help="filler tokens between the query's key and =")
    ap.add_argument("--pairs", type=int, default=4, help="statements per sequence (chance: 1 / pairs among them)")
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
    print(
        f"{args.layers} x {args.width} ({args.heads} heads), {args.pairs} statements, batch {args.batch}, "
        f"lr {args.lr}, init_std {args.init_std}, rope_theta {args.rope_theta}, wd {args.wd}, seed {args.seed}, {torch.get_num_threads()} threads; value accuracy on 1,024 fresh sequences"
    )
    for key in args.key:
        for gap in args.gap:
            t0 = time.perf_counter()
            curve = run(args, key, gap)
            points = "  ".join(f"{s}: {100 * a:5.1f}%" for s, a in curve)
            print(f"key {key} gap {gap} ({time.perf_counter() - t0:5.0f} s)  {points}", flush=True)


if __name__ == "__main__":
    main()
