"""Cascade: routing long taxi rides to their own model lowers the error; training sees OOF routes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlpatterns.problem.cascade import CascadeRegressor, regime_errors

EXAMPLE = Path(__file__).parents[2] / "examples" / "cascade_taxi.py"


@pytest.fixture(scope="module")
def taxi():
    spec = importlib.util.spec_from_file_location("cascade_taxi", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.taxi_data(n_rows=12_000)


def test_cascade_beats_one_model_on_taxi_fares(taxi):
    module, (X, y, keys, train) = taxi
    single, cascade_errors, cascade = module.compare(X, y, keys, train, max_iter=100)
    assert cascade_errors.loc["all", "rmse"] < single.loc["all", "rmse"]
    assert cascade_errors.loc["extreme", "rmse"] < single.loc["extreme", "rmse"]
    assert cascade.routing_accuracy_ > 0.95
    # Out-of-fold routes are not the true regimes: downstream training saw the router's errors.
    true_regime = y[train] > module.THRESHOLD
    assert 0 < np.sum(cascade.oof_routes_ != true_regime) < 0.05 * train.sum()


def test_oof_routing_keeps_key_folds_and_is_repeatable():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 10, size=(500, 1))
    y = np.where(X[:, 0] > 8, 40 + X[:, 0], X[:, 0]) + rng.normal(scale=2, size=500)
    keys = np.arange(500) // 5
    first = CascadeRegressor(LogisticRegression(), LinearRegression(), LinearRegression(),
                             threshold=30).fit(X, y, groups=keys)
    second = CascadeRegressor(LogisticRegression(), LinearRegression(), LinearRegression(),
                              threshold=30).fit(X[::-1], y[::-1], groups=keys[::-1])
    assert np.array_equal(first.oof_routes_, second.oof_routes_[::-1])
    extreme = first.predict_regime(X)
    assert np.array_equal(first.predict(X)[extreme], first.extreme_.predict(X[extreme]))
    assert np.array_equal(first.predict(X)[~extreme], first.typical_.predict(X[~extreme]))


def test_user_regime_function_and_default_threshold():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 2))
    y = X[:, 0] + rng.normal(scale=0.1, size=300)
    by_function = CascadeRegressor(regime=lambda t: t < -1, n_splits=3).fit(X, y)
    assert by_function.threshold_ is None
    assert by_function.evaluate(X, y).loc["extreme", "n"] == int(np.sum(y < -1))
    by_default = CascadeRegressor(n_splits=3).fit(X, y)
    assert by_default.threshold_ == pytest.approx(np.quantile(y, 0.9))


def test_errors_name_the_parameter():
    X, y = np.zeros((20, 1)), np.arange(20.0)
    with pytest.raises(ValueError, match="threshold"):
        CascadeRegressor(threshold="high").fit(X, y)
    with pytest.raises(ValueError, match="regime"):
        CascadeRegressor(regime=3).fit(X, y)
    with pytest.raises(ValueError, match="n_splits"):
        CascadeRegressor(n_splits=1).fit(X, y)


def test_regime_errors_table():
    table = regime_errors([1.0, 2.0, 10.0], [1.0, 3.0, 8.0], [False, False, True])
    assert list(table.index) == ["typical", "extreme", "all"]
    assert table.loc["extreme", "mae"] == 2.0
