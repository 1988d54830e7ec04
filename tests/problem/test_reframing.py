"""Reframing: a bucket classifier gives a usable mean and calibrated intervals on natality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression

from mlpatterns.datasets import load_natality
from mlpatterns.problem import ReframedRegressor
from mlpatterns.reproducibility import hash_split


@pytest.fixture(scope="module")
def natality():
    frame = load_natality().head(20_000)
    X = pd.DataFrame({
        "is_male": frame["is_male"].astype(float),
        "mother_age": frame["mother_age"],
        "gestation_weeks": frame["gestation_weeks"],
        "plurality": frame["plurality"].astype("category").cat.codes,
    }).to_numpy(dtype=float)
    split = hash_split(frame, "row_id", {"train": 0.8, "test": 0.2}).to_numpy()
    y = frame["weight_pounds"].to_numpy()
    return X[split == "train"], y[split == "train"], X[split == "test"], y[split == "test"]


def test_mean_is_close_to_direct_regression_and_intervals_cover(natality):
    X_train, y_train, X_test, y_test = natality
    direct = HistGradientBoostingRegressor(max_iter=100, random_state=0).fit(X_train, y_train)
    reframed = ReframedRegressor(HistGradientBoostingClassifier(max_iter=100, random_state=0),
                                 n_buckets=20).fit(X_train, y_train)
    rmse = lambda p: float(np.sqrt(np.mean((p - y_test) ** 2)))  # noqa: E731
    assert rmse(reframed.predict(X_test)) < 1.05 * rmse(direct.predict(X_test))
    for coverage in (0.8, 0.95):
        low, high = reframed.predict_interval(X_test, coverage)
        measured = np.mean((y_test >= low) & (y_test <= high))
        assert abs(measured - coverage) < 0.05, (coverage, measured)


def test_quantiles_are_ordered_and_median_inside_interval():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = X[:, 0] + rng.normal(size=400)
    model = ReframedRegressor(LogisticRegression(), n_buckets=8, strategy="uniform").fit(X, y)
    q = model.predict_quantiles(X[:20], [0.1, 0.5, 0.9])
    assert np.all(np.diff(q, axis=1) >= 0)
    assert model.predict_bucket_proba(X[:5]).sum(axis=1) == pytest.approx(np.ones(5))


def test_bad_parameters_are_named():
    X, y = np.zeros((10, 1)), np.arange(10.0)
    with pytest.raises(ValueError, match="strategy must be"):
        ReframedRegressor(strategy="kmeans").fit(X, y)
    with pytest.raises(ValueError, match="n_buckets must be an integer of at least 2"):
        ReframedRegressor(n_buckets=1).fit(X, y)
    with pytest.raises(ValueError, match="coverage must be between 0 and 1"):
        ReframedRegressor(LogisticRegression(), n_buckets=2).fit(X, y).predict_interval(X, 1.5)
