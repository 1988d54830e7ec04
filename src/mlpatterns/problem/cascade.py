"""Cascade (pattern 8): a classifier routes each example to a model for its regime.

Problem: one model must serve both the usual case and a rare one that behaves
differently (the book's rentals longer than four hours; here, long taxi rides), and
the rare regime is swamped by the usual one.

Solution: an upstream classifier decides the regime (a target above ``threshold``,
or any ``regime(y)`` function), and a downstream model per regime predicts the
target. Each downstream model is trained on the rows as the router routes them
*out of fold* (``fit(X, y, groups=keys)``: repeatable key-hashed folds), so
training sees the routing mistakes that serving will see. The cascade fits,
predicts and is evaluated as one estimator. Errors compound: use it only where the
regimes truly differ.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.uniform(0, 10, size=(400, 1))
>>> y = np.where(X[:, 0] > 9, 50 + 5 * X[:, 0], X[:, 0]) + rng.normal(size=400)
>>> cascade = CascadeRegressor(threshold=30).fit(X, y)
>>> cascade.routing_accuracy_ > 0.9
True
>>> list(cascade.evaluate(X, y).index)
['typical', 'extreme', 'all']
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import mean_absolute_error, root_mean_squared_error
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from mlpatterns.problem.ensembles import fold_indices

__all__ = ["CascadeRegressor", "regime_errors"]


def regime_errors(y_true, y_pred, extreme) -> pd.DataFrame:
    """RMSE and MAE of ``y_pred`` for the typical rows, the extreme rows and all rows."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    extreme = np.asarray(extreme, dtype=bool)
    rows = {}
    for name, mask in (("typical", ~extreme), ("extreme", extreme), ("all", np.ones_like(extreme))):
        if mask.any():
            rows[name] = {
                "n": int(mask.sum()),
                "rmse": float(root_mean_squared_error(y_true[mask], y_pred[mask])),
                "mae": float(mean_absolute_error(y_true[mask], y_pred[mask])),
            }
        else:
            rows[name] = {"n": 0, "rmse": np.nan, "mae": np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


class CascadeRegressor(MetaEstimatorMixin, RegressorMixin, BaseEstimator):
    """Route each example to a typical or an extreme regressor by an upstream classifier.

    Parameters
    ----------
    router : classifier, default=None
        Predicts the regime (``True`` = extreme); ``None`` means
        ``HistGradientBoostingClassifier()``.
    typical, extreme : regressor, default=None
        The downstream models; ``None`` means ``HistGradientBoostingRegressor()``.
    threshold : float, default=None
        Rows with a target above it are extreme; ``None`` means the 90th percentile
        of the training target. Ignored when ``regime`` is given.
    regime : callable, default=None
        ``regime(y) -> bool array``: a user definition of the extreme regime.
    n_splits : int, default=5
        Folds for the router's out-of-fold predictions.

    Attributes
    ----------
    threshold_ : float or None
        The threshold used (``None`` with ``regime``).
    router_, typical_, extreme_ : estimators
        The fitted router (on all rows) and downstream models (on the rows the
        out-of-fold router sent them; on all rows if it sent none).
    oof_routes_ : ndarray of bool
        The out-of-fold routing the downstream models were trained on.
    routing_accuracy_ : float
        Share of training rows whose out-of-fold route matches their true regime.
    """

    def __init__(self, router=None, typical=None, extreme=None, threshold=None, regime=None,
                 n_splits: int = 5) -> None:
        self.router = router
        self.typical = typical
        self.extreme = extreme
        self.threshold = threshold
        self.regime = regime
        self.n_splits = n_splits

    @classmethod
    def _estimator_check_instances(cls):
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        return [cls(DecisionTreeClassifier(max_depth=3, random_state=0),
                    DecisionTreeRegressor(max_depth=3, random_state=0),
                    DecisionTreeRegressor(max_depth=3, random_state=0), n_splits=2)]

    def _regimes(self, y):
        if self.regime is not None:
            if not callable(self.regime):
                raise ValueError(f"regime must be a callable y -> bool array, got {self.regime!r}")
            labels = np.asarray(self.regime(y), dtype=bool)
            if labels.shape != y.shape:
                raise ValueError(f"regime(y) returned shape {labels.shape}, expected {y.shape}")
            return labels
        return y > self.threshold_

    def _router(self, X, labels):
        if len(np.unique(labels)) < 2:  # one regime only: route every row there
            return DummyClassifier(strategy="most_frequent").fit(X, labels)
        router = HistGradientBoostingClassifier() if self.router is None else self.router
        return clone(router).fit(X, labels)

    def fit(self, X, y, groups=None):
        """Fit the router, then each regime's model on the rows the out-of-fold router sends it."""
        X, y = validate_data(self, X, y, y_numeric=True)
        y = column_or_1d(y).astype(np.float64)
        if self.regime is None and self.threshold is not None and (
                isinstance(self.threshold, (bool, str)) or not np.isscalar(self.threshold)
                or not np.isfinite(self.threshold)):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")
        self.threshold_ = None if self.regime is not None else (
            float(np.quantile(y, 0.9)) if self.threshold is None else float(self.threshold))
        labels = self._regimes(y)
        routes = np.zeros(len(y), dtype=bool)
        for train, test in fold_indices(len(y), self.n_splits, groups):
            routes[test] = self._router(X[train], labels[train]).predict(X[test]).astype(bool)
        self.router_ = self._router(X, labels)
        self.oof_routes_ = routes
        self.routing_accuracy_ = float(np.mean(routes == labels))
        default = HistGradientBoostingRegressor()
        for name, estimator, rows in (("typical_", self.typical, ~routes),
                                      ("extreme_", self.extreme, routes)):
            rows = rows if rows.any() else np.ones_like(rows)
            model = clone(default if estimator is None else estimator)
            setattr(self, name, model.fit(X[rows], y[rows]))
        return self

    def predict_regime(self, X):
        """``True`` where the router sends a row to the extreme model."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.router_.predict(X).astype(bool)

    def predict(self, X):
        """Each row's prediction by the model of the regime the router picks."""
        routes = self.predict_regime(X)
        X = validate_data(self, X, reset=False)
        out = np.asarray(self.typical_.predict(X), dtype=float).ravel()
        if routes.any():
            out[routes] = np.asarray(self.extreme_.predict(X[routes]), dtype=float).ravel()
        return out

    def evaluate(self, X, y) -> pd.DataFrame:
        """Errors per true regime and overall, with the router's accuracy in each."""
        y = column_or_1d(y).astype(np.float64)
        labels = self._regimes(y)
        routes = self.predict_regime(X)
        frame = regime_errors(y, self.predict(X), labels)
        frame["routing_accuracy"] = [
            float(np.mean(routes[m] == labels[m])) if m.any() else np.nan
            for m in (~labels, labels, np.ones_like(labels))
        ]
        return frame
