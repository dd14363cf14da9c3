"""Does a model retrieve the right number? The teacher-forced accuracy of the token after " =" in solutions (the
value a step defines: a number read from the problem, or computed), on fresh windows of the run's own training
stream, and, with --attention, where each head of each layer looks from that " =" on a few test problems.

    python benchmarks/number_recall.py runs/E5/checkpoints/step_0003200 runs/E5/checkpoints/step_0000800
    python benchmarks/number_recall.py runs/E3/checkpoints/step_0000800 --attention 3

The laptop search (benchmarks/results/laptop-search.md) uses it to tell "copies some number of the problem" from
"binds the asked parameter to its number" (near 100%) without decoding; for one-operation worlds it first prints
what the former scores: a random pick among the numbers each problem gives directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


@torch.no_grad()
def recall(checkpoint: Path, windows: int, start: int) -> tuple[int, int]:
    """(right, total) argmax predictions of the token after " =" where the loss applies, on `windows` training
    windows of the checkpoint's run from stream position `start` (beyond what the run trained on)."""
    from pretrain.checkpoint import load_model, run_config
    from pretrain.config import to_dataclass
    from pretrain.loader import ExampleStream, Packer
    from pretrain.tokenizer import load_tokenizer
    from pretrain.train import RunConfig

    cfg = to_dataclass(RunConfig, run_config(checkpoint))
    tok = load_tokenizer(checkpoint)
    model = load_model(checkpoint).eval()
    stream = iter(ExampleStream(cfg.data, checkpoint, cfg.tokenizer.roles, 0, 1, start))
    packer = Packer(stream, cfg.train.context, "solution", doc_mask=True)
    equals = tok.convert_tokens_to_ids(tok.tokenize(" =")[0])
    right = total = 0
    for _ in range(windows // 16):
        b = packer.batch(16)
        pred = model(**{k: b[k] for k in ("input_ids", "attention_mask", "position_ids")}).logits.argmax(-1)
        x, y = b["input_ids"], b["labels"]
        at = (x[:, :-1] == equals) & (y[:, 1:] != -100)
        right += int((pred[:, :-1][at] == y[:, 1:][at]).sum())
        total += int(at.sum())
    return right, total


def direct_chance(checkpoint: Path, n: int = 2000) -> float | None:
    """For a one-operation world: the recall of a model that copies one of the numbers the problem gives directly
    ("... equals 17."), picked at random, on n fresh training problems (None for other worlds)."""
    import re

    from igsm.dataset import make_example
    from pretrain.checkpoint import run_config
    from pretrain.config import to_dataclass
    from pretrain.train import RunConfig

    data = to_dataclass(RunConfig, run_config(checkpoint)).data
    if data.max_op != 1:
        return None
    total = 0.0
    for i in range(n):
        e = make_example(data, "train", 20_000_000 + i)
        given = [int(x) for x in re.findall(r"equals (\d+)\.", e["problem"])]
        total += given.count(e["answer"]) / len(given) if given else 0.0
    return total / n


@torch.no_grad()
def attention(checkpoint: Path, n: int, top: int = 4) -> None:
    """Print, for n test problems of the checkpoint's first seen split (else first test split), the reference
    solution, the model's prediction after its first " =" and each head's `top` most attended tokens there."""
    from transformers import AutoModelForCausalLM

    from igsm.dataset import make_example
    from pretrain.checkpoint import run_config
    from pretrain.config import to_dataclass
    from pretrain.evaluate import checkpoint_roles
    from pretrain.tokenizer import layout, load_tokenizer
    from pretrain.train import RunConfig

    raw = run_config(checkpoint)
    cfg = to_dataclass(RunConfig, raw)
    tok = load_tokenizer(checkpoint)
    roles = checkpoint_roles(tok, raw, checkpoint)
    import pretrain.model  # noqa: F401  registers the canon model type

    model = AutoModelForCausalLM.from_pretrained(checkpoint, attn_implementation="eager").eval()
    split = f"test_seen_op{cfg.data.seen_ops[0]}" if cfg.data.seen_ops else f"test_op{cfg.data.test_ops[0]}"

    def enc(text: str) -> list[int]:
        return tok(text, add_special_tokens=False).input_ids

    for i in range(n):
        ex = make_example(cfg.data, split, i)
        ids = [roles.end, *layout(roles, enc(ex["prompt"]), enc(" " + ex["solution"]), enc(f" {ex['answer']}"))]
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
        toks = tok.convert_ids_to_tokens(ids)
        at = toks.index(tok.tokenize(" =")[0])
        print(f"{split}[{i}] {ex['solution'][:80]}  predicted after ' =': {toks[at + 1]!r} -> "
              f"{tok.convert_ids_to_tokens([int(out.logits[0, at].argmax())])[0]!r}")
        for layer, att in enumerate(out.attentions):
            for head in range(att.shape[1]):
                w = att[0, head, at].topk(top)
                where = " ".join(f"{toks[j]}@{j}:{v:.2f}" for v, j in zip(w.values.tolist(), w.indices.tolist(), strict=True))
                print(f"  layer {layer} head {head}: {where}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path)
    ap.add_argument("--windows", type=int, default=160, help="training windows scored (multiple of 16)")
    ap.add_argument("--start", type=int, default=10_000_000, help="stream position of the first scored example")
    ap.add_argument("--attention", type=int, default=0, help="also print attention at ' =' for this many problems")
    args = ap.parse_args()
    chance = direct_chance(args.checkpoints[0])
    if chance is not None:
        print(f"a random pick among the numbers each problem gives directly: {chance:.1%} (2,000 training problems)")
    for ck in args.checkpoints:
        right, total = recall(ck, args.windows, args.start)
        print(f"{ck}: number after ' =' right {right} / {total} = {right / max(total, 1):.1%} (teacher-forced)")
        if args.attention:
            attention(ck, args.attention)


if __name__ == "__main__":
    main()
