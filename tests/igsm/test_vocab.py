"""Our vocabulary file: the shape the generator relies on, and names the text can be read back from."""

from __future__ import annotations

import re

from igsm.vocab import load_vocabulary, reference_hierarchies, sketch_hazards

NAME = re.compile(r"^[A-Z][A-Za-z-]*( [A-Z][A-Za-z-]*){0,2}$")
FORBIDDEN = {
    "each",
    "as",
    "and",
    "equals",
    "more",
    "than",
    "times",
    "sum",
    "difference",
    "define",
    "back",
    "how",
    "many",
    "does",
    "have",
    "so",
    "the",
}


def test_vocabulary_shape_and_names():
    v = load_vocabulary()
    assert len(v.hierarchies) >= 4 and all(len(h) == 4 for h in v.hierarchies)
    cats = [c for h in v.hierarchies for c in h]
    reference_cats = {c for h in reference_hierarchies() for c in h}
    assert len(set(cats)) == len(cats) and not set(cats) & reference_cats
    items = []
    for c in cats:
        groups = v.groups[c]
        assert len(groups) == 5 and all(len(g) >= 12 for g in groups)
        items += [x for g in groups for x in g]
    assert len(items) >= 1500 and len(set(items)) == len(items)  # unique: an item names its own category
    for x in items:
        assert NAME.match(x) and not FORBIDDEN & set(x.lower().split()), x
        assert x not in cats and x not in reference_cats
        assert not any(x.startswith(c) for c in set(cats) | reference_cats), x
    assert sketch_hazards(v) == [] and v.sketch_safe
