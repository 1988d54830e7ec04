"""The ``categorical`` declaration of the Transform (21), checked and put in one form.

:func:`normalize_categorical` is the one check of a declaration: the transform runs it
when it is built, and a spec when it loads. It needs neither numpy nor pandas.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral
from typing import Any

__all__ = ["CATEGORICAL_FIELDS", "ENCODINGS", "normalize_categorical", "positive_count"]

ENCODINGS = ("auto", "vocabulary", "hash")
CATEGORICAL_FIELDS = ("encoding", "buckets", "min_frequency", "max_categories")  # of a column's mapping


def positive_count(value: Any, where: str, what: str) -> int:
    """``value`` as an int of at least 1 (a bucket count, a frequency), else a ``ValueError`` saying ``what``."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{where}: expected {what}, got {value!r}")
    return int(value)


def _normalize_one(column: Any, value: Any) -> int | str | dict[str, Any]:
    where = f"categorical.{column}"
    if not isinstance(column, str):
        raise ValueError(f"categorical: expected column names as text, got {column!r}")
    if isinstance(value, str):
        if value not in ENCODINGS:
            raise ValueError(f"{where}: expected a bucket count or one of {list(ENCODINGS)}, got {value!r}")
        return value
    if not isinstance(value, Mapping):
        return positive_count(value, where, "a positive bucket count, 'auto', or a mapping with 'encoding'")
    unknown = sorted(set(map(str, value)) - set(CATEGORICAL_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected some of {list(CATEGORICAL_FIELDS)}")
    if set(value) == {"buckets"}:  # the original form {"buckets": N}: plain hashing
        return positive_count(value["buckets"], f"{where}.buckets", "a positive bucket count")
    encoding = value.get("encoding", "hash" if "buckets" in value else "auto")
    if encoding not in ENCODINGS:
        raise ValueError(f"{where}.encoding: expected one of {list(ENCODINGS)}, got {encoding!r}")
    out: dict[str, Any] = {"encoding": encoding}
    for name in CATEGORICAL_FIELDS[1:]:
        if name not in value:
            continue
        if name == "buckets" and encoding == "vocabulary":
            raise ValueError(f"{where}.buckets: a vocabulary has no hash buckets; drop it or use encoding: hash")
        if name != "buckets" and encoding == "hash":
            raise ValueError(f"{where}.{name}: applies to encoding vocabulary or auto, not hash")
        out[name] = positive_count(value[name], f"{where}.{name}", "a positive integer")
    return out


def normalize_categorical(categorical: Any) -> dict[str, int | str | dict[str, Any]]:
    """The ``categorical`` declaration in one form: column -> bucket count, encoding name or mapping.

    A list of names means ``"auto"`` for each; ``{"c": 32}`` and ``{"c": {"buckets": 32}}`` both
    mean 32 hash buckets (kept as the int 32, so saved transforms keep their bytes).
    """
    if categorical is None:
        return {}
    if isinstance(categorical, Mapping):
        return {column: _normalize_one(column, value) for column, value in categorical.items()}
    if isinstance(categorical, str) or not isinstance(categorical, Sequence):
        raise ValueError(f"categorical: expected a list of column names or a mapping, got {categorical!r}")
    out: dict[str, int | str | dict[str, Any]] = {}
    for i, column in enumerate(categorical):
        if not isinstance(column, str):
            raise ValueError(f"categorical[{i}]: expected a column name, got {column!r}")
        if column in out:
            raise ValueError(f"categorical[{i}]: column {column!r} is listed twice")
        out[column] = "auto"
    return out
