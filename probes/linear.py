"""Linear probes on frozen hidden states, one per layer, with the scores the papers report (and a majority
baseline). Labels are unbalanced, so binary tasks report accuracy on positives and negatives separately.
The best layer is chosen on a validation slice of the training problems, never on the test problems it is scored on."""

from __future__ import annotations

import random

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from igsm.labels import UNKNOWN_VALUE


def score(pred: np.ndarray, y: np.ndarray, task: str) -> dict:
    """accuracy, and per class group: positives / negatives (binary tasks) or known / unknown values (value)."""
    ok = pred == y
    out = {"n": int(len(y)), "accuracy": float(ok.mean()) if len(y) else None}
    groups = {"value": (y != UNKNOWN_VALUE, "known", "unknown")}.get(task, (y == 1, "positive", "negative"))
    sel, a, b = groups
    out[f"{a}_accuracy"] = float(ok[sel].mean()) if sel.any() else None
    out[f"{b}_accuracy"] = float(ok[~sel].mean()) if (~sel).any() else None
    out[f"n_{a}"] = int(sel.sum())
    return out


def majority(y_train: np.ndarray, y_test: np.ndarray, task: str) -> dict:
    """Always predict the most frequent training label."""
    values, counts = np.unique(y_train, return_counts=True)
    return score(np.full_like(y_test, values[counts.argmax()]), y_test, task)


def fit(x: np.ndarray, y: np.ndarray, c: float = 1.0):
    """A standardized logistic regression (multinomial for more than two classes)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)


def layerwise(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, task: str, c: float = 1.0
) -> list[dict]:
    """One probe per layer: states are (examples, layers, hidden). A constant training label gives the majority
    answer (nothing to fit)."""
    out = []
    for layer in range(train_x.shape[1]):
        if len(np.unique(train_y)) < 2:
            out.append({"layer": layer, **majority(train_y, test_y, task)})
            continue
        probe = fit(train_x[:, layer], train_y, c)
        out.append({"layer": layer, **score(probe.predict(test_x[:, layer]), test_y, task)})
    return out


VALIDATION_SHARE = 0.2  # of the training problems, held out to choose the best layer


def best_layer(layer_scores: list[dict], task: str) -> int:
    """The layer with the best accuracy; for regret, the best balanced accuracy (mean of the accuracies on positives
    and on negatives: mistakes are rare, and a detector must catch them)."""

    def key(s: dict) -> float:
        if task != "regret":
            return s["accuracy"]
        parts = [p for p in (s.get("positive_accuracy"), s.get("negative_accuracy")) if p is not None]
        return float(np.mean(parts)) if parts else 0.0

    return int(max(layer_scores, key=key)["layer"])


def validation_split(train: list[int], groups: list[int], seed: int = 0) -> tuple[list[int], list[int]]:
    """(fit, validation): the examples `train` (indices) split by problem (`groups[i]` is example i's problem),
    VALIDATION_SHARE of the problems (at least one) held out, so one problem's examples never straddle the two."""
    problems = sorted({groups[i] for i in train})
    if len(problems) < 2:
        raise ValueError(f"{len(problems)} training problem(s): at least 2 are needed to hold some out for validation")
    held = set(random.Random(seed).sample(problems, max(1, round(VALIDATION_SHARE * len(problems)))))
    return [i for i in train if groups[i] not in held], [i for i in train if groups[i] in held]


def probe_layers(
    states: np.ndarray,
    y: np.ndarray,
    train: list[int],
    test: list[int],
    groups: list[int],
    task: str,
    c: float = 1.0,
    seed: int = 0,
) -> tuple[list[dict], int, list[dict]]:
    """(test scores per layer, best layer, validation scores per layer). The best layer is chosen by probes fitted on
    part of the training problems and scored on the rest (`validation_split`); the test scores come from probes
    fitted on all training examples, so the best layer's test score is a fair estimate."""
    fit_idx, val_idx = validation_split(train, groups, seed)
    validation = layerwise(states[fit_idx], y[fit_idx], states[val_idx], y[val_idx], task, c)
    best = best_layer(validation, task)
    return layerwise(states[train], y[train], states[test], y[test], task, c), best, validation
