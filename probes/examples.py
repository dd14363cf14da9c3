"""Probing examples: (problem, token position, parameter or pair, label) for each probing task.

Tasks (Part 2.1 §4, Part 2.2 §3; label definitions in `igsm.labels`):
  nece(A)                                  at the end of the prompt (the <begin_solution> token: row 0), i.e. after
                                           the question in pq and after the statement in qp
  dep(A, B)                                at the end of the statement (its last "." token), before the question in
                                           pq (Part 2.1 §4.1 fn. 16: dependencies are worked out before the question
                                           is read); dep_position="prompt_end" reads it where nece is read instead
  known(A), value(A), can_next(A),
  nece_next(A)                             at the end of each solution sentence (its "." token: row t), and row 0
  regret(A)                                right after "Define A as" (the " as" token) of every step, taken-back
                                           mistakes included: 1 if A cannot be computed at that point (the step is
                                           a mistake), 0 if it can.
Sequences are a model's prompt (`pretrain.tokenizer.layout`, the problem in its own p_format) and the solution.
At most `per_task` (default 10, as in the papers) (position, parameter) choices per problem and task, drawn without
replacement; the problem's template-hash split (`igsm.split`) comes with each example.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from igsm import templates as T
from igsm.dataset import STREAM_MISTAKES, DataConfig
from igsm.generator import derive_rng, generate
from igsm.labels import UNKNOWN_VALUE, compute_labels
from igsm.mistakes import insert_mistakes
from igsm.problem import Problem
from igsm.split import split_of
from pretrain.tokenizer import Roles, layout

TASKS: dict[str, int] = {  # task -> number of classes
    "nece": 2,
    "dep": 2,
    "known": 2,
    "value": UNKNOWN_VALUE + 1,
    "can_next": 2,
    "nece_next": 2,
    "regret": 2,
}
STEP_TASKS = ("known", "value", "can_next", "nece_next")
DEP_POSITIONS = ("statement_end", "prompt_end")  # the paper's (default), and the <begin_solution> token


@dataclass
class ProbeExample:
    seq: int  # which token sequence (see `ProbeSet.sequences`)
    position: int  # index of the token whose state is read (the prefix ends there)
    task: str
    names: tuple[str, ...]  # the parameter (or pair) asked about, as written
    label: int
    op: int
    split: str  # the problem's template split: train or test


@dataclass
class ProbeSet:
    sequences: list[list[int]]  # token ids: a model's prompt (`pretrain.tokenizer.layout`), then the solution
    examples: list[ProbeExample]


def sentence_spans(solution: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of a `solution` field; end is the index of its closing '.'."""
    spans, start = [], 0
    for part in solution[:-1].split(". "):
        spans.append((start, start + len(part)))
        start += len(part) + 2
    return spans


def _token_at(offsets: list[tuple[int, int]], char: int) -> int:
    """Index of the token covering character `char`."""
    for i, (s, e) in enumerate(offsets):
        if s <= char < e:
            return i
    raise ValueError(f"no token covers character {char}")


def _statement_end(problem: Problem, offsets: list[tuple[int, int]]) -> int:
    """Index, among the prompt's tokens, of the statement's closing "." (`offsets`: of the tokens of
    `problem.prompt`). Fails if that "." shares its token with the text after it."""
    prompt, statement = problem.prompt, problem.problem_text
    if prompt.count(statement) != 1:
        raise ValueError(f"the statement is not found once in the prompt {prompt!r}")
    char = prompt.index(statement) + len(statement) - 1
    k = _token_at(offsets, char)
    if offsets[k][1] != char + 1:
        raise ValueError(f"the statement's last '.' shares token {offsets[k]} with the text after it in {prompt!r}")
    return k


def problem_examples(
    problem: Problem,
    solution: str,
    tokenizer,
    roles: Roles,
    rng: random.Random,
    seq: int,
    tasks: tuple[str, ...],
    per_task: int,
    dep_position: str = "statement_end",
) -> tuple[list[int], list[ProbeExample]]:
    """(token ids, examples) of one problem: a model's prompt for `problem.prompt` followed by " " + `solution`
    (the text after <begin_solution>, as the model writes it)."""
    if dep_position not in DEP_POSITIONS:
        raise ValueError(f"dep_position must be one of {DEP_POSITIONS}, got {dep_position!r}")
    enc_p = tokenizer(problem.prompt, add_special_tokens=False, return_offsets_mapping=True)
    prompt = layout(roles, enc_p.input_ids)
    enc = tokenizer(" " + solution, add_special_tokens=False, return_offsets_mapping=True)
    offsets, prompt_length = enc.offset_mapping, len(prompt)
    lab = compute_labels(problem)
    names = [problem.name(p) for p in lab.params]
    spans = sentence_spans(solution)
    correct_rows, regret_points = [], []  # (token index of the sentence's '.', row) and (' as' index, label)
    row = 0
    for start, end in spans:
        text = solution[start:end]
        back = text.endswith(T.AS + T.BACK)
        name = text[len(T.DEFINE) : text.index(T.AS)] if text.startswith(T.DEFINE) and T.AS in text else None
        if name is not None:
            as_char = start + len(T.DEFINE) + len(name) + 2  # the "a" of " as" (offsets include the leading space)
            p = problem.param_named(name)
            computable = p is not None and bool(lab.can_next[row, lab.column(p)])
            regret_points.append((prompt_length + _token_at(offsets, as_char), name, int(not computable)))
        if not back:
            row += 1
            correct_rows.append((prompt_length + _token_at(offsets, end + 1), row))
    question_pos = prompt_length - 1  # the <begin_solution> token
    # the prefix ending at prompt token k is the prompt of the first k + 1 tokens, less its <begin_solution>
    statement_pos = len(layout(roles, enc_p.input_ids[: _statement_end(problem, enc_p.offset_mapping) + 1])) - 2
    dep_pos = statement_pos if dep_position == "statement_end" else question_pos
    op, split = problem.n_op, split_of(problem.hash_bin)
    out: list[ProbeExample] = []

    def pick(cands: list, k: int) -> list:
        return rng.sample(cands, min(k, len(cands)))

    n = len(lab.params)
    for task in tasks:
        if task == "nece":
            for c in pick(range(n), per_task):
                out.append(ProbeExample(seq, question_pos, task, (names[c],), int(lab.nece[c]), op, split))
        elif task == "dep":
            pairs = [(a, b) for a in range(n) for b in range(n) if a != b]
            for a, b in pick(pairs, per_task):
                out.append(ProbeExample(seq, dep_pos, task, (names[a], names[b]), int(lab.dep[a, b]), op, split))
        elif task in STEP_TASKS:
            points = [(question_pos, 0), *correct_rows]
            grid = [(pos, r, c) for pos, r in points for c in range(n)]
            table = {"known": lab.known, "value": lab.value, "can_next": lab.can_next, "nece_next": lab.nece_next}[task]
            for pos, r, c in pick(grid, per_task):
                out.append(ProbeExample(seq, pos, task, (names[c],), int(table[r, c]), op, split))
        elif task == "regret":
            for pos, name, label in pick(regret_points, per_task):
                out.append(ProbeExample(seq, pos, task, (name,), label, op, split))
        else:
            raise ValueError(f"unknown probing task {task!r}; choose from {list(TASKS)}")
    return [*prompt, *enc.input_ids], out


def build_probe_set(
    data: DataConfig,
    tokenizer,
    roles: Roles,
    n_problems: int,
    tasks: tuple[str, ...] = tuple(TASKS),
    per_task: int = 10,
    seed: int = 0,
    dep_position: str = "statement_end",
) -> ProbeSet:
    """Examples from the probing stream of `data` (all template bins, so the split comes from each problem's bin;
    give data with mistakes, e.g. retry at 0.5, so that the regret task sees real mistakes)."""
    rng = random.Random(seed)
    sequences, examples = [], []
    for i in range(n_problems):
        problem, solution = probe_problem(data, i)
        ids, ex = problem_examples(
            problem, solution, tokenizer, roles, rng, len(sequences), tasks, per_task, dep_position
        )
        sequences.append(ids)
        examples += ex
    return ProbeSet(sequences, examples)


def probe_problem(data: DataConfig, index: int) -> tuple[Problem, str]:
    """Problem `index` of the probing stream of `data` (every template bin) and its solution, with the mistakes of
    `data.mistakes` inserted."""
    seed = data.split_seed("probe")
    problem = generate(data.gen_config("train").with_(split="all"), seed, index)
    m = data.mistakes
    rng = derive_rng(seed, index, STREAM_MISTAKES)
    return problem, insert_mistakes(problem, m.kind, m.rate, rng, m.include_current).solution
