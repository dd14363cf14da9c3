"""How many solution templates each op count has, and how many fall in the train / test hash bins, per data preset.

The template-hash split (Part 2.1 §2.4) keeps test templates out of training. In the papers' worlds every op count
has thousands of templates on both sides; in a small world (few ops) an op count may have a handful, all on one
side: then training never sees that op count, or its test column holds no unseen template. This prints, per op,
the distinct templates among n problems drawn from all bins, their split, and the share of problems whose template
is in the train bins, so a preset's test ops can be chosen where both sides are populated.

    python benchmarks/split_templates.py --preset laptop --n 400
"""

from __future__ import annotations

import argparse
from collections import Counter

from igsm.generator import generate
from igsm.split import split_of
from pretrain.config import compose, to_dataclass


def template_table(data, ops: list[int], n: int, seed: int = 0) -> list[dict]:
    """Per op: problems drawn, distinct templates, templates in train / test bins, share of problems in train bins."""
    rows = []
    for op in ops:
        gen = data.gen_config("test_op1").with_(op_min=op, op_max=op, split="all")
        counts: Counter = Counter()
        side: dict[str, str] = {}
        for i in range(n):
            p = generate(gen, seed, i)
            t = p.solution_template()
            counts[t] += 1
            side[t] = split_of(p.hash_bin)
        train_problems = sum(c for t, c in counts.items() if side[t] == "train")
        rows.append(
            {
                "op": op,
                "problems": n,
                "templates": len(counts),
                "train_templates": sum(s == "train" for s in side.values()),
                "test_templates": sum(s == "test" for s in side.values()),
                "train_share": train_problems / n,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="laptop", help="a conf/data/ name")
    ap.add_argument("--n", type=int, default=400, help="problems per op count")
    ap.add_argument("--ops", type=int, nargs="*", help="op counts (default 1..max(max_op, test ops))")
    args = ap.parse_args()
    from igsm.dataset import DataConfig

    data = to_dataclass(DataConfig, compose("pretrain", [f"data={args.preset}"]).data)
    ops = args.ops or list(range(1, max([data.max_op, *data.test_ops, *data.reask_ops]) + 1))
    print(f"data={args.preset}: {args.n} problems per op, drawn from all bins (train bins 0-15, test bins 16-22)")
    print("| op | distinct templates | in train bins | in test bins | problems in train bins |")
    print("|---:|---:|---:|---:|---:|")
    for r in template_table(data, ops, args.n):
        print(
            f"| {r['op']} | {r['templates']} | {r['train_templates']} | {r['test_templates']} "
            f"| {100 * r['train_share']:.1f}% |"
        )


if __name__ == "__main__":
    main()
