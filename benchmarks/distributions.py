"""Distribution statistics of generated problems, beside the official generator's (spec §15, 10,000 problems each).

    python benchmarks/distributions.py [--n 10000] [--seed 1]

All template bins are accepted (split=all), as in the spec's measurements.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

from igsm.config import preset
from igsm.generator import generate_many

OFFICIAL = {  # spec §15: med, hard
    "op mean": (5.48, 7.45),
    "statement sentences": (9.06, 10.86),
    "solution sentences": (4.71, 5.98),
    "answer = 0 (%)": (12.0, 10.7),
    "test bins (%)": (27.1, 28.2),
    "question abstract (%)": (41.0, 40.0),
    "d = 2 / 3 / 4 (%)": ("38 / 35 / 27", "38 / 35 / 27"),
}


def stats(name: str, n: int, seed: int) -> dict[str, object]:
    probs = list(generate_many(preset(name, split="all"), seed, n))
    d = Counter(p.d for p in probs)
    return {
        "op mean": round(statistics.mean(p.n_op for p in probs), 2),
        "statement sentences": round(statistics.mean(len(p.formulas) for p in probs), 2),
        "solution sentences": round(statistics.mean(len(p.solution_order) for p in probs), 2),
        "answer = 0 (%)": round(100 * sum(p.answer == 0 for p in probs) / n, 1),
        "test bins (%)": round(100 * sum(p.hash_bin >= 16 for p in probs) / n, 1),
        "question abstract (%)": round(100 * sum(p.question[0] == 1 for p in probs) / n, 1),
        "d = 2 / 3 / 4 (%)": " / ".join(f"{100 * d[k] / n:.0f}" for k in (2, 3, 4)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    ours = {name: stats(name, args.n, args.seed) for name in ("med", "hard")}
    print(f"{'statistic':24s} {'med: ours':>14s} {'official':>14s} {'hard: ours':>14s} {'official':>14s}")
    for key, (med, hard) in OFFICIAL.items():
        print(f"{key:24s} {ours['med'][key]!s:>14s} {med!s:>14s} {ours['hard'][key]!s:>14s} {hard!s:>14s}")


if __name__ == "__main__":
    main()
