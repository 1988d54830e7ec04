"""Chapter 3 from a spec: each pattern trained by `mlpatterns run`, bundled and served by `mlpatterns predict`.

The example specs run on real data, made small (fewer days, rounds and epochs), and
each bundle is then scored from the written test file as a client would.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score, recall_score

from mlpatterns.cli import main
from mlpatterns.serving.stateless_serving_function import ServingFunction

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(tmp_path: Path, name: str, edit) -> Path:
    spec = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    spec["output"] = {"dir": str(tmp_path / "run")}
    edit(spec)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    return tmp_path / "run"


def predict(run: Path, model: str, tmp_path: Path) -> pd.DataFrame:
    out = tmp_path / f"{model}.parquet"
    assert main(["predict", str(run / "bundles" / model), str(run / "test.parquet"), str(out)]) == 0
    return pd.read_parquet(out)


def report(run: Path) -> dict:
    return json.loads((run / "report.json").read_text())


# -- Multilabel (6) --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def movies_run(tmp_path_factory):
    def edit(spec):
        spec["data"]["sample_fraction"] = 0.3
        spec["models"]["gradient_boosting"]["params"] = {"max_iter": 40}
        spec["models"]["wide_and_deep"]["params"] = {"epochs": 2, "batch_size": 512, "hidden": [16]}

    return run_example(tmp_path_factory.mktemp("movies"), "movies_genres", edit)


def test_multilabel_serves_a_probability_and_a_decision_per_label(movies_run, tmp_path):
    labels = ["Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"]
    for model in ("gradient_boosting", "wide_and_deep"):
        predictions = predict(movies_run, model, tmp_path)
        assert list(predictions.columns) == ["title", "year"] + [f"probability_{c}" for c in labels] + [
            f"prediction_{c}" for c in labels]
        manifest = json.loads((movies_run / "bundles" / model / "manifest.json").read_text())
        assert manifest["task"] == "multilabel" and manifest["labels"] == labels
        thresholds = np.asarray(manifest["thresholds"])
        probabilities = predictions[[f"probability_{c}" for c in labels]].to_numpy()
        decisions = predictions[[f"prediction_{c}" for c in labels]].to_numpy()
        np.testing.assert_array_equal(decisions, (probabilities >= thresholds).astype(int))
    graph = json.loads((movies_run / "bundles" / "gradient_boosting" / "manifest.json").read_text())["model"]["graph"]
    assert len(graph["concat"]) == len(labels)  # one classifier per label


def test_tuned_label_thresholds_beat_one_half(movies_run, tmp_path):
    """The per-label thresholds tuned on the validation split raise macro F1 on the test split."""
    labels = json.loads((movies_run / "bundles" / "gradient_boosting" / "manifest.json").read_text())["labels"]
    truth = pd.read_parquet(movies_run / "test.parquet")[labels].to_numpy()
    predictions = predict(movies_run, "gradient_boosting", tmp_path)
    probabilities = predictions[[f"probability_{c}" for c in labels]].to_numpy()
    tuned = f1_score(truth, predictions[[f"prediction_{c}" for c in labels]].to_numpy(), average="macro")
    at_half = f1_score(truth, (probabilities >= 0.5).astype(int), average="macro")
    assert tuned > at_half + 0.05
    metrics = report(movies_run)["metrics"]
    assert metrics["gradient_boosting"]["macro_f1"] == pytest.approx(tuned, abs=1e-9)
    assert metrics["gradient_boosting"]["macro_roc_auc"] > metrics["heuristic_benchmark"]["macro_roc_auc"] + 0.1


# -- Neutral Class (9) -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def natality_run(tmp_path_factory):
    def edit(spec):
        spec["models"]["gradient_boosting"]["params"] = {"max_iter": 40}
        spec["models"]["wide_and_deep"]["params"] = {"epochs": 2, "batch_size": 512, "hidden": [16]}

    return run_example(tmp_path_factory.mktemp("natality"), "natality_low_weight", edit)


def test_neutral_class_is_served_as_three_classes(natality_run, tmp_path):
    classes = ["negative", "neutral", "positive"]
    for model in ("gradient_boosting", "wide_and_deep"):
        predictions = predict(natality_run, model, tmp_path)
        probabilities = predictions[[f"probability_{c}" for c in classes]].to_numpy()
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(predictions["prediction"], np.array(classes)[probabilities.argmax(axis=1)])
        metrics = report(natality_run)["metrics"][model]
        assert metrics["roc_auc"] > 0.8 and 0 <= metrics["undecided_share"] < 0.2


def test_neutral_rows_get_more_neutral_probability(natality_run, tmp_path):
    """Births inside the 5.0-6.0 lb band get a higher P(neutral) than births outside it."""
    weight = pd.read_parquet(natality_run / "test.parquet")["weight_pounds"].to_numpy()
    neutral = predict(natality_run, "gradient_boosting", tmp_path)["probability_neutral"].to_numpy()
    band = (weight >= 5.0) & (weight <= 6.0)
    assert neutral[band].mean() > 2 * neutral[~band].mean()


def test_neutral_column_marks_rows_as_neutral(tmp_path):
    """The neutral rows may come from a column (labeler disagreement) instead of a band."""
    data = pd.read_csv(Path(__file__).resolve().parents[1] / "src/mlpatterns/_datasets/babyweight_eval.csv.gz")
    data.insert(0, "row_id", range(len(data)))
    data["disputed"] = ((data["weight_pounds"] - 5.5).abs() < 0.3).map({True: "true", False: "false"})
    data.to_csv(tmp_path / "births.csv", index=False)

    def edit(spec):
        spec["data"] = {"path": str(tmp_path / "births.csv")}
        spec["target"]["neutral"] = {"column": "disputed"}
        spec["models"] = {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 30}}}

    run = run_example(tmp_path, "natality_low_weight", edit)
    assert report(run)["metrics"]["gbm"]["roc_auc"] > 0.8
    assert "probability_neutral" in predict(run, "gbm", tmp_path).columns


# -- Rebalancing (10) ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flights_run(tmp_path_factory):
    def edit(spec):
        spec["data"]["sample_fraction"] = 0.2
        keep = ("as_is", "threshold_f1", "class_weight", "downsample", "downsampled_ensemble", "anomaly",
                "network_output_bias")
        spec["models"] = {name: spec["models"][name] for name in keep}
        for model in spec["models"].values():
            if model["type"] == "gradient_boosting":
                model["params"] = {"max_iter": 40}
            elif model["type"] == "wide_and_deep":
                model["params"] = {"epochs": 1, "batch_size": 1024, "hidden": [16]}
        spec["models"]["downsampled_ensemble"]["rebalance"]["n_estimators"] = 3
        spec["models"]["anomaly"]["params"] = {"n_estimators": 50}

    return run_example(tmp_path_factory.mktemp("flights"), "flights_rebalancing", edit)


def test_rebalancing_raises_recall_of_late_flights(flights_run):
    """Every strategy finds more late flights than the unbalanced model at 0.5."""
    metrics = report(flights_run)["metrics"]
    as_is = metrics["as_is"]["recall"]
    for name in ("threshold_f1", "class_weight", "downsample", "downsampled_ensemble"):
        assert metrics[name]["recall"] > as_is + 0.1, name
    assert metrics["threshold_f1"]["f1"] > metrics["as_is"]["f1"]
    assert metrics["threshold_f1"]["threshold"] < 0.5  # the threshold moved towards the rare class
    assert metrics["threshold_f1"]["roc_auc"] == metrics["as_is"]["roc_auc"]  # same model, other cut


def test_every_rebalanced_bundle_serves_its_threshold(flights_run, tmp_path):
    truth = (pd.read_parquet(flights_run / "test.parquet")["arr_delay"] > 30).astype(int).to_numpy()
    metrics = report(flights_run)["metrics"]
    kinds = {"downsampled_ensemble": "mean", "anomaly": "logistic"}
    for name in ("as_is", "threshold_f1", "downsample", "downsampled_ensemble", "anomaly", "network_output_bias"):
        predictions = predict(flights_run, name, tmp_path)
        manifest = json.loads((flights_run / "bundles" / name / "manifest.json").read_text())
        np.testing.assert_array_equal(predictions["prediction"],
                                      (predictions["probability"] >= manifest["threshold"]).astype(int))
        assert recall_score(truth, predictions["prediction"]) == pytest.approx(metrics[name]["recall"], abs=1e-9)
        if name in kinds:
            assert kinds[name] in manifest["model"]["graph"]


# -- Cascade (8) and Ensembles (7) -----------------------------------------------------------------
@pytest.fixture(scope="module")
def taxi_run(tmp_path_factory):
    def edit(spec):
        cascade, stack = spec["models"]["cascade"], spec["models"]["stack"]
        for part in ("router", "typical", "extreme"):
            cascade[part]["params"] = {"max_iter": 60}
        cascade["n_splits"] = stack["n_splits"] = 3
        stack["members"] = {
            "boosting": {"type": "gradient_boosting", "params": {"max_iter": 60}},
            "linear": {"type": "linear"},
            "network": {"type": "wide_and_deep", "params": {"epochs": 3, "batch_size": 512, "hidden": [16]}},
        }
        spec["models"]["single"]["params"] = {"max_iter": 60}

    return run_example(tmp_path_factory.mktemp("taxi"), "taxi_fares", edit)


def test_cascade_is_one_served_model(taxi_run, tmp_path):
    metrics = report(taxi_run)["metrics"]["cascade"]
    assert metrics["routing_accuracy_typical"] > 0.95 and metrics["routing_accuracy_extreme"] > 0.5
    assert metrics["rmse_extreme"] > metrics["rmse_typical"]
    manifest = json.loads((taxi_run / "bundles" / "cascade" / "manifest.json").read_text())
    assert set(manifest["model"]["graph"]) == {"route", "branches"}
    predictions = predict(taxi_run, "cascade", tmp_path)
    truth = pd.read_parquet(taxi_run / "test.parquet")["fare_amount"].to_numpy()
    rmse = float(np.sqrt(np.mean((predictions["prediction"].to_numpy() - truth) ** 2)))
    assert rmse == pytest.approx(metrics["rmse"], rel=1e-5)


def test_stack_with_a_network_member_is_served_and_reported(taxi_run, tmp_path):
    metrics = report(taxi_run)["metrics"]
    stack = metrics["stack"]
    heuristics = report(taxi_run)["heuristic_benchmark"]["heuristics"]
    assert stack["rmse"] < heuristics["global"]["test"]["rmse"] / 2  # far better than predicting the mean fare
    assert stack["rmse"] < metrics["heuristic_benchmark"]["rmse"]  # and than the best simple rule
    assert stack["rmse"] < stack["rmse_linear"]  # better than its weakest member
    manifest = json.loads((taxi_run / "bundles" / "stack" / "manifest.json").read_text())
    members = manifest["model"]["graph"]["stack"]
    assert [m["onnx"] for m in members] == ["model-boosting.onnx", "model-linear.onnx", "model-network.onnx"]
    assert members[2]["numeric_columns"] == 8  # the torch member reads the numbers
    assert set(manifest["model"]["report"]["member_scores"]) == {"boosting", "linear", "network"}
    serving = ServingFunction.load(taxi_run / "bundles" / "stack")
    rows = pd.read_parquet(taxi_run / "test.parquet")
    served = predict(taxi_run, "stack", tmp_path)["prediction"].to_numpy()
    np.testing.assert_allclose(served, serving.predict(rows)["prediction"].to_numpy())
