"""Statistics of a table's raw columns: the record that the validate step of a Workflow Pipeline (25) keeps.

Problem: a pipeline that retrains on fresh data, or a model that serves fresh data,
silently learns from or scores something else than before: a column that went missing,
a unit that changed, a category that appeared, a shift in a distribution. Nobody looks
at millions of rows, so the change surfaces weeks later as a worse model.

Solution (TFX's StatisticsGen, as TensorFlow Data Validation does it): summarise every
raw column of every run in a small, deterministic JSON record, keep it with the run's
artifacts and its model bundle, and compare the next run's record, or a window of
served data (Continued Model Evaluation, 18), against it
(:func:`mlpatterns.reproducibility.data_validation.validate`).

Per column the record holds the inferred kind (``integer``, ``float``, ``boolean``,
``categorical``, ``datetime``, or ``unknown`` when no value is present), the dtype, how
many values are present, missing and distinct, and by kind:

- numbers: min, max, mean, population standard deviation, quantiles, and a histogram
  whose bin edges are data values at the deciles (``bins``) of this table. Counts below
  the first edge and above the last are kept, so another table binned on the same edges
  (``reference=``) gives exact counts for PSI, chi-square and the share out of range;
- categories and booleans: every value with its count, most frequent first, up to
  ``max_categories``, and the count of the rest;
- datetimes: the earliest and latest value.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"fare": [5.0, 7.5, None, 12.0], "payment": ["card", "cash", "card", "card"]})
>>> stats = DataStatistics.from_frame(frame, bins=2)
>>> stats.columns["fare"].kind, stats.columns["fare"].missing_share
('float', 0.25)
>>> stats.columns["fare"].numeric.edges, stats.columns["fare"].numeric.counts
((5.0, 7.5, 12.0), (0, 2, 1, 0))
>>> stats.columns["payment"].categories.values
(('card', 3), ('cash', 1))
>>> DataStatistics.from_json(stats.to_json()) == stats
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "KINDS",
    "QUANTILE_LEVELS",
    "STATISTICS_FORMAT",
    "STATISTICS_VERSION",
    "CategoryCounts",
    "ColumnStatistics",
    "DataStatistics",
    "NumericSummary",
]

STATISTICS_FORMAT = "mlpatterns.data_statistics"
STATISTICS_VERSION = 1
KINDS = ("integer", "float", "boolean", "categorical", "datetime", "unknown")
QUANTILE_LEVELS = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)

_OBJECT_KINDS = {  # pandas.api.types.infer_dtype of an object column -> kind
    "string": "categorical", "bytes": "categorical", "mixed": "categorical",
    "mixed-integer": "categorical", "categorical": "categorical",
    "integer": "integer", "floating": "float", "mixed-integer-float": "float", "decimal": "float",
    "boolean": "boolean", "date": "datetime", "datetime": "datetime", "datetime64": "datetime",
    "empty": "unknown",
}


@dataclass(frozen=True)
class NumericSummary:
    """Summary of a numeric column's finite values.

    ``counts`` has ``len(edges) + 1`` entries: values below ``edges[0]``, then the bins
    ``[edges[0], edges[1]]``, ``(edges[1], edges[2]]``, ..., ``(edges[-2], edges[-1]]``,
    then values above ``edges[-1]``. On the table that chose the edges the first and last
    counts are 0; on a table binned with ``reference=`` they count the values outside the
    reference's range. ``infinite_count`` values (inf, -inf) are left out of everything else.
    """

    min: float
    max: float
    mean: float
    std: float
    quantiles: tuple[tuple[float, float], ...]
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    infinite_count: int = 0

    def quantile(self, level: float) -> float:
        """The recorded quantile at ``level`` (one of the recorded levels)."""
        for recorded, value in self.quantiles:
            if recorded == level:
                return value
        raise KeyError(f"quantile {level} is not recorded; recorded: {[q for q, _ in self.quantiles]}")


@dataclass(frozen=True)
class CategoryCounts:
    """Counts of a categorical or boolean column: ``(value, count)`` pairs, most frequent
    first (ties by value), and ``other_count``, the values beyond ``max_categories``.

    Statistics computed with ``reference=`` also list every value the reference lists,
    with count 0 where absent, so that a comparison knows those counts exactly.
    """

    values: tuple[tuple[Any, int], ...]
    other_count: int = 0

    @property
    def complete(self) -> bool:
        """Whether every value present is listed (no ``other_count``)."""
        return self.other_count == 0

    def as_dict(self) -> dict[Any, int]:
        """``{value: count}`` of the listed values."""
        return dict(self.values)


@dataclass(frozen=True)
class ColumnStatistics:
    """Statistics of one raw column; ``count`` is the number of values present (not missing)."""

    kind: str
    dtype: str
    count: int
    missing_count: int
    distinct_count: int
    numeric: NumericSummary | None = None
    categories: CategoryCounts | None = None
    datetime_min: str | None = None
    datetime_max: str | None = None
    value_types: Mapping[str, int] | None = None  # only for an object column of mixed Python types

    @property
    def missing_share(self) -> float:
        """Share of the rows where the column has no value."""
        rows = self.count + self.missing_count
        return self.missing_count / rows if rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values; groups that do not apply to the kind are left out."""
        out: dict[str, Any] = {
            "kind": self.kind, "dtype": self.dtype, "count": self.count,
            "missing_count": self.missing_count, "missing_share": self.missing_share,
            "distinct_count": self.distinct_count,
        }
        if self.numeric is not None:
            n = self.numeric
            out["numeric"] = {
                "min": n.min, "max": n.max, "mean": n.mean, "std": n.std,
                "quantiles": [list(pair) for pair in n.quantiles],
                "histogram": {"edges": list(n.edges), "counts": list(n.counts)},
                "infinite_count": n.infinite_count,
            }
        if self.categories is not None:
            out["categories"] = {"values": [list(pair) for pair in self.categories.values],
                                 "other_count": self.categories.other_count}
        if self.datetime_min is not None:
            out["datetime"] = {"min": self.datetime_min, "max": self.datetime_max}
        if self.value_types is not None:
            out["value_types"] = dict(self.value_types)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnStatistics:
        """Inverse of :meth:`to_dict`."""
        numeric = categories = None
        if "numeric" in data:
            n = data["numeric"]
            numeric = NumericSummary(
                min=float(n["min"]), max=float(n["max"]), mean=float(n["mean"]), std=float(n["std"]),
                quantiles=tuple((float(q), float(v)) for q, v in n["quantiles"]),
                edges=tuple(float(e) for e in n["histogram"]["edges"]),
                counts=tuple(int(c) for c in n["histogram"]["counts"]),
                infinite_count=int(n.get("infinite_count", 0)),
            )
        if "categories" in data:
            c = data["categories"]
            categories = CategoryCounts(tuple((v, int(k)) for v, k in c["values"]), int(c["other_count"]))
        when = data.get("datetime") or {}
        kind = data["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown column kind {kind!r}; known: {', '.join(KINDS)}")
        return cls(
            kind=kind, dtype=str(data["dtype"]), count=int(data["count"]),
            missing_count=int(data["missing_count"]), distinct_count=int(data["distinct_count"]),
            numeric=numeric, categories=categories,
            datetime_min=when.get("min"), datetime_max=when.get("max"),
            value_types=dict(data["value_types"]) if "value_types" in data else None,
        )


@dataclass(frozen=True)
class DataStatistics:
    """Statistics of every raw column of a table (validate step of the Workflow Pipeline, 25).

    Build with :meth:`from_frame`; store with :meth:`to_json`; compare with
    :func:`mlpatterns.reproducibility.data_validation.validate`.

    Attributes
    ----------
    row_count : int
    columns : dict of str to ColumnStatistics
    bins, max_categories : int
        The options the statistics were computed with.
    quantile_levels : tuple of float
    """

    row_count: int
    columns: Mapping[str, ColumnStatistics]
    bins: int = 10
    max_categories: int = 1000
    quantile_levels: tuple[float, ...] = field(default=QUANTILE_LEVELS)

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        categorical: Iterable[str] = (),
        bins: int | None = None,
        max_categories: int | None = None,
        reference: DataStatistics | None = None,
    ) -> DataStatistics:
        """Compute the statistics of every column of ``frame``.

        Parameters
        ----------
        frame : pandas.DataFrame
            The raw table, at least one row and one column.
        categorical : iterable of str
            Numeric columns to count as categories (codes such as a month or a hospital id).
        bins : int, default 10 (or the reference's)
            Histogram bins, cut at this table's quantiles ``1/bins, 2/bins, ...``.
        max_categories : int, default 1000 (or the reference's)
            Values listed per categorical column; the rest are counted together.
        reference : DataStatistics, optional
            Earlier statistics to compare with: numeric histograms use its bin edges and
            every category it lists is counted (so counts compare exactly), and its
            categorical columns, bins and max_categories are taken over unless given.
        """
        if not isinstance(frame, pd.DataFrame):
            raise TypeError(f"statistics need a pandas DataFrame, not {type(frame).__name__}")
        if frame.shape[1] == 0:
            raise ValueError("cannot compute statistics of a table without columns")
        if len(frame) == 0:
            raise ValueError(
                f"cannot compute statistics of an empty table (0 rows; columns {list(map(str, frame.columns))})"
            )
        names = [str(name) for name in frame.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"column names must be unique; got {names}")
        categorical = set(categorical)
        unknown = sorted(categorical - set(names))
        if unknown:
            raise KeyError(f"categorical columns {unknown} are not in the table; its columns are {names}")
        ref_columns: Mapping[str, ColumnStatistics] = reference.columns if reference is not None else {}
        categorical |= {name for name, col in ref_columns.items() if col.kind == "categorical" and name in names}
        bins = _positive_int("bins", bins if bins is not None else (reference.bins if reference else 10))
        max_categories = _positive_int(
            "max_categories", max_categories if max_categories is not None else
            (reference.max_categories if reference else 1000))
        columns = {}
        for name, (_, series) in zip(names, frame.items(), strict=True):
            columns[name] = _column_statistics(series, name in categorical, bins, max_categories, ref_columns.get(name))
        return cls(row_count=len(frame), columns=columns, bins=bins, max_categories=max_categories)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (every float finite, never NaN)."""
        return {
            "format": STATISTICS_FORMAT, "version": STATISTICS_VERSION, "row_count": self.row_count,
            "options": {"bins": self.bins, "max_categories": self.max_categories,
                        "quantile_levels": list(self.quantile_levels)},
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """Deterministic JSON: keys sorted, no NaN; the same table gives the same bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataStatistics:
        """Inverse of :meth:`to_dict`; refuses another format or a newer version."""
        if not isinstance(data, Mapping) or data.get("format") != STATISTICS_FORMAT:
            raise ValueError(f"not a data statistics record (expected format {STATISTICS_FORMAT!r})")
        version = data.get("version")
        if version != STATISTICS_VERSION:
            raise ValueError(f"data statistics version {version!r} is not supported (this reads {STATISTICS_VERSION})")
        options = data["options"]
        return cls(
            row_count=int(data["row_count"]),
            columns={name: ColumnStatistics.from_dict(col) for name, col in data["columns"].items()},
            bins=int(options["bins"]), max_categories=int(options["max_categories"]),
            quantile_levels=tuple(float(q) for q in options["quantile_levels"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> DataStatistics:
        """Read statistics written by :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


def _column_statistics(series: pd.Series, as_category: bool, bins: int, max_categories: int,
                       ref: ColumnStatistics | None) -> ColumnStatistics:
    dtype = series.dtype
    missing = int(series.isna().sum())
    if as_category:
        kind = "categorical"
    elif pd.api.types.is_bool_dtype(dtype):
        kind = "boolean"
    elif pd.api.types.is_integer_dtype(dtype):
        kind = "integer"
    elif pd.api.types.is_float_dtype(dtype):
        kind = "float"
    elif pd.api.types.is_datetime64_any_dtype(dtype):
        kind = "datetime"
    elif pd.api.types.is_object_dtype(dtype):
        kind = _OBJECT_KINDS.get(pd.api.types.infer_dtype(series, skipna=True), "categorical")
    else:  # strings, pandas categoricals, anything else: counted as categories
        kind = "categorical"
    base = {"dtype": str(dtype), "count": len(series) - missing, "missing_count": missing}
    if kind in ("integer", "float"):
        return _numeric(series, kind, base, bins, ref.numeric.edges if ref and ref.numeric else None)
    if kind == "datetime":
        stats = _datetimes(series, base)
        if stats is not None:
            return stats
        kind = "categorical"  # object datetimes that pandas cannot put on one time line
    if kind == "unknown":
        return ColumnStatistics(kind="unknown", distinct_count=0, **base)
    listed = {value for value, _ in ref.categories.values} if ref and ref.categories else set()
    return _categories(series, kind, base, max_categories, listed)


def _numeric(series: pd.Series, kind: str, base: dict[str, Any], bins: int,
             edges: tuple[float, ...] | None) -> ColumnStatistics:
    values = series.to_numpy(dtype=np.float64, na_value=np.nan) if series.dtype != np.float64 else series.to_numpy()
    values = np.sort(values[~np.isnan(values)])  # sorted: every figure below is independent of row order
    finite = values[np.isfinite(values)]
    infinite = len(values) - len(finite)
    distinct = int(len(values) and 1 + np.count_nonzero(np.diff(values)))
    if len(finite) == 0:
        return ColumnStatistics(kind=kind, distinct_count=distinct, **base)
    low, high = float(finite[0]), float(finite[-1])
    mean, std = float(finite.mean()), float(finite.std())
    if not (math.isfinite(mean) and math.isfinite(std)):  # sums beyond float64's range: scale down first
        scale = max(abs(low), abs(high))
        mean, std = float(np.mean(finite / scale)) * scale, float(np.std(finite / scale)) * scale
    positions = np.asarray(QUANTILE_LEVELS) * (len(finite) - 1)
    lower = np.floor(positions).astype(np.int64)
    upper = np.minimum(lower + 1, len(finite) - 1)
    quantiles = finite[lower] + (finite[upper] - finite[lower]) * (positions - lower)
    if edges is None:  # cut at data values (the lower quantile), so each bin is right-closed at a value
        cuts = np.unique(finite[np.floor(np.arange(1, bins) / bins * (len(finite) - 1)).astype(np.int64)])
        edges = (low, *(float(c) for c in cuts if c < high), high)
    counts = _histogram_counts(finite, np.asarray(edges))
    return ColumnStatistics(
        kind=kind, distinct_count=distinct, **base,
        numeric=NumericSummary(
            min=low, max=high, mean=mean, std=std,
            quantiles=tuple((float(q), float(v)) for q, v in zip(QUANTILE_LEVELS, quantiles, strict=True)),
            edges=tuple(float(e) for e in edges), counts=counts, infinite_count=infinite,
        ),
    )


def _histogram_counts(sorted_values: np.ndarray, edges: np.ndarray) -> tuple[int, ...]:
    """Counts below edges[0], in [e0, e1], (e1, e2], ..., (e[-2], e[-1]], and above e[-1]."""
    below = int(np.searchsorted(sorted_values, edges[0], side="left"))
    upto = np.searchsorted(sorted_values, edges[1:], side="right")
    cumulative = np.concatenate([[0, below], upto, [len(sorted_values)]])
    return tuple(int(c) for c in np.diff(cumulative))


def _datetimes(series: pd.Series, base: dict[str, Any]) -> ColumnStatistics | None:
    present = series.dropna()
    if pd.api.types.is_object_dtype(series.dtype):  # dates or datetimes as Python objects: convert the distinct ones only
        distinct_values = present.unique()
        try:
            converted = pd.to_datetime(pd.Series(distinct_values))
        except (TypeError, ValueError):
            return None
        distinct = len(distinct_values)
    else:
        converted = present
        distinct = int(present.nunique())
    if len(converted) == 0:
        return ColumnStatistics(kind="datetime", distinct_count=0, **base)
    low, high = converted.min(), converted.max()
    if pd.api.types.is_object_dtype(series.dtype) and pd.api.types.infer_dtype(series, skipna=True) == "date":
        low, high = low.date(), high.date()
    return ColumnStatistics(kind="datetime", distinct_count=distinct, datetime_min=low.isoformat(),
                            datetime_max=high.isoformat(), **base)


def _json_scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return str(value)


def _categories(series: pd.Series, kind: str, base: dict[str, Any], max_categories: int,
                also: set[Any]) -> ColumnStatistics:
    """Counts of the ``max_categories`` most frequent values, and of every value in ``also``
    (the reference's listed values, 0 when absent, so that both tables' counts of them are exact)."""
    counted = series.value_counts(dropna=True, sort=False)
    pairs = sorted(((_json_scalar(v), int(c)) for v, c in counted.items() if c > 0),
                   key=lambda pair: (-pair[1], type(pair[0]).__name__, str(pair[0])))
    value_types = None
    if pd.api.types.is_object_dtype(series.dtype) and pd.api.types.infer_dtype(series, skipna=True).startswith("mixed"):
        types = series.dropna().map(lambda v: type(v).__name__).value_counts()
        value_types = {str(name): int(n) for name, n in sorted(types.items())}
    listed = [pair for i, pair in enumerate(pairs) if i < max_categories or pair[0] in also]
    absent = also - {value for value, _ in pairs}
    listed += sorted(((value, 0) for value in absent), key=lambda pair: (type(pair[0]).__name__, str(pair[0])))
    return ColumnStatistics(
        kind=kind, distinct_count=len(pairs), value_types=value_types, **base,
        categories=CategoryCounts(values=tuple(listed), other_count=sum(c for _, c in pairs) - sum(c for _, c in listed)),
    )
