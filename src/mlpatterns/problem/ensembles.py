"""Ensembles (pattern 7): stacking on repeatable key-hashed out-of-fold predictions.

Problem: one model is limited by its bias (too simple) or its variance (too
sensitive to the sample it saw); different kinds of model err in different places.

Solution: combine several models. Bagging (variance) and boosting (bias) are in
scikit-learn and are used as they are: :class:`sklearn.ensemble.BaggingRegressor`,
:class:`~sklearn.ensemble.RandomForestRegressor`,
:class:`~sklearn.ensemble.HistGradientBoostingRegressor` and their classifiers.
Stacking is there too (:class:`~sklearn.ensemble.StackingRegressor`), but its
out-of-fold predictions are neither kept nor cut by a key. The estimators here
compute each member's out-of-fold predictions on :class:`HashKFold` folds
(``fit(X, y, groups=keys)``: every row of a key, say a day of flights, in one
fold, the same fold in every run), fit a meta-model on them, refit the members on
all rows, and report the members' diversity and the stack's gain over its best
member (``report_``).

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import Ridge
>>> from sklearn.tree import DecisionTreeRegressor
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(300, 2))
>>> y = X[:, 0] + np.sin(3 * X[:, 1]) + rng.normal(scale=0.1, size=300)
>>> members = [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4))]
>>> stack = KeyedStackingRegressor(members).fit(X, y, groups=np.arange(300) // 3)
>>> stack.report_["gain"] > 0
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    RegressorMixin,
    clone,
)
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import log_loss, root_mean_squared_error
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from mlpatterns.reproducibility import HashKFold

__all__ = ["KeyedStackingClassifier", "KeyedStackingRegressor", "fold_indices"]


def fold_indices(n_samples: int, n_splits: int, groups=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``(train, test)`` folds: by key hash when ``groups`` is given, else round-robin by row.

    Both are repeatable: a key's fold is ``ABS(MOD(FARM_FINGERPRINT(key), n_splits))``
    and does not depend on the other keys present.
    """
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer of at least 2, got {n_splits!r}")
    if n_samples < n_splits:
        raise ValueError(
            f"n_samples={n_samples} is fewer than n_splits={n_splits}; 1 sample per fold at least"
        )
    if groups is not None:
        groups = np.asarray(groups, dtype=object)
        if len(groups) != n_samples:
            raise ValueError(f"groups has {len(groups)} values for {n_samples} rows of X")
        return list(HashKFold(n_splits).split(np.zeros((n_samples, 1)), groups=groups))
    fold = np.arange(n_samples) % n_splits
    rows = np.arange(n_samples)
    return [(rows[fold != k], rows[fold == k]) for k in range(n_splits)]


class _KeyedStacking(MetaEstimatorMixin, BaseEstimator):
    """Shared fitting of the key-hashed stack; subclasses say how members predict."""

    def __init__(self, estimators=None, final_estimator=None, n_splits: int = 5) -> None:
        self.estimators = estimators
        self.final_estimator = final_estimator
        self.n_splits = n_splits

    # get_params/set_params reach members by name, as in sklearn's StackingRegressor.
    def get_params(self, deep: bool = True):
        params = super().get_params(deep=deep)
        members = self.estimators if isinstance(self.estimators, (list, tuple)) else []
        if deep and all(isinstance(m, tuple) and len(m) == 2 for m in members):
            for name, estimator in members:
                params[name] = estimator
                if hasattr(estimator, "get_params"):
                    for key, value in estimator.get_params(deep=True).items():
                        params[f"{name}__{key}"] = value
        return params

    def set_params(self, **params):
        try:
            names = {name for name, _ in self.estimators}
        except (TypeError, ValueError):  # None or not yet a list of (name, estimator)
            names = set()
        own, nested = {}, {}
        for key, value in params.items():
            head = key.split("__", 1)[0]
            if head in names and head != key:
                nested.setdefault(head, {})[key.split("__", 1)[1]] = value
            elif key in names:
                self.estimators = [(n, value if n == key else e) for n, e in self.estimators]
            else:
                own[key] = value
        super().set_params(**own)
        for name, inner in nested.items():
            dict(self.estimators)[name].set_params(**inner)
        return self

    def _members(self):
        members = self._default_members() if self.estimators is None else list(self.estimators)
        if not members:
            raise ValueError("estimators must name at least one (name, estimator) member")
        names = [name for name, _ in members]
        if len(set(names)) != len(names) or any("__" in name for name in names):
            raise ValueError(f"estimators names must be unique and free of '__', got {names}")
        return members

    def _fit_stack(self, X, y, groups):
        members = self._members()
        folds = fold_indices(len(y), self.n_splits, groups)
        columns = [self._member_columns(est) for _, est in members]
        oof = np.zeros((len(y), sum(columns)))
        for train, test in folds:
            start = 0
            for (_, estimator), width in zip(members, columns, strict=True):
                fitted = self._fit_member(estimator, X[train], y[train])
                oof[test, start:start + width] = self._member_output(fitted, X[test], y[train])
                start += width
        self.estimators_ = [clone(est).fit(X, y) for _, est in members]
        self.named_estimators_ = dict(zip([n for n, _ in members], self.estimators_, strict=True))
        meta = self._default_final() if self.final_estimator is None else self.final_estimator
        self.final_estimator_ = clone(meta).fit(self._meta_input(oof), y)
        stack_oof = np.zeros((len(y), self._meta_width(y)))
        for train, test in folds:
            fitted = self._fit_member(meta, self._meta_input(oof[train]), y[train])
            stack_oof[test] = self._meta_output(fitted, self._meta_input(oof[test]), y[train])
        self.oof_predictions_ = oof
        self.report_ = self._report([n for n, _ in members], columns, oof, stack_oof, y)
        return self

    def _fit_member(self, estimator, X, y):
        return clone(estimator).fit(X, y)

    def _report(self, names, columns, oof, stack_oof, y):
        errors, scores, start = {}, {}, 0
        for name, width in zip(names, columns, strict=True):
            block = oof[:, start:start + width]
            errors[name] = self._errors(block, y)
            scores[name] = self._score(block, y)
            start += width
        stack_score = self._score(stack_oof, y)
        best = min(scores, key=scores.get)
        error_frame = pd.DataFrame(errors)
        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = error_frame.corr()
        return {
            "metric": self._metric_name,
            "member_scores": scores,
            "stack_score": stack_score,
            "best_member": best,
            "gain": (scores[best] - stack_score) / scores[best] if scores[best] > 0 else 0.0,
            "error_correlation": correlation,
        }

    def _meta_input(self, Z):
        return Z

    def _stack_features(self, X):
        return self._meta_input(np.hstack([
            self._member_output(est, X, None) for est in self.estimators_
        ]))


class KeyedStackingRegressor(RegressorMixin, _KeyedStacking):
    """Stack regressors through a meta-model fitted on their key-hashed out-of-fold predictions.

    Parameters
    ----------
    estimators : list of (str, regressor), default=None
        The members; any scikit-learn regressors (a torch model through an
        sklearn-compatible wrapper). ``None`` means a ridge, a histogram gradient
        boosting and a random forest: a linear, a boosted and a bagged model.
    final_estimator : regressor, default=None
        The meta-model fitted on the members' out-of-fold predictions; ``None``
        means ``RidgeCV()``.
    n_splits : int, default=5
        Number of out-of-fold folds.

    Attributes
    ----------
    estimators_ : list of regressors
        The members refitted on all rows, used to predict.
    named_estimators_ : dict
        The same, by name.
    final_estimator_ : regressor
        The meta-model.
    oof_predictions_ : ndarray of shape (n_samples, n_members)
        Each member's out-of-fold predictions: what the meta-model learned from.
    report_ : dict
        ``member_scores`` and ``stack_score`` (out-of-fold RMSE; the stack's from
        the same folds), ``best_member``, ``gain`` (relative RMSE reduction over the
        best member) and ``error_correlation`` (pairwise correlation of the
        members' out-of-fold residuals: low means diverse).

    See Also
    --------
    sklearn.ensemble.StackingRegressor : stacking without keyed folds or a report.
    """

    _metric_name = "rmse"

    @classmethod
    def _estimator_check_instances(cls):
        from sklearn.linear_model import Ridge
        from sklearn.tree import DecisionTreeRegressor

        return [cls([("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3, random_state=0))], n_splits=2)]

    def _default_members(self):
        return [
            ("ridge", RidgeCV()),
            ("boosting", HistGradientBoostingRegressor(random_state=0)),
            ("forest", RandomForestRegressor(n_estimators=100, min_samples_leaf=5, random_state=0)),
        ]

    def _default_final(self):
        return RidgeCV()

    def _member_columns(self, estimator):
        return 1

    def _member_output(self, fitted, X, y_train):
        return np.asarray(fitted.predict(X), dtype=float).reshape(len(X), -1)[:, :1]

    def _meta_width(self, y):
        return 1

    def _meta_output(self, fitted, Z, y_train):
        return np.asarray(fitted.predict(Z), dtype=float).reshape(-1, 1)

    def _errors(self, block, y):
        return block[:, 0] - y

    def _score(self, block, y):
        return float(root_mean_squared_error(y, block[:, 0]))

    def fit(self, X, y, groups=None):
        """Fit members out of fold (``groups``: the key that picks each row's fold), then the stack."""
        X, y = validate_data(self, X, y, y_numeric=True)
        return self._fit_stack(X, np.asarray(y, dtype=float), groups)

    def predict(self, X):
        """The meta-model's prediction from the members' predictions."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.final_estimator_.predict(self._stack_features(X))


class KeyedStackingClassifier(ClassifierMixin, _KeyedStacking):
    """Stack classifiers through a meta-model fitted on their key-hashed out-of-fold probabilities.

    Parameters
    ----------
    estimators : list of (str, classifier), default=None
        The members; classifiers with ``predict_proba``. ``None`` means a logistic
        regression, a histogram gradient boosting and a random forest.
    final_estimator : classifier, default=None
        The meta-model on the members' out-of-fold class probabilities; ``None``
        means ``LogisticRegression()``.
    n_splits : int, default=5
        Number of out-of-fold folds.

    Attributes
    ----------
    classes_ : ndarray
        The class labels.
    estimators_, named_estimators_, final_estimator_, oof_predictions_
        As for :class:`KeyedStackingRegressor`; ``oof_predictions_`` holds each
        member's class probabilities side by side.
    report_ : dict
        As for :class:`KeyedStackingRegressor`, with out-of-fold log loss as the
        score and ``1 - p(true class)`` as each member's error.
    """

    _metric_name = "log_loss"

    @classmethod
    def _estimator_check_instances(cls):
        from sklearn.tree import DecisionTreeClassifier

        members = [("logistic", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]
        return [cls(members, n_splits=2)]

    def _default_members(self):
        return [
            ("logistic", LogisticRegression(max_iter=1000)),
            ("boosting", HistGradientBoostingClassifier(random_state=0)),
            ("forest", RandomForestClassifier(n_estimators=100, min_samples_leaf=5, random_state=0)),
        ]

    def _default_final(self):
        return LogisticRegression(max_iter=1000)

    def _member_columns(self, estimator):
        return len(self.classes_)

    def _fit_member(self, estimator, X, y):
        if len(np.unique(y)) < 2:  # a fold with one class: predict its prior
            return DummyClassifier(strategy="prior").fit(X, y)
        return clone(estimator).fit(X, y)

    def _member_output(self, fitted, X, y_train):
        # A fold may lack a class: place each member's columns by its own classes_.
        out = np.zeros((len(X), len(self.classes_)))
        out[:, np.asarray(fitted.classes_, dtype=int)] = fitted.predict_proba(X)
        return out

    def _meta_width(self, y):
        return len(self.classes_)

    def _meta_input(self, Z):
        # The meta-model sees log-probabilities: a logistic meta-model then adds log-odds.
        return np.log(np.clip(Z, 1e-6, 1.0))

    def _meta_output(self, fitted, Z, y_train):
        return self._member_output(fitted, Z, y_train)

    def _errors(self, block, y):
        return 1.0 - block[np.arange(len(y)), y]

    def _score(self, block, y):
        proba = np.clip(block, 1e-15, 1.0)
        proba = proba / proba.sum(axis=1, keepdims=True)
        return float(log_loss(y, proba, labels=np.arange(len(self.classes_))))

    def fit(self, X, y, groups=None):
        """Fit members out of fold (``groups``: the key that picks each row's fold), then the stack."""
        X, y = validate_data(self, X, y)
        y = column_or_1d(y)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}); a classifier needs two")
        return self._fit_stack(X, encoder.transform(y), groups)

    def predict_proba(self, X):
        """Class probabilities from the meta-model, columns in the order of ``classes_``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self._meta_output(self.final_estimator_, self._stack_features(X), None)

    def predict(self, X):
        """The most probable class."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

