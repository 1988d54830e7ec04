"""Reframing (pattern 5): regression as classification over buckets of the target.

Problem: a regression model gives one number per example, and says nothing about
how sure it is; a target whose distribution is skewed or multimodal (a flight's
delay, a baby's weight for twins) fits badly as a single mean.

Solution: cut the target into buckets (uniform or quantile, learned on the
training rows), train a classifier over the buckets, and read the class
probabilities as a predictive distribution: its mean, its median, any quantile,
and prediction intervals. :class:`ReframedRegressor` wraps any scikit-learn
classifier with ``predict_proba`` (``estimator=``, so tuning reaches its
parameters through ``estimator__...``).

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 1))
>>> y = 3 * X[:, 0] + rng.normal(size=500)
>>> model = ReframedRegressor(LogisticRegression(), n_buckets=10).fit(X, y)
>>> low, high = model.predict_interval(X[:3], coverage=0.8)
>>> bool(np.all(low <= high))
True
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

__all__ = ["ReframedRegressor", "quantiles_from_bucket_proba", "target_buckets"]


class ReframedRegressor(MetaEstimatorMixin, RegressorMixin, BaseEstimator):
    """Predict a number through a classifier over buckets of the target.

    Parameters
    ----------
    estimator : classifier, default=None
        Any scikit-learn classifier with ``predict_proba``; ``None`` means
        ``HistGradientBoostingClassifier()``.
    n_buckets : int, default=20
        Number of target buckets. More buckets give finer predictions and less data
        per bucket.
    strategy : {"quantile", "uniform"}, default="quantile"
        Bucket edges at target quantiles (equal counts) or evenly spaced.

    Attributes
    ----------
    edges_ : ndarray of shape (n_buckets_ + 1,)
        Bucket edges learned on the training target.
    centers_ : ndarray of shape (n_buckets_,)
        The mean training target of each bucket: the value a bucket stands for.
    estimator_ : classifier
        The fitted classifier over bucket indices.
    """

    def __init__(self, estimator=None, n_buckets: int = 20, strategy: str = "quantile") -> None:
        self.estimator = estimator
        self.n_buckets = n_buckets
        self.strategy = strategy

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X, y):
        if self.strategy not in ("quantile", "uniform"):
            raise ValueError(f"strategy must be 'quantile' or 'uniform', got {self.strategy!r}")
        if isinstance(self.n_buckets, bool) or not isinstance(self.n_buckets, (int, np.integer)) \
                or self.n_buckets < 2:
            raise ValueError(f"n_buckets must be an integer of at least 2, got {self.n_buckets!r}")
        X = validate_data(self, X, ensure_all_finite="allow-nan")
        y = column_or_1d(y, warn=True).astype(np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity; the target must be finite")
        self.edges_, self.bucket_ids_, self.centers_, classes = target_buckets(y, self.n_buckets, self.strategy)
        self.n_buckets_ = len(self.bucket_ids_)
        from sklearn.ensemble import HistGradientBoostingClassifier

        base = self.estimator if self.estimator is not None else HistGradientBoostingClassifier()
        self.estimator_ = clone(base)
        if self.n_buckets_ == 1:
            self.estimator_ = None
        else:
            self.estimator_.fit(X, classes)
        return self

    def predict_bucket_proba(self, X) -> np.ndarray:
        """Probability of each bucket (columns follow :attr:`centers_`)."""
        check_is_fitted(self, "centers_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        if self.estimator_ is None:
            return np.ones((len(X), 1))
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """The mean of the predictive distribution."""
        return self.predict_bucket_proba(X) @ self.centers_

    def predict_quantiles(self, X, quantiles) -> np.ndarray:
        """Quantiles of the predictive distribution, shape ``(n_samples, len(quantiles))``.

        The distribution is read as uniform within each bucket between its edges.
        """
        return quantiles_from_bucket_proba(self.predict_bucket_proba(X), self.edges_, self.bucket_ids_, quantiles)

    def predict_interval(self, X, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """The central prediction interval of nominal ``coverage``: ``(low, high)``."""
        if not 0 < coverage < 1:
            raise ValueError(f"coverage must be between 0 and 1, got {coverage!r}")
        bounds = self.predict_quantiles(X, [(1 - coverage) / 2, (1 + coverage) / 2])
        return bounds[:, 0], bounds[:, 1]


def quantiles_from_bucket_proba(proba: np.ndarray, edges: np.ndarray, bucket_ids: np.ndarray,
                                quantiles) -> np.ndarray:
    """Quantiles of bucket distributions, each read as uniform between its bucket's edges.

    ``proba`` has one column per bucket listed in ``bucket_ids`` (indices into the
    ``edges`` intervals). The serving function calls this too, so training and serving
    compute intervals the same way.
    """
    quantiles = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    if np.any((quantiles < 0) | (quantiles > 1)):
        raise ValueError("quantiles must lie in [0, 1]")
    edges, bucket_ids = np.asarray(edges, dtype=np.float64), np.asarray(bucket_ids, dtype=np.int64)
    low = edges[bucket_ids]
    high = edges[np.minimum(bucket_ids + 1, len(edges) - 1)]
    cumulative = np.cumsum(proba, axis=1)
    rows = np.arange(len(proba))
    out = np.empty((len(proba), len(quantiles)))
    for j, q in enumerate(quantiles):
        index = np.minimum((cumulative < q).sum(axis=1), proba.shape[1] - 1)
        before = np.where(index > 0, cumulative[rows, index - 1], 0.0)
        mass = np.maximum(proba[rows, index], 1e-12)
        share = np.clip((q - before) / mass, 0, 1)
        out[:, j] = low[index] + share * (high[index] - low[index])
    return out


def target_buckets(y: np.ndarray, n_buckets: int, strategy: str = "quantile"):
    """Buckets of a regression target: ``(edges, bucket_ids, centers, classes)``.

    ``edges`` cut the target into at most ``n_buckets`` intervals (quantile or
    uniform; repeated edges merged); ``bucket_ids`` are the intervals that hold
    training rows, ``centers`` their mean targets, and ``classes`` the class index
    (into ``bucket_ids``) of every row: what a classifier over buckets learns.
    """
    y = np.asarray(y, dtype=np.float64)
    if strategy == "quantile":
        edges = np.quantile(y, np.linspace(0, 1, n_buckets + 1))
    else:
        edges = np.linspace(y.min(), y.max(), n_buckets + 1)
    edges = np.unique(edges)
    if len(edges) < 2:  # a constant target: one bucket
        edges = np.array([y[0], y[0]])
    buckets = np.searchsorted(edges[1:-1], y, side="right")
    bucket_ids = np.unique(buckets)
    centers = np.array([y[buckets == b].mean() for b in bucket_ids])
    return edges, bucket_ids, centers, np.searchsorted(bucket_ids, buckets)
