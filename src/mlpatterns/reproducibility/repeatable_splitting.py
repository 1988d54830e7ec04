"""Repeatable Splitting (pattern 22): split rows by a hash of a key column.

Problem: a random split gives different rows every run, and it scatters rows that
belong together (all the flights of one day share its weather) over training and
test, so the test metric measures memory of the day rather than prediction.

Solution: hash a well-chosen column and split on the bucket, as the book writes in
BigQuery: ``ABS(MOD(FARM_FINGERPRINT(CAST(date AS STRING)), 10)) < 8`` is training.
Every row of a key lands in one split, the same split in every run, in Python and in
SQL alike (:func:`split_sql_condition` writes the WHERE clause; :mod:`mlpatterns.sql`
runs it in DuckDB). Choose a key that is not a feature and has many values; combine
columns when one has too few; sample repeatably with :func:`repeatable_sample`. To
split a sample of ``B`` buckets, split with ``num_buckets=B * k`` (the book's 70/700
trick): within the sample that is a uniform split into ``k`` buckets. How a key value
becomes text lives in :mod:`~mlpatterns.reproducibility.split_keys`, free of pandas,
whose :func:`~mlpatterns.reproducibility.split_keys.row_key_buckets` gives the buckets of
:func:`key_buckets` for rows of plain values (a traffic split's online serving path).

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"day": ["mon", "tue", "mon", "wed"], "x": [1, 2, 3, 4]})
>>> hash_split(frame, "day", {"train": 0.5, "test": 0.5}, num_buckets=2).tolist()
['train', 'train', 'train', 'test']
>>> split_sql_condition("date", "train", {"train": 0.8, "valid": 0.1, "test": 0.1}, num_buckets=10)
'ABS(MOD(FARM_FINGERPRINT(CAST(date AS STRING)), 10)) < 8'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import BaseCrossValidator
from sklearn.utils import check_consistent_length

from mlpatterns.hashing import bucket_from_fingerprint, fingerprint64_column, to_bigquery_strings
from mlpatterns.reproducibility.split_keys import concat_key_texts, null_keys_error

__all__ = [
    "DEFAULT_FRACTIONS",
    "HashKFold",
    "hash_split",
    "hash_split_frames",
    "key_buckets",
    "key_text",
    "repeatable_sample",
    "split_sql_condition",
]

DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "valid": 0.1, "test": 0.1}
Nulls = Literal["raise", "exclude"]


def _key_columns(frame: pd.DataFrame, key: str | Sequence[str]) -> list[str]:
    columns = [key] if isinstance(key, str) else list(key)
    if not columns:
        raise ValueError("key must name at least one column")
    for column in columns:
        if column not in frame.columns:
            raise KeyError(
                f"key column {column!r} is not in the frame; its columns are {list(frame.columns)}"
            )
    return columns


# object columns whose equal values always cast to equal text, so each distinct value
# can be cast once ("mixed" columns can hold 1 and True, equal but "1" and "true")
_UNIFORM_KINDS = {"string", "bytes", "date", "datetime", "integer", "floating", "boolean", "empty"}


def _column_text(column: pd.Series) -> np.ndarray:
    """``CAST(column AS STRING)`` row by row (None for nulls), casting each distinct value once."""
    if (
        column.dtype == object
        and pd.api.types.infer_dtype(column, skipna=True) not in _UNIFORM_KINDS
    ):
        return to_bigquery_strings(column)
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    return np.append(to_bigquery_strings(uniques), None)[codes]  # code -1 (null) -> None


def _key_text(frame: pd.DataFrame, columns: list[str], separator: str) -> np.ndarray:
    """``CAST(key AS STRING)``, or ``CONCAT`` of the casts with ``separator`` between."""
    return concat_key_texts([_column_text(frame[column]) for column in columns], separator)


def key_text(frame: pd.DataFrame, key: str | Sequence[str], *, separator: str = "") -> np.ndarray:
    """The text each row's key hashes as: ``CAST(key AS STRING)`` or the ``CONCAT`` of several.

    Pass it as ``groups`` to :class:`HashKFold` (or to the out-of-fold estimators of
    :mod:`mlpatterns.problem`) to fold rows by the same key the split used.

    >>> import pandas as pd
    >>> key_text(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), ["a", "b"], separator="-").tolist()
    ['1-x', '2-y']
    """
    return _key_text(frame, _key_columns(frame, key), separator)


def key_buckets(
    frame: pd.DataFrame,
    key: str | Sequence[str],
    num_buckets: int,
    *,
    separator: str = "",
    nulls: Nulls = "raise",
) -> np.ndarray:
    """``ABS(MOD(FARM_FINGERPRINT(CAST(key AS STRING)), num_buckets))`` for every row.

    Several key columns are concatenated as ``CONCAT(CAST(a AS STRING), separator,
    CAST(b AS STRING))``; ``separator=""`` is the book's form. A null key (in any
    column) raises :class:`ValueError` with ``nulls="raise"``; with ``nulls="exclude"``
    its bucket is -1, which no split selects, as a SQL WHERE on a NULL hash selects
    no row.

    >>> import pandas as pd
    >>> key_buckets(pd.DataFrame({"k": ["a", "b", None]}), "k", 10, nulls="exclude").tolist()
    [7, 4, -1]
    """
    columns = _key_columns(frame, key)
    if nulls not in ("raise", "exclude"):
        raise ValueError(f"nulls must be 'raise' or 'exclude', got {nulls!r}")
    codes, texts = pd.factorize(_key_text(frame, columns, separator), use_na_sentinel=True)
    missing = codes < 0
    if missing.any() and nulls == "raise":
        first = frame.index[int(np.argmax(missing))]
        raise null_keys_error(columns, int(missing.sum()), first)
    # hash each distinct key once; code -1 (a null key) picks the appended bucket -1
    buckets = bucket_from_fingerprint(fingerprint64_column(texts), num_buckets)
    return np.append(buckets, -1)[codes]


def _check_num_buckets(num_buckets: int) -> None:
    if (
        isinstance(num_buckets, bool)
        or not isinstance(num_buckets, (int, np.integer))
        or num_buckets < 1
    ):
        raise ValueError(f"num_buckets must be a positive integer, got {num_buckets!r}")


def _bucket_count(field: str, fraction: Any, num_buckets: int) -> int:
    """How many of ``num_buckets`` buckets ``fraction`` takes; it must be a whole number."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.number)):
        raise TypeError(f"{field} must be a number, got {fraction!r}")
    count = float(fraction) * num_buckets
    if not 0 < fraction <= 1 or abs(count - round(count)) > 1e-6:
        raise ValueError(
            f"{field} = {fraction!r} must be a multiple of 1/{num_buckets} in (0, 1] "
            f"(num_buckets={num_buckets}); change the fraction or num_buckets"
        )
    return round(count)


def _bucket_ranges(fractions: Mapping[str, float], num_buckets: int) -> dict[str, tuple[int, int]]:
    """Validate ``fractions`` and give each split its half-open range of buckets."""
    if not isinstance(fractions, Mapping) or not fractions:
        raise TypeError(
            f"fractions must be a non-empty dict of split name to fraction, got {fractions!r}"
        )
    _check_num_buckets(num_buckets)
    ranges, start = {}, 0
    for name, fraction in fractions.items():
        if not isinstance(name, str):
            raise TypeError(f"split names must be strings, got {name!r} in fractions")
        count = _bucket_count(f"fractions[{name!r}]", fraction, num_buckets)
        ranges[name] = (start, start + count)
        start += count
    if start != num_buckets:
        raise ValueError(
            f"fractions must sum to 1, got {sum(float(f) for f in fractions.values()):g} "
            f"({', '.join(f'{n}={f}' for n, f in fractions.items())})"
        )
    return ranges


def hash_split(
    frame: pd.DataFrame,
    key: str | Sequence[str],
    fractions: Mapping[str, float] | None = None,
    *,
    num_buckets: int = 100,
    separator: str = "",
    nulls: Nulls = "raise",
) -> pd.Series:
    """The split of every row, chosen by the hash bucket of its key.

    Parameters
    ----------
    frame : pandas.DataFrame
    key : str or sequence of str
        The column (or columns, concatenated with ``separator``) to hash.
    fractions : dict of str to float, default ``{"train": 0.8, "valid": 0.1, "test": 0.1}``
        Split names and shares, in bucket order: the first takes the lowest buckets.
        Each must be a multiple of ``1 / num_buckets``; together they sum to 1.
    num_buckets : int, default 100
        The ``N`` of ``ABS(MOD(FARM_FINGERPRINT(...), N))``.
    separator : str, default ""
        Put between the casts of several key columns (``""`` is the book's ``CONCAT``).
    nulls : {"raise", "exclude"}
        See :func:`key_buckets`; excluded rows get a missing split.

    Returns
    -------
    pandas.Series
        Categorical split names, aligned with ``frame``. Every row of a key shares one.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"date": pd.date_range("2013-01-01", "2013-12-31").date})
    >>> hash_split(frame, "date").value_counts(sort=False).to_dict()
    {'train': 287, 'valid': 36, 'test': 42}
    """
    fractions = DEFAULT_FRACTIONS if fractions is None else fractions
    ranges = _bucket_ranges(fractions, num_buckets)
    buckets = key_buckets(frame, key, num_buckets, separator=separator, nulls=nulls)
    codes = np.full(len(buckets), -1, dtype=np.int64)
    for code, (low, high) in enumerate(ranges.values()):
        codes[(buckets >= low) & (buckets < high)] = code
    split = pd.Categorical.from_codes(codes, categories=list(ranges))
    return pd.Series(split, index=frame.index, name="split")


def hash_split_frames(
    frame: pd.DataFrame,
    key: str | Sequence[str],
    fractions: Mapping[str, float] | None = None,
    **options: Any,
) -> dict[str, pd.DataFrame]:
    """:func:`hash_split` as a dict of DataFrames, one per split, in the order of ``fractions``.

    >>> import pandas as pd
    >>> parts = hash_split_frames(pd.DataFrame({"k": list("abcdefgh")}), "k")
    >>> {name: len(part) for name, part in parts.items()}
    {'train': 7, 'valid': 0, 'test': 1}
    """
    split = hash_split(frame, key, fractions, **options)
    return {name: frame[(split == name).to_numpy()] for name in split.cat.categories}


def repeatable_sample(
    frame: pd.DataFrame,
    key: str | Sequence[str],
    fraction: float,
    *,
    num_buckets: int = 100,
    separator: str = "",
    nulls: Nulls = "raise",
) -> pd.DataFrame:
    """The rows whose key falls in the lowest ``fraction`` of the hash buckets.

    The same rows every run, and whole keys at a time. The sample's buckets all lie
    below ``fraction * num_buckets``, so splitting it with the same ``num_buckets``
    would put every row into the first split. Split it with ``num_buckets * k``
    instead, and fractions that are multiples of ``1 / k`` (``k = 10`` for 80/10/10).

    >>> import pandas as pd
    >>> len(repeatable_sample(pd.DataFrame({"k": range(1000)}), "k", 0.1))
    109
    """
    _check_num_buckets(num_buckets)
    count = _bucket_count("fraction", fraction, num_buckets)
    buckets = key_buckets(frame, key, num_buckets, separator=separator, nulls=nulls)
    return frame[(buckets >= 0) & (buckets < count)]


def _quote(text: str) -> str:
    if "'" in text or "\\" in text:
        raise ValueError(
            f"separator {text!r} holds a quote or backslash, which BigQuery and DuckDB "
            "escape differently; choose another separator"
        )
    return f"'{text}'"


def split_sql_condition(
    key: str | Sequence[str],
    split: str,
    fractions: Mapping[str, float] | None = None,
    *,
    num_buckets: int = 100,
    separator: str = "",
) -> str:
    """The SQL WHERE condition (BigQuery and :mod:`mlpatterns.sql` DuckDB) for one split.

    ``key`` is written as it is (a column name or any SQL expression). Rows whose key
    is NULL satisfy no condition, like ``nulls="exclude"`` in Python. In DuckDB,
    ``CONCAT`` skips NULLs where BigQuery's returns NULL: filter NULL keys there first.

    >>> split_sql_condition(["carrier", "flight"], "valid", separator="-")
    "ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(carrier AS STRING), '-', CAST(flight AS STRING))), 100)) BETWEEN 80 AND 89"
    """
    ranges = _bucket_ranges(DEFAULT_FRACTIONS if fractions is None else fractions, num_buckets)
    if split not in ranges:
        raise ValueError(f"split {split!r} is not one of the fractions' splits {list(ranges)}")
    columns = [key] if isinstance(key, str) else list(key)
    if not columns:
        raise ValueError("key must name at least one column")
    casts = [f"CAST({column} AS STRING)" for column in columns]
    if separator and len(casts) > 1:
        casts = [part for cast in casts for part in (cast, _quote(separator))][:-1]
    text = casts[0] if len(casts) == 1 else f"CONCAT({', '.join(casts)})"
    bucket = f"ABS(MOD(FARM_FINGERPRINT({text}), {num_buckets}))"
    low, high = ranges[split]
    if low == 0:
        return f"{bucket} < {high}"
    if high == num_buckets:
        return f"{bucket} >= {low}"
    return f"{bucket} BETWEEN {low} AND {high - 1}"


class HashKFold(BaseCrossValidator):
    """K-fold cross-validation by key hash: fold = ``ABS(MOD(FARM_FINGERPRINT(key), n_splits))``.

    Like :class:`sklearn.model_selection.GroupKFold`, all rows of a key (``groups``)
    share one fold; unlike it, a key's fold does not depend on which other keys are
    present, so it is the same in every run, data refresh and SQL query.

    Parameters
    ----------
    n_splits : int, default 5
        At least 2. Each fold must receive at least one key.

    Examples
    --------
    >>> import numpy as np
    >>> X, groups = np.zeros((6, 1)), ["a", "b", "c", "a", "b", "c"]
    >>> [test.tolist() for _, test in HashKFold(n_splits=2).split(X, groups=groups)]
    [[1, 2, 4, 5], [0, 3]]
    """

    __metadata_request__split = {"groups": True}  # as GroupKFold: route groups= to split

    def __init__(self, n_splits: int = 5) -> None:
        self.n_splits = n_splits

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """The number of folds, ``n_splits``."""
        return self.n_splits

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_indices, test_indices)`` for each fold, the keys hashed from ``groups``."""
        if (
            isinstance(self.n_splits, bool)
            or not isinstance(self.n_splits, (int, np.integer))
            or self.n_splits < 2
        ):
            raise ValueError(
                f"HashKFold: n_splits must be an integer of at least 2, got {self.n_splits!r}"
            )
        if groups is None:
            raise ValueError(
                "HashKFold.split needs groups=: the key column whose hash picks each row's fold"
            )
        check_consistent_length(X, y, groups)
        folds = key_buckets(
            pd.DataFrame({"groups": groups}), "groups", self.n_splits, nulls="exclude"
        )
        if (folds < 0).any():
            raise ValueError(
                f"HashKFold: groups has {int((folds < 0).sum())} null value(s), the first at "
                f"position {int(np.argmax(folds < 0))}; every row needs a key"
            )
        indices = np.arange(len(folds))
        for fold in range(self.n_splits):
            in_fold = folds == fold
            if not in_fold.any():
                raise ValueError(
                    f"HashKFold: fold {fold} of {self.n_splits} received no key "
                    f"({len(np.unique(folds))} folds hold keys); use fewer splits or more keys"
                )
            yield indices[~in_fold], indices[in_fold]
