"""Solutions per second of the verifier (problem text parsed from scratch each time), on one core.

python benchmarks/verifier.py [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import time

from igsm.config import preset
from igsm.generator import generate
from igsm.verifier import verify


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(f"{'setting':10s} {'solutions/s':>12s} {'ms/solution':>12s}")
    for name in ("med", "hard"):
        cases = [generate(preset(name), 1, i) for i in range(args.n)]
        cases = [(p.problem_text, p.question_text, p.solution_text) for p in cases]
        t0 = time.perf_counter()
        ok = sum(verify(*c).strict_correct for c in cases)
        dt = time.perf_counter() - t0
        assert ok == len(cases)
        print(f"{name:10s} {len(cases) / dt:12.0f} {1000 * dt / len(cases):12.2f}")


if __name__ == "__main__":
    main()
