"""Ensembles: a key-hashed stack on flights is as good as its best member, folds keep keys whole."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.tree import DecisionTreeRegressor

from mlpatterns.problem.ensembles import (
    KeyedStackingClassifier,
    KeyedStackingRegressor,
    fold_indices,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "ensembles_flights.py"


@pytest.fixture(scope="module")
def flights():
    spec = importlib.util.spec_from_file_location("ensembles_flights", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.flight_data(n_rows=6_000)


def test_stack_is_at_least_as_good_as_its_best_member_on_held_out_days(flights):
    X, y, keys, train = flights
    members = [
        ("logistic", make_pipeline(OneHotEncoder(handle_unknown="ignore", min_frequency=20),
                                   LogisticRegression(max_iter=500))),
        ("boosting", HistGradientBoostingClassifier(max_iter=30, random_state=0)),
        ("forest", RandomForestClassifier(n_estimators=20, min_samples_leaf=20, random_state=0)),
    ]
    stack = KeyedStackingClassifier(members, n_splits=3).fit(X[train], y[train], groups=keys[train])
    member_losses = {
        name: log_loss(y[~train], m.predict_proba(X[~train])[:, 1])
        for name, m in stack.named_estimators_.items()
    }
    stack_loss = log_loss(y[~train], stack.predict_proba(X[~train])[:, 1])
    assert stack_loss <= min(member_losses.values()) * 1.005
    report = stack.report_
    assert set(report["member_scores"]) == {"logistic", "boosting", "forest"}
    assert report["error_correlation"].shape == (3, 3)
    assert np.allclose(np.diag(report["error_correlation"]), 1.0)
    assert stack.oof_predictions_.shape == (int(train.sum()), 6)


def test_folds_keep_each_key_in_one_fold_and_repeat():
    keys = np.array([f"2013-01-{d:02d}" for d in range(1, 31)] * 4)
    folds = fold_indices(len(keys), 5, keys)
    fold_of = np.empty(len(keys), dtype=int)
    for k, (_, test) in enumerate(folds):
        fold_of[test] = k
    for key in np.unique(keys):
        assert len(np.unique(fold_of[keys == key])) == 1
    # A key's fold does not depend on the other keys present.
    subset = keys[:60]
    sub_fold = np.empty(60, dtype=int)
    for k, (_, test) in enumerate(fold_indices(60, 5, subset)):
        sub_fold[test] = k
    assert np.array_equal(sub_fold, fold_of[:60])


def test_regressor_gains_over_members_and_reaches_member_params():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 2))
    y = X[:, 0] + np.sin(3 * X[:, 1]) + rng.normal(scale=0.1, size=600)
    stack = KeyedStackingRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0))]
    )
    assert stack.get_params()["tree__max_depth"] == 4
    stack.set_params(tree__max_depth=5)
    assert stack.estimators[1][1].max_depth == 5
    stack.fit(X, y, groups=np.arange(600) // 4)
    assert stack.report_["gain"] > 0
    assert stack.report_["stack_score"] < min(stack.report_["member_scores"].values())


def test_errors_name_the_parameter():
    X, y = np.zeros((10, 1)), np.arange(10.0)
    with pytest.raises(ValueError, match="n_splits"):
        KeyedStackingRegressor([("r", Ridge())], n_splits=1).fit(X, y)
    with pytest.raises(ValueError, match="estimators"):
        KeyedStackingRegressor([("r", Ridge()), ("r", Ridge())]).fit(X, y)
    with pytest.raises(ValueError, match="groups"):
        KeyedStackingRegressor([("r", Ridge())]).fit(X, y, groups=["a"] * 3)
