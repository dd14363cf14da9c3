"""Probing labels: a hand-checked example, and their definitions checked against an independent graph library."""

from __future__ import annotations

import networkx as nx
import numpy as np

from igsm.config import preset
from igsm.generator import generate
from igsm.labels import UNKNOWN_VALUE, compute_labels
from igsm.parse import parse_problem
from tests.conftest import HAND_QUESTION, HAND_STATEMENT


def test_hand_checked_labels():
    (p,) = parse_problem(HAND_STATEMENT, HAND_QUESTION)
    lab = compute_labels(p)
    names = [p.name(q) for q in lab.params]
    assert names == [
        "Lisbon's Riverside Park",
        "Lisbon's Lakeview Park",
        "Madrid's Lakeview Park",
        "Lisbon's Park",
        "Madrid's Park",
    ]
    assert [p.name(q) for q in lab.order] == ["Lisbon's Riverside Park", "Lisbon's Lakeview Park", "Lisbon's Park"]
    assert lab.nece.tolist() == [1, 1, 0, 1, 0]
    assert lab.can_next.astype(int).tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 0, 0]]
    assert lab.nece_next.astype(int).tolist() == [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]
    assert lab.known.astype(int).tolist() == [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 0, 1, 0]]
    u = UNKNOWN_VALUE
    assert lab.value.tolist() == [[u] * 5, [5, u, u, u, u], [5, 18, u, u, u], [5, 18, u, 0, u]]
    # Madrid's Park <- Madrid's Lakeview Park <- both Lisbon parameters
    assert lab.dep[4].astype(int).tolist() == [1, 1, 1, 0, 0]
    assert lab.dep[3].astype(int).tolist() == [1, 1, 0, 0, 0]
    assert not lab.dep[0].any()


def test_labels_follow_their_definitions():
    for i in range(60):
        p = generate(preset("hard", split="all"), 4, i)
        lab = compute_labels(p)
        g = nx.DiGraph()
        g.add_nodes_from(lab.params)
        g.add_edges_from((q, x) for x in lab.params for q in p.deps(x))
        closure = nx.transitive_closure_dag(g)
        col = {q: c for c, q in enumerate(lab.params)}
        dep = np.zeros_like(lab.dep)
        for a, b in closure.edges():
            dep[col[b], col[a]] = True
        assert (dep == lab.dep).all()
        ancestors = nx.ancestors(g, p.question) | {p.question}
        assert lab.nece.tolist() == [q in ancestors for q in lab.params]
        for t, q in enumerate(lab.order):  # each step computes a parameter that could be computed next
            assert lab.can_next[t, col[q]] and lab.nece_next[t, col[q]] and lab.known[t + 1, col[q]]
        assert (lab.known[1:] >= lab.known[:-1]).all()
        assert not (lab.can_next & lab.known).any() and (lab.nece_next <= lab.can_next).all()
        vals = np.array([p.value(q) for q in lab.params])
        assert (np.where(lab.known, lab.value, vals) == vals).all() and (lab.value[~lab.known] == UNKNOWN_VALUE).all()
        assert len(lab.params) == len(p.formulas) + len(p.abstract_params())  # no unlinked pairs
