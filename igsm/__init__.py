"""iGSM: the grade-school-math problem class of "Physics of Language Models" Part 2.1/2.2, as a library.

    import igsm
    problem = igsm.generate_problem(igsm.preset("med"), seed=0, index=0)
    print(problem.prompt, problem.solution_text, problem.answer)
    verdict = igsm.verify_solution(problem.problem_text, problem.question_text, "Define ... as a; so a = 3.")

(The command-line tools are the modules `igsm.generate` and `igsm.verify`; the functions are `generate_problem`
and `verify_solution`, so the names never clash.)

`igsm` knows nothing about models or tokens: it makes problems, writes and reads their text, labels every step,
splits train/test by template hash, and judges any solution text.
"""

from igsm.config import GenConfig, preset
from igsm.generator import GenerationError, derive_rng, generate_many
from igsm.generator import generate as generate_problem
from igsm.labels import Labels, compute_labels
from igsm.parse import ProblemParseError, parse_problem
from igsm.problem import Formula, ParamId, Problem
from igsm.verifier import ERROR_KINDS, Verdict
from igsm.verifier import verify as verify_solution

__all__ = [
    "ERROR_KINDS",
    "Formula",
    "GenConfig",
    "GenerationError",
    "Labels",
    "ParamId",
    "Problem",
    "ProblemParseError",
    "Verdict",
    "compute_labels",
    "derive_rng",
    "generate_many",
    "generate_problem",
    "parse_problem",
    "preset",
    "verify_solution",
]
