"""benchmarks/learning_curve.py --target: the line in logit(accuracy) against log(tokens) that says where a curve
would get, and the --from-json path that draws it from a saved curve without evaluating."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import learning_curve  # noqa: E402
from learning_curve import logit_fit  # noqa: E402

N = 100_000  # many problems per point: k/n is the law's accuracy to 5 digits


def law_points(a: float, b: float, tokens: list[float], minutes_per_token: float = 1e-6) -> list[dict]:
    points = []
    for step, t in enumerate(tokens, start=1):
        acc = round(N / (1 + math.exp(-(a + b * math.log(t))))) / N
        points.append(
            {
                "step": 500 * step,
                "tokens": t,
                "minutes": t * minutes_per_token,
                "loss": 0.1,
                "op3": {"accuracy": acc, "ci95": [acc, acc]},
            }
        )
    return points


def test_a_logit_linear_curve_is_fitted_and_its_crossing_found():
    a, b = -20.0, 1.2
    points = law_points(a, b, [4e6, 8e6, 12e6, 16e6, 20e6])
    fit = logit_fit(points, "op3", N, 0.95, last=3)
    assert fit["slope"] == pytest.approx(b, rel=1e-3)
    assert fit["points"] == 3 and fit["from_step"] == 1500
    expected = math.exp((math.log(0.95 / 0.05) - a) / b)
    assert fit["tokens_at_target"] == pytest.approx(expected, rel=1e-2)
    assert fit["minutes_at_target"] == pytest.approx(expected * 1e-6, rel=1e-2)  # at the last point's rate


def test_a_curve_that_does_not_rise_never_reaches_the_target():
    points = law_points(5.0, -0.5, [4e6, 8e6, 12e6])
    fit = logit_fit(points, "op3", N, 0.95, last=3)
    assert fit["slope"] < 0 and fit["tokens_at_target"] is None and fit["minutes_at_target"] is None
    assert "never reaches 95%" in learning_curve.fit_line(fit)


def test_zero_accuracy_stays_finite_and_bad_arguments_are_named():
    points = law_points(-30.0, 1.0, [4e6, 8e6])
    points[0]["op3"]["accuracy"] = 0.0
    assert math.isfinite(logit_fit(points, "op3", 128, 0.95, last=2)["slope"])
    with pytest.raises(ValueError, match="target"):
        logit_fit(points, "op3", 128, 95, last=2)
    with pytest.raises(ValueError, match="at least 2 points"):
        logit_fit(points, "op3", 128, 0.95, last=1)


def test_from_json_prints_the_saved_curve_and_the_crossing(tmp_path, monkeypatch, capsys):
    points = law_points(-20.0, 1.2, [4e6, 8e6, 12e6, 16e6])
    (tmp_path / "curve.json").write_text(json.dumps({"splits": ["op3"], "n": N, "points": points}))
    monkeypatch.setattr(sys, "argv", ["learning_curve.py", str(tmp_path), "--from-json", "--target", "0.95"])
    learning_curve.main()
    out = capsys.readouterr().out
    assert sum(line.startswith("|") for line in out.splitlines()) == 2 + len(
        points
    )  # header, rule, one row per checkpoint
    assert "95% at ~" in out and "minutes at this run's rate" in out
    monkeypatch.setattr(sys, "argv", ["learning_curve.py", str(tmp_path), "--from-json", "--splits", "op4"])
    with pytest.raises(SystemExit, match="has no"):
        learning_curve.main()
    for bad, message in ((["--target", "95"], "strictly between 0 and 1"), (["--fit-last", "1"], "at least 2")):
        monkeypatch.setattr(sys, "argv", ["learning_curve.py", str(tmp_path), *bad])  # refused before evaluating
        with pytest.raises(SystemExit, match=message):
            learning_curve.main()
