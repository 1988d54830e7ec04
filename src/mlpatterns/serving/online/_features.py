"""The fitted Transform (21) applied to one conformed row, from the bundle's JSON state, without pandas.

:class:`RowTransform` reads the same JSON as
:meth:`mlpatterns.reproducibility.transform.FeatureTransform.from_dict` and computes, for
one row, the numbers and category indices that ``FeatureTransform.transform`` computes
for it, in the same order: numeric columns (imputed, standardized, with their missing
indicator), then categorical columns (vocabulary or FarmHash buckets), bucketized
columns, calendar parts and hashed crosses. Float arithmetic is the batch path's, in
float64 (Python floats are IEEE doubles), so the features are the same bits.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from mlpatterns._json_state import decode_value
from mlpatterns.bundles.format import BundleError
from mlpatterns.hashing import fingerprint64, to_bigquery_string
from mlpatterns.reproducibility.categorical_declaration import normalize_categorical
from mlpatterns.serving.online._dates import date_parts

__all__ = ["OnlinePathUnsupported", "RowTransform", "parse_row_dates"]

_FORMAT = "mlpatterns.FeatureTransform/1"
_PART_INDEX = {"year": 0, "month": 1, "day": 2, "dayofweek": 3, "dayofyear": 4, "hour": 5}
# (lowest value, number of values) of each calendar part with a closed domain, as the Transform has them
_DATE_PART_DOMAINS = {"month": (1, 12), "day": (1, 31), "dayofweek": (0, 7), "dayofyear": (1, 366),
                      "hour": (0, 24)}
_YEAR_BUCKETS = 1024
_NUMERIC_KINDS = ("boolean", "integer", "number")


class OnlinePathUnsupported(NotImplementedError):
    """A bundle the online path cannot serve exactly (a text encoder, a numeric feature read as
    text); serve it with :class:`~mlpatterns.serving.stateless_serving_function.ServingFunction`."""


def _bucket(text: str | None, buckets: int, convention: str) -> int:
    """FarmHash bucket of a text, the null bucket (``buckets``) for None, as ``hash_bucket`` computes it."""
    if text is None:
        return buckets
    fingerprint = fingerprint64(text)
    return abs(fingerprint) % buckets if convention == "bigquery" else fingerprint % (1 << 64) % buckets


def _text(value: Any) -> str | None:
    return to_bigquery_string(value)  # None stays None; a float NaN is a null


def _number(value: Any) -> float:
    """A conformed numeric value as the Transform reads it: NaN for null and infinities."""
    if value is None:
        return math.nan
    number = float(value)
    return math.nan if math.isinf(number) else number


class RowTransform:
    """The fitted transform of a bundle, compiled to one function of a conformed row.

    ``kinds`` maps each input column to its conformed kind (see ``_values.converter``).
    """

    def __init__(self, payload: Any, kinds: Mapping[str, str]) -> None:
        if not isinstance(payload, Mapping) or payload.get("format") != _FORMAT:
            raise BundleError(f"the transform is not a fitted FeatureTransform ({_FORMAT!r})")
        declaration, state = payload.get("declaration") or {}, decode_value(payload.get("state"))
        if declaration.get("text"):
            raise OnlinePathUnsupported(
                f"the transform encodes text columns {sorted(declaration['text'])} with a frozen encoder "
                "(Transfer Learning, 13), which the online path does not run; use ServingFunction")
        try:
            self._compile(declaration, state, kinds)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
            raise BundleError(f"the transform cannot be rebuilt ({type(error).__name__}: {error})") from error

    def _compile(self, declaration: Mapping[str, Any], state: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
        convention = declaration.get("convention", "bigquery")
        if convention not in ("bigquery", "keras"):
            raise ValueError(f"unknown hash convention {convention!r}")
        numeric = list(declaration.get("numeric", []))
        bucketize = dict(declaration.get("bucketize", {}))
        for column in dict.fromkeys([*numeric, *bucketize]):
            if kinds.get(column) not in _NUMERIC_KINDS:
                raise OnlinePathUnsupported(
                    f"the numeric feature {column!r} is read as {kinds.get(column)!r} by the signature; "
                    "only the batch path (ServingFunction) converts such a column")
        self.numeric_steps: list[tuple[str, float, float, float, bool]] = []
        for column in numeric:
            params = state["numeric"][column]
            self.numeric_steps.append((column, float(params["median"]), float(params["mean"]), float(params["std"]),
                                       bool(params["indicator"])))
        self.numeric_width = sum(2 if step[4] else 1 for step in self.numeric_steps)
        # each index step maps (conformed row, texts of derived columns) to an index, filling texts
        self.index_steps: list[Callable[[Mapping[str, Any], dict[str, str | None]], int]] = []
        fitted_columns = state.get("categorical")
        for column, declared in normalize_categorical(declaration.get("categorical")).items():
            fitted = fitted_columns.get(column) if fitted_columns is not None else None
            if fitted is None:  # a transform saved before encodings were chosen: plain hashing
                fitted = {"encoding": "hash", "buckets": declared}
            self.index_steps.append(self._categorical(column, fitted, convention))
        for column in bucketize:
            edges = [float(e) for e in state["boundaries"][column]]
            self.index_steps.append(self._bins(column, edges))
        self.date_columns = list(declaration.get("date_parts", {}))
        derived = {f"{c}_{p}" for c, parts in declaration.get("date_parts", {}).items() for p in parts}
        reads = [*numeric, *declaration.get("categorical", {}), *bucketize, *self.date_columns]
        reads += [c for cross in declaration.get("crosses", []) for c in cross["columns"] if c not in derived]
        self.input_columns = list(dict.fromkeys(reads))  # as FeatureTransform.input_columns orders them
        for column, parts in declaration.get("date_parts", {}).items():
            for part in parts:
                self.index_steps.append(self._date_part(column, part, convention))
        for cross in declaration.get("crosses", []):
            self.index_steps.append(self._cross(list(cross["columns"]), int(cross["buckets"]), convention))

    @staticmethod
    def _categorical(column: str, fitted: Mapping[str, Any], convention: str) -> Callable[..., int]:
        if fitted["encoding"] == "hash":
            buckets = int(fitted["buckets"])

            def hashed(row: Mapping[str, Any], texts: dict[str, str | None]) -> int:
                text = texts[column] = _text(row[column])
                return _bucket(text, buckets, convention)

            return hashed
        values, oov, null = fitted["values"], int(fitted["oov_index"]), int(fitted["null_index"])
        codes = [i for i in range(len(values) + 2) if i not in (oov, null)]
        lookup = dict(zip(values, codes, strict=True))

        def vocabulary(row: Mapping[str, Any], texts: dict[str, str | None]) -> int:
            text = texts[column] = _text(row[column])
            return null if text is None else lookup.get(text, oov)

        return vocabulary

    @staticmethod
    def _bins(column: str, edges: list[float]) -> Callable[..., int]:
        def bins(row: Mapping[str, Any], texts: dict[str, str | None]) -> int:
            value = _number(row[column])
            if math.isnan(value):
                texts[column] = None
                return len(edges) + 1
            index = bisect_right(edges, value)
            texts[column] = f"bin_{index + 1}"
            return index

        return bins

    @staticmethod
    def _date_part(column: str, part: str, convention: str) -> Callable[..., int]:
        name, at = f"{column}_{part}", _PART_INDEX[part]

        def calendar(row: Mapping[str, Any], texts: dict[str, str | None]) -> int:
            parts = row.get(f"\0{column}")  # parsed once per row by parse_row_dates
            value = None if parts is None else parts[at]
            texts[name] = None if value is None else str(value)
            if part == "year":  # an open domain: hashed
                return _bucket(texts[name], _YEAR_BUCKETS, convention)
            low, size = _DATE_PART_DOMAINS[part]
            return size if value is None else value - low

        return calendar

    @staticmethod
    def _cross(columns: list[str], buckets: int, convention: str) -> Callable[..., int]:
        def cross(row: Mapping[str, Any], texts: dict[str, str | None]) -> int:
            parts = [texts[c] if c in texts else _text(row[c]) for c in columns]
            joined = None if any(p is None for p in parts) else "_".join(parts)
            return _bucket(joined, buckets, convention)

        return cross

    def row(self, conformed: Mapping[str, Any]) -> list[float]:
        """The feature row: numbers (float64, to be rounded to float32 once), then category indices."""
        out: list[float] = []
        for column, median, mean, std, indicator in self.numeric_steps:
            value = _number(conformed[column])
            missing = math.isnan(value)
            out.append(((median if missing else value) - mean) / std)
            if indicator:
                out.append(1.0 if missing else 0.0)
        texts: dict[str, str | None] = {}
        out += [step(conformed, texts) for step in self.index_steps]
        return out


def parse_row_dates(conformed: dict[str, Any], columns: list[str]) -> list[str]:
    """Parse each date column of a conformed row once (stored under ``"\\0column"``); the columns
    whose non-null value is no date."""
    bad = []
    for column in columns:
        value = conformed[column]
        parts = None if value is None else date_parts(value)
        if value is not None and parts is None:
            bad.append(column)
        conformed[f"\0{column}"] = parts
    return bad
