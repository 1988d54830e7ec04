"""Model graphs: exported meta-estimators compute what they computed in training, as data.

Every chapter-3 meta-estimator goes through :func:`export_graph` and comes back
through :class:`ModelGraph` with the same outputs on rows it was not verified on; a
malformed graph is refused with the path of the bad node; a composite bundle is
refused when its graph and its files disagree, and serves what its graph composes;
multiclass and multilabel bundles name their output columns after the classes and
labels of the manifest.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlpatterns.export.graph_export import export_graph
from mlpatterns.export.onnx_export import sklearn_to_onnx
from mlpatterns.lifecycle import run_spec
from mlpatterns.models import WideAndDeepRegressor
from mlpatterns.problem import (
    AnomalyClassifier,
    CascadeRegressor,
    DownsampledEnsembleClassifier,
    KeyedStackingClassifier,
    KeyedStackingRegressor,
    MultilabelClassifier,
    NeutralClassClassifier,
    ResampledClassifier,
)
from mlpatterns.reproducibility.transform import FeatureTransform
from mlpatterns.serving.bundle import BundleError, manifest_digest, read_bundle, write_bundle
from mlpatterns.serving.model_graph import GraphError, ModelGraph, leaf_files
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import parse_spec

RTOL, ATOL = 1e-5, 1e-4
LEAF = {"onnx": "a.onnx", "output": "probabilities"}
OTHER = {"onnx": "b.onnx", "output": "value"}


def float32_exact(X):
    """Rows that float32 (what ONNX Runtime reads) represents exactly, as float64."""
    return np.asarray(X, dtype=np.float32).astype(np.float64)


def kinds(node):
    """The graph's shape: each node's kind, children nested in order."""
    if "onnx" in node:
        return "onnx"
    if "stack" in node:
        return {"stack": [kinds(c) for c in node["stack"]], "meta": kinds(node["meta"])}
    if "route" in node:
        return {"route": kinds(node["route"]), "branches": [kinds(b) for b in node["branches"]]}
    if "logistic" in node:
        return {"logistic": kinds(node["logistic"])}
    kind = "mean" if "mean" in node else "concat"
    return {kind: [kinds(c) for c in node[kind]]}


def assert_graph_reproduces(estimator, X_train, X_new, expected_output):
    """Export on training rows, then compare the graph and the estimator on new rows."""
    files, graph = export_graph(estimator, X_train[:200])
    assert sorted(files) == sorted(leaf_files(graph))
    got = ModelGraph(graph, files).run(X_new.astype(np.float32))
    want = np.asarray(expected_output(X_new), dtype=np.float64).reshape(len(X_new), -1)
    assert got.shape == want.shape
    assert np.allclose(got, want, rtol=RTOL, atol=ATOL), float(np.max(np.abs(got - want)))
    return files, graph


# -- data ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = float32_exact(X)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = order[:400], order[400:]
    return X[train], y[train], X[test], y[test]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    X = float32_exact(X)
    return X[:330], y[:330], X[330:]


@pytest.fixture(scope="module")
def imbalanced():
    rng = np.random.default_rng(1)
    X = float32_exact(rng.normal(size=(800, 4)))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.5, size=800) > 1.8).astype(int)
    assert 0.03 < y.mean() < 0.15
    return X[:600], y[:600], X[600:]


# -- export_graph + ModelGraph reproduce the estimators --------------------------------------------
def test_plain_boosting_classifier_is_one_probability_leaf(cancer):
    X, y, X_new, _ = cancer
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    files, graph = assert_graph_reproduces(model, X, X_new, model.predict_proba)
    assert graph == {"onnx": "model.onnx", "output": "probabilities"}
    assert list(files) == ["model.onnx"]


def test_keyed_stacking_regressor_is_a_stack_of_value_columns(diabetes):
    X, y, X_new = diabetes
    stack = KeyedStackingRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))], n_splits=3,
    ).fit(X, y, groups=np.arange(len(y)) % 17)
    files, graph = assert_graph_reproduces(stack, X, X_new, stack.predict)
    assert kinds(graph) == {"stack": ["onnx", "onnx"], "meta": "onnx"}
    assert graph["meta_input"] == "identity"
    assert [m["onnx"] for m in graph["stack"]] == ["model-ridge.onnx", "model-tree.onnx"]
    assert all(m["output"] == "value" and m["column"] == 0 for m in graph["stack"])
    assert graph["meta"] == {"onnx": "model-meta.onnx", "output": "value"}


def test_keyed_stacking_classifier_feeds_log_probabilities_to_its_meta_model(cancer):
    X, y, X_new, _ = cancer
    members = [("logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))),
               ("boosting", HistGradientBoostingClassifier(max_iter=15, random_state=0))]
    stack = KeyedStackingClassifier(members, n_splits=3).fit(X, y, groups=np.arange(len(y)) % 11)
    files, graph = assert_graph_reproduces(stack, X, X_new, stack.predict_proba)
    assert kinds(graph) == {"stack": ["onnx", "onnx"], "meta": "onnx"}
    assert graph["meta_input"] == "log"
    assert all(m["output"] == "probabilities" and "column" not in m for m in graph["stack"])
    # the decisions follow too
    got = ModelGraph(graph, files).run(X_new)
    assert np.array_equal(stack.classes_[np.argmax(got, axis=1)], stack.predict(X_new))


def test_cascade_routes_between_two_regime_models(diabetes):
    X, y, X_new = diabetes
    cascade = CascadeRegressor(HistGradientBoostingClassifier(max_iter=15, random_state=0),
                               Ridge(), DecisionTreeRegressor(max_depth=3, random_state=0),
                               threshold=float(np.quantile(y, 0.75)), n_splits=3).fit(X, y)
    routes = cascade.predict_regime(X_new)
    assert 0 < routes.sum() < len(routes), "both branches must be exercised"
    _, graph = assert_graph_reproduces(cascade, X, X_new, cascade.predict)
    assert kinds(graph) == {"route": "onnx", "branches": ["onnx", "onnx"]}
    assert graph["route"]["output"] == "probabilities"
    assert [b["onnx"] for b in graph["branches"]] == ["model-typical.onnx", "model-extreme.onnx"]


def test_cascade_with_one_regime_in_training_is_not_exported(diabetes):
    X, y, _ = diabetes
    cascade = CascadeRegressor(DecisionTreeClassifier(max_depth=2), Ridge(), Ridge(),
                               threshold=float(y.max()) + 1, n_splits=2).fit(X, y)
    with pytest.raises(ValueError, match="one regime only cannot be exported"):
        export_graph(cascade, X[:50])


def test_multilabel_classifier_concatenates_one_positive_column_per_label():
    rng = np.random.default_rng(2)
    X = float32_exact(rng.normal(size=(500, 4)))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0.5, X[:, 3] < -0.8]).astype(int)
    model = MultilabelClassifier(LogisticRegression(max_iter=500), threshold_strategy=0.5).fit(X[:400], Y[:400])
    _, graph = assert_graph_reproduces(model, X[:400], X[400:], model.predict_proba)
    assert kinds(graph) == {"concat": ["onnx", "onnx", "onnx"]}
    assert [leaf["column"] for leaf in graph["concat"]] == [1, 1, 1]
    assert [leaf["onnx"] for leaf in graph["concat"]] == [f"model-label{j}.onnx" for j in range(3)]


def test_multilabel_with_a_constant_label_is_not_exported():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([X[:, 0] > 0, np.zeros(200)]).astype(int)
    model = MultilabelClassifier(LogisticRegression(), threshold_strategy=0.5).fit(X, Y)
    with pytest.raises(ValueError, match="every label has both values"):
        export_graph(model, X[:50])


def test_neutral_class_band_is_its_three_class_model():
    rng = np.random.default_rng(4)
    X = float32_exact(rng.normal(size=(600, 3)))
    score = X[:, 0] + 0.3 * X[:, 1] + rng.normal(scale=0.3, size=600)
    model = NeutralClassClassifier(HistGradientBoostingClassifier(max_iter=15, random_state=0),
                                   band=(-0.4, 0.4)).fit(X[:450], score[:450])
    assert model.classes_.tolist() == [-1, 0, 1]
    files, graph = assert_graph_reproduces(model, X[:450], X[450:], model.predict_proba)
    assert graph == {"onnx": "model.onnx", "output": "probabilities"}
    assert ModelGraph(graph, files).run(X[450:]).shape == (150, 3)


def test_resampled_classifier_serves_its_inner_model_without_the_sampler(imbalanced):
    X, y, X_new = imbalanced
    model = ResampledClassifier(LogisticRegression(), sampler="downsample", random_state=0).fit(X, y)
    files, graph = assert_graph_reproduces(model, X, X_new, model.predict_proba)
    assert graph == {"onnx": "model.onnx", "output": "probabilities"}
    assert list(files) == ["model.onnx"]


def test_downsampled_ensemble_is_the_mean_of_its_members(imbalanced):
    X, y, X_new = imbalanced
    model = DownsampledEnsembleClassifier(DecisionTreeClassifier(max_depth=3, random_state=0),
                                          n_estimators=3, random_state=0).fit(X, y)
    files, graph = assert_graph_reproduces(model, X, X_new, model.predict_proba)
    assert kinds(graph) == {"mean": ["onnx", "onnx", "onnx"]}
    assert sorted(files) == [f"model-member{i}.onnx" for i in range(3)]
    # the members differ (each saw its own majority downsample), so the mean is not one of them
    graphs = [ModelGraph(member, files).run(X_new) for member in graph["mean"]]
    assert not np.allclose(graphs[0], graphs[1])


def test_anomaly_classifier_is_a_logistic_of_the_isolation_forest_score():
    rng = np.random.default_rng(5)
    X = float32_exact(np.vstack([rng.normal(size=(400, 2)), rng.normal(4, 1, size=(20, 2))]))
    y = np.r_[np.zeros(400), np.ones(20)].astype(int)
    model = AnomalyClassifier(IsolationForest(n_estimators=30, random_state=0), random_state=0).fit(X, y)
    X_new = float32_exact(np.vstack([rng.normal(size=(60, 2)), rng.normal(4, 1, size=(10, 2))]))
    _, graph = assert_graph_reproduces(model, X, X_new, model.predict_proba)
    assert kinds(graph) == {"logistic": "onnx"}
    assert graph["logistic"]["column"] == 0
    assert np.isfinite(graph["scale"]) and np.isfinite(graph["shift"])


def test_anomaly_classifier_whose_positive_class_is_the_first_flips_the_logistic():
    rng = np.random.default_rng(6)
    X = float32_exact(np.vstack([rng.normal(size=(300, 2)), rng.normal(4, 1, size=(15, 2))]))
    y = np.r_[np.ones(300), np.zeros(15)].astype(int)  # the rare class is 0
    model = AnomalyClassifier(IsolationForest(n_estimators=30, random_state=0)).fit(X, y)
    assert model.pos_label_ == 0
    _, graph = assert_graph_reproduces(model, X, X, model.predict_proba)
    assert graph["scale"] > 0  # sign flipped: a higher anomaly score lowers P(class 1)


def test_stack_with_a_wide_and_deep_member_splits_numbers_and_indices():
    rng = np.random.default_rng(7)
    n = 600
    numeric = rng.normal(size=(n, 2))
    indices = np.column_stack([rng.integers(0, 5, n), rng.integers(0, 3, n)])
    X = float32_exact(np.column_stack([numeric, indices]))
    y = numeric[:, 0] + 0.5 * (indices[:, 0] == 2) - 0.3 * indices[:, 1] + rng.normal(scale=0.1, size=n)
    network = WideAndDeepRegressor(n_numeric=2, hidden=(8,), epochs=3, batch_size=64, random_state=0)
    stack = KeyedStackingRegressor([("ridge", Ridge()), ("network", network)], n_splits=2)
    stack.fit(X[:450], y[:450], groups=np.arange(450) % 40)
    _, graph = assert_graph_reproduces(stack, X[:450], X[450:], stack.predict)
    assert kinds(graph) == {"stack": ["onnx", "onnx"], "meta": "onnx"}
    leaf = graph["stack"][1]
    assert leaf == {"onnx": "model-network.onnx", "output": "value", "numeric_columns": 2, "column": 0}
    files, _ = export_graph(stack, X[:100])
    session = ort.InferenceSession(files["model-network.onnx"], providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["numeric", "categorical"]
    # the leaf carries its own layout: the graph runs without being told where numbers end
    assert np.allclose(ModelGraph(graph, files).run(X[450:], numeric_columns=None)[:, 0],
                       stack.predict(X[450:]), rtol=RTOL, atol=ATOL)


# -- malformed graphs ------------------------------------------------------------------------------
@pytest.mark.parametrize(("graph", "message"), [
    ({"onnx": "a.onnx", "output": "value", "mean": [OTHER]}, r"^graph: expected exactly one of .*'mean', 'onnx'"),
    ({"sum": [LEAF, OTHER]}, r"^graph: expected exactly one of .*got keys \['sum'\]"),
    ("a.onnx", r"^graph: expected a node \(a mapping\), got str"),
    ({"mean": []}, r"^graph\.mean: expected a non-empty list of nodes"),
    ({"concat": LEAF}, r"^graph\.concat: expected a non-empty list of nodes"),
    ({"concat": [LEAF, "b.onnx"]}, r"^graph\.concat\[1\]: expected a node"),
    ({"route": LEAF, "branches": [OTHER]}, r"^graph\.branches: expected two nodes"),
    ({"route": LEAF, "branches": [OTHER, OTHER, OTHER]}, r"^graph\.branches: expected two nodes"),
    ({"route": LEAF}, r"^graph\.branches: expected two nodes"),
    ({"onnx": "a.onnx", "output": "logits"}, r"^graph\.output: expected 'probabilities' or 'value', got 'logits'"),
    ({"onnx": "a.onnx"}, r"^graph\.output: expected 'probabilities' or 'value', got None"),
    ({"mean": [LEAF, {"onnx": "b.onnx", "output": "x"}]}, r"^graph\.mean\[1\]\.output: expected"),
    ({"onnx": 3, "output": "value"}, r"^graph\.onnx: expected a file name"),
    ({**OTHER, "column": -1}, r"^graph\.column: expected a column number, got -1"),
    ({**OTHER, "column": True}, r"^graph\.column: expected a column number, got True"),
    ({**OTHER, "column": 1.0}, r"^graph\.column: expected a column number, got 1\.0"),
    ({**OTHER, "numeric_columns": -2}, r"^graph\.numeric_columns: expected a column number, got -2"),
    ({**OTHER, "numeric_columns": "3"}, r"^graph\.numeric_columns: expected a column number, got '3'"),
    ({"stack": [LEAF], "meta": {"mean": [OTHER]}}, r"^graph\.meta: the meta-model must be an ONNX leaf"),
    ({"stack": [LEAF]}, r"^graph\.meta: expected a node \(a mapping\), got NoneType"),
    ({"stack": [LEAF], "meta": OTHER, "meta_input": "exp"}, r"^graph\.meta_input: expected 'identity' or 'log'"),
    ({"stack": [LEAF], "meta": {"onnx": "m.onnx", "output": "v"}}, r"^graph\.meta\.output: expected"),
    ({"logistic": LEAF, "scale": float("inf"), "shift": 0.0}, r"^graph\.scale: expected a finite number, got inf"),
    ({"logistic": LEAF, "scale": 1.0, "shift": float("nan")}, r"^graph\.shift: expected a finite number, got nan"),
    ({"logistic": LEAF, "scale": True, "shift": 0.0}, r"^graph\.scale: expected a finite number, got True"),
    ({"logistic": LEAF, "scale": 1.0}, r"^graph\.shift: expected a finite number, got None"),
    ({"logistic": {"mean": []}, "scale": 1.0, "shift": 0.0}, r"^graph\.logistic\.mean: expected a non-empty"),
    ({"route": LEAF, "branches": [OTHER, {"concat": [{"onnx": "c.onnx", "output": "value", "column": -1}]}]},
     r"^graph\.branches\[1\]\.concat\[0\]\.column: expected a column number"),
])
def test_malformed_graph_is_refused_naming_the_node(graph, message):
    with pytest.raises(GraphError, match=message):
        leaf_files(graph)
    with pytest.raises(GraphError, match=message):
        ModelGraph(graph, {})


def test_graph_error_path_starts_where_the_caller_says():
    with pytest.raises(GraphError, match=r"^model\.graph\.stack\[0\]\.output"):
        leaf_files({"stack": [{"onnx": "a.onnx"}], "meta": OTHER}, "model.graph")


def test_leaf_files_lists_each_file_once_in_order_of_appearance():
    graph = {"stack": [{"mean": [LEAF, OTHER, LEAF]}, {"route": OTHER, "branches": [LEAF, {"onnx": "c.onnx", "output": "value"}]}],
             "meta": {"onnx": "m.onnx", "output": "value"}}
    assert leaf_files(graph) == ["a.onnx", "b.onnx", "c.onnx", "m.onnx"]
    assert leaf_files({"logistic": OTHER, "scale": -2, "shift": 1}) == ["b.onnx"]


@pytest.fixture(scope="module")
def tiny():
    """Two regressors of three features, exported (input 'features'), and their values on X."""
    rng = np.random.default_rng(8)
    X = float32_exact(rng.normal(size=(50, 3)))
    a = Ridge().fit(X, X @ [1.0, -2.0, 0.5])
    b = Ridge().fit(X, X @ [-0.5, 0.0, 3.0] + 1.0)
    files = {"a.onnx": sklearn_to_onnx(a, X, "regression"), "b.onnx": sklearn_to_onnx(b, X, "regression")}
    return files, X, a.predict(X), b.predict(X)


def test_missing_file_is_refused(tiny):
    files, _, _, _ = tiny
    graph = {"mean": [{"onnx": "a.onnx", "output": "value"}, {"onnx": "gone.onnx", "output": "value"}]}
    with pytest.raises(GraphError, match=r"^graph: the bundle has no file\(s\) \['gone.onnx'\]"):
        ModelGraph(graph, {"a.onnx": files["a.onnx"]})


def test_file_that_is_not_onnx_is_refused():
    with pytest.raises(GraphError, match=r"graph: a\.onnx is not a loadable ONNX model"):
        ModelGraph({"onnx": "a.onnx", "output": "value"}, {"a.onnx": b"not an onnx model"})


def test_model_with_other_input_names_is_refused(tiny):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    _, X, _, _ = tiny
    model = Ridge().fit(X, X[:, 0])
    data = to_onnx(model, initial_types=[("X", FloatTensorType([None, 3]))]).SerializeToString()
    with pytest.raises(GraphError, match=r"graph: a\.onnx takes inputs \['X'\]; expected \['features'\]"):
        ModelGraph({"onnx": "a.onnx", "output": "value"}, {"a.onnx": data})


def test_graph_nodes_compute_what_they_say(tiny):
    files, X, a, b = tiny
    leaf_a, leaf_b = {"onnx": "a.onnx", "output": "value"}, {"onnx": "b.onnx", "output": "value"}

    def run(graph):
        return ModelGraph(graph, files).run(X)

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    assert np.allclose(run(leaf_a)[:, 0], a, rtol=RTOL, atol=ATOL)
    assert np.allclose(run({"concat": [leaf_a, {**leaf_b, "column": 0}]}), np.column_stack([a, b]),
                       rtol=RTOL, atol=ATOL)
    assert np.allclose(run({"mean": [leaf_a, leaf_b]})[:, 0], (a + b) / 2, rtol=RTOL, atol=ATOL)
    p = sigmoid(2.0 * a - 1.0)
    assert np.allclose(run({"logistic": leaf_a, "scale": 2.0, "shift": -1.0}), np.column_stack([1 - p, p]),
                       rtol=RTOL, atol=ATOL)
    # a router giving [1 - p, p]: rows with p > 0.5 (a > 0) take the second branch
    router = {"logistic": leaf_a, "scale": 1.0, "shift": 0.0}
    routed = run({"route": router, "branches": [leaf_a, leaf_b]})
    assert 0 < np.sum(a > 0) < len(a)
    assert np.allclose(routed[:, 0], np.where(a > 0, b, a), rtol=RTOL, atol=ATOL)
    # a stack feeds its members side by side to the meta-model: here b of (a, a, a)
    stacked = run({"stack": [leaf_a, leaf_a, leaf_a], "meta": leaf_b})
    A = np.column_stack([a, a, a]).astype(np.float32)
    assert np.allclose(stacked, ModelGraph(leaf_b, files).run(A), rtol=RTOL, atol=ATOL)
    # with meta_input 'log', the members' outputs are clipped to [1e-6, 1] and logged first
    logged = run({"stack": [leaf_a, leaf_a, leaf_a], "meta": leaf_b, "meta_input": "log"})
    log_a = np.log(np.clip(A, 1e-6, 1.0))
    assert np.allclose(logged, ModelGraph(leaf_b, files).run(log_a), rtol=RTOL, atol=ATOL)
    assert not np.allclose(logged, stacked)


def test_network_leaf_without_a_layout_needs_numeric_columns():
    rng = np.random.default_rng(9)
    X = float32_exact(np.column_stack([rng.normal(size=(200, 2)), rng.integers(0, 4, (200, 1))]))
    network = WideAndDeepRegressor(n_numeric=2, hidden=(4,), epochs=1, random_state=0).fit(X, X[:, 0])
    files, graph = export_graph(network, X)
    assert graph["numeric_columns"] == 2
    del graph["numeric_columns"]
    with pytest.raises(GraphError, match="model.onnx needs to know how many columns are numbers"):
        ModelGraph(graph, files).run(X)
    assert np.allclose(ModelGraph(graph, files).run(X, numeric_columns=2)[:, 0], network.predict(X),
                       rtol=RTOL, atol=ATOL)


# -- a composite bundle from a spec run ------------------------------------------------------------
@pytest.fixture(scope="module")
def stack_run(tmp_path_factory):
    """A stack of a boosted model, a linear model and a network on 20 % of the taxi days."""
    out = tmp_path_factory.mktemp("taxi")
    spec = parse_spec({
        "name": "taxi-stack",
        "data": {"dataset": "taxi", "sample_fraction": 0.2},
        "target": {"column": "fare_amount", "task": "regression"},
        "keys": ["pickup_datetime", "taxi_id"],
        "split": {"key": "pickup_date"},
        "features": {"numeric": ["distance_km", "passenger_count"],
                     "bucketize": {"pickup_hour": {"boundaries": [6, 12, 18]}}},
        "models": {"stack": {"type": "stacking", "n_splits": 2, "members": {
            "boosting": {"type": "gradient_boosting", "params": {"max_iter": 15}},
            "linear": {"type": "linear"},
            "network": {"type": "wide_and_deep", "params": {"epochs": 2, "hidden": [8], "batch_size": 256}},
        }}},
        "output": {"dir": str(out / "run")},
    })
    return run_spec(spec, log=lambda *_: None)


@pytest.fixture
def stack_bundle(stack_run, tmp_path):
    """A private copy of the run's bundle, free to be damaged."""
    return shutil.copytree(stack_run.bundles["stack"], tmp_path / "stack")


def test_spec_stack_bundle_holds_its_graph_and_every_member(stack_run):
    bundle = read_bundle(stack_run.bundles["stack"])
    graph = bundle.manifest["model"]["graph"]
    assert kinds(graph) == {"stack": ["onnx", "onnx", "onnx"], "meta": "onnx"}
    assert set(leaf_files(graph)) | {"transform.json", "statistics.json", "prediction_statistics.json"} == set(bundle.files)
    network = [leaf for leaf in graph["stack"] if leaf["onnx"] == "model-network.onnx"]
    assert network == [{"onnx": "model-network.onnx", "output": "value", "column": 0, "numeric_columns": 2}]
    assert stack_run.skew["stack"]["features_identical"] == 1.0


def edit_manifest(bundle, change):
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    manifest["manifest_sha256"] = manifest_digest(manifest)  # an edit that keeps the digest right
    path.write_text(json.dumps(manifest))


def test_graph_naming_an_unlisted_file_is_refused(stack_bundle):
    def rename(manifest):
        manifest["model"]["graph"]["stack"][1]["onnx"] = "model-ghost.onnx"

    edit_manifest(stack_bundle, rename)
    with pytest.raises(BundleError, match=r"manifest\.json: the model names 'model-ghost\.onnx', which is not in 'files'"):
        read_bundle(stack_bundle)


def test_graph_member_dropped_from_the_file_list_is_refused(stack_bundle):
    def unlist(manifest):
        del manifest["files"]["model-network.onnx"]

    edit_manifest(stack_bundle, unlist)
    (stack_bundle / "model-network.onnx").unlink()
    with pytest.raises(BundleError, match=r"the model names 'model-network\.onnx', which is not in 'files'"):
        read_bundle(stack_bundle)


def test_malformed_graph_in_a_manifest_is_refused_with_its_path(stack_bundle):
    def break_meta(manifest):
        manifest["model"]["graph"]["meta"] = {"mean": [manifest["model"]["graph"]["meta"]]}

    edit_manifest(stack_bundle, break_meta)
    with pytest.raises(BundleError, match=r"manifest\.json: model\.graph\.meta: the meta-model must be an ONNX leaf"):
        read_bundle(stack_bundle)


def test_deleted_member_file_is_refused(stack_bundle):
    (stack_bundle / "model-boosting.onnx").unlink()
    with pytest.raises(BundleError, match="incomplete bundle, model-boosting.onnx is listed in the manifest but missing"):
        ServingFunction.load(stack_bundle)


def test_swapped_member_file_is_refused(stack_bundle):
    (stack_bundle / "model-linear.onnx").write_bytes((stack_bundle / "model-boosting.onnx").read_bytes())
    with pytest.raises(BundleError, match=r"model-linear\.onnx: sha256 does not match"):
        read_bundle(stack_bundle)


def test_served_stack_is_the_meta_model_of_its_members(stack_run):
    """Compose the members by hand with ONNX Runtime: the serving function gives the same."""
    serving = ServingFunction.load(stack_run.bundles["stack"])
    rows = pd.read_parquet(stack_run.output_dir / "test.parquet")
    served = serving.predict(rows)
    assert list(served.columns) == ["pickup_datetime", "taxi_id", "prediction"]
    assert served["taxi_id"].tolist() == rows["taxi_id"].tolist()
    features = serving.features(rows)
    matrix = features.matrix().astype(np.float32)
    n_numeric = features.numeric.shape[1]
    graph = serving.bundle.manifest["model"]["graph"]

    def session(name):
        return ort.InferenceSession(serving.bundle.files[name], providers=["CPUExecutionProvider"])

    members = []
    for leaf in graph["stack"]:
        member = session(leaf["onnx"])
        names = [i.name for i in member.get_inputs()]
        feeds = {"features": matrix} if names == ["features"] else {
            "numeric": matrix[:, :n_numeric], "categorical": matrix[:, n_numeric:].astype(np.int64)}
        members.append(member.run(None, feeds)[0].reshape(len(matrix), -1)[:, 0])
    meta = session(graph["meta"]["onnx"]).run(None, {"features": np.column_stack(members).astype(np.float32)})
    expected = meta[0].reshape(-1)
    assert np.allclose(served["prediction"].to_numpy(), expected, rtol=RTOL, atol=ATOL)
    assert np.allclose(serving.predict_features(features), served["prediction"].to_numpy(), rtol=0, atol=1e-9)
    # and it is the model that was trained: its test RMSE is the run's
    rmse = float(np.sqrt(np.mean((served["prediction"].to_numpy() - rows["fare_amount"].to_numpy()) ** 2)))
    assert rmse == pytest.approx(stack_run.metrics["stack"]["rmse"], rel=1e-4)
    assert rmse < stack_run.metrics["heuristic_benchmark"]["rmse"]


# -- multiclass and multilabel bundles -------------------------------------------------------------
def write_composite_bundle(directory, frame, estimator, task, **fields):
    """Fit a numeric transform and ``estimator`` on ``frame``; bundle its graph with ``fields``."""
    columns = [c for c in frame.columns if c.startswith("x")]
    transform = FeatureTransform(numeric=columns).fit(frame)
    X = transform.transform(frame).matrix()
    estimator.fit(X, fields.pop("target"))
    files, graph = export_graph(estimator, X[:200])
    manifest = {"name": "t", "task": task, "model": {"graph": graph}, "transform": "transform.json",
                "signature": {"inputs": [{"name": c, "type": "number"} for c in transform.input_columns],
                              "keys": ["id"], "outputs": []}, **fields}
    write_bundle(directory, {**files, "transform.json": transform.to_json().encode()}, manifest)
    return estimator, X


IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
LABELS = ["action", "comedy", "drama"]
THRESHOLDS = [0.2, 0.5, 0.8]


@pytest.fixture(scope="module")
def iris_frame():
    X, y = load_iris(return_X_y=True)
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(4)])
    frame.insert(0, "id", [f"flower-{i}" for i in range(len(y))])
    return frame, y


@pytest.fixture(scope="module")
def labels_frame():
    rng = np.random.default_rng(10)
    X = rng.normal(size=(400, 3))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > -0.3, X[:, 0] + X[:, 2] > 0.5]).astype(int)
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2"])
    frame.insert(0, "id", np.arange(400) * 10)
    return frame, Y


def test_multiclass_bundle_outputs_a_probability_per_class_and_the_class_name(iris_frame, tmp_path):
    frame, y = iris_frame
    model, X = write_composite_bundle(tmp_path / "b", frame, HistGradientBoostingClassifier(max_iter=10, random_state=0),
                                      "multiclass", target=y, classes=IRIS_CLASSES)
    served = ServingFunction.load(tmp_path / "b").predict(frame)
    assert list(served.columns) == ["id", "probability_setosa", "probability_versicolor",
                                    "probability_virginica", "prediction"]
    assert served["id"].tolist() == frame["id"].tolist()
    proba = served[[f"probability_{c}" for c in IRIS_CLASSES]].to_numpy()
    assert np.allclose(proba, model.predict_proba(X), rtol=RTOL, atol=ATOL)
    assert served["prediction"].tolist() == [IRIS_CLASSES[k] for k in model.predict(X)]
    assert set(served["prediction"]) == set(IRIS_CLASSES)


def test_multilabel_bundle_applies_each_labels_threshold(labels_frame, tmp_path):
    frame, Y = labels_frame
    model, X = write_composite_bundle(tmp_path / "b", frame, MultilabelClassifier(LogisticRegression(), threshold_strategy=0.5),
                                      "multilabel", target=Y, labels=LABELS, thresholds=THRESHOLDS)
    served = ServingFunction.load(tmp_path / "b").predict(frame)
    assert list(served.columns) == ["id", *[f"probability_{c}" for c in LABELS], *[f"prediction_{c}" for c in LABELS]]
    proba = served[[f"probability_{c}" for c in LABELS]].to_numpy()
    assert np.allclose(proba, model.predict_proba(X), rtol=RTOL, atol=ATOL)
    decisions = served[[f"prediction_{c}" for c in LABELS]].to_numpy()
    assert decisions.dtype == np.int64
    assert np.array_equal(decisions, (proba >= np.asarray(THRESHOLDS)).astype(int))
    # the manifest's thresholds, not 0.5 and not the model's own, decide
    assert not np.array_equal(decisions, (proba >= 0.5).astype(int))


def test_classification_bundle_with_a_graph_serves_p_positive_at_its_threshold(tmp_path):
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(300, 2)), columns=["x0", "x1"])
    frame.insert(0, "id", np.arange(300))
    y = (frame["x0"] + rng.normal(scale=0.5, size=300) > 1.2).astype(int).to_numpy()
    model, X = write_composite_bundle(tmp_path / "b", frame, ResampledClassifier(LogisticRegression(), random_state=0),
                                      "classification", target=y, threshold=0.7)
    served = ServingFunction.load(tmp_path / "b").predict(frame)
    assert list(served.columns) == ["id", "probability", "prediction"]
    assert np.allclose(served["probability"], model.predict_proba(X)[:, 1], rtol=RTOL, atol=ATOL)
    assert np.array_equal(served["prediction"], (served["probability"] >= 0.7).astype(int))


@pytest.mark.parametrize("fields", [
    {"labels": LABELS},
    {"labels": LABELS, "thresholds": [0.5, 0.5]},
    {"labels": LABELS, "thresholds": [0.5, 0.5, 0.5, 0.5]},
    {"labels": LABELS, "thresholds": [0.5, "0.5", 0.5]},
    {"labels": LABELS, "thresholds": [0.5, True, 0.5]},
    {"labels": LABELS, "thresholds": 0.5},
    {"thresholds": THRESHOLDS},
    {"labels": [], "thresholds": []},
    {"labels": ["action", 2, "drama"], "thresholds": THRESHOLDS},
])
def test_multilabel_bundle_without_a_threshold_per_label_is_refused(labels_frame, tmp_path, fields):
    frame, Y = labels_frame
    write_composite_bundle(tmp_path / "b", frame, MultilabelClassifier(LogisticRegression(), threshold_strategy=0.5),
                           "multilabel", target=Y, **fields)
    with pytest.raises(BundleError, match="a multilabel bundle needs 'labels' .* and 'thresholds' .one number per label."):
        ServingFunction.load(tmp_path / "b")


@pytest.mark.parametrize("fields", [{}, {"classes": ["setosa"]}, {"classes": "setosa,versicolor,virginica"},
                                    {"classes": [0, 1, 2]}])
def test_multiclass_bundle_without_class_names_is_refused(iris_frame, tmp_path, fields):
    frame, y = iris_frame
    write_composite_bundle(tmp_path / "b", frame, HistGradientBoostingClassifier(max_iter=3), "multiclass",
                           target=y, **fields)
    with pytest.raises(BundleError, match="a multiclass bundle needs 'classes', a list of class names"):
        ServingFunction.load(tmp_path / "b")


def test_unloadable_graph_leaf_is_refused_by_the_serving_function(iris_frame, tmp_path):
    frame, y = iris_frame
    write_composite_bundle(tmp_path / "b", frame, HistGradientBoostingClassifier(max_iter=3), "multiclass",
                           target=y, classes=IRIS_CLASSES)
    bundle = read_bundle(tmp_path / "b")
    files = {**bundle.files, "model.onnx": b"\x08\x07 not a model"}
    fields = {k: v for k, v in bundle.manifest.items() if k not in ("files", "format", "format_version")}
    write_bundle(tmp_path / "c", files, fields)
    with pytest.raises(BundleError, match=r"model\.graph: model\.onnx is not a loadable ONNX model"):
        ServingFunction.load(tmp_path / "c")
