"""Linear probes on frozen hidden states, one per layer, with the scores the papers report (and a majority
baseline). Labels are unbalanced, so binary tasks report accuracy on positives and negatives separately."""

from __future__ import annotations

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
