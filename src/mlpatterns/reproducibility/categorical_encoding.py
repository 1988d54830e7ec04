"""Categorical encodings of the Transform (21): a vocabulary or hashed buckets, chosen on the training data.

Problem: a categorical column needs an index per value, but how? Hashing (Hashed
Feature, 1) needs a bucket count, and a small count silently merges categories; a
vocabulary must be learned on the training data and sends unseen values to one slot.

Solution: decide per column at ``fit``. ``"auto"`` counts the distinct training
values that occur at least ``min_frequency`` times: at most ``max_categories``
(default :data:`VOCABULARY_CUTOFF`, 1,000) gives a vocabulary, more gives hashing
with :func:`auto_bucket_count` buckets. A vocabulary has one index per kept value,
one out-of-vocabulary (OOV) index for unseen or rare values and one null index;
values are matched by their BigQuery text cast, so ``7`` and ``"7"``, ``True`` and
``"true"`` get the same code. Hashed columns stay bit-exact with BigQuery and get a
collision report on the training data (:func:`collision_report`); a hash that merges
values of a column a vocabulary could hold whole is reported (:func:`merge_warnings`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.data.hashed_feature import collision_report  # the Hashed Feature's own report
from mlpatterns.hashing import to_bigquery_strings
from mlpatterns.reproducibility.categorical_declaration import (  # the light check a spec also runs
    CATEGORICAL_FIELDS,
    ENCODINGS,
    normalize_categorical,
    positive_count,
)

__all__ = [
    "CATEGORICAL_FIELDS", "DEFAULT_MIN_FREQUENCY", "ENCODINGS", "MAX_AUTO_BUCKETS", "VOCABULARY_CUTOFF",
    "MergedCategoriesWarning", "auto_bucket_count", "collision_report", "normalize_categorical",
]

VOCABULARY_CUTOFF = 1000  # at most this many frequent values: a vocabulary; more: hashing
DEFAULT_MIN_FREQUENCY = 1  # every value seen in training keeps its own code
MAX_AUTO_BUCKETS = 2**20


class MergedCategoriesWarning(UserWarning):
    """A declared hash bucket count merges values that a vocabulary would keep apart."""


def settings(declared: int | str | Mapping[str, Any]) -> dict[str, Any]:
    """Encoding, buckets (None: derived), min_frequency and max_categories of one declaration."""
    if isinstance(declared, int):
        return {"encoding": "hash", "buckets": declared, "min_frequency": DEFAULT_MIN_FREQUENCY,
                "max_categories": None}
    found = {"encoding": declared} if isinstance(declared, str) else dict(declared)
    return {"encoding": found["encoding"], "buckets": found.get("buckets"),
            "min_frequency": found.get("min_frequency", DEFAULT_MIN_FREQUENCY),
            "max_categories": found.get("max_categories")}


def factorize_texts(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per row the index of its BigQuery text among the distinct texts (-1 for a null), and those texts.

    A typed column (integers, floats, booleans, dates) is factorized first and only its
    distinct values are cast; an object column is cast row by row, since ``1`` and ``True``
    are equal in Python but not in text.
    """
    dtype = getattr(values, "dtype", None)
    if getattr(dtype, "kind", "O") == "O":  # object, text, categorical or not a typed column
        return pd.factorize(to_bigquery_strings(values))
    codes, uniques = pd.factorize(values)
    text_codes, texts = pd.factorize(to_bigquery_strings(uniques))
    if not len(texts):
        return codes, np.asarray(texts, dtype=object)
    return np.where(codes >= 0, text_codes[np.maximum(codes, 0)], -1), np.asarray(texts, dtype=object)


def auto_bucket_count(distinct: int) -> int:
    """Hash buckets for ``distinct`` training values: ``min(2**ceil(log2(8 * distinct)), 2**20)``.

    With ``v`` values in ``N`` buckets a value shares its bucket with probability about
    ``1 - exp(-v / N)``; ``N`` in ``[8v, 16v)`` keeps that between 6 % and 12 %.

    >>> auto_bucket_count(1001), auto_bucket_count(3000)
    (8192, 32768)
    """
    return int(min(1 << max(int(np.ceil(np.log2(max(8 * distinct, 1)))), 0), MAX_AUTO_BUCKETS))


def ordering_target(y: Any, n_rows: int) -> np.ndarray | None:
    """``y`` as floats to order vocabulary codes by, or None (order by frequency).

    A 1-D numeric or boolean target is used as it is; a 1-D target with exactly two
    distinct values (``"yes"``/``"no"``) as the indicator of the later one; a 2-D
    target, or a 1-D one with more than two non-numeric values, gives None.
    """
    if y is None:
        return None
    frame_like = hasattr(y, "shape") and len(y.shape) == 2
    if frame_like and y.shape[1] == 1:
        y = y.iloc[:, 0] if hasattr(y, "iloc") else np.asarray(y)[:, 0]
    elif frame_like or np.ndim(y) != 1:
        return None
    series = pd.Series(y).reset_index(drop=True)
    if len(series) != n_rows:
        raise ValueError(f"y: expected {n_rows} values, one per training row, got {len(series)}")
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    classes = sorted(series.dropna().astype(str).unique())
    if len(classes) != 2:
        return None
    return np.where(series.isna(), np.nan, (series.astype(str) == classes[1]).astype(float)).astype(float)


def _group_means(codes: np.ndarray, target: np.ndarray, groups: int) -> np.ndarray:
    known = ~np.isnan(target)
    sums = np.bincount(codes[known], weights=target[known], minlength=groups)
    counts = np.bincount(codes[known], minlength=groups)
    prior = float(target[known].mean()) if known.any() else 0.0
    return np.where(counts > 0, sums / np.maximum(counts, 1), prior)


def fit_column(column: str, declared: Any, values: Any, target: np.ndarray | None,
               convention: str) -> dict[str, Any]:
    """The fitted state of one categorical column: a vocabulary or hash buckets, with its report."""
    try:
        codes, uniques = factorize_texts(values)
    except TypeError as error:
        raise ValueError(f"categorical.{column}: {error}") from error
    wanted = settings(declared)
    encoding = wanted["encoding"]
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    frequent = np.flatnonzero(counts >= wanted["min_frequency"])
    if encoding == "auto":
        cutoff = wanted["max_categories"] or VOCABULARY_CUTOFF
        encoding = "vocabulary" if len(frequent) <= cutoff else "hash"
    chosen_by = "auto" if settings(declared)["encoding"] == "auto" else "declared"
    if encoding == "hash":
        buckets = wanted["buckets"] or auto_bucket_count(len(uniques))
        return {"encoding": "hash", "chosen_by": chosen_by, "buckets": buckets,
                "collisions": collision_report(values, buckets, convention)}
    if any(isinstance(u, bytes) for u in uniques):
        raise ValueError(f"categorical.{column}: bytes values cannot be stored in a vocabulary; "
                         "declare encoding: hash")
    uniques = np.asarray(uniques, dtype=object)
    kept = frequent[np.lexsort((uniques[frequent].astype(str), -counts[frequent]))]
    if wanted["max_categories"] is not None:
        kept = kept[: wanted["max_categories"]]
    # Entries: the kept values, then the OOV slot (k) and the null slot (k + 1).
    k = len(kept)
    group = np.full(len(uniques) + 1, k, dtype=np.int64)  # factorize code -> entry; -1 (null) last
    group[kept] = np.arange(k)
    group[-1] = k + 1
    row_entry = group[codes]
    entry_rows = np.bincount(row_entry, minlength=k + 2)
    texts_of = [*uniques[kept].tolist(), "", ""]
    kinds = [0] * k + [1, 2]
    order = "frequency"
    if target is not None:
        order = "target"
        means = _group_means(row_entry, target, k + 2)
        ranking = sorted(range(k + 2), key=lambda e: (means[e], -entry_rows[e], kinds[e], texts_of[e]))
    else:
        ranking = list(range(k + 2))  # already by frequency descending, then text
    position = {entry: code for code, entry in enumerate(ranking)}
    return {
        "encoding": "vocabulary", "chosen_by": chosen_by, "order": order,
        "values": [texts_of[e] for e in ranking if e < k],
        "oov_index": position[k], "null_index": position[k + 1],
        "distinct_values": len(uniques), "rare_values": len(uniques) - k,
        "oov_rows": int(entry_rows[k]), "null_rows": int(entry_rows[k + 1]),
    }


def vocabulary_codes(state: Mapping[str, Any]) -> np.ndarray:
    """The index of each vocabulary value, in the order of ``state["values"]``."""
    special = {state["oov_index"], state["null_index"]}
    return np.array([i for i in range(len(state["values"]) + 2) if i not in special], dtype=np.int64)


def encode_vocabulary(values: Any, state: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``values`` under a fitted vocabulary, and a mask of the non-null values it lacks."""
    rows, texts = factorize_texts(values)
    positions = pd.Index(state["values"], dtype=object).get_indexer(texts)
    per_text = np.full(len(texts), state["oov_index"], dtype=np.int64)
    per_text[positions >= 0] = vocabulary_codes(state)[positions[positions >= 0]]
    nulls = rows < 0
    if not len(texts):  # only nulls
        return np.full(len(rows), state["null_index"], dtype=np.int64), np.zeros(len(rows), dtype=bool)
    codes = np.where(nulls, state["null_index"], per_text[np.maximum(rows, 0)])
    return codes.astype(np.int64), ~nulls & (positions[np.maximum(rows, 0)] < 0)


def merge_warnings(column: str, state: Mapping[str, Any], cutoff: int = VOCABULARY_CUTOFF) -> list[str]:
    """A message when hashing merged training values of a column a vocabulary could hold whole."""
    report = state.get("collisions")
    if state.get("encoding") != "hash" or not report or not report["values_sharing_a_bucket"]:
        return []
    if report["distinct_values"] > cutoff:
        return []
    return [
        f"categorical.{column}: {state['buckets']} hash buckets merge {report['values_sharing_a_bucket']} of "
        f"its {report['distinct_values']} training values into shared buckets "
        f"({report['share_of_rows_in_shared_buckets']:.1%} of training rows); declare "
        f"'{column}: {{encoding: vocabulary}}' to give every value its own code"
    ]


def hashed_report(buckets: int, fitted: Mapping[str, Any] | None) -> dict[str, Any]:
    """The report of a hashed cross or year part (collisions None when the JSON predates them)."""
    return {"encoding": "hash", "size": buckets + 1, "buckets": buckets,
            "collisions": (fitted or {}).get("collisions"), "warnings": []}


def column_report(column: str, fitted: Mapping[str, Any]) -> dict[str, Any]:
    """The report of a categorical column: its fitted state, sizes instead of values, and warnings."""
    if fitted["encoding"] == "hash":
        entry = {"chosen_by": fitted.get("chosen_by", "declared"), **hashed_report(int(fitted["buckets"]), fitted)}
    else:
        entry = {key: value for key, value in fitted.items() if key != "values"}
        entry.update(size=len(fitted["values"]) + 2, values=len(fitted["values"]))
    entry["warnings"] = merge_warnings(column, fitted)
    return entry


def check_state(column: str, declared: Any, state: Any) -> None:
    """Refuse a saved column state that :func:`fit_column` could not have written."""
    where = f"state.categorical.{column}"
    if not isinstance(state, Mapping) or state.get("encoding") not in ("vocabulary", "hash"):
        raise ValueError(f"{where} must be an object with encoding 'vocabulary' or 'hash'")
    if state["encoding"] == "hash":
        buckets = positive_count(state.get("buckets"), f"{where}.buckets", "a positive bucket count")
        if isinstance(declared, int) and buckets != declared:
            raise ValueError(f"{where}.buckets is {buckets}, but the declaration says {declared}")
        return
    values = state.get("values")
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values) or len(set(values)) < len(values):
        raise ValueError(f"{where}.values must be a list of distinct strings")
    special = [state.get("oov_index"), state.get("null_index")]
    if (any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= len(values) + 1 for i in special)
            or special[0] == special[1]):
        raise ValueError(f"{where}: oov_index and null_index must be two different indices in "
                         f"[0, {len(values) + 1}], got {special}")
