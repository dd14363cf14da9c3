"""Command line: judge candidate solutions with the verifier.

    python -m igsm.verify --in generations.jsonl --out judged.jsonl

Each input object needs `problem`, `question` and `solution` (the candidate; `--field` names another); an `answer` field, if present, must
match as well. Each output object is the input plus the verdict (`igsm.Verdict.to_dict`): `correct` (the official evaluator's
semantics), `strict_correct`, `errors` (kind, step, detail of every problem found), `error_kinds`, `solution_answer`,
`expected_answer`, `n_back`, ... A summary goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import Counter

from tqdm import tqdm

from igsm.io import atomic_open, read_jsonl
from igsm.verifier import verify


def judge(record: dict, field: str = "solution") -> dict:
    """The input record plus the verdict fields; `field` names the candidate solution."""
    missing = [k for k in ("problem", "question", field) if k not in record]
    if missing:
        raise ValueError(f"record lacks field(s) {missing}")
    v = verify(record["problem"], record["question"], record[field], answer=record.get("answer"))
    return {**record, **v.to_dict()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m igsm.verify", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--in", dest="inp", required=True, help="JSON-lines file of candidates")
    ap.add_argument("--out", help="JSON-lines file to write (atomically); stdout if omitted")
    ap.add_argument("--field", default="solution", help="the field holding the candidate (e.g. candidate)")
    args = ap.parse_args(argv)
    counts: Counter = Counter()
    with atomic_open(args.out) if args.out else contextlib.nullcontext(sys.stdout) as f:
        for lineno, record in enumerate(
            tqdm(read_jsonl(args.inp), desc="verifying", unit="solution", disable=args.out is None), 1
        ):
            try:
                r = judge(record, args.field)
            except ValueError as e:
                raise SystemExit(f"error: {args.inp}:{lineno}: {e}") from None
            counts["n"] += 1
            counts["correct"] += r["correct"]
            counts["strict_correct"] += r["strict_correct"]
            counts.update(f"error:{k}" for k in dict.fromkeys(e["kind"] for e in r["errors"]))
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    n = max(counts["n"], 1)
    print(
        f"{counts['n']} solutions: correct {counts['correct'] / n:.1%}, strict {counts['strict_correct'] / n:.1%}",
        file=sys.stderr,
    )
    for k, c in sorted(((k, c) for k, c in counts.items() if k.startswith("error:")), key=lambda x: -x[1]):
        print(f"  {k[6:]}: {c}", file=sys.stderr)


if __name__ == "__main__":
    main()
