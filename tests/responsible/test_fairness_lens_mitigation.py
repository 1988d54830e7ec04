"""Fairness Lens (30): the mitigations compared in one table, on a sample of UCI Adult."""

from __future__ import annotations

import numpy as np
import pytest

from mlpatterns.datasets import load_adult
from mlpatterns.responsible.fairness_lens import (
    compare_mitigations,
    plot_mitigations,
    reweighting_weights,
    slice_thresholds,
)


def test_reweighting_makes_the_label_independent_of_the_slice():
    """Kamiran and Calders: in the weighted rows every slice has the overall label rate and keeps its share."""
    rng = np.random.default_rng(0)
    s = rng.choice(["a", "b", "c"], size=3000, p=[0.7, 0.25, 0.05])
    y = (rng.random(3000) < np.where(s == "a", 0.3, np.where(s == "b", 0.1, 0.5))).astype(int)
    weights = reweighting_weights(y, s)
    for g in "abc":
        part = s == g
        assert np.average(y[part], weights=weights[part]) == pytest.approx(y.mean())
        assert weights[part].sum() == pytest.approx(part.sum())
    assert weights.sum() == pytest.approx(len(y)) and weights.max() / weights.min() < 10  # no extreme weights


def test_slice_thresholds_bring_each_slice_to_the_overall_false_negative_rate():
    rng = np.random.default_rng(0)
    s = rng.choice(["a", "b"], size=4000)
    y = (rng.random(4000) < 0.3).astype(int)
    scores = np.clip(0.3 * y + np.where(s == "a", 0.25, 0.0) + rng.random(4000) * 0.5, 0, 1)
    chosen, target = slice_thresholds(scores, y, s, 0.5, "false_negative_rate")
    assert chosen["a"] > chosen["b"]  # slice b scores lower, so it gets the lower threshold
    for g in "ab":
        positives = (s == g) & (y == 1)
        assert np.mean(scores[positives] < chosen[g]) == pytest.approx(target, abs=0.01)
    rates, _ = slice_thresholds(scores, y, s, 0.5, "selection_rate")
    overall = np.mean(scores >= 0.5)
    for g in "ab":
        assert np.mean(scores[s == g] >= rates[g]) == pytest.approx(overall, abs=0.01)


@pytest.fixture(scope="module")
def adult_sample():
    adult = load_adult().sample(9000, random_state=0).reset_index(drop=True)
    X = adult[["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]].to_numpy(float)
    X = np.column_stack([X, adult["relationship"].astype("category").cat.codes.to_numpy()])
    y = (adult["income"] == ">50K").to_numpy(int)
    return X, y, adult["sex"].to_numpy(object)


def test_compare_mitigations_table_on_adult(adult_sample, tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y, sex = adult_sample
    train, valid, test = slice(0, 5000), slice(5000, 6500), slice(6500, 9000)
    model = HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(X[train], y[train])
    scores = model.predict_proba(X)[:, 1]
    table = compare_mitigations(
        y_test=y[test], scores_test=scores[test], sensitive_test=sex[test], threshold=0.5,
        y_valid=y[valid], scores_valid=scores[valid], sensitive_valid=sex[valid],
        X_train=X[train], y_train=y[train], sensitive_train=sex[train], X_test=X[test])
    rows = {row["method"]: row for row in table["rows"]}
    assert list(rows) == ["served_model", "slice_thresholds", "threshold_optimizer", "unweighted_reference",
                          "reweighting", "exponentiated_gradient"]
    served = rows["served_model"]
    assert served["accuracy"] == pytest.approx(np.mean((scores[test] >= 0.5) == y[test]))
    female = sex[test] == "Female"
    fnr = {g: np.mean(scores[test][(sex[test] == g) & (y[test] == 1)] < 0.5) for g in ("Female", "Male")}
    assert served["by_slice"] == pytest.approx(fnr)
    assert served["gap"] == pytest.approx(abs(fnr["Female"] - fnr["Male"]))
    assert female.any()
    for row in table["rows"]:
        assert row["accuracy_cost"] == pytest.approx(served["accuracy"] - row["accuracy"])
        assert row["gap_reduction"] == pytest.approx(served["gap"] - row["gap"])
        assert row["deterministic"] is (row["method"] != "threshold_optimizer") and row["note"]
    assert rows["slice_thresholds"]["needs_sensitive_at_serving"] is True
    assert rows["reweighting"]["needs_sensitive_at_serving"] is False
    assert "randomized" in rows["exponentiated_gradient"]["note"]
    # fairlearn's ThresholdOptimizer draws some decisions at random: another seed changes some of them
    assert rows["threshold_optimizer"]["randomized_decisions"] > 0
    assert f"changes {rows['threshold_optimizer']['randomized_decisions']} of 2500" in rows["threshold_optimizer"]["note"]
    # Kamiran-Calders weights raise women's positives (their label rate is lower) and lower men's: women's false
    # negative rate falls, men's rises
    assert rows["reweighting"]["by_slice"]["Female"] < rows["unweighted_reference"]["by_slice"]["Female"]
    assert rows["reweighting"]["by_slice"]["Male"] > rows["unweighted_reference"]["by_slice"]["Male"]
    again = compare_mitigations(y_test=y[test], scores_test=scores[test], sensitive_test=sex[test], threshold=0.5,
                                methods=("exponentiated_gradient",), X_train=X[train], y_train=y[train],
                                sensitive_train=sex[train], X_test=X[test])
    assert again["rows"][-1]["by_slice"] == rows["exponentiated_gradient"]["by_slice"]  # deterministic
    path = plot_mitigations(table["rows"], tmp_path / "mitigation.png")
    assert path.stat().st_size > 1000


def test_compare_mitigations_refuses_unknown_names():
    with pytest.raises(ValueError, match="unknown mitigation"):
        compare_mitigations(y_test=[0, 1], scores_test=[0.1, 0.9], sensitive_test=["a", "b"], threshold=0.5,
                            methods=("calibrated_equalized_odds",))
    with pytest.raises(ValueError, match="metric must be one of"):
        compare_mitigations(y_test=[0, 1], scores_test=[0.1, 0.9], sensitive_test=["a", "b"], threshold=0.5,
                            metric="accuracy")


def test_the_python_example_runs_on_a_sample(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "fairness_lens_adult.py"
    spec = importlib.util.spec_from_file_location("fairness_lens_adult", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(str(tmp_path), rows=4000)
    assert result["slices"]["rows"] == 2000
    assert [row["method"] for row in result["mitigation"]["rows"]][0] == "served_model"
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "fairness_adult_balance.png", "fairness_adult_mitigation.png", "fairness_adult_slices.png"]


def test_a_table_without_a_measurable_gap_says_why():
    """A slice with fewer counted rows than min_rows leaves no gap; the table names each slice's count
    instead of leaving nulls unexplained (AER HMDA: 7 denied African-American applicants in 239 test rows)."""
    y = np.array([1] * 40 + [0] * 60 + [1] * 7 + [0] * 17)
    s = np.array(["no"] * 100 + ["yes"] * 24, dtype=object)
    scores = np.linspace(0, 1, len(y))
    said = []
    table = compare_mitigations(y_test=y, scores_test=scores, sensitive_test=s, threshold=0.5, methods=(),
                                log=said.append)
    assert table["rows"][0]["gap"] is None
    assert table["message"] == ("no false_negative_rate gap measured: fewer than two slices have 30 test rows "
                                "counted for it (no: 40, yes: 7); lower min_rows or test on more rows")
    assert said == [table["message"]]
