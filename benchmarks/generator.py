"""Problems per second of `igsm.generate` on one core, for the papers' settings and their OOD test sets.

    python benchmarks/generator.py [--seconds 5] [--repeats 3]

Pins itself to one CPU when the OS allows it, generates problems with consecutive indices for a fixed time, and
prints the median rate over the repeats next to the reference generator's rate on a machine like ours
(spec §16: about 50 med, 28 hard, 32 med op=23 and 18 hard op=32 problems per second per core) and the target
of 20x that.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from igsm.config import preset
from igsm.generator import generate
from igsm.vocab import load_vocabulary

CASES = [
    # name, preset, overrides, reference problems/s per core, target
    ("med (train split)", "med", {}, 50, 1000),
    ("hard (train split)", "hard", {}, 28, 600),
    ("med op=23 (test split)", "med", {"op_min": 23, "op_max": 23, "split": "test"}, 32, 600),
    ("hard op=32 (test split)", "hard", {"op_min": 32, "op_max": 32, "split": "test"}, 18, 350),
]


def rate(config, seconds: float, start: int) -> tuple[float, int]:
    vocab = load_vocabulary()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        generate(config, 0, start + n, vocab)
        n += 1
    return n / (time.perf_counter() - t0), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="time per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(
        f"# igsm generator throughput, one core ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()})"
    )
    print(f"{'setting':26s} {'problems/s':>11s} {'reference':>10s} {'speed-up':>9s} {'target':>7s}  ok")
    for name, base, overrides, ref, target in CASES:
        config = preset(base, **overrides)
        generate(config, 0, 0)  # warm caches (vocabulary, imports)
        rates = [rate(config, args.seconds, 10**6 * (r + 1))[0] for r in range(args.repeats)]
        r = statistics.median(rates)
        print(f"{name:26s} {r:11.0f} {ref:10d} {r / ref:8.1f}x {target:7d}  {'yes' if r >= target else 'NO'}")


if __name__ == "__main__":
    main()
