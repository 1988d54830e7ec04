"""The wide-and-deep network as scikit-learn estimators: it learns, splits numbers from
category indices, refuses what is not an index, repeats, pickles, clones and stacks.

scikit-learn's own estimator checks run for both estimators in ``tests/test_common.py``.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyRegressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import mean_squared_error

from mlpatterns.export.graph_export import export_graph
from mlpatterns.models import WideAndDeepClassifier, WideAndDeepRegressor
from mlpatterns.problem import KeyedStackingClassifier
from mlpatterns.serving.model_graph import ModelGraph

ESTIMATORS = [WideAndDeepClassifier, WideAndDeepRegressor]
FAST = {"hidden": (16,), "epochs": 20, "batch_size": 32, "learning_rate": 0.01}


def split_rows(n, seed=0, train=0.75):
    order = np.random.default_rng(seed).permutation(n)
    cut = int(train * n)
    return order[:cut], order[cut:]


@pytest.fixture(scope="module")
def mixed():
    """Two numbers and two category-index columns (5 and 3 values); the target uses both kinds."""
    rng = np.random.default_rng(0)
    n = 800
    numeric = rng.normal(size=(n, 2))
    indices = np.column_stack([rng.integers(0, 5, n), rng.integers(0, 3, n)])
    X = np.column_stack([numeric, indices]).astype(np.float32).astype(np.float64)
    value = numeric[:, 0] - 0.5 * numeric[:, 1] + 2.0 * (indices[:, 0] == 3) - 1.0 * (indices[:, 1] == 2)
    return X, value, (value > np.median(value)).astype(int)


def fitted(cls, X, target, **params):
    return cls(n_numeric=2, **{**FAST, "random_state": 0, **params}).fit(X, target)


@pytest.fixture(scope="module")
def mixed_models(mixed):
    X, value, label = mixed
    return {WideAndDeepRegressor: fitted(WideAndDeepRegressor, X, value),
            WideAndDeepClassifier: fitted(WideAndDeepClassifier, X, label)}


def output(model, X):
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


# -- learning real signals -------------------------------------------------------------------------
def test_regressor_beats_the_mean_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    train, test = split_rows(len(y))
    model = WideAndDeepRegressor(epochs=50, batch_size=32, learning_rate=0.03, random_state=0).fit(X[train], y[train])
    baseline = mean_squared_error(y[test], DummyRegressor().fit(X[train], y[train]).predict(X[test]))
    error = mean_squared_error(y[test], model.predict(X[test]))
    assert error < 0.8 * baseline
    assert model.predict(X[test]).shape == (len(test),)
    assert len(model.history_) == 50
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]


def test_classifier_learns_breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    train, test = split_rows(len(y))
    model = WideAndDeepClassifier(epochs=10, batch_size=32, learning_rate=0.01, random_state=0).fit(X[train], y[train])
    majority = max(np.mean(y[test]), 1 - np.mean(y[test]))
    assert majority < 0.7
    assert np.mean(model.predict(X[test]) == y[test]) > 0.93
    proba = model.predict_proba(X[test])
    assert proba.shape == (len(test), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    # the mean and scale of the numbers are learned on the training rows (the data is far from standard)
    assert np.allclose(model.mean_, X[train].mean(axis=0), rtol=1e-4)
    assert model.n_numeric_ == X.shape[1] and model.cardinalities_ == []


def test_classifier_keeps_string_classes_of_three():
    data = load_iris()
    X, y = data.data, data.target_names[data.target]
    train, test = split_rows(len(y), seed=1)
    model = WideAndDeepClassifier(epochs=30, batch_size=16, learning_rate=0.01, random_state=0).fit(X[train], y[train])
    assert model.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    predicted = model.predict(X[test])
    assert set(predicted) <= set(model.classes_)
    assert np.mean(predicted == y[test]) > 0.85  # the majority rate is about 1/3
    assert model.predict_proba(X[test]).shape == (len(test), 3)


# -- numbers and category indices ------------------------------------------------------------------
def test_index_columns_are_learned_as_categories(mixed, mixed_models):
    X, value, _ = mixed
    model = mixed_models[WideAndDeepRegressor]
    assert model.n_numeric_ == 2
    assert model.cardinalities_ == [5, 3]
    assert np.allclose(model.mean_, X[:, :2].mean(axis=0), rtol=1e-4, atol=1e-6)
    # the effect of category 3 of the first index column (+2) is learned, not its size as a number
    rows = np.repeat(X[:1], 5, axis=0)
    rows[:, 2] = np.arange(5)
    effect = model.predict(rows)
    assert effect[3] - np.delete(effect, 3).max() > 1.0
    assert mean_squared_error(value, model.predict(X)) < 0.25 * np.var(value)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_indices_above_the_training_cardinality_share_the_last_bucket(cls, mixed, mixed_models):
    X, _, _ = mixed
    model = mixed_models[cls]
    unseen = X[:40].copy()
    unseen[:, 2] = np.arange(40) % 4 + 5  # 5..8 after 0..4 in training
    unseen[:, 3] = 3 + np.arange(40)  # 3..42 after 0..2
    last = X[:40].copy()
    last[:, 2], last[:, 3] = 4, 2
    assert np.array_equal(output(model, unseen), output(model, last))
    # and the exported network does the same, in ONNX Runtime
    files, graph = export_graph(model, X[:200])
    assert graph["numeric_columns"] == 2
    served = ModelGraph(graph, files).run(unseen)
    want = output(model, unseen).reshape(len(unseen), -1)
    assert np.allclose(served, want, rtol=1e-5, atol=1e-4)


def test_given_cardinalities_leave_room_for_unseen_categories(mixed):
    X, value, _ = mixed
    model = fitted(WideAndDeepRegressor, X, value, cardinalities=[8, 6], epochs=2)
    assert model.cardinalities_ == [8, 6]
    assert model.network_.inner.wide.weight.shape[0] == 14
    unseen = X[:5].copy()
    unseen[:, 2] = 7
    assert np.isfinite(model.predict(unseen)).all()


@pytest.mark.parametrize(("cardinalities", "message"), [
    ([4, 3], "a categorical index of X is not below its column's cardinality"),
    ([5], "cardinalities has 1 entries for 2 categorical columns"),
    ([5, 3, 2], "cardinalities has 3 entries for 2 categorical columns"),
])
def test_cardinalities_that_do_not_fit_the_indices_are_refused(mixed, cardinalities, message):
    X, value, _ = mixed
    with pytest.raises(ValueError, match=message):
        WideAndDeepRegressor(n_numeric=2, cardinalities=cardinalities, epochs=1).fit(X, value)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("bad", [-1.0, 1.5, -0.5])
def test_an_index_that_is_negative_or_fractional_is_refused_naming_the_columns(cls, bad, mixed, mixed_models):
    X, value, label = mixed
    target = value if cls is WideAndDeepRegressor else label
    broken = X.copy()
    broken[7, 3] = bad
    message = r"columns 2 and after of X must be categorical indices \(whole numbers, 0 or more\)"
    with pytest.raises(ValueError, match=message):
        cls(n_numeric=2, epochs=1).fit(broken, target)
    model = mixed_models[cls]
    with pytest.raises(ValueError, match=message):
        model.predict(broken[:10])
    with pytest.raises(ValueError, match=message):
        model.onnx_inputs(broken[:10])
    # the same values in a numeric column are fine
    numbers = X.copy()
    numbers[7, 1] = bad
    assert len(model.predict(numbers[:10])) == 10


def test_all_columns_may_be_indices(mixed):
    X, value, _ = mixed
    indices = X[:, 2:]
    model = WideAndDeepRegressor(n_numeric=0, **FAST).fit(indices, value)
    assert model.n_numeric_ == 0 and model.cardinalities_ == [5, 3]
    files, graph = export_graph(model, indices[:100])
    assert graph["numeric_columns"] == 0
    assert np.allclose(ModelGraph(graph, files).run(indices[:100])[:, 0], model.predict(indices[:100]),
                       rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="columns 0 and after of X must be categorical indices"):
        model.predict(indices[:3] + 0.25)


# -- parameters ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize("n_numeric", [-1, 5, 1.5, True, "2"])
def test_invalid_n_numeric_is_refused(cls, n_numeric, mixed):
    X, _, label = mixed
    with pytest.raises(ValueError, match=r"n_numeric must be a whole number between 0 and n_features=4, got"):
        cls(n_numeric=n_numeric, epochs=1).fit(X, label)


@pytest.mark.parametrize("cls", ESTIMATORS)
@pytest.mark.parametrize(("name", "value"), [
    ("epochs", 0), ("epochs", -3), ("epochs", 2.5), ("epochs", True), ("epochs", None),
    ("batch_size", 0), ("batch_size", 16.0),
])
def test_invalid_epochs_or_batch_size_is_refused(cls, name, value, mixed):
    X, _, label = mixed
    with pytest.raises(ValueError, match=rf"{name} must be a positive whole number, got {value!r}"):
        cls(n_numeric=2, **{name: value}).fit(X, label)


@pytest.mark.parametrize("random_state", [1.5, "0", True])
def test_invalid_random_state_is_refused(random_state, mixed):
    X, value, _ = mixed
    with pytest.raises(ValueError, match="random_state must be an int or None"):
        WideAndDeepRegressor(n_numeric=2, epochs=1, random_state=random_state).fit(X, value)


# -- repeatable, picklable, clonable ---------------------------------------------------------------
@pytest.mark.parametrize("cls", ESTIMATORS)
def test_same_random_state_gives_identical_predictions(cls, mixed, mixed_models):
    X, value, label = mixed
    target = value if cls is WideAndDeepRegressor else label
    again = fitted(cls, X, target)
    assert np.array_equal(output(again, X), output(mixed_models[cls], X))
    other = fitted(cls, X, target, random_state=1)
    assert not np.allclose(output(other, X), output(again, X))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_pickle_round_trip_predicts_identically(cls, mixed, mixed_models):
    X, _, _ = mixed
    model = mixed_models[cls]
    restored = pickle.loads(pickle.dumps(model))
    assert np.array_equal(output(restored, X), output(model, X))
    assert restored.cardinalities_ == model.cardinalities_
    assert restored.get_params() == model.get_params()


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_get_params_set_params_and_clone(cls, mixed, mixed_models):
    params = cls().get_params()
    assert params == {"n_numeric": None, "cardinalities": None, "hidden": (64, 32), "dropout": 0.1, "epochs": 5,
                      "batch_size": 1024, "learning_rate": 2e-3, "weight_decay": 0.0, "random_state": 0}
    model = cls(n_numeric=2, epochs=3)
    assert model.set_params(epochs=7, hidden=(4,)) is model
    assert (model.epochs, model.hidden, model.n_numeric) == (7, (4,), 2)
    with pytest.raises(ValueError, match="Invalid parameter"):
        model.set_params(layers=3)
    copy = clone(mixed_models[cls])
    assert copy.get_params() == mixed_models[cls].get_params()
    assert not hasattr(copy, "network_")
    with pytest.raises(NotFittedError):
        copy.predict(mixed[0][:3])
    # a clone trains to the same network
    X, value, label = mixed
    refit = copy.fit(X, value if cls is WideAndDeepRegressor else label)
    assert np.array_equal(output(refit, X), output(mixed_models[cls], X))


# -- as a member of a stack ------------------------------------------------------------------------
def test_network_is_a_member_of_a_keyed_stack(mixed):
    X, _, label = mixed
    train, test = split_rows(len(label), seed=2)
    keys = np.array([f"day-{i % 60}" for i in range(len(label))])
    network = WideAndDeepClassifier(n_numeric=2, **FAST)
    stack = KeyedStackingClassifier([("network", network), ("logistic", LogisticRegression(max_iter=500))],
                                    n_splits=3)
    assert stack.get_params()["network__epochs"] == FAST["epochs"]
    stack.set_params(network__epochs=15)
    assert network.epochs == 15
    stack.fit(X[train], label[train], groups=keys[train])
    assert stack.named_estimators_["network"].network_ is not None
    assert stack.named_estimators_["network"].epochs == 15
    assert set(stack.report_["member_scores"]) == {"network", "logistic"}
    assert stack.oof_predictions_.shape == (len(train), 4)
    accuracy = np.mean(stack.predict(X[test]) == label[test])
    assert accuracy > 0.85  # balanced classes: the majority rate is about 0.5
    # the network sees the categories the logistic model reads as numbers: it is the better member
    scores = stack.report_["member_scores"]
    assert scores["network"] < scores["logistic"]
    files, graph = export_graph(stack, X[train][:200])
    assert graph["stack"][0]["numeric_columns"] == 2
    assert np.allclose(ModelGraph(graph, files).run(X[test]), stack.predict_proba(X[test]), rtol=1e-5, atol=1e-4)
