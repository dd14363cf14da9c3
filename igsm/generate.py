"""Command line: write iGSM problems as JSON lines, or print them for a person to read.

    python -m igsm.generate --preset med --n 3 --seed 0                 # JSON lines on stdout
    python -m igsm.generate --preset med --n 3 --seed 0 --pretty        # readable, with line breaks
    python -m igsm.generate --preset hard --op 32 --split test --n 4096 --seed 1 --out hard_op32.jsonl

Problem i of a file is a pure function of (settings, seed, start + i): any slice can be regenerated alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from multiprocessing import Pool

from tqdm import tqdm

from igsm.config import OP_DISTS, P_FORMATS, PRESETS, SYMBOL_ORDERS, GenConfig, preset
from igsm.generator import generate
from igsm.io import write_jsonl
from igsm.problem import Problem


def pretty(problem: Problem, index: int) -> str:
    """A problem and its solution, one sentence per line."""
    r = problem.to_record()
    lines = [f"=== problem {index}: op {r['op']}, answer {r['answer']}, hash bin {r['hash_bin']} ({r['split']}) ==="]
    lines.append("Problem:")
    lines += [f"  {s}." for s in r["problem"][:-1].split(". ")]
    lines.append(f"Question: {r['question']}")
    lines.append("Solution:")
    lines += [f"  {s}." for s in r["solution"][:-1].split(". ")]
    lines.append(f"Answer: {r['answer']}")
    return "\n".join(lines)


def _record(args: tuple[GenConfig, int, int]) -> dict:
    config, seed, index = args
    return generate(config, seed, index).to_record()


def records(config: GenConfig, seed: int, start: int, n: int, workers: int = 1) -> Iterator[dict]:
    """Records start..start+n-1, in order, computed by `workers` processes."""
    jobs = ((config, seed, i) for i in range(start, start + n))
    if workers <= 1:
        yield from map(_record, jobs)
        return
    with Pool(workers) as pool:
        yield from pool.imap(_record, jobs, chunksize=64)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m igsm.generate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--preset", choices=sorted(PRESETS), default="med", help="med (max_op 15, max_edge 20) or hard (21, 28)"
    )
    ap.add_argument("--op", type=int, help="force exactly this many operations (e.g. 23 for med OOD tests)")
    ap.add_argument("--op-min", type=int, help="smallest op count (default 1)")
    ap.add_argument("--op-max", type=int, help="largest op count (default the preset's max_op)")
    ap.add_argument(
        "--op-dist",
        choices=OP_DISTS,
        default="light",
        help="light: min of two uniform draws, as in the papers; uniform: one uniform draw",
    )
    ap.add_argument("--split", choices=["train", "test", "all"], default="train", help="template-hash bins to accept")
    ap.add_argument("--format", choices=P_FORMATS, default="pq", help="statement then question (pq) or the reverse")
    ap.add_argument("--perm-level", type=int, default=5, help="statement order: 5 full shuffle, 0-4 local, 6 none")
    ap.add_argument("--n", type=int, default=1, help="number of problems")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0, help="index of the first problem")
    ap.add_argument("--max-op", type=int, help="override the preset's max_op")
    ap.add_argument("--max-edge", type=int, help="override the preset's max_edge")
    ap.add_argument("--hierarchies", nargs="+", help="world size: only these hierarchies (e.g. city)")
    ap.add_argument("--groups", type=int, help="world size: sub-groups per category (first k)")
    ap.add_argument("--items", type=int, help="world size: names per sub-group (first k, >= 4)")
    ap.add_argument(
        "--symbols", choices=SYMBOL_ORDERS, default="random", help="solution symbols: random letters or a, b, c, ..."
    )
    ap.add_argument("--workers", type=int, default=1, help="processes (the output does not depend on it)")
    ap.add_argument("--out", help="JSON-lines file to write (atomically); stdout if omitted")
    ap.add_argument("--pretty", action="store_true", help="print problems for reading instead of JSON")
    args = ap.parse_args(argv)
    if args.op is not None and (args.op_min is not None or args.op_max is not None):
        ap.error("--op cannot be combined with --op-min/--op-max")
    if args.n < 0:
        ap.error(f"--n must be >= 0, got {args.n}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    lo, hi = (args.op, args.op) if args.op is not None else (args.op_min, args.op_max)
    try:
        config = preset(
            args.preset,
            op_min=lo,
            op_max=hi,
            op_dist=args.op_dist,
            split=args.split,
            p_format=args.format,
            perm_level=args.perm_level,
            hierarchies=tuple(args.hierarchies) if args.hierarchies else None,
            groups=args.groups,
            items=args.items,
            symbols=args.symbols,
            **{k: v for k, v in (("max_op", args.max_op), ("max_edge", args.max_edge)) if v is not None},
        )
    except ValueError as e:
        sys.exit(f"error: {e}")
    if args.pretty:
        for i in range(args.start, args.start + args.n):
            print(pretty(generate(config, args.seed, i), i) + "\n")
        return
    stream = records(config, args.seed, args.start, args.n, args.workers)
    if args.out is None:
        for r in stream:
            print(json.dumps(r, ensure_ascii=False))
        return
    n = write_jsonl(
        args.out, tqdm(stream, total=args.n, desc=f"generating {args.out}", unit="problem", disable=args.n < 1000)
    )
    print(f"wrote {n} problems to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
