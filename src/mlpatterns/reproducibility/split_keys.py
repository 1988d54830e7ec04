"""Repeatable Splitting (22) without pandas: the text and the bucket of each row's key.

Problem: a serving process that sends each row to a version by its key (a traffic split,
:class:`~mlpatterns.serving.http.traffic_split.TrafficSplit`) must give a key the bucket
that :func:`~mlpatterns.reproducibility.repeatable_splitting.key_buckets` gives it in a
DataFrame, yet a request of a few rows should not pay for pandas (10-20 ms a request, and
about a second to import at a cold start).

Solution: the rules of how a key becomes the text it hashes as live here, once, free of
pandas, and :mod:`~mlpatterns.reproducibility.repeatable_splitting` (DataFrame columns)
and :func:`row_key_buckets` (rows of plain values, such as the JSON of a request) both use
them: one value is cast by :func:`mlpatterns.hashing.to_bigquery_string` (BigQuery's
``CAST(x AS STRING)``), several key columns are joined by :func:`concat_key_texts`
(``CONCAT``, null if any part is null), and a null key is refused with
:func:`null_keys_error`'s message. The hash is pyfarmhash's Fingerprint64 through
:func:`mlpatterns.hashing.fingerprint64` and the bucket
:func:`mlpatterns.hashing.bucket_from_fingerprint`, as in ``key_buckets``. Importing this
module imports numpy and pyfarmhash only.

>>> row_key_buckets([{"k": "a"}, {"k": "b"}], "k", 10).tolist()
[7, 4]
>>> row_key_text({"carrier": "AA", "flight": 1.0}, ["carrier", "flight"], separator="-")
'AA-1'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlpatterns.hashing import bucket_from_fingerprint, fingerprint64, to_bigquery_string

__all__ = ["concat_key_texts", "key_value_text", "null_keys_error", "row_key_buckets", "row_key_text"]


def key_value_text(value: Any) -> str | bytes | None:
    """``CAST(value AS STRING)`` of one key value (None for a null), as a key column casts it.

    :func:`mlpatterns.hashing.to_bigquery_string`, with a NumPy number or boolean read as its
    Python value first (the same text, without pandas' null check).
    """
    if isinstance(value, (np.number, np.bool_)):
        value = value.item()
    return to_bigquery_string(value)


def concat_key_texts(parts: Sequence[np.ndarray], separator: str = "") -> np.ndarray:
    """``CONCAT(CAST(a AS STRING), separator, CAST(b AS STRING), ...)`` row by row.

    ``parts`` holds each key column's casts, object arrays of str or bytes with None for a
    null. A single column is returned as it is (bytes stay bytes: ``FARM_FINGERPRINT``
    takes BYTES). Of several, a null in any makes the row's key null, as BigQuery's
    ``CONCAT`` returns NULL, and bytes are decoded as UTF-8 (``CAST(BYTES AS STRING)``).
    """
    if len(parts) == 1:
        return parts[0]
    nulls = np.logical_or.reduce([np.equal(part, None) for part in parts])
    texts = []
    for part in parts:
        text = np.where(nulls, "", part).astype(object)
        if any(isinstance(value, bytes) for value in text):  # CAST(BYTES AS STRING) decodes
            text = np.array([v.decode() if isinstance(v, bytes) else v for v in text], dtype=object)
        texts.append(text)
    joined = texts[0]
    for text in texts[1:]:
        joined = joined + separator + text
    joined[nulls] = None
    return joined


def null_keys_error(columns: Sequence[str], count: int, first: Any) -> ValueError:
    """The error of ``count`` null keys (in any of ``columns``), the first in row ``first``."""
    return ValueError(
        f"key {list(columns) if len(columns) > 1 else columns[0]!r} has {count} "
        f"null value(s), the first in row {first!r}; drop them, fill them, or pass "
        "nulls='exclude' to leave those rows out of every split"
    )


def _columns(key: str | Sequence[str]) -> list[str]:
    columns = [key] if isinstance(key, str) else list(key)
    if not columns:
        raise ValueError("key must name at least one column")
    return columns


def _texts(rows: Sequence[Mapping[str, Any]], columns: list[str], separator: str) -> np.ndarray:
    parts = []
    for column in columns:
        part = np.empty(len(rows), dtype=object)
        part[:] = [key_value_text(row[column]) for row in rows]
        parts.append(part)
    return concat_key_texts(parts, separator)


def row_key_text(row: Mapping[str, Any], key: str | Sequence[str], *, separator: str = "") -> str | bytes | None:
    """The text one row's key hashes as (None for a null key): :func:`~mlpatterns.reproducibility.
    repeatable_splitting.key_text` of a one-row frame, from a mapping of column to value."""
    return _texts([row], _columns(key), separator)[0]


def row_key_buckets(
    rows: Sequence[Mapping[str, Any]],
    key: str | Sequence[str],
    num_buckets: int,
    *,
    separator: str = "",
    nulls: str = "raise",
) -> np.ndarray:
    """``ABS(MOD(FARM_FINGERPRINT(CAST(key AS STRING)), num_buckets))`` of each row, without pandas.

    ``rows`` are mappings of column to value (the JSON objects of a request); the buckets,
    and the :class:`ValueError` of a null key with ``nulls="raise"`` (its row is the
    position in ``rows``), are those :func:`~mlpatterns.reproducibility.repeatable_splitting.
    key_buckets` gives for ``pandas.DataFrame(rows, dtype=object)``; a null key's bucket is
    -1 with ``nulls="exclude"``. A row without a key column raises :class:`KeyError`.
    """
    columns = _columns(key)
    if nulls not in ("raise", "exclude"):
        raise ValueError(f"nulls must be 'raise' or 'exclude', got {nulls!r}")
    texts = _texts(rows, columns, separator)
    missing = [i for i, text in enumerate(texts) if text is None]
    if missing and nulls == "raise":
        raise null_keys_error(columns, len(missing), missing[0])
    fingerprints = np.array([0 if text is None else fingerprint64(text) for text in texts], dtype=np.int64)
    buckets = bucket_from_fingerprint(fingerprints, num_buckets)
    buckets[missing] = -1
    return buckets
