"""The symbol re-judging of benchmarks/unique_symbols.py renames what a model meant, and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from unique_symbols import unique_symbols  # noqa: E402

from igsm.config import GenConfig  # noqa: E402
from igsm.generator import generate  # noqa: E402
from igsm.verifier import verify  # noqa: E402


def test_a_repeated_letter_is_renamed_and_each_use_reads_the_latest_definition():
    twice = "Define A's B as E; so E = 17. Define C's D as E; F = E + E = 17 + 17 = 11; so E = 2 * F = 2 * 11 = 22."
    assert unique_symbols(twice) == (
        "Define A's B as a; so a = 17. Define C's D as b; c = a + a = 17 + 17 = 11; so b = 2 * c = 2 * 11 = 22."
    )


def test_a_reference_solution_stays_correct():
    config = GenConfig(max_op=4, max_edge=6, hierarchies=("city",), groups=1, items=6, split="all")
    for i in range(20):
        p = generate(config, 7, i)
        v = verify(p.problem_text, p.question_text, unique_symbols(p.solution_text), p.answer)
        assert v.correct and v.strict_correct, (i, v.errors)
