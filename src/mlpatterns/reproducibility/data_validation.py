"""Data validation: the validate step of a Workflow Pipeline (25), as TFX Data Validation does it.

Problem: the data of this run (or of this week's served requests) differs from the
data the model learned from, and nothing says so: a column disappears or changes type,
a code goes missing more often, a new category appears, a distribution shifts. The
model still trains and serves, only worse, and the cause is found weeks later.

Solution: compare the statistics of every raw column
(:class:`~mlpatterns.reproducibility.data_statistics.DataStatistics`) with those of a
previous run, or with a :class:`Schema` (inferred from statistics, or written by hand),
and report each difference beyond a threshold as an :class:`Anomaly` that names the
column, what was expected, what was seen and the measured value. :func:`check` stops a
pipeline on errors; warnings are reported. The same comparison of served data with
the training statistics in a model's bundle is how Continued Model Evaluation (18)
notices data drift; :func:`aligned_counts`, :func:`population_stability_index` and
:func:`jensen_shannon_distance` are its building blocks.

Thresholds are on statistics, not p-values: with hundreds of thousands of rows every
difference is "significant", while PSI 0.2 means the same shift at any size.

Examples
--------
>>> import pandas as pd
>>> before = DataStatistics.from_frame(pd.DataFrame({"fare": [5.0, 7.5, 9.0, 12.0], "payment": ["card"] * 4}))
>>> after = pd.DataFrame({"fare": [6.0, 8.0, 30.0, 41.0], "payment": ["card", "card", "cash", "cash"]})
>>> anomalies = validate(after, before, thresholds={"row_count_ratio": None})
>>> print(validation_report(anomalies))  # doctest: +NORMALIZE_WHITESPACE
Data validation: 0 errors, 4 warnings
  warning  out_of_range       column 'fare': 50% of its values lie outside the reference range 5 to 12 (seen 6 to 41; limit 1%)
  warning  drift              column 'fare': distribution shifted: PSI 2.129 (limit 0.2); median 8.25 -> 19, mean 8.375 -> 21.25
  warning  unseen_categories  column 'payment': 50% of its values are categories the reference never had ('cash' 2; limit 1%)
  warning  drift              column 'payment': frequencies shifted: PSI 4.604 (limit 0.2), Jensen-Shannon distance 0.5579 (limit 0.1); largest changes: 'card' 100% -> 50%, other values 0% -> 50%
>>> check(anomalies)  # warnings only: passes
>>> check(anomalies, fail_on=("drift",))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
mlpatterns.reproducibility.data_validation.DataValidationError: Data validation: 0 errors, 4 warnings...
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.data_statistics import (
    KINDS,
    ColumnStatistics,
    DataStatistics,
    NumericSummary,
)

__all__ = [
    "ANOMALY_KINDS",
    "DEFAULT_THRESHOLDS",
    "PSI_EPSILON",
    "SCHEMA_FORMAT",
    "Anomaly",
    "ColumnSchema",
    "DataValidationError",
    "Schema",
    "aligned_counts",
    "check",
    "jensen_shannon_distance",
    "population_stability_index",
    "validate",
    "validation_report",
]

SCHEMA_FORMAT = "mlpatterns.data_schema"
SCHEMA_VERSION = 1
PSI_EPSILON = 1e-4  # share given to an empty bin, so that PSI stays finite
TRUNCATED_MIN_COUNT = 30  # values rarer than this in a truncated category list count as "other"

ANOMALY_KINDS = {
    "row_count": "the table's row count changed beyond a ratio",
    "missing_column": "a column of the reference is absent",
    "new_column": "a column the reference does not have",
    "kind_change": "a column's kind changed (e.g. numbers became text)",
    "type_change": "integer <-> float, or an object column now mixes Python types",
    "missing_values": "the share of missing values grew",
    "out_of_range": "numbers outside the reference's [min, max]",
    "unseen_categories": "categories outside the reference's domain",
    "drift": "the distribution shifted (PSI; Jensen-Shannon for categories)",
}

DEFAULT_THRESHOLDS: dict[str, float | None] = {
    "row_count_ratio": 2.0,  # warning when rows grew or shrank more than 2x
    "missing_increase": 0.05,  # error when the missing share grew by more than 5 points
    "missing_ratio": 2.0,  # warning when it more than doubled ...
    "missing_ratio_floor": 0.01,  # ... and grew by at least 1 point (smaller is noise)
    "out_of_range": 0.01,  # warning when over 1% of the values lie outside [min, max]
    "unseen_categories": 0.01,  # warning when over 1% of the values are new categories
    "psi": 0.2,  # warning: the conventional "significant shift"
    "jensen_shannon": 0.1,  # warning (distance, base 2; categories only)
}

_SEVERITY_ORDER = {"error": 0, "warning": 1}
_KIND_ORDER = {kind: i for i, kind in enumerate(ANOMALY_KINDS)}
_NUMERIC = ("integer", "float")


@dataclass(frozen=True)
class Anomaly:
    """One difference between a table and its reference, beyond a threshold.

    ``value`` is the measured ``statistic`` (e.g. ``"psi"``, ``"missing_share"``) and
    ``threshold`` the limit it passed; both are None for structural anomalies (a
    missing column). ``column`` is None for the table as a whole.
    """

    column: str | None
    kind: str
    severity: str
    message: str
    statistic: str | None = None
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "kind": self.kind, "severity": self.severity, "message": self.message,
                "statistic": self.statistic, "value": self.value, "threshold": self.threshold}


class DataValidationError(ValueError):
    """Raised by :func:`check`; ``anomalies`` holds every anomaly, the report is the message."""

    def __init__(self, anomalies: Iterable[Anomaly]):
        self.anomalies = list(anomalies)
        super().__init__(validation_report(self.anomalies))


@dataclass(frozen=True)
class ColumnSchema:
    """What a column must be: its kind, whether it may be missing, its domain.

    ``min``/``max`` bound a numeric column; ``categories`` is the domain of a categorical
    one (None: any value). ``required=False`` lets the column be absent.
    """

    kind: str
    nullable: bool = True
    required: bool = True
    min: float | None = None
    max: float | None = None
    categories: tuple[Any, ...] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown column kind {self.kind!r}; known: {', '.join(KINDS)}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"a column's min ({self.min}) is above its max ({self.max})")
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(self.categories))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "nullable": self.nullable, "required": self.required}
        if self.min is not None or self.max is not None:
            out["min"], out["max"] = self.min, self.max
        if self.categories is not None:
            out["categories"] = list(self.categories)
        return out


@dataclass(frozen=True)
class Schema:
    """The columns a table must have (TFDV's schema): ``{name: ColumnSchema}``.

    Infer one with :meth:`from_statistics` and edit it, or write it by hand.
    """

    columns: Mapping[str, ColumnSchema]

    @classmethod
    def from_statistics(cls, statistics: DataStatistics, *, max_domain: int = 1000) -> Schema:
        """Every column required, its kind, nullable where values were missing, the numeric
        range seen, and the categories seen when all are listed and at most ``max_domain``."""
        columns = {}
        for name, col in statistics.columns.items():
            low = high = domain = None
            if col.numeric is not None and col.kind in _NUMERIC:
                low, high = col.numeric.min, col.numeric.max
            if (col.kind == "categorical" and col.categories is not None and col.categories.complete
                    and col.distinct_count <= max_domain):
                domain = tuple(value for value, _ in col.categories.values)
            columns[name] = ColumnSchema(col.kind, nullable=col.missing_count > 0, min=low, max=high,
                                         categories=domain)
        return cls(columns)

    def to_dict(self) -> dict[str, Any]:
        return {"format": SCHEMA_FORMAT, "version": SCHEMA_VERSION,
                "columns": {name: col.to_dict() for name, col in self.columns.items()}}

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        if not isinstance(data, Mapping) or data.get("format") != SCHEMA_FORMAT:
            raise ValueError(f"not a data schema (expected format {SCHEMA_FORMAT!r})")
        if data.get("version") != SCHEMA_VERSION:
            raise ValueError(f"data schema version {data.get('version')!r} is not supported (this reads {SCHEMA_VERSION})")
        columns = {}
        for name, col in data["columns"].items():
            try:
                columns[name] = ColumnSchema(**col)
            except TypeError as error:
                raise ValueError(f"schema column {name!r}: {error}") from error
        return cls(columns)

    @classmethod
    def from_json(cls, text: str | bytes) -> Schema:
        return cls.from_dict(json.loads(text))


def population_stability_index(expected: Iterable[float], actual: Iterable[float], *,
                               epsilon: float = PSI_EPSILON) -> float:
    """PSI = sum over bins of (a - e) * ln(a / e), on shares of the two count vectors.

    A bin empty on one side gets the share ``epsilon`` (1e-4), so PSI stays finite; a
    value that appears only in one table still counts heavily (a 1% new bin adds about
    0.046). Conventional reading: below 0.1 no shift, 0.1-0.2 moderate, above 0.2 significant.
    """
    e, a = _shares(expected, actual)
    e, a = np.maximum(e, epsilon), np.maximum(a, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def jensen_shannon_distance(expected: Iterable[float], actual: Iterable[float]) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2): 0 same, 1 disjoint.

    Bounded and defined for empty bins, unlike PSI; equals
    ``scipy.spatial.distance.jensenshannon(expected, actual, base=2)``.
    """
    p, q = _shares(expected, actual)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        divergence = 0.5 * np.sum(np.where(p > 0, p * np.log2(p / m), 0.0)) + \
            0.5 * np.sum(np.where(q > 0, q * np.log2(q / m), 0.0))
    return float(math.sqrt(max(divergence, 0.0)))


def _shares(expected: Iterable[float], actual: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"expected and actual need the same bins; got shapes {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise ValueError("both count vectors need a positive total")
    return e / e.sum(), a / a.sum()


def aligned_counts(reference: ColumnStatistics, current: ColumnStatistics) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """The two columns' counts on the same bins: ``(labels, reference_counts, current_counts)``.

    Numbers: the bins between the reference's inner histogram edges, open at both ends,
    labelled ``(low, high)`` (the first ``(-inf, edge]``, the last ``(edge, inf)``); a
    change of range is :func:`validate`'s ``out_of_range`` check. Categories: the
    reference's listed values, then ``None`` for all other values (the reference's rest
    and the current table's unseen values). A reference value that the current table has
    only in its own rest, and, when the reference's list is truncated, a value it counted
    fewer than ``TRUNCATED_MIN_COUNT`` (30) times, move to ``None`` on both sides.

    The counts are exact when the current statistics were computed with ``reference=``
    (or happen to share the inner edges); otherwise the current histogram's cumulative
    counts are interpolated linearly at the reference's edges. They are what PSI,
    Jensen-Shannon, chi-square (``scipy.stats.chisquare``) and a binned
    Kolmogorov-Smirnov statistic (largest gap of the cumulative shares) need.
    """
    return _aligned(reference, current)[:3]


def _aligned(reference: ColumnStatistics, current: ColumnStatistics) -> tuple[list[Any], np.ndarray, np.ndarray, bool]:
    if reference.numeric is not None and current.numeric is not None:
        cuts = reference.numeric.edges[1:-1]
        labels = list(zip((-math.inf, *cuts), (*cuts, math.inf), strict=True))
        expected = _open_bins(reference.numeric, cuts)
        actual = _open_bins(current.numeric, cuts)
        return labels, expected, actual, current.numeric.edges[1:-1] == cuts
    if reference.categories is not None and current.categories is not None:
        seen = current.categories.as_dict()  # what is left in it at the end is "other"
        truncated = not reference.categories.complete
        labels, expected, actual = [], [], []
        other_expected = reference.categories.other_count
        for value, count in reference.categories.values:
            if truncated and count < TRUNCATED_MIN_COUNT:
                # the rarest values of a truncated list won their place partly by chance (the
                # top k of a sample overstate themselves): they are compared as "other"
                other_expected += count
            elif value in seen or current.categories.complete:
                labels.append(value)
                expected.append(count)
                actual.append(seen.pop(value, 0))
            else:  # in the current table's unlisted rest, count unknown: compared as "other"
                other_expected += count
        labels.append(None)
        expected.append(other_expected)
        actual.append(sum(seen.values()) + current.categories.other_count)
        return labels, np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64), True
    raise ValueError(f"cannot align a {reference.kind} column's counts with a {current.kind} column's")


def _open_bins(summary: NumericSummary, cuts: tuple[float, ...]) -> np.ndarray:
    """Counts in (-inf, cuts[0]], (cuts[0], cuts[1]], ..., (cuts[-1], inf)."""
    cum = np.cumsum(summary.counts)  # cum[0]: below edges[0]; cum[i], i >= 1: at or below edges[i]
    total = float(cum[-1])
    if summary.edges[1:-1] == cuts:
        at_or_below = [float(c) for c in cum[1:-2]]
    else:  # interpolate count(x <= cut) between the histogram's edges, 0 at the minimum
        knots: dict[float, float] = {summary.min: 0.0, summary.max: total}
        for x, y in zip(summary.edges[1:], cum[1:-1], strict=True):
            knots[x] = max(knots.get(x, 0.0), float(y))  # count(x <= edge) is exact at each edge
        xs = sorted(knots)
        ys = np.maximum.accumulate([knots[x] for x in xs])
        at_or_below = list(np.interp(cuts, xs, ys, left=0.0, right=total))
    return np.diff(np.asarray([0.0, *at_or_below, total]))


def _outside(summary: NumericSummary, low: float | None, high: float | None) -> tuple[float, bool]:
    """Finite values below ``low`` or above ``high``: ``(count, exact)``. Exact when the bounds
    are the histogram's outer edges (statistics computed with ``reference=``) or lie outside
    the values; otherwise a lower bound from the edges and the quantiles (of n sorted values,
    at least floor(p (n - 1)) + 1 are at or below the p-quantile, at most ceil(p (n - 1)) below it)."""
    edges, cum = summary.edges, np.cumsum(summary.counts)
    total, exact = float(cum[-1]), True
    below = above = 0.0
    if low is not None and summary.min < low:
        if low > summary.max:
            below = total
        elif low == edges[0]:
            below = float(cum[0])
        else:  # values at or below an edge or quantile under `low` are certainly below it
            exact = False
            below = max([float(cum[0]) if edges[0] < low else 0.0,
                         *(float(cum[i]) for i in range(1, len(edges)) if edges[i] < low),
                         *(math.floor(p * (total - 1)) + 1.0 for p, q in summary.quantiles if q < low)])
    if high is not None and summary.max > high:
        if high < summary.min:
            above = total
        elif high in edges[1:]:
            above = total - float(cum[edges.index(high, 1)])
        else:  # values above the first edge or quantile over `high` are certainly above it
            exact = False
            at_most = [float(cum[0])] if high < edges[0] else []
            at_most += [float(cum[i]) for i in range(1, len(edges)) if edges[i] >= high]
            at_most += [math.ceil(p * (total - 1)) for p, q in summary.quantiles if q > high]
            above = total - min([*at_most, total])
    return below + above, exact


def _limits(thresholds: Mapping[str, float | None] | None, where: str) -> dict[str, float | None]:
    limits = {}
    for key, value in (thresholds or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            raise KeyError(f"unknown threshold {key!r} in {where}; known: {', '.join(DEFAULT_THRESHOLDS)}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"threshold {key!r} in {where} must be a number of at least 0 or None, not {value!r}")
        limits[key] = None if value is None else float(value)
    return limits


def validate(
    current: DataStatistics | pd.DataFrame,
    reference: DataStatistics | Schema,
    *,
    thresholds: Mapping[str, float | None] | None = None,
    column_thresholds: Mapping[str, Mapping[str, float | None]] | None = None,
) -> list[Anomaly]:
    """Compare a table (or its statistics) with a previous run's statistics or a schema.

    Parameters
    ----------
    current : DataStatistics or pandas.DataFrame
        A frame is summarised with ``reference=`` the reference statistics (exact bins).
    reference : DataStatistics or Schema
        Statistics check everything; a schema checks columns, kinds, missing values and
        domains, but knows no distribution (no drift, row count or missing-share growth).
    thresholds : dict, optional
        Overrides of :data:`DEFAULT_THRESHOLDS` by name; None turns a check off.
    column_thresholds : dict of column to dict, optional
        Overrides for single columns, e.g. ``{"dep_delay": {"psi": 0.5}}``.

    Returns
    -------
    list of Anomaly
        Errors first, then by column and kind; empty when nothing passed a threshold.
    """
    stats_reference = reference if isinstance(reference, DataStatistics) else None
    if stats_reference is None and not isinstance(reference, Schema):
        raise TypeError(f"reference must be DataStatistics or a Schema, not {type(reference).__name__}")
    schema = reference if isinstance(reference, Schema) else Schema.from_statistics(reference)
    if isinstance(current, pd.DataFrame):
        categorical = [name for name, col in schema.columns.items()
                       if col.kind == "categorical" and name in map(str, current.columns)]
        current = DataStatistics.from_frame(current, categorical=categorical, reference=stats_reference)
    elif not isinstance(current, DataStatistics):
        raise TypeError(f"current must be DataStatistics or a pandas DataFrame, not {type(current).__name__}")
    table_limits = {**DEFAULT_THRESHOLDS, **_limits(thresholds, "thresholds")}
    per_column = {}
    for column, overrides in (column_thresholds or {}).items():
        if column not in schema.columns and column not in current.columns:
            raise KeyError(f"column_thresholds names {column!r}, which is in neither table")
        per_column[column] = _limits(overrides, f"column_thresholds[{column!r}]")
        if "row_count_ratio" in per_column[column]:
            raise ValueError("row_count_ratio is a threshold of the whole table, not of a column")

    anomalies = []
    ratio_limit = table_limits["row_count_ratio"]
    if stats_reference is not None and ratio_limit is not None:
        ratio = current.row_count / stats_reference.row_count
        if ratio > ratio_limit or ratio * ratio_limit < 1:
            anomalies.append(Anomaly(
                None, "row_count", "warning",
                f"the table has {current.row_count:,} rows, the reference {stats_reference.row_count:,} "
                f"(ratio {_num(ratio)}; limit {_num(ratio_limit)}x either way)", "row_count_ratio", ratio, ratio_limit))
    for name, expected in schema.columns.items():
        seen = current.columns.get(name)
        if seen is None:
            if expected.required:
                anomalies.append(Anomaly(name, "missing_column", "error",
                                         f"column {name!r} ({expected.kind}) is missing: the reference has it"))
            continue
        ref = stats_reference.columns[name] if stats_reference is not None else None
        limits = {**table_limits, **per_column.get(name, {})}
        anomalies.extend(_column_anomalies(name, expected, seen, ref, limits))
    for name, seen in current.columns.items():
        if name not in schema.columns:
            anomalies.append(Anomaly(name, "new_column", "warning",
                                     f"column {name!r} ({seen.kind}) is new: the reference has no such column"))
    return sorted(anomalies, key=lambda a: (_SEVERITY_ORDER[a.severity], a.column or "", _KIND_ORDER[a.kind]))


def _column_anomalies(name: str, expected: ColumnSchema, seen: ColumnStatistics, ref: ColumnStatistics | None,
                      limits: Mapping[str, float | None]) -> list[Anomaly]:
    found = []
    comparable = True
    if "unknown" not in (expected.kind, seen.kind) and expected.kind != seen.kind:
        was = f"{expected.kind}" + (f" (dtype {ref.dtype})" if ref is not None else "")
        if expected.kind in _NUMERIC and seen.kind in _NUMERIC:
            found.append(Anomaly(name, "type_change", "warning",
                                 f"column {name!r} is {seen.kind} (dtype {seen.dtype}), the reference {was}"))
        else:
            comparable = False
            found.append(Anomaly(name, "kind_change", "error",
                                 f"column {name!r} holds {seen.kind} values (dtype {seen.dtype}), the reference {was}"))
    if seen.value_types and ref is not None and not set(seen.value_types) <= set(ref.value_types or ()):
        mix = ", ".join(f"{t} {n:,}" for t, n in seen.value_types.items())
        before = ", ".join(ref.value_types) if ref.value_types else "one"
        found.append(Anomaly(name, "type_change", "warning",
                             f"column {name!r} mixes Python types ({mix}); the reference had {before}"))
    found.extend(_missing_anomalies(name, expected, seen, ref, limits))
    if not comparable:
        return found
    if expected.kind in _NUMERIC and seen.numeric is not None:
        found.extend(_numeric_anomalies(name, expected, seen, ref, limits))
    if expected.kind in ("categorical", "boolean") and seen.categories is not None:
        found.extend(_category_anomalies(name, expected, seen, ref, limits))
    return found


def _missing_anomalies(name, expected, seen, ref, limits) -> list[Anomaly]:
    share = seen.missing_share
    if share == 0:
        return []
    before = ref.missing_share if ref is not None else (None if expected.nullable else 0.0)
    if before is None:
        return []
    increase, limit = share - before, limits["missing_increase"]
    text = f"column {name!r}: {_pct(share)} of rows have no value ({seen.missing_count:,}), the reference {_pct(before)}"
    if ref is None and not expected.nullable:
        return [Anomaly(name, "missing_values", "error", f"{text}: the schema does not allow missing values",
                        "missing_share", share, 0.0)]
    if limit is not None and increase > limit:
        return [Anomaly(name, "missing_values", "error", f"{text} (+{_pct(increase, 'points')}; limit +{_pct(limit, 'points')})",
                        "missing_share", share, before + limit)]
    if before == 0:
        return [Anomaly(name, "missing_values", "warning", f"{text}: the reference had no missing values",
                        "missing_share", share, 0.0)]
    ratio, floor = limits["missing_ratio"], limits["missing_ratio_floor"] or 0.0
    if ratio is not None and share > ratio * before and increase >= floor:
        return [Anomaly(name, "missing_values", "warning",
                        f"{text} ({_num(share / before)}x; limit {_num(ratio)}x)", "missing_share", share, ratio * before)]
    return []


def _numeric_anomalies(name, expected, seen, ref, limits) -> list[Anomaly]:
    found, summary = [], seen.numeric
    limit = limits["out_of_range"]
    if limit is not None and (expected.min is not None or expected.max is not None):
        outside, exact = _outside(summary, expected.min, expected.max)
        share = (outside + summary.infinite_count) / seen.count
        if share > limit:
            found.append(Anomaly(
                name, "out_of_range", "warning",
                f"column {name!r}: {'' if exact else 'at least '}{_pct(share)} of its values lie outside the reference range "
                f"{_num(expected.min)} to {_num(expected.max)} (seen {_num(summary.min)} to {_num(summary.max)}; "
                f"limit {_pct(limit)})", "out_of_range_share", share, limit))
    limit = limits["psi"]
    if limit is not None and ref is not None and ref.numeric is not None and sum(summary.counts) > 0:
        _, e, a, exact = _aligned(ref, seen)
        psi = population_stability_index(e, a)
        if psi > limit:
            r = ref.numeric
            found.append(Anomaly(
                name, "drift", "warning",
                f"column {name!r}: distribution shifted: PSI {_num(psi)}{'' if exact else ' (bins interpolated)'} "
                f"(limit {_num(limit)}); "
                f"median {_num(r.quantile(0.5))} -> {_num(summary.quantile(0.5))}, "
                f"mean {_num(r.mean)} -> {_num(summary.mean)}", "psi", psi, limit))
    return found


def _category_anomalies(name, expected, seen, ref, limits) -> list[Anomaly]:
    found, counts = [], seen.categories
    limit = limits["unseen_categories"]
    if limit is not None and expected.categories is not None and seen.count:
        domain = set(expected.categories)
        new = [(value, count) for value, count in counts.values if value not in domain]
        share = sum(count for _, count in new) / seen.count
        if share > limit:
            listed = ", ".join(f"{value!r} {count:,}" for value, count in new[:5]) + (", ..." if len(new) > 5 else "")
            bound = "at least " if counts.other_count else ""
            found.append(Anomaly(
                name, "unseen_categories", "warning",
                f"column {name!r}: {bound}{_pct(share)} of its values are categories the reference never had "
                f"({listed}; limit {_pct(limit)})", "unseen_share", share, limit))
    psi_limit, js_limit = limits["psi"], limits["jensen_shannon"]
    if ref is None or ref.categories is None or seen.count == 0 or ref.count == 0:
        return found
    if psi_limit is None and js_limit is None:
        return found
    labels, e, a = aligned_counts(ref, seen)
    psi, js = population_stability_index(e, a), jensen_shannon_distance(e, a)
    over_psi = psi_limit is not None and psi > psi_limit
    over_js = js_limit is not None and js > js_limit
    if over_psi or over_js:
        e_share, a_share = e / e.sum(), a / a.sum()
        order = np.argsort(-np.abs(a_share - e_share), kind="stable")[:3]
        changes = ", ".join(
            f"{'other values' if labels[i] is None else repr(labels[i])} {_pct(e_share[i])} -> {_pct(a_share[i])}"
            for i in order)
        statistic, value, limit = ("psi", psi, psi_limit) if over_psi else ("jensen_shannon", js, js_limit)
        found.append(Anomaly(
            name, "drift", "warning",
            f"column {name!r}: frequencies shifted: PSI {_num(psi)} (limit {_num(psi_limit)}), Jensen-Shannon "
            f"distance {_num(js)} (limit {_num(js_limit)}); largest changes: {changes}", statistic, value, limit))
    return found


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.4g}"


def _pct(share: float, unit: str = "") -> str:
    text = f"{share:.2%}" if 0 < abs(share) < 0.01 else f"{share:.1%}"
    text = text.replace(".0%", "%")
    return text if not unit else text.rstrip("%") + " " + unit


def validation_report(anomalies: Iterable[Anomaly]) -> str:
    """A plain-text report: a count line, then one line per anomaly."""
    anomalies = list(anomalies)
    errors = sum(a.severity == "error" for a in anomalies)
    warnings = sum(a.severity == "warning" for a in anomalies)
    if not anomalies:
        return "Data validation: no anomalies"
    head = f"Data validation: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    width = max(len(a.kind) for a in anomalies)
    return "\n".join([head, *(f"  {a.severity:<8} {a.kind:<{width}}  {a.message}" for a in anomalies)])


def check(anomalies: Iterable[Anomaly], fail_on: Iterable[str] = ("error",)) -> None:
    """Raise :class:`DataValidationError` if any anomaly has a severity or kind in ``fail_on``.

    ``fail_on`` mixes severities (``"error"``, ``"warning"``) and anomaly kinds
    (``"drift"``, ...): ``("error", "drift")`` also stops on drift warnings.
    """
    fail_on = set([fail_on] if isinstance(fail_on, str) else fail_on)
    unknown = fail_on - set(_SEVERITY_ORDER) - set(ANOMALY_KINDS)
    if unknown:
        raise ValueError(f"fail_on names {sorted(unknown)}: neither a severity (error, warning) nor an anomaly kind")
    anomalies = list(anomalies)
    if any(a.severity in fail_on or a.kind in fail_on for a in anomalies):
        raise DataValidationError(anomalies)
