"""Bins of numeric features, as BigQuery ML's ``ML.BUCKETIZE`` and ``ML.QUANTILE_BUCKETIZE`` make them.

Part of the Feature Cross pattern (3): a number (mother's age, gestation weeks, hour of
day) can only be crossed once it is categorical, so it is first cut into bins. The
problem is to cut it the same way in SQL, in training and in serving: explicit split
points, or quantile split points learned once, on the training data only.

BigQuery's rules [1]_ [2]_, followed here:

* split points ``[s1, ..., sk]`` (finite, lowest to highest) make ``k + 1`` bins named
  ``bin_1`` ... ``bin_{k+1}``; each bin holds its lower split point:
  ``bin_1 = (-inf, s1)``, ``bin_2 = [s1, s2)``, ..., ``bin_{k+1} = [sk, +inf)``. So
  ``ML.BUCKETIZE(2.5, [1, 2, 3])`` is ``'bin_3'``;
* ``exclude_boundaries=TRUE`` drops the lowest and the highest split point first:
  ``ML.BUCKETIZE(2.5, [1, 2, 3], TRUE)`` is ``'bin_2'``;
* ``ML.QUANTILE_BUCKETIZE(x, n)`` splits at the ``n - 1`` inner quantiles of ``x``
  (``APPROX_QUANTILES(x, n)`` without its minimum and maximum): for ``x = 1..5`` and
  ``n = 3`` the split points are ``[2, 4]``;
* NULL gives NULL (None here). NaN counts as null too, as everywhere in mlpatterns.

:func:`quantile_boundaries` computes the quantiles exactly: the ``k``-th of ``n``
split points is the smallest value whose share of rows at or below it reaches
``k / n`` (rank ``ceil(k * rows / n)``). This reproduces every example of BigQuery's
APPROX_QUANTILES documentation; on large tables BigQuery's sketch is approximate and
may differ slightly. Repeated quantiles (many ties) are merged, so a column can get
fewer than ``n`` bins.

References
----------
.. [1] https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-bucketize
.. [2] https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-quantile-bucketize
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from mlpatterns._json_state import JSONStateMixin, register_json_state
from mlpatterns.data._columns import (
    check_bucket_count,
    check_choice,
    feature_names_in,
    validated_columns,
)

__all__ = ["Bucketizer", "bucketize", "quantile_boundaries"]

_NUMERIC_KINDS = {"integer", "floating", "mixed-integer-float", "boolean", "empty"}


def _numbers(values: Any, what: str) -> np.ndarray:
    """A float64 copy of a numeric column, NaN for nulls; a clear error otherwise."""
    if not isinstance(values, pd.Series):
        array = np.asarray(values)
        if array.ndim != 1:
            raise ValueError(f"{what}: expected a 1-D column of numbers, got shape {array.shape}")
        if array.dtype.kind in "biuf":
            return array.astype(np.float64)
        values = pd.Series(array if array.dtype.kind == "O" else array.astype(object))
    if pd.api.types.is_numeric_dtype(values.dtype) and values.dtype.kind != "c":
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind not in _NUMERIC_KINDS:
        example = next(v for v in values.dropna() if not isinstance(v, numbers.Real))
        raise ValueError(f"{what}: expected numbers, got {kind} values such as {example!r}")
    return values.astype(object).to_numpy(dtype=np.float64, na_value=np.nan)


def _split_points(split_points: Any, exclude_boundaries: bool = False) -> np.ndarray:
    try:
        points = np.asarray(split_points, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"split points must be numbers, got {split_points!r}") from error
    if points.ndim != 1:
        raise ValueError(f"split points must be a flat list, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(
            f"split points must be finite (not inf, -inf or NaN), got {points.tolist()}"
        )
    if np.any(np.diff(points) <= 0):
        raise ValueError(f"split points must be strictly increasing, got {points.tolist()}")
    return points[1:-1] if exclude_boundaries else points


def _bin_numbers(x: np.ndarray, points: np.ndarray) -> np.ndarray:
    """1-based bin of every value (``bin_N`` has N), 0 for nulls."""
    numbers = np.searchsorted(points, x, side="right") + 1
    numbers[np.isnan(x)] = 0
    return numbers


def _bin_names(numbers: np.ndarray, n_bins: int) -> np.ndarray:
    names = np.array([None] + [f"bin_{k}" for k in range(1, n_bins + 1)], dtype=object)
    return names[numbers]


def bucketize(values: Any, split_points: Any, exclude_boundaries: bool = False) -> np.ndarray:
    """``ML.BUCKETIZE(values, split_points[, exclude_boundaries])``: ``'bin_N'`` per value.

    Returns an object array of ``'bin_1'`` ... ``'bin_{k+1}'`` for ``k`` split points
    (None for null and NaN); bins hold their lower split point.

    >>> bucketize([2.5, 1.0, 0.5, None, 7], [1, 2, 3]).tolist()
    ['bin_3', 'bin_2', 'bin_1', None, 'bin_4']
    >>> bucketize([2.5], [1, 2, 3], exclude_boundaries=True).tolist()
    ['bin_2']
    """
    x = _numbers(values, "bucketize values")
    points = _split_points(split_points, exclude_boundaries)
    return _bin_names(_bin_numbers(x, points), len(points) + 1)


def quantile_boundaries(values: Any, num_buckets: int) -> np.ndarray:
    """The split points of ``ML.QUANTILE_BUCKETIZE(values, num_buckets)``, exact.

    The inner ``num_buckets - 1`` quantiles of the non-null values (the ``k``-th is the
    value at rank ``ceil(k * rows / num_buckets)``), repeated ones merged, infinite
    ones dropped.

    >>> quantile_boundaries([1, 2, 3, 4, 5], 3).tolist()
    [2.0, 4.0]
    >>> quantile_boundaries([1, 1, 1, 4, 5, 6, 7, 8, 9, 10], 2).tolist()  # APPROX_QUANTILES: [1, 5, 10]
    [5.0]
    """
    check_bucket_count("num_buckets", num_buckets)
    x = _numbers(values, "quantile_boundaries values")
    x = np.sort(x[~np.isnan(x)])
    if len(x) == 0:
        raise ValueError("quantile_boundaries: no non-null value to take quantiles of")
    k = np.arange(1, int(num_buckets), dtype=np.int64)
    ranks = (k * len(x) + int(num_buckets) - 1) // int(num_buckets)  # ceil(k * n / B), exactly
    points = np.unique(x[ranks - 1])
    return points[np.isfinite(points)]


@register_json_state
class Bucketizer(JSONStateMixin, TransformerMixin, BaseEstimator):
    """Cut every numeric column into bins, as ``ML.BUCKETIZE`` / ``ML.QUANTILE_BUCKETIZE`` do.

    Give exactly one of ``boundaries`` (explicit split points) or ``n_quantiles``
    (split points learned by ``fit``, on the training data only, then reused as they
    are: the Transform pattern's rule).

    Parameters
    ----------
    boundaries : list of float or dict of str to list of float, default=None
        Split points for every column, or per column name (every column needs some).
    n_quantiles : int, default=None
        Number of quantile bins per column, as ``ML.QUANTILE_BUCKETIZE(x, n_quantiles)``.
    exclude_boundaries : bool, default=False
        Drop the lowest and highest of the explicit ``boundaries`` first, as
        ``ML.BUCKETIZE``'s third argument does.
    output : {"name", "index"}, default="name"
        ``"name"``: BigQuery's ``'bin_N'`` strings (None for nulls), ready to cross.
        ``"index"``: int64 ``N - 1`` in ``[0, n_bins)``, nulls at ``n_bins``.

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.
    boundaries_ : list of ndarray
        The split points used for each column.
    n_bins_ : list of int
        Bins per column: ``len(boundaries_[j]) + 1``.
    cardinalities_ : list of int
        ``n_bins_ + 1`` (the null index), to size an embedding or one-hot block.

    See Also
    --------
    bucketize : The binning function, shared with the DuckDB SQL functions.
    quantile_boundaries : How ``n_quantiles`` split points are found.
    mlpatterns.data.feature_cross.FeatureCross : Crosses the bins with other features.
    sklearn.preprocessing.KBinsDiscretizer : Similar, with interpolated quantiles.

    Examples
    --------
    >>> import pandas as pd
    >>> train = pd.DataFrame({"mother_age": [18, 22, 25, 29, 31, 35, None]})
    >>> Bucketizer(boundaries=[20, 30]).fit_transform(train).ravel().tolist()
    ['bin_1', 'bin_2', 'bin_2', 'bin_2', 'bin_3', 'bin_3', None]
    >>> quantiles = Bucketizer(n_quantiles=3, output="index").fit(train)
    >>> quantiles.boundaries_[0].tolist()
    [22.0, 29.0]
    >>> quantiles.transform(pd.DataFrame({"mother_age": [45, None]})).ravel().tolist()
    [2, 3]
    """

    def __init__(
        self,
        *,
        boundaries: list[float] | Mapping[str, list[float]] | None = None,
        n_quantiles: int | None = None,
        exclude_boundaries: bool = False,
        output: str = "name",
    ) -> None:
        self.boundaries = boundaries
        self.n_quantiles = n_quantiles
        self.exclude_boundaries = exclude_boundaries
        self.output = output

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    @classmethod
    def _estimator_check_instances(cls) -> list[Bucketizer]:
        # There is no sensible default split; scikit-learn's checks compare numbers.
        return [
            cls(n_quantiles=4, output="index"),
            cls(boundaries=[-1.0, 0.0, 1.0], output="index"),
        ]

    def _check_params(self) -> None:
        if (self.boundaries is None) == (self.n_quantiles is None):
            raise ValueError(
                "give exactly one of boundaries= (split points) or n_quantiles= (quantile "
                f"bins), got boundaries={self.boundaries!r}, n_quantiles={self.n_quantiles!r}"
            )
        if self.n_quantiles is not None:
            check_bucket_count("n_quantiles", self.n_quantiles)
        check_choice("output", self.output, ("name", "index"))

    def fit(self, X: Any, y: Any = None) -> Bucketizer:
        """Take the explicit split points, or learn the quantile ones from ``X``."""
        self._check_params()
        names, columns = validated_columns(self, X, reset=True, dtype=np.float64)
        if isinstance(self.boundaries, Mapping):
            extra = sorted(set(self.boundaries) - set(names), key=str)
            if extra:
                raise ValueError(
                    f"boundaries names column(s) {extra} that the input lacks; it has {names}"
                )
        self.boundaries_ = []
        for name, values in zip(names, columns, strict=True):
            if self.n_quantiles is not None:
                x = _numbers(values, f"column {name!r}")
                if np.isnan(x).all():
                    raise ValueError(f"column {name!r}: no non-null value to learn quantiles from")
                self.boundaries_.append(quantile_boundaries(x, int(self.n_quantiles)))
                continue
            points = self.boundaries
            if isinstance(points, Mapping):
                if name not in points:
                    raise ValueError(f"boundaries has no split points for column {name!r}")
                points = points[name]
            try:
                self.boundaries_.append(_split_points(points, bool(self.exclude_boundaries)))
            except ValueError as error:
                raise ValueError(f"boundaries for column {name!r}: {error}") from error
        self.n_bins_ = [len(points) + 1 for points in self.boundaries_]
        self.cardinalities_ = [n + 1 for n in self.n_bins_]
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``'bin_N'`` names (object array) or 0-based bin indices (int64), column by column."""
        check_is_fitted(self)
        self._check_params()
        names, columns = validated_columns(self, X, reset=False, dtype=np.float64)
        dtype = object if self.output == "name" else np.int64
        out = np.empty((len(columns[0]), len(columns)), dtype=dtype)
        for j, (name, values) in enumerate(zip(names, columns, strict=True)):
            numbers = _bin_numbers(_numbers(values, f"column {name!r}"), self.boundaries_[j])
            if self.output == "name":
                out[:, j] = _bin_names(numbers, self.n_bins_[j])
            else:
                out[:, j] = np.where(numbers == 0, self.n_bins_[j], numbers - 1)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input names: one output column per input column."""
        return feature_names_in(self, input_features)
