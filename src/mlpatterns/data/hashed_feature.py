"""Hashed Feature (pattern 1): categorical inputs hashed into a fixed number of buckets.

Problem: a categorical input whose vocabulary is incomplete (new aircraft, airports
and routes appear after training: cold start), huge (one weight per value makes the
model large) or unknown ahead of time. A vocabulary built on the training data must
send every value it has not seen to one "unknown" slot, and has to be stored and
shipped with the model.

Solution: hash the text form of each value deterministically with FarmHash
Fingerprint64 into ``num_buckets`` buckets, as BigQuery's
``ABS(MOD(FARM_FINGERPRINT(x), N))`` does. Nothing is learned per value, a value never
seen in training still lands in a bucket, and SQL, Python and the serving process agree
bit for bit. The price is collisions: unrelated values share a bucket.
:class:`HashedFeature` measures them on the training data (``collisions_``) so that the
bucket count is chosen knowingly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
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
from mlpatterns.hashing import BUCKET_CONVENTIONS, hash_bucket, to_bigquery_strings

__all__ = ["HashedFeature", "collision_report"]

def _null_error(name: str, count: int, first: int) -> ValueError:
    return ValueError(
        f"column {name!r}: {count} null value(s), the first at row {first}, and "
        "handle_null='error'; use handle_null='bucket' to give nulls a bucket of their "
        "own (index num_buckets), or drop or fill them first"
    )


def collision_report(values: Any, num_buckets: int, convention: str = "bigquery") -> dict[str, Any]:
    """The collisions that hashing ``values`` (one training column) into ``num_buckets`` buckets causes.

    Values are cast as BigQuery casts them (:func:`~mlpatterns.hashing.to_bigquery_strings`);
    the report gives ``distinct_values`` (non-null), ``buckets_used``,
    ``values_sharing_a_bucket`` (values whose bucket holds another value too),
    ``share_of_rows_in_shared_buckets`` (of all rows) and ``null_rows``.

    >>> collision_report(["A", "B", "C", "D", "E", None], 3, "keras")  # buckets 1, 0, 1, 1, 2
    {'distinct_values': 5, 'buckets_used': 3, 'values_sharing_a_bucket': 3, 'share_of_rows_in_shared_buckets': 0.5, 'null_rows': 1}
    """
    codes, uniques = pd.factorize(to_bigquery_strings(values))
    nulls = codes < 0
    per_value = hash_bucket(np.asarray(uniques, dtype=object), num_buckets, convention=convention)
    values_per_bucket = np.bincount(per_value, minlength=num_buckets)
    shared = values_per_bucket[per_value] > 1
    rows_per_value = np.bincount(codes[~nulls], minlength=len(uniques))
    return {
        "distinct_values": len(uniques),
        "buckets_used": int(np.count_nonzero(values_per_bucket)),
        "values_sharing_a_bucket": int(shared.sum()),
        "share_of_rows_in_shared_buckets": float(rows_per_value[shared].sum() / max(len(codes), 1)),
        "null_rows": int(nulls.sum()),
    }


@register_json_state
class HashedFeature(JSONStateMixin, TransformerMixin, BaseEstimator):
    """Hash every input column into ``num_buckets`` buckets with FarmHash Fingerprint64.

    Each value is cast to text as BigQuery's ``CAST(x AS STRING)`` does and hashed
    with :func:`mlpatterns.hashing.hash_bucket`, so the buckets are bit-exact with
    ``ABS(MOD(FARM_FINGERPRINT(x), num_buckets))`` (or Keras ``Hashing``). Values
    never seen in training (cold start) hash like any other; ``fit`` only records
    the column names and a collision report.

    Parameters
    ----------
    num_buckets : int, default=100
        Buckets per column. More buckets, fewer collisions, more weights downstream.
    convention : {"bigquery", "keras"}, default="bigquery"
        ``ABS(MOD(fingerprint, n))`` or ``uint64(fingerprint) % n``; they differ for
        negative fingerprints (see :mod:`mlpatterns.hashing`).
    handle_null : {"bucket", "error"}, default="bucket"
        ``"bucket"`` sends nulls (None, NaN, NA, NaT) to an extra bucket, index
        ``num_buckets``; ``"error"`` raises, naming the column.
    output : {"index", "onehot"}, default="index"
        ``"index"``: an int64 array ``[n_samples, n_columns]`` of bucket indices (for
        embeddings or trees). ``"onehot"``: a SciPy CSR matrix with one column per
        bucket of every input column (for linear models).

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.
    collisions_ : dict of str to dict
        Per column, on the training data: ``distinct_values`` (non-null),
        ``buckets_used``, ``values_sharing_a_bucket`` (values whose bucket holds
        another value too), ``share_of_rows_in_shared_buckets`` (of all rows) and
        ``null_rows``.
    cardinalities_ : list of int
        Number of possible indices per output column (``num_buckets``, plus one for
        the null bucket), to size an embedding or a one-hot block.

    See Also
    --------
    mlpatterns.hashing.hash_bucket : The hash behind this transformer.
    sklearn.feature_extraction.FeatureHasher : Hashes feature names into one shared space,
        with MurmurHash3, not bit-exact with BigQuery.
    sklearn.preprocessing.OneHotEncoder : The vocabulary baseline; unseen values are unknown.

    Examples
    --------
    >>> import pandas as pd
    >>> train = pd.DataFrame({"carrier": ["UA", "AA", "B6", None], "dest": ["IAH", "MIA", "BQN", "ATL"]})
    >>> hasher = HashedFeature(num_buckets=8).fit(train)
    >>> hasher.transform(train)  # the null carrier goes to bucket 8; MIA and BQN collide
    array([[3, 1],
           [1, 4],
           [6, 4],
           [8, 6]])
    >>> hasher.transform(pd.DataFrame({"carrier": ["ZZ"], "dest": ["LEX"]}))  # never seen
    array([[2, 6]])
    >>> hasher.cardinalities_
    [9, 9]
    >>> hasher.collisions_["dest"]
    {'distinct_values': 4, 'buckets_used': 3, 'values_sharing_a_bucket': 2, 'share_of_rows_in_shared_buckets': 0.5, 'null_rows': 0}
    >>> HashedFeature(num_buckets=8, output="onehot").fit(train).transform(train).shape
    (4, 18)
    """

    def __init__(
        self,
        *,
        num_buckets: int = 100,
        convention: str = "bigquery",
        handle_null: str = "bucket",
        output: str = "index",
    ) -> None:
        self.num_buckets = num_buckets
        self.convention = convention
        self.handle_null = handle_null
        self.output = output

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.allow_nan = self.handle_null == "bucket"
        tags.transformer_tags.preserves_dtype = []
        return tags

    @classmethod
    def _estimator_check_instances(cls) -> list[HashedFeature]:
        return [cls(), cls(num_buckets=20, convention="keras", output="onehot")]

    def _check_params(self) -> None:
        check_bucket_count("num_buckets", self.num_buckets)
        check_choice("convention", self.convention, BUCKET_CONVENTIONS)
        check_choice("handle_null", self.handle_null, ("bucket", "error"))
        check_choice("output", self.output, ("index", "onehot"))

    def fit(self, X: Any, y: Any = None) -> HashedFeature:
        """Record the columns and measure bucket collisions on the training data."""
        self._check_params()
        names, columns = validated_columns(self, X, reset=True)
        self.collisions_ = {
            name: self._collisions(name, col) for name, col in zip(names, columns, strict=True)
        }
        extra = 1 if self.handle_null == "bucket" else 0
        self.cardinalities_ = [int(self.num_buckets) + extra] * len(names)
        return self

    def _collisions(self, name: str, values: Any) -> dict[str, Any]:
        try:
            report = collision_report(values, int(self.num_buckets), self.convention)
        except TypeError as error:
            raise TypeError(f"column {name!r}: {CAST_ERROR} ({error})") from error
        if report["null_rows"] and self.handle_null == "error":
            nulls = pd.isna(pd.Series(values, dtype=object)).to_numpy()
            raise _null_error(name, report["null_rows"], int(np.argmax(nulls)))
        return report

    def transform(self, X: Any) -> np.ndarray | sp.csr_matrix:
        """Bucket indices (int64 ``[n, n_columns]``) or their one-hot CSR matrix."""
        check_is_fitted(self)
        self._check_params()
        names, columns = validated_columns(self, X, reset=False)
        n_buckets = int(self.num_buckets)
        indices = np.empty((len(columns[0]), len(columns)), dtype=np.int64)
        for j, (name, values) in enumerate(zip(names, columns, strict=True)):
            indices[:, j] = hash_column(name, values, n_buckets, self.convention)
            if self.handle_null == "error":
                nulls = np.flatnonzero(indices[:, j] == n_buckets)
                if nulls.size:
                    raise _null_error(name, nulls.size, int(nulls[0]))
        if self.output == "onehot":
            return _one_hot(indices, self.cardinalities_)
        return indices

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Input names for ``output="index"``; ``<name>_<bucket>`` and ``<name>_null`` for one-hot."""
        names = feature_names_in(self, input_features)
        if self.output != "onehot":
            return names
        out = []
        for name, cardinality in zip(names, self.cardinalities_, strict=True):
            out.extend(f"{name}_{k}" for k in range(int(self.num_buckets)))
            if cardinality > self.num_buckets:
                out.append(f"{name}_null")
        return np.asarray(out, dtype=object)


def _one_hot(indices: np.ndarray, cardinalities: list[int]) -> sp.csr_matrix:
    """One 1 per row and column block: column ``offset_j + indices[:, j]``."""
    n_rows, n_columns = indices.shape
    offsets = np.concatenate([[0], np.cumsum(cardinalities)[:-1]]).astype(np.int64)
    columns = (indices + offsets).ravel()
    indptr = np.arange(0, n_rows * n_columns + 1, n_columns, dtype=np.int64)
    data = np.ones(n_rows * n_columns, dtype=np.float64)
    return sp.csr_matrix((data, columns, indptr), shape=(n_rows, int(sum(cardinalities))))
