"""The regret detector: from the model's own states, is the step it just wrote ("Define A as") a mistake?

Three detectors share one interface, `detector(example, prompt_ids, generated_ids) -> bool`, which retry-upon-regret
decoding (`pretrain.evaluate.evaluate_model` with `regret=`) calls after every "Define A as" the model writes for the
dataset example `example` (its text fields):
  PerfectDetector  the truth from the example's problem text (Part 2.2's "100% detector" thought experiment);
  ProbeDetector    a linear probe on the model's hidden states (Part 2.2 §3);
  AdapterDetector  a small LoRA adapter and head finetuned to detect (`probes.adapter_probe`; the paper's v2).
Both fail loudly when they cannot read their input (a problem that does not parse, a step that is no "Define A as").
`regret_report` measures a probe on a model's own generations: how often it flags the first wrong step of wrong
solutions (Part 2.2: about 60%) and how often it agrees with the truth over all steps (about 99%).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from igsm import templates as T
from igsm.parse import ProblemParseError, parse_problem
from igsm.problem import Problem
from pretrain.tokenizer import Roles, prompt_ids
from probes.states import Markers, end_states, query_ids

if TYPE_CHECKING:
    from probes.adapter_probe import AdapterDetector

AS = T.AS.rstrip()  # " as"


def _sentences(text: str) -> list[str]:
    text = text[1:] if text.startswith(" ") else text
    return text.split(". ")


def defined_name(sentence: str) -> str | None:
    """A in "Define A as ..." (also when the sentence stops right after " as"), else None."""
    if not sentence.startswith(T.DEFINE) or AS not in sentence:
        return None
    return sentence[len(T.DEFINE) : sentence.index(AS)]


def written_step(problem: Problem, previous: list[str], current: str) -> tuple[str, bool] | None:
    """(name, is a mistake) of the step `current` ("Define A as ...") after the complete sentences `previous`:
    a mistake when A is no parameter of the problem, is already computed, or needs one that is not."""
    name = defined_name(current)
    if name is None:
        return None
    known = set()
    for s in previous:
        if defined_name(s) is not None and not s.endswith(T.AS + T.BACK):
            q = problem.param_named(defined_name(s))
            if q is not None:
                known.add(q)
    p = problem.param_named(name)
    mistake = p is None or p in known or not all(d in known for d in problem.deps(p))
    return name, mistake


def _last_step(tokenizer, generated: list[int]) -> tuple[list[str], str]:
    """(complete sentences, the last one) of a generation that ends with "Define A as"; fails on anything else.
    The decoder asks on tokens (" Define" ... " as"), so a model may have glued its name to "Define" ("Defineffodil
    as"): the step is read as "Define ffodil as", a name the problem does not have (a mistake to the perfect detector)."""
    sents = _sentences(tokenizer.decode(generated))
    current = sents[-1]
    bare = T.DEFINE.rstrip()
    if defined_name(current) is None and current.startswith(bare) and AS in current:
        at = current.index(AS)
        current = T.DEFINE + current[len(bare) : at].strip() + current[at:]
    if defined_name(current) is None:
        raise ValueError(f"a regret detector was asked about {sents[-1]!r}, which does not start 'Define A as'")
    return sents[:-1], current


class PerfectDetector:
    """Regret from the problem's own labels (the verifier's reading of the example's problem text; the prompt ids
    are not read, so it works whatever tokens play the roles)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._problems: dict[str, Problem] = {}
        self.calls = self.flags = 0

    def problem(self, example: dict) -> Problem:
        key = example["prompt"]
        if key not in self._problems:
            try:
                self._problems[key] = parse_problem(example["problem"], example["question"])[0]
            except ProblemParseError as e:
                raise ValueError(
                    f"the perfect detector cannot read the problem of example {example.get('index')}: {e}"
                ) from e
        return self._problems[key]

    def __call__(self, example: dict, prompt: list[int], generated: list[int]) -> bool:
        previous, current = _last_step(self.tokenizer, generated)
        _, flag = written_step(self.problem(example), previous, current)
        self.calls += 1
        self.flags += flag
        return flag


class ScoreDetector:
    """A detector that flags the step just written when `score(prefix, name)` (P(mistake)) exceeds `threshold`; the
    subclass holds `tokenizer`, `threshold`, `calls` and `flags` and defines `score`."""

    def __call__(self, example: dict, prompt: list[int], generated: list[int]) -> bool:
        name = defined_name(_last_step(self.tokenizer, generated)[1])
        flag = self.score(prompt + generated, name) > self.threshold
        self.calls += 1
        self.flags += flag
        return flag


@dataclass
class ProbeDetector(ScoreDetector):
    """A linear regret probe (a fitted scikit-learn classifier) on one layer's state at the query's [END]."""

    model: object
    tokenizer: object
    markers: Markers
    classifier: object
    layer: int
    threshold: float = 0.5
    calls: int = 0
    flags: int = 0

    def score(self, prefix: list[int], name: str) -> float:
        """P(mistake) for the step naming `name` that ends `prefix` (its " as" token)."""
        seq = prefix + query_ids(self.tokenizer, self.markers, (name,))
        x = end_states(self.model, [seq], layers=[self.layer])[:, 0]
        return float(self.classifier.predict_proba(x)[0, list(self.classifier.classes_).index(1)])


def generation_points(problem: Problem, solution: str, tokenizer, prompt: list[int]):
    """For each "Define A as" in a generated solution: (token prefix ending at " as", A, truly a mistake)."""
    enc = tokenizer(" " + solution, add_special_tokens=False, return_offsets_mapping=True)
    sents = solution.split(". ")
    out, pos = [], 0
    for k, s in enumerate(sents):
        step = written_step(problem, sents[:k], s)
        if step is not None:
            as_char = pos + len(T.DEFINE) + len(step[0]) + 2  # the "a" of " as" (offsets include the leading space)
            idx = next((i for i, (a, b) in enumerate(enc.offset_mapping) if a <= as_char < b), None)
            if idx is not None:
                out.append((prompt + enc.input_ids[: idx + 1], step[0], step[1]))
        pos += len(s) + 2
    return out


def regret_scores(
    detector: ProbeDetector | AdapterDetector, problem: Problem, solution: str, tokenizer, roles: Roles
) -> list[tuple]:
    """(name, P(mistake), truly a mistake) for every "Define A as" of a solution to `problem`."""
    prompt = prompt_ids(tokenizer, roles, problem.prompt)
    return [
        (name, detector.score(prefix, name), mistake)
        for prefix, name, mistake in generation_points(problem, solution, tokenizer, prompt)
    ]


def regret_report(detector: ProbeDetector | AdapterDetector, records: list[dict], tokenizer, roles: Roles) -> dict:
    """The probe against the truth on a model's own generations (records of `pretrain.evaluate`), each read on the
    prompt the model was given (the record's `prompt` text, in its own p_format)."""
    first_flagged = first_total = 0
    agree = total = 0
    pos_ok = pos = 0
    for r in records:
        if "prompt" not in r:
            raise ValueError(
                f"generation record {r.get('split')}/{r.get('index')} has no 'prompt' field (the text the model was "
                "given); evaluate the checkpoint again with pretrain.evaluate"
            )
        try:
            problem = parse_problem(r["prompt"])[0]
        except ProblemParseError as e:
            raise ValueError(
                f"generation record {r.get('split')}/{r.get('index')}: its prompt does not parse: {e}"
            ) from e
        prompt = prompt_ids(tokenizer, roles, r["prompt"])
        points = generation_points(problem, r["generated_solution"], tokenizer, prompt)
        first = True
        for prefix, name, mistake in points:
            flag = detector.score(prefix, name) > detector.threshold
            total += 1
            agree += flag == mistake
            if mistake:
                pos += 1
                pos_ok += flag
                if first and not r["correct"]:
                    first_total += 1
                    first_flagged += flag
                first = False
    return {
        "steps": total,
        "step_accuracy": agree / total if total else None,
        "mistaken_steps": pos,
        "mistakes_flagged": pos_ok / pos if pos else None,
        "wrong_solutions_with_a_wrong_step": first_total,
        "first_wrong_step_flagged": first_flagged / first_total if first_total else None,
    }
