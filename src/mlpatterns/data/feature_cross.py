"""Feature Cross (pattern 3): explicit crosses of categorical features, as BigQuery ML makes them.

Problem: a simple model (a linear model, a shallow tree) cannot learn that the effect of
one input depends on another, such as baby weight on plurality *and* sex, or on
gestation weeks *and* mother's age, without many layers or much more data.

Solution: cross the inputs explicitly: one new categorical feature per combination of
values (``"true_Twins(2)"``), so each combination gets its own weight. This module
follows BigQuery's ``ML.FEATURE_CROSS(STRUCT(f1, f2, ...)[, degree])`` [1]_:

* every combination of 2 up to ``degree`` (2-4) of the input columns is crossed, never a
  column with itself and never a single column; combinations come by size, then in
  column order (``f1_f2, f1_f3, f2_f3, f1_f2_f3``);
* the output column is named by joining the input names with ``_`` (``f1_f2``) and its
  value by joining the values with ``_`` (``a_b``), each value cast to STRING first;
* a NULL in any crossed input makes the cross NULL (``None``), as ``CONCAT`` does in
  BigQuery. The ML.FEATURE_CROSS page does not state its NULL rule; CONCAT's is the one
  that builds ``a_b`` and the one the SQL functions of :mod:`mlpatterns.sql` reuse
  through :func:`cross_values`.

Numeric inputs are crossed after bucketizing (:class:`mlpatterns.data.bucketize.Bucketizer`).
Crossed values can be many; ``num_buckets`` hashes them (Hashed Feature, 1).

References
----------
.. [1] https://cloud.google.com/bigquery/docs/reference/standard-sql/bigqueryml-syntax-feature-cross
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from mlpatterns._json_state import JSONStateMixin, register_json_state
from mlpatterns.data._columns import (
    CAST_ERROR,
    check_bucket_count,
    check_choice,
    feature_names_in,
    hash_column,
    validated_columns,
)
from mlpatterns.hashing import BUCKET_CONVENTIONS, to_bigquery_strings

__all__ = ["FeatureCross", "cross_values"]


def _joined(texts: list[np.ndarray], separator: str) -> np.ndarray:
    """Join str columns element-wise; None where any part is None."""
    nulls = np.zeros(len(texts[0]), dtype=bool)
    for text in texts:
        nulls |= np.equal(text, None)
    parts = [np.where(nulls, "", text).astype(object) for text in texts]
    joined = parts[0]
    for i, part in enumerate(parts[1:], start=1):
        try:
            joined = joined + separator + part
        except TypeError as error:
            raise TypeError(
                f"cannot cross column {i} with the columns before it: ML.FEATURE_CROSS "
                f"crosses STRING values, and one of them holds BYTES ({error})"
            ) from error
    joined[nulls] = None
    return joined


def cross_values(*columns: Any, separator: str = "_") -> np.ndarray:
    """The crossed values of 2 or more columns, row by row: ``"a_b"``, None if any is null.

    Each value is cast to text as BigQuery's ``CAST(x AS STRING)`` does (``True`` gives
    ``"true"``, ``1.0`` gives ``"1"``) and the texts are joined with ``separator``;
    a null (None, NaN, NA, NaT) in any column gives None, as BigQuery gives NULL.

    Parameters
    ----------
    *columns : list, NumPy array, pandas Series or Arrow array
        Two or more columns of equal length.
    separator : str, default="_"
        The joining text; ``"_"`` is BigQuery's.

    Returns
    -------
    numpy.ndarray of object
        One str (or None) per row.

    Examples
    --------
    >>> cross_values(["a", "b", None], [True, False, True]).tolist()
    ['a_true', 'b_false', None]
    """
    if len(columns) < 2:
        raise ValueError(f"cross_values needs at least 2 columns to cross, got {len(columns)}")
    if not isinstance(separator, str):
        raise TypeError(f"separator must be a str, got {type(separator).__name__}")
    texts = []
    for i, column in enumerate(columns):
        try:
            texts.append(to_bigquery_strings(column))
        except TypeError as error:
            raise TypeError(f"cross_values column {i}: {CAST_ERROR} ({error})") from error
    lengths = [len(text) for text in texts]
    if len(set(lengths)) > 1:
        raise ValueError(f"cross_values: the columns have different lengths {lengths}")
    return _joined(texts, separator)


def _texts(names: list[str], columns: list[Any], crosses: list[tuple[int, ...]]) -> dict:
    """The crossed columns cast to BigQuery STRING, by position; a clear error names a column."""
    texts = {}
    for position in sorted({p for cross in crosses for p in cross}):
        try:
            texts[position] = to_bigquery_strings(columns[position])
        except TypeError as error:
            raise TypeError(f"column {names[position]!r}: {CAST_ERROR} ({error})") from error
    return texts


@register_json_state
class FeatureCross(JSONStateMixin, TransformerMixin, BaseEstimator):
    """Cross categorical columns as BigQuery's ``ML.FEATURE_CROSS`` does.

    Parameters
    ----------
    degree : int, default=2
        Cross every combination of 2 up to ``degree`` (2 to 4) input columns, as
        ``ML.FEATURE_CROSS(STRUCT(...), degree)``. Ignored when ``crosses`` is given.
    crosses : list of tuple, default=None
        The crosses to make, each a tuple of 2 or more column names (or positions),
        for example ``[("is_male", "plurality"), ("age_bin", "weeks_bin")]``.
    num_buckets : int, default=None
        None: output the crossed strings (``"a_b"``; None where an input is null).
        An int: output ``hash_bucket(cross, num_buckets)`` indices, int64, with nulls
        in the extra bucket ``num_buckets`` (Hashed Feature, 1).
    convention : {"bigquery", "keras"}, default="bigquery"
        Hash bucket convention when ``num_buckets`` is set.

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.
    crosses_ : list of tuple of int
        The positions of the input columns of every output column.
    cardinalities_ : list of int or None
        With ``num_buckets``: ``num_buckets + 1`` per output column; else None.

    See Also
    --------
    cross_values : The crossing function, shared with the DuckDB SQL functions.
    mlpatterns.data.bucketize.Bucketizer : Bins numeric columns so they can be crossed.
    mlpatterns.data.hashed_feature.HashedFeature : Hashes any categorical column.
    sklearn.preprocessing.PolynomialFeatures : Products of numeric features, not crosses.

    Examples
    --------
    >>> import pandas as pd
    >>> births = pd.DataFrame({"is_male": [True, False, None],
    ...                        "plurality": ["Single(1)", "Twins(2)", "Single(1)"],
    ...                        "age": ["bin_2", "bin_3", "bin_1"]})
    >>> cross = FeatureCross(degree=3).fit(births)
    >>> cross.get_feature_names_out().tolist()
    ['is_male_plurality', 'is_male_age', 'plurality_age', 'is_male_plurality_age']
    >>> cross.transform(births)[:, 0].tolist()
    ['true_Single(1)', 'false_Twins(2)', None]
    >>> FeatureCross(crosses=[("is_male", "plurality")], num_buckets=50).fit_transform(births)
    array([[49],
           [27],
           [50]])
    """

    def __init__(
        self,
        *,
        degree: int = 2,
        crosses: list[tuple[Any, ...]] | None = None,
        num_buckets: int | None = None,
        convention: str = "bigquery",
    ) -> None:
        self.degree = degree
        self.crosses = crosses
        self.num_buckets = num_buckets
        self.convention = convention

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.allow_nan = True
        tags.transformer_tags.preserves_dtype = []
        return tags

    @classmethod
    def _estimator_check_instances(cls) -> list[FeatureCross]:
        # scikit-learn's common checks compare outputs numerically: check the hashed form.
        return [cls(num_buckets=1000), cls(degree=3, num_buckets=50, convention="keras")]

    def _check_params(self) -> None:
        if self.num_buckets is not None:
            check_bucket_count("num_buckets", self.num_buckets)
        check_choice("convention", self.convention, BUCKET_CONVENTIONS)
        if self.crosses is None and (
            isinstance(self.degree, bool)
            or not isinstance(self.degree, (int, np.integer))
            or not 2 <= self.degree <= 4
        ):
            raise ValueError(f"degree must be an integer from 2 to 4, got {self.degree!r}")

    def fit(self, X: Any, y: Any = None) -> FeatureCross:
        """Resolve which columns are crossed and check that their values can be cast to STRING."""
        self._check_params()
        names, columns = validated_columns(self, X, reset=True)
        if self.crosses is None:
            n = len(names)
            if n < 2:
                raise ValueError(
                    f"FeatureCross needs at least 2 columns to cross, got {n} feature(s)"
                )
            sizes = range(2, min(int(self.degree), n) + 1)
            self.crosses_ = [c for size in sizes for c in combinations(range(n), size)]
        else:
            self.crosses_ = [self._resolve(i, cross, names) for i, cross in enumerate(self.crosses)]
            if not self.crosses_:
                raise ValueError("crosses must name at least one cross, got an empty list")
        _texts(names, columns, self.crosses_)
        n_out = len(self.crosses_)
        self.cardinalities_ = None if self.num_buckets is None else [self.num_buckets + 1] * n_out
        return self

    @staticmethod
    def _resolve(i: int, cross: Any, names: list[str]) -> tuple[int, ...]:
        if isinstance(cross, str) or not hasattr(cross, "__len__") or len(cross) < 2:
            raise ValueError(f"crosses[{i}]: expected a tuple of 2 or more columns, got {cross!r}")
        positions = []
        for column in cross:
            if isinstance(column, (int, np.integer)) and not isinstance(column, bool):
                if not 0 <= column < len(names):
                    raise ValueError(
                        f"crosses[{i}]: column position {column} is out of range for "
                        f"{len(names)} input columns"
                    )
                positions.append(int(column))
            elif column in names:
                positions.append(names.index(column))
            else:
                raise ValueError(f"crosses[{i}]: unknown column {column!r}; the input has {names}")
        if len(set(positions)) < len(positions):
            raise ValueError(f"crosses[{i}]: a column cannot be crossed with itself, got {cross!r}")
        return tuple(positions)

    def transform(self, X: Any) -> np.ndarray:
        """Crossed strings (object ``[n, n_crosses]``) or their hash bucket indices (int64)."""
        check_is_fitted(self)
        self._check_params()
        names, columns = validated_columns(self, X, reset=False)
        texts = _texts(names, columns, self.crosses_)
        dtype = object if self.num_buckets is None else np.int64
        out = np.empty((len(columns[0]), len(self.crosses_)), dtype=dtype)
        cross_names = self.get_feature_names_out()
        for j, cross in enumerate(self.crosses_):
            crossed = _joined([texts[p] for p in cross], "_")
            if self.num_buckets is None:
                out[:, j] = crossed
            else:
                out[:, j] = hash_column(
                    cross_names[j], crossed, int(self.num_buckets), self.convention
                )
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``f1_f2`` for the cross of ``f1`` and ``f2``, as BigQuery names it."""
        names = feature_names_in(self, input_features)
        return np.asarray(
            ["_".join(str(names[p]) for p in cross) for cross in self.crosses_], dtype=object
        )
