"""The world's nouns: category hierarchies and their items, loaded from data files (never hard-coded)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import resources
from pathlib import Path


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Hierarchies (top to bottom) of categories; each category has sub-groups of items (spec §3, §14).

    A problem uses d consecutive categories of one hierarchy and, per layer, items of one sub-group.
    `names` are the hierarchies' short names ("city", ...), by which a world picks its hierarchies.
    """

    hierarchies: tuple[tuple[str, ...], ...]
    groups: dict[str, tuple[tuple[str, ...], ...]]
    names: tuple[str, ...] = ()

    @cached_property
    def digest(self) -> str:
        """A hash of every name in this vocabulary: part of each cache key built from it."""
        blob = json.dumps([self.hierarchies, {c: self.groups[c] for c in sorted(self.groups)}])
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def size(self) -> int:
        """Number of item names."""
        return len(self.item_category)

    def subset(self, hierarchies: tuple[str, ...] | None, groups: int | None, items: int | None) -> Vocabulary:
        """A smaller world, deterministically: the named hierarchies (in the file's order), the first `groups`
        sub-groups of each of their categories and the first `items` names of each sub-group (None keeps all)."""
        if hierarchies is None:
            keep = list(range(len(self.hierarchies)))
        else:
            unknown = [h for h in hierarchies if h not in self.names]
            if unknown or not hierarchies:
                raise ValueError(f"hierarchies {list(hierarchies)}: unknown {unknown}; choose among {list(self.names)}")
            keep = [i for i, name in enumerate(self.names) if name in hierarchies]
        cats = {c for i in keep for c in self.hierarchies[i]}
        new_groups = {}
        for c in cats:
            have = self.groups[c]
            if groups is not None and not 1 <= groups <= len(have):
                raise ValueError(f"groups={groups}: category {c!r} has {len(have)} sub-groups; choose 1..{len(have)}")
            kept = have[:groups]
            if items is not None and not all(MIN_ITEMS <= items <= len(g) for g in kept):
                most = min(len(g) for g in kept)
                raise ValueError(f"items={items}: sub-groups of {c!r} have {most} names; choose {MIN_ITEMS}..{most}")
            new_groups[c] = tuple(g[:items] for g in kept)
        return Vocabulary(
            tuple(self.hierarchies[i] for i in keep), new_groups, tuple(self.names[i] for i in keep) if self.names else ()
        )

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


# A layer has at most 4 items (spec §2: widths in 2..4), drawn without replacement from one sub-group.
MIN_ITEMS = 4


@lru_cache(maxsize=8)
def load_vocabulary(path: str | None = None) -> Vocabulary:
    """Our vocabulary (`igsm/data/vocabulary.json`) or another file in the same format."""
    raw = _read_json(Path(path) if path else None, "vocabulary.json")
    hierarchies = tuple(tuple(h["categories"]) for h in raw["hierarchies"])
    groups = {cat: tuple(tuple(items) for items in subgroups.values()) for cat, subgroups in raw["categories"].items()}
    missing = [c for h in hierarchies for c in h if c not in groups]
    if missing:
        raise ValueError(f"vocabulary {path or 'vocabulary.json'}: categories without items: {missing}")
    names = tuple(h.get("name", str(i)) for i, h in enumerate(raw["hierarchies"]))
    return Vocabulary(hierarchies, groups, names)


@lru_cache(maxsize=32)
def world_vocabulary(
    hierarchies: tuple[str, ...] | None = None, groups: int | None = None, items: int | None = None
) -> Vocabulary:
    """Our vocabulary cut down to a world's size (`Vocabulary.subset`); all None is the whole file."""
    full = load_vocabulary()
    if hierarchies is None and groups is None and items is None:
        return full
    return full.subset(hierarchies, groups, items)


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
