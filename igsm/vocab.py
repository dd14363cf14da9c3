"""The world's nouns: category hierarchies and their items, loaded from data files (never hard-coded)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Hierarchies (top to bottom) of categories; each category has sub-groups of items (spec §3, §14).

    A problem uses d consecutive categories of one hierarchy and, per layer, items of one sub-group.
    """

    hierarchies: tuple[tuple[str, ...], ...]
    groups: dict[str, tuple[tuple[str, ...], ...]]

    @cached_property
    def item_category(self) -> dict[str, str]:
        return {item: cat for cat, groups in self.groups.items() for group in groups for item in group}

    @cached_property
    def sketch_safe(self) -> bool:
        """True if no parameter name any problem can contain is part of another, and no name has a digit.

        Then a solution's hash sketch can be rendered directly (`Problem.solution_template`) instead of by the
        reference's substring replacements, with the same result.
        """
        return not sketch_hazards(self)


def _read_json(path: Path | None, default: str) -> dict:
    if path is None:
        return json.loads(resources.files("igsm").joinpath("data", default).read_text(encoding="utf-8"))
    return json.loads(Path(path).read_text(encoding="utf-8"))


@lru_cache(maxsize=8)
def load_vocabulary(path: str | None = None) -> Vocabulary:
    """Our vocabulary (`igsm/data/vocabulary.json`) or another file in the same format."""
    raw = _read_json(Path(path) if path else None, "vocabulary.json")
    hierarchies = tuple(tuple(h["categories"]) for h in raw["hierarchies"])
    groups = {cat: tuple(tuple(items) for items in subgroups.values()) for cat, subgroups in raw["categories"].items()}
    missing = [c for h in hierarchies for c in h if c not in groups]
    if missing:
        raise ValueError(f"vocabulary {path or 'vocabulary.json'}: categories without items: {missing}")
    return Vocabulary(hierarchies, groups)


@lru_cache(maxsize=1)
def reference_hierarchies() -> tuple[tuple[str, ...], ...]:
    """The official generator's four hierarchies (category names only), so the verifier can read its problems."""
    raw = _read_json(None, "reference_hierarchies.json")
    return tuple(tuple(h) for h in raw["hierarchies"])


def known_hierarchies(vocab: Vocabulary | None = None) -> tuple[tuple[str, ...], ...]:
    """Every hierarchy the verifier knows: ours first, then the reference's."""
    vocab = vocab or load_vocabulary()
    return vocab.hierarchies + reference_hierarchies()


def sketch_hazards(vocab: Vocabulary, limit: int = 10) -> list[str]:
    """Pairs of names that would make the direct hash sketch differ from the reference's replacements."""
    out: list[str] = []
    for cat, groups in vocab.groups.items():
        for group in groups:
            for a in group:
                if any(ch.isdigit() for ch in a):
                    out.append(f"{cat}: {a!r} has a digit")
                out += [f"{cat}: {a!r} is part of {b!r}" for b in group if a != b and a in b]
    for cats in vocab.hierarchies:
        for i in range(len(cats) - 1):
            deeper = cats[i + 1 :]
            for item in (x for g in vocab.groups[cats[i + 1]] for x in g):
                out += [f"{item!r} and category {c!r}" for c in deeper if item.startswith(c) or c.startswith(item)]
            out += [f"categories {a!r} and {b!r}" for a in deeper for b in deeper if a != b and b.startswith(a)]
    return out[:limit] if limit else out
