"""The input checks that the data-representation estimators share (Hashed Feature, Feature Cross,
Bucketize): columns of a DataFrame or an array as scikit-learn validates them, feature names,
parameter choices, bucket counts and the hashing of one column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from mlpatterns.hashing import hash_bucket

__all__ = ["CAST_ERROR", "check_bucket_count", "check_choice", "feature_names_in", "hash_column", "is_dataframe",
           "validated_columns"]

CAST_ERROR = (
    "argument must be a string, bytes, bool, number, date or datetime, the types that "
    "FARM_FINGERPRINT(CAST(x AS STRING)) accepts"
)


def is_dataframe(X: Any) -> bool:
    """Whether ``X`` looks like a pandas DataFrame (without importing pandas)."""
    return hasattr(X, "columns") and hasattr(X, "iloc") and hasattr(X, "dtypes")


def validated_columns(
    estimator: BaseEstimator, X: Any, *, reset: bool, dtype: Any = None
) -> tuple[list[str], list[Any]]:
    """Check ``X`` as scikit-learn does and return its column names and 1-D columns.

    A pandas DataFrame keeps its columns as they are (string, categorical, Arrow or
    nullable dtypes), so nothing is converted to a wide object array; anything else
    goes through ``validate_data``. Both paths record or check ``n_features_in_``
    and ``feature_names_in_``.
    """
    name = type(estimator).__name__
    if is_dataframe(X):
        validate_data(estimator, X, reset=reset, skip_check_array=True)
        if X.shape[0] < 1 or X.shape[1] < 1:
            raise ValueError(
                f"Found array with {X.shape[0]} sample(s) and {X.shape[1]} feature(s) "
                f"(shape={X.shape}) while a minimum of 1 of each is required by {name}."
            )
        columns: list[Any] = [X.iloc[:, j] for j in range(X.shape[1])]
    else:
        array = validate_data(estimator, X, reset=reset, dtype=dtype, ensure_all_finite="allow-nan")
        columns = [array[:, j] for j in range(array.shape[1])]
    return list(feature_names_in(estimator, None)), columns


def feature_names_in(estimator: BaseEstimator, input_features: Any) -> np.ndarray:
    """The input feature names, checked against what ``fit`` saw (``x0, x1, ...`` for arrays)."""
    check_is_fitted(estimator, "n_features_in_")
    seen = getattr(estimator, "feature_names_in_", None)
    if input_features is None:
        if seen is not None:
            return np.asarray(seen, dtype=object)
        return np.asarray([f"x{i}" for i in range(estimator.n_features_in_)], dtype=object)
    names = np.asarray(input_features, dtype=object)
    if seen is not None and not np.array_equal(names, seen):
        raise ValueError(
            f"input_features is not equal to feature_names_in_: got {list(names)}, "
            f"fitted on {list(seen)}"
        )
    if len(names) != estimator.n_features_in_:
        raise ValueError(
            f"input_features should have length equal to number of features "
            f"({estimator.n_features_in_}), got {len(names)}"
        )
    return names


def check_choice(parameter: str, value: Any, choices: tuple[str, ...]) -> None:
    """A ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{parameter} must be one of {list(choices)}, got {value!r}")


def check_bucket_count(parameter: str, value: Any) -> None:
    """A ``ValueError`` unless ``value`` is a positive integer (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{parameter} must be a positive integer, got {value!r}")


def hash_column(name: str, values: Any, num_buckets: int, convention: str) -> np.ndarray:
    """Buckets of one column, nulls in bucket ``num_buckets``; a clear error names the column."""
    try:
        return hash_bucket(values, num_buckets, convention=convention, null_bucket=num_buckets)
    except TypeError as error:
        raise TypeError(f"column {name!r}: {CAST_ERROR} ({error})") from error
