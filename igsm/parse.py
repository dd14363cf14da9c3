"""Reading a problem back from its text: statement + question -> `Problem` (spec decision 8).

Two things the text leaves open are resolved here:
(a) names may contain "'s" ("Sam's Club's Apple"): a phrase is split where both sides are known names;
(b) an abstract parameter "A's C" names a category C but not its layer. Items from our vocabulary carry their
    category, so our problems are read exactly. For other items the layer names come from a known hierarchy (ours
    or the reference's) placed so that every category lies below every item it is used with; when several
    placements fit, each is returned as one interpretation, and when none does, the parse fails with a kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import permutations, product
from math import prod

from igsm import templates as T
from igsm.problem import Formula, ParamId, Problem
from igsm.vocab import Vocabulary, known_hierarchies, load_vocabulary

_NUM = r"(\d+)"
_MORE = re.compile(rf"^{_NUM}{T.MORE_THAN}(.+)$")
_TIMES = re.compile(rf"^{_NUM}{T.TIMES_AS_MUCH_AS}(.+)$")
_OPERAND_SEP = re.compile(r", each | and each ")
MAX_TEXT = 100_000  # longer statements are rejected before any work
MAX_READINGS = 8
LOWER = "\x00"  # marks the contents-side copy of a name used in two layers


class ProblemParseError(ValueError):
    """The statement or question cannot be read; `kind` names why (for verdicts and logs)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass
class _Sentence:
    subject: str
    const: int | None
    outer: str | None
    inner: str
    operands: list[str]


def _number(s: str, where: str) -> int:
    if not s.isdigit() or int(s) >= T.MOD:
        raise ProblemParseError("bad_number", f"{s!r} in {where!r} is not a number 0..{T.MOD - 1}")
    return int(s)


def _operands(phrase: str, where: str) -> tuple[str, list[str]]:
    if phrase.startswith(T.SUM_OF):
        inner, body = "sum", phrase[len(T.SUM_OF) :]
    elif phrase.startswith(T.DIFFERENCE_OF):
        inner, body = "diff", phrase[len(T.DIFFERENCE_OF) :]
    else:
        inner, body = "sum", phrase
    if not body.startswith(T.EACH):
        raise ProblemParseError("bad_sentence", f"expected 'each ...' in {where!r}")
    names = _OPERAND_SEP.split(body[len(T.EACH) :])
    if len(names) > 1 and body is phrase:
        raise ProblemParseError("bad_sentence", f"several operands without 'the sum of' in {where!r}")
    if (len(names) == 1 and body is not phrase) or (inner == "diff" and len(names) != 2):
        raise ProblemParseError("bad_sentence", f"wrong number of operands in {where!r}")
    return inner, names


def _sentence(text: str) -> _Sentence:
    if not text.startswith(T.SENTENCE_HEAD) or T.EQUALS not in text:
        raise ProblemParseError("bad_sentence", f"not a statement sentence: {text[:120]!r}")
    subject, rest = text[len(T.SENTENCE_HEAD) :].split(T.EQUALS, 1)
    if rest.isdigit():
        return _Sentence(subject, _number(rest, text), None, "sum", [])
    for pattern, outer in ((_MORE, "add"), (_TIMES, "mul")):
        m = pattern.match(rest)
        if m:
            inner, names = _operands(m.group(2), text)
            return _Sentence(subject, _number(m.group(1), text), outer, inner, names)
    inner, names = _operands(rest, text)
    return _Sentence(subject, None, None, inner, names)


def split_question(text: str) -> tuple[str, str]:
    """Separate 'statement. question?' in either order (pq or qp), as in a model prompt."""
    text = text.strip()
    m = re.search(r"How many .+? does .+? have\?", text)
    if not m:
        raise ProblemParseError("no_question", "no 'How many ... does ... have?' question found")
    statement = (text[: m.start()] + text[m.end() :]).strip()
    return statement, m.group(0)


def _splits(phrase: str) -> list[tuple[str, str]]:
    out, start = [], 0
    while (i := phrase.find(T.POSSESSIVE, start)) != -1:
        out.append((phrase[:i], phrase[i + len(T.POSSESSIVE) :]))
        start = i + 1
    return out


def _resolve_names(phrases: list[str], known: set[str]) -> list[dict[str, tuple[str, str]]]:
    """Split each 'A's B' phrase into (A, B), using names known from elsewhere where "'s" is ambiguous.

    Returns one resolution, or several when the text cannot tell them apart ("X's Sam's Club").
    """
    cands = {p: _splits(p) for p in phrases}
    for p, c in cands.items():
        if not c:
            raise ProblemParseError("bad_name", f'{p!r} is not of the form "A\'s B"')
    resolved: dict[str, tuple[str, str]] = {p: c[0] for p, c in cands.items() if len(c) == 1}
    known = set(known) | {x for ab in resolved.values() for x in ab}
    pending = [p for p in cands if p not in resolved]
    while pending:
        progress = False
        for p in list(pending):
            both = [ab for ab in cands[p] if ab[0] in known and ab[1] in known]
            one = [ab for ab in cands[p] if ab[0] in known or ab[1] in known]
            pick = both if len(both) == 1 else one if not both and len(one) == 1 else None
            if pick:
                resolved[p] = pick[0]
                known.update(pick[0])
                pending.remove(p)
                progress = True
        if not progress:
            break
    if not pending:
        return [resolved]
    # choose the splits that explain the text with the fewest distinct names; keep ties as separate readings
    choices = [cands[p] for p in pending]
    if prod(len(c) for c in choices) > 4096:
        raise ProblemParseError("ambiguous_name", f"cannot tell where the names in {pending[0]!r} split")
    fixed = {x for ab in resolved.values() for x in ab}
    scored = sorted((len(fixed.union(*combo)), combo) for combo in product(*choices))
    best = [combo for score, combo in scored if score == scored[0][0]][:MAX_READINGS]
    return [{**resolved, **dict(zip(pending, combo, strict=True))} for combo in best]


def _layers_with_splits(items: list[str], edges: list[tuple[str, str]]) -> tuple[dict[str, int], set[str]]:
    """Layers of the items; a name used in two consecutive layers (the reference has "Popcorn" both as a Product
    and as an Ingredient) is split in two: its occurrences as a container and as contents."""
    try:
        return _layers(items, edges), set()
    except ProblemParseError as first:
        for name in items:
            lower = name + LOWER
            split_edges = [(a, lower if b == name else b) for a, b in edges]
            try:
                return _layers(items + [lower], split_edges), {name}
            except ProblemParseError:
                continue
        raise first


def _layers(items: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Layer of each item: 0 for items without a parent, one more than the parent otherwise."""
    parents: dict[str, list[str]] = {x: [] for x in items}
    for a, b in edges:
        parents[b].append(a)
    layer: dict[str, int] = {}

    def depth(x: str, seen: tuple[str, ...]) -> int:
        if x in layer:
            return layer[x]
        if x in seen:
            raise ProblemParseError("inconsistent_layers", f"{x!r} is inside itself")
        ds = {depth(p, seen + (x,)) + 1 for p in parents[x]} or {0}
        if len(ds) > 1:
            raise ProblemParseError("inconsistent_layers", f"the parents of {x!r} lie in different layers")
        layer[x] = ds.pop()
        return layer[x]

    for x in items:
        depth(x, ())
    return layer


def _layer_name_options(
    d: int, mentions: list[tuple[int, str]], items_by_layer: list[list[str]], vocab: Vocabulary
) -> list[list[str]]:
    """Every assignment of category names to layers consistent with the text (usually exactly one)."""
    cats = vocab.item_category
    if not mentions and not all(x in cats for layer in items_by_layer for x in layer):
        return [[f"<layer {i}>" for i in range(d)]]  # no abstract parameter: the layers' names do not matter
    if all(x in cats for layer in items_by_layer for x in layer):  # our vocabulary names its own layers
        names = []
        for layer in items_by_layer:
            found = {cats[x] for x in layer}
            if len(found) != 1:
                raise ProblemParseError("inconsistent_layers", f"items of one layer from several categories: {found}")
            names.append(found.pop())
        if not any(tuple(names) == h[off : off + d] for h in vocab.hierarchies for off in range(len(h) - d + 1)):
            raise ProblemParseError(
                "inconsistent_layers", f"layers {names} are not consecutive categories of a hierarchy"
            )
        bad = [c for layer, c in mentions if c not in names or names.index(c) <= layer]
        if bad:
            raise ProblemParseError(
                "inconsistent_layers", f"{bad[0]!r} is not a category below the items it is used with"
            )
        return [names]
    options = []
    for h in known_hierarchies(vocab):
        if not all(c in h for _, c in mentions):
            continue
        for off in range(len(h) - d + 1):
            names = list(h[off : off + d])
            if all(layer < names.index(c) if c in names else False for layer, c in mentions):
                options.append(names)
    if options or any(any(c in h for h in known_hierarchies(vocab)) for _, c in mentions):
        return options
    # an unknown hierarchy: each category lies below every item it is used with (spec decision 8b)
    cats_used = sorted({c for _, c in mentions})
    for layers in permutations(range(1, d), len(cats_used)):
        where = dict(zip(cats_used, layers, strict=True))
        if all(layer < where[c] for layer, c in mentions):
            names = [f"<layer {i}>" for i in range(d)]
            for c, k in where.items():
                names[k] = c
            options.append(names)
    return options


def parse_problem(statement: str, question: str | None = None, vocab: Vocabulary | None = None) -> list[Problem]:
    """All readings of a problem's text (one, unless the layers of abstract categories are ambiguous).

    `statement` is the `problem` field ("The number of each ... ."); `question` the question sentence. With
    question=None the question is found inside `statement` (a model prompt in pq or qp layout).
    Raises ProblemParseError with a `kind` when the text is not an iGSM problem.
    """
    vocab = vocab or load_vocabulary()
    if len(statement) + len(question or "") > MAX_TEXT:
        raise ProblemParseError("too_long", f"problem text over {MAX_TEXT} characters")
    if question is None:
        statement, question = split_question(statement)
    statement, question = statement.strip(), question.strip()
    qm = T.QUESTION_RE.match(question)
    if not qm:
        raise ProblemParseError("no_question", f"not a question sentence: {question[:120]!r}")
    if not statement.endswith("."):
        raise ProblemParseError("bad_sentence", "the statement does not end with a period")
    sentences = [_sentence(s) for s in statement[:-1].split(". ")]
    subjects = [s.subject for s in sentences]
    if len(set(subjects)) != len(subjects):
        dup = next(x for x in subjects if subjects.count(x) > 1)
        raise ProblemParseError("duplicate_sentence", f"{dup!r} is defined twice")
    q_item, q_target = qm.group("item"), qm.group("target")
    categories = {c for h in known_hierarchies(vocab) for c in h}
    known = {q_item, q_target} | categories | set(vocab.item_category)
    # "X's <category>" operands name items X too
    known |= {a for s in sentences for o in s.operands for a, c in _splits(o) if c in categories}
    readings: list[Problem] = []
    error: ProblemParseError | None = None
    for pairs in _resolve_names(subjects, known):
        try:
            readings += _read(sentences, pairs, q_item, q_target, categories, vocab)
        except ProblemParseError as e:
            error = error or e
    if not readings:
        assert error is not None
        raise error
    return readings[:MAX_READINGS]


def _read(
    sentences: list[_Sentence],
    pairs: dict[str, tuple[str, str]],
    q_item: str,
    q_target: str,
    categories: set[str],
    vocab: Vocabulary,
) -> list[Problem]:
    """The readings of the problem for one way of splitting its names."""
    subject_set = set(pairs)
    items_seen = {x for ab in pairs.values() for x in ab}
    abstract_phrases = sorted({o for s in sentences for o in s.operands if o not in subject_set})
    abstract: dict[str, tuple[str, str]] = {}
    items_seen.add(q_item)

    def one(cands: list[tuple[str, str]]) -> tuple[str, str] | None:
        return cands[0] if len(cands) == 1 else None

    for phrase in abstract_phrases:
        splits = _splits(phrase)
        if not splits:
            raise ProblemParseError("bad_name", f'{phrase!r} is not of the form "A\'s B"')
        pick = (
            one([ab for ab in splits if ab[0] in items_seen and ab[1] in categories])
            or one([ab for ab in splits if ab[0] in items_seen])
            or one([ab for ab in splits if ab[1] in categories])
            or one(splits)
        )
        if pick is None:
            raise ProblemParseError("ambiguous_name", f"cannot tell where {phrase!r} splits")
        if pick[1] in items_seen:
            raise ProblemParseError("unknown_operand", f"{phrase!r} is used but no sentence states it")
        abstract[phrase] = pick
    # items in order of first appearance, then layers from the edges
    order: dict[str, None] = {}
    for s in sentences:
        order.update(dict.fromkeys(pairs[s.subject]))
    for ab in abstract.values():
        order[ab[0]] = None
    order[q_item] = None
    q_is_instance = T.param_name(q_item, q_target) in subject_set
    if q_is_instance:
        order[q_target] = None
    elif q_target in items_seen:
        raise ProblemParseError(
            "unknown_question", f"the question asks for {q_target!r} in {q_item!r}, which no sentence states"
        )
    items = list(order)
    layer, split = _layers_with_splits(items, list(pairs.values()))
    if split:
        pairs = {p: (a, b + LOWER if b in split else b) for p, (a, b) in pairs.items()}
        items = list(layer)
    d = max(layer.values()) + 1
    if d < 2:
        raise ProblemParseError("inconsistent_layers", "the statement has no item inside another")
    keys_by_layer: list[list[str]] = [[] for _ in range(d)]
    for x in items:
        keys_by_layer[layer[x]].append(x)
    by_layer = [[x.removesuffix(LOWER) for x in keys] for keys in keys_by_layer]
    index = {x: (layer[x], keys_by_layer[layer[x]].index(x)) for x in items}
    mentions = [(layer[a], c) for a, c in abstract.values()]
    if not q_is_instance:
        mentions.append((layer[q_item], q_target))
    options = _layer_name_options(d, mentions, by_layer, vocab)
    if not options:
        raise ProblemParseError(
            "inconsistent_layers", "no placement of the categories fits the items they are used with"
        )

    def inst(phrase: str) -> ParamId:
        a, b = pairs[phrase]
        (i, j), (_, k) = index[a], index[b]
        return (0, i, j, k)

    readings = []
    for names in options:

        def abst(a: str, c: str, names: list[str] = names) -> ParamId:
            i, j = index[a]
            return (1, i, j, names.index(c))

        formulas: dict[ParamId, Formula] = {}
        for s in sentences:
            ops = tuple(inst(o) if o in subject_set else abst(*abstract[o]) for o in s.operands)
            formulas[inst(s.subject)] = Formula(ops, s.const, s.outer, s.inner)
        q = inst(T.param_name(q_item, q_target)) if q_is_instance else abst(q_item, q_target)
        problem = Problem(
            layer_names=names,
            items=by_layer,
            formulas=formulas,
            question=q,
            statement_order=[inst(s.subject) for s in sentences],
        )
        if _is_acyclic(problem):  # a wrong placement of the categories can make a parameter depend on itself
            readings.append(problem)
    if not readings:
        raise ProblemParseError("cyclic_dependencies", "every reading of the text has a parameter depending on itself")
    return readings


def _is_acyclic(problem: Problem) -> bool:
    state: dict[ParamId, int] = {}

    def visit(p: ParamId) -> bool:
        if state.get(p) == 2:
            return True
        if state.get(p) == 1:
            return False
        state[p] = 1
        if not all(visit(q) for q in problem.deps(p)):
            return False
        state[p] = 2
        return True

    return all(visit(p) for p in problem.params())
