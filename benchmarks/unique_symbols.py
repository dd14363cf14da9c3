"""How much of a model's failure is its symbols? Re-judge a generations file with every symbol made unique.

    python benchmarks/unique_symbols.py runs/L2/eval/step_0003000/rur_perfect/generations.jsonl

A solution names each parameter (and intermediate) by a letter; with the papers' random letters a model must avoid
the letters it has used, and a model that has not learned to writes the likeliest letter again under greedy
decoding: "Define A's B as E; so E = 17. Define C's D as E; so E = 2 * E = ...", which the official parser rejects
(`duplicated_symbol`). This script renames each definition to a fresh letter and each use to the letter of the
latest definition of what it names (what the model meant, if it read its own text as a program), then judges the
solution again. Per split it prints the share correct as generated, as renamed, and the most common error kinds.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from igsm.templates import SYMBOLS
from igsm.verifier import verify
from pretrain.evaluate import wilson

DEFINITION = re.compile(r"(Define .* as )([a-zA-Z])(;.*)")
LETTER = re.compile(r"\b([a-zA-Z])\b")


def unique_symbols(solution: str) -> str:
    """`solution` with every defined symbol a fresh letter (a, b, ...) and every use renamed to match."""
    latest: dict[str, str] = {}
    fresh = iter(SYMBOLS)
    sentences = []
    for sentence in solution.split(". "):
        m = DEFINITION.match(sentence)
        if not m:
            sentences.append(sentence)
            continue
        head, own, rest = m.groups()
        mine = next(fresh, "?")
        clauses = []
        for clause in rest.split("; "):
            lhs, eq, rhs = clause.partition(" = ")
            rhs = LETTER.sub(lambda x: latest.get(x.group(1), x.group(1)), rhs)  # uses read earlier definitions
            target = lhs.removeprefix("so ")
            if target == own:
                lhs = lhs.replace(own, mine)
            elif len(target) == 1 and target.isalpha():  # an intermediate
                latest[target] = next(fresh, "?")
                lhs = lhs.replace(target, latest[target])
            clauses.append(lhs + eq + rhs)
        latest[own] = mine
        sentences.append(head + mine + "; ".join(clauses))
    return ". ".join(sentences)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("generations", type=Path, help="a generations.jsonl of pretrain.evaluate or probes.rur")
    args = ap.parse_args()
    by_split: dict[str, list[dict]] = defaultdict(list)
    for line in args.generations.read_text().splitlines():
        r = json.loads(line)
        by_split[r["split"]].append(r)
    print("| split | n | correct | with unique symbols | answer right | duplicated_symbol | top other errors |")
    print("|---|---:|---|---|---:|---:|---|")
    for split, rows in sorted(by_split.items()):
        n = len(rows)
        ok = sum(r["correct"] for r in rows)
        renamed = sum(
            verify(r["problem"], r["question"], unique_symbols(r["generated_solution"]), r["generated_answer"] or "").correct
            for r in rows
        )
        kinds = Counter(k for r in rows for k in sorted(set(r["error_kinds"])))  # sorted: ties in a fixed order
        dup = kinds.pop("duplicated_symbol", 0)
        kinds.pop("parse_failed", None)
        others = ", ".join(f"{k} {c}" for k, c in kinds.most_common(3))
        cells = [f"{100 * k / n:.1f}% ({100 * lo:.1f}-{100 * hi:.1f})" for k in (ok, renamed) for lo, hi in [wilson(k, n)]]
        answers = sum(r["answer_correct"] for r in rows)
        print(f"| {split} | {n} | {cells[0]} | {cells[1]} | {100 * answers / n:.1f}% | {dup} | {others} |")


if __name__ == "__main__":
    main()
