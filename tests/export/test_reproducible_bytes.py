"""ONNX exports are byte-reproducible: the same fitted model, or the same data and seed, give the same bytes.

skl2onnx names every graph with a random uuid, so two exports of one model differed in
those 32 characters alone; the export names the graph ``mlpatterns_<model class>``
instead. A digest of a model file then names the model (a cache or a registry can
recognise it). Small data: scikit-learn's bundled breast cancer and diabetes tables.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpatterns.export import export_graph, reproducible_onnx_bytes, sklearn_to_onnx
from mlpatterns.problem import AnomalyClassifier, KeyedStackingClassifier


def float32_exact(X):
    return np.asarray(X, dtype=np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return float32_exact(X[:300]), y[:300]


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return float32_exact(X[:300]), y[:300]


MODELS = {
    "hist_gradient_boosting_classifier": (HistGradientBoostingClassifier(max_iter=20, random_state=0), "classification"),
    "hist_gradient_boosting_regressor": (HistGradientBoostingRegressor(max_iter=20, random_state=0), "regression"),
    "logistic_regression": (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), "classification"),
    "random_forest": (RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0), "classification"),
}


def fitted(name, cancer, diabetes):
    model, task = MODELS[name]
    X, y = cancer if task == "classification" else diabetes
    return clone(model).fit(X, y), X[:50], task


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_model_exported_twice_gives_the_same_bytes(name, cancer, diabetes):
    model, sample, task = fitted(name, cancer, diabetes)
    first, second = sklearn_to_onnx(model, sample, task), sklearn_to_onnx(model, sample, task)
    assert first == second
    proto = onnx.load_model_from_string(first)
    assert proto.graph.name == f"mlpatterns_{type(model).__name__}"
    assert proto.producer_name == "skl2onnx" and proto.producer_version  # versions are kept


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_twice_with_one_seed_gives_the_same_bytes(name, cancer, diabetes):
    (first, sample, task), (second, _, _) = fitted(name, cancer, diabetes), fitted(name, cancer, diabetes)
    assert sklearn_to_onnx(first, sample, task) == sklearn_to_onnx(second, sample, task)


@pytest.mark.parametrize("kind", ["stack", "anomaly"])
def test_composite_graphs_are_reproducible(kind, cancer):
    """A stack (three files) and an anomaly detector (skl2onnx's to_onnx, exported apart)."""
    X, y = cancer
    members = [("logistic", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))),
               ("boosting", HistGradientBoostingClassifier(max_iter=10, random_state=0))]
    model = {"stack": KeyedStackingClassifier(members, n_splits=3),
             "anomaly": AnomalyClassifier(IsolationForest(n_estimators=20, random_state=0), random_state=0)}[kind]
    trained = clone(model).fit(X, y)
    files, node = export_graph(trained, X[:60])
    for again, node_again in (export_graph(trained, X[:60]), export_graph(clone(model).fit(X, y), X[:60])):
        assert files == again and json.dumps(node, sort_keys=True) == json.dumps(node_again, sort_keys=True)
    names = {name: onnx.load_model_from_string(content).graph.name for name, content in files.items()}
    assert all(name.startswith("mlpatterns_") for name in names.values())
    if kind == "anomaly":
        assert names == {"model-detector.onnx": "mlpatterns_IsolationForest"}


def test_wide_and_deep_network_is_reproducible(diabetes):
    pytest.importorskip("torch")
    from mlpatterns.models import WideAndDeepRegressor

    X, y = diabetes
    X = np.column_stack([X[:, [0, 2, 3, 4]], (X[:, 1] > 0)]).astype(np.float64)  # 4 numbers and a category
    model = WideAndDeepRegressor(n_numeric=4, hidden=(8,), epochs=2, batch_size=64)
    trained = clone(model).fit(X, y)
    files, node = export_graph(trained, X[:50])
    assert export_graph(trained, X[:50]) == (files, node)  # one model exported twice
    assert export_graph(clone(model).fit(X, y), X[:50]) == (files, node)  # trained again with the same seed
    proto = onnx.load_model_from_string(files["model.onnx"])
    assert proto.graph.name.startswith("mlpatterns_") and proto.producer_name == "pytorch"


def test_reproducible_onnx_bytes_removes_the_random_name_and_doc_strings():
    from onnx import TensorProto, helper

    body = helper.make_graph([helper.make_node("Identity", ["x"], ["y"], doc_string="/home/someone/model.py:12")],
                             "body", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body, doc_string="traced at 12:00")
    graph = helper.make_graph([node], "0d3c9f1e2b7a4c5d8e6f1a2b3c4d5e6f",
                              [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], doc_string="made now")
    model = helper.make_model(graph, producer_name="tool", producer_version="1.2", doc_string="by me")
    content = reproducible_onnx_bytes(model, "mlpatterns_example")
    assert reproducible_onnx_bytes(content, "mlpatterns_example") == content  # bytes in, the same bytes out
    clean = onnx.load_model_from_string(content)
    assert (clean.graph.name, clean.producer_name, clean.producer_version) == ("mlpatterns_example", "tool", "1.2")
    for text in (b"someone", b"12:00", b"made now", b"by me", b"0d3c9f1e"):
        assert text not in content


def test_bytes_do_not_depend_on_the_process_string_hashing():
    """skl2onnx lists operator sets in a Python set's order; two processes hash strings differently."""
    import os
    import subprocess
    import sys

    code = ("import hashlib, numpy as np\nfrom sklearn.linear_model import Ridge\n"
            "from mlpatterns.export.onnx_export import sklearn_to_onnx\n"
            "X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)\n"
            "print(hashlib.sha256(sklearn_to_onnx(Ridge().fit(X, X @ [1.0, 2.0, 3.0]), X, 'regression')).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout
               for seed in range(4)}
    assert len(digests) == 1
