"""Explainable Predictions (29): counterfactual explanations of a served decision.

Problem: an attribution says which inputs weighed on a prediction, but not what would
have to be different for the decision to change, which is what the person refused a
loan, or the dispatcher of a flight predicted late, asks.

Solution: search the smallest change to one, then two, of the raw inputs a user knows
that flips the decision of the serving bundle itself (a classification's served
decision at the bundle's threshold; a regression's prediction past a target value).
Candidate values come from the training data, so every suggestion is a value that
occurs (a seen category; a numeric or date value at one of the training quantiles),
and all candidates are scored in batches through the
:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction`.

How far a change goes (its *distance*):

* a categorical change counts 1 (a missing value replaced counts 1 too);
* a numeric change counts ``|new - old| / IQR``, the training interquartile range of
  the column (its standard deviation where the IQR is 0, else 1): moving by one IQR
  costs as much as changing a category; dates likewise, in days;
* a pair's distance is the sum of its two changes.

Single-column changes are searched first; pairs only when no single change flips the
decision (and ``max_changes=2``). Columns that only make sense together (one derived from
another, such as ``sched_dep_time`` and ``dep_hour``, or a route's ``dest`` and ``distance``)
can be *linked*: they change as one, to combinations observed in training
(:class:`LinkedCandidates`). Among equally near changes (two categories, say), the
one whose served score lands furthest past the threshold (or target value) comes first. Columns named ``immutable`` (e.g. sex, race, origin)
never change. Text inputs (a frozen text encoder's) are never changed.

Examples
--------
>>> search = counterfactuals(serving, rows.iloc[[0]], candidate_values(serving, training))  # doctest: +SKIP
>>> search.table[["columns", "from", "to", "score", "distance"]]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["ColumnCandidates", "CounterfactualExplanation", "LinkedCandidates", "candidate_values",
           "candidate_values_from_statistics", "column_kinds", "counterfactuals"]

KINDS = ("numeric", "date", "categorical", "text")


@dataclass(frozen=True)
class ColumnCandidates:
    """The values a counterfactual may give one raw input column, and the unit of its distance.

    ``kind`` is ``numeric``, ``date`` or ``categorical``; ``scale`` is the column's training
    IQR (in days for a date; 1 for a categorical column).
    """

    name: str
    kind: str
    values: list[Any]
    scale: float = 1.0

    def distances(self, old: Any, new: Sequence[Any]) -> np.ndarray:
        """The distance of changing ``old`` to each of ``new``."""
        if self.kind == "categorical":
            return np.ones(len(new))
        old_value, new_values = _as_numbers(self.kind, [old])[0], _as_numbers(self.kind, list(new))
        if np.isnan(old_value):
            return np.ones(len(new))
        return np.abs(new_values - old_value) / self.scale

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.name,)

    def same(self, value: Any, current: Any) -> bool:
        return _same(value, current, self.kind)


@dataclass(frozen=True)
class LinkedCandidates:
    """Columns that only change together, e.g. ``sched_dep_time`` and the ``dep_hour`` derived from it.

    Their candidates are combinations observed in the training rows (``values``, one tuple
    each), and a change costs the sum of its members' distances (``parts`` give each
    member's kind and scale).
    """

    parts: tuple[ColumnCandidates, ...]
    values: list[tuple[Any, ...]]
    kind: str = "linked"

    @property
    def name(self) -> str:
        return "+".join(self.columns)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(part.name for part in self.parts)

    def same(self, value: tuple[Any, ...], current: tuple[Any, ...]) -> bool:
        return all(part.same(v, c) for part, v, c in zip(self.parts, value, current, strict=True))

    def distances(self, old: tuple[Any, ...], new: Sequence[tuple[Any, ...]]) -> np.ndarray:
        total = np.zeros(len(new))
        for j, part in enumerate(self.parts):
            values = [combination[j] for combination in new]
            moved = np.array([not part.same(v, old[j]) for v in values], dtype=bool)
            total += np.where(moved, part.distances(old[j], values), 0.0)
        return total


def _as_numbers(kind: str, values: Sequence[Any]) -> np.ndarray:
    """Numbers (dates as days) for distances; a missing value is NaN."""
    if kind == "date":
        from mlpatterns.reproducibility.transform import parse_dates

        stamps = parse_dates(pd.Series(list(values), dtype=object))
        days = stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 86_400e9
        return np.where(stamps.isna().to_numpy(), np.nan, days)
    return pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(dtype=np.float64)


def column_kinds(serving: Any) -> dict[str, str]:
    """Each raw input column of a bundle and how its transform reads it: numeric, date, text or categorical."""
    transform = serving.transform
    kinds = {}
    for name in serving.input_columns:
        if name in transform.text:
            kinds[name] = "text"
        elif name in transform.numeric or name in transform.bucketize:
            kinds[name] = "numeric"
        elif name in transform.date_parts:
            kinds[name] = "date"
        else:
            kinds[name] = "categorical"
    return kinds


def _scale(numbers: np.ndarray) -> float:
    q25, q75 = np.quantile(numbers, [0.25, 0.75]) if len(numbers) else (0.0, 0.0)
    if q75 > q25:
        return float(q75 - q25)
    std = float(np.std(numbers)) if len(numbers) else 0.0
    return std if std > 0 else 1.0


def candidate_values(serving: Any, training: pd.DataFrame, *, quantiles: int = 20, max_categories: int = 50,
                     linked: Sequence[Sequence[str]] = ()) -> dict[str, ColumnCandidates | LinkedCandidates]:
    """The candidate values of every changeable input column, from training rows.

    Parameters
    ----------
    serving : ServingFunction
        The bundle whose inputs are changed.
    training : pandas.DataFrame
        Training rows holding the bundle's input columns (as read from a file).
    quantiles : int, default=20
        A numeric or date column's candidates are its observed values at the training
        quantiles ``0, 1/quantiles, ..., 1`` (the nearest observed value at each level).
    max_categories : int, default=50
        A categorical column's candidates are its most frequent training values, at most this many.
    linked : sequence of sequences of str
        Groups of columns that change together (:class:`LinkedCandidates`, keyed ``a+b``): their
        observed combinations, at the quantiles of the first column when it is a number or
        date, else the ``max_categories`` most frequent.
    """
    missing = [c for c in serving.input_columns if c not in training.columns]
    if missing:
        raise KeyError(f"the training rows lack the input column(s) {missing} of the model '{serving.name}'")
    if quantiles < 1 or max_categories < 1:
        raise ValueError(f"quantiles and max_categories must be at least 1, got {quantiles} and {max_categories}")
    conformed, _ = serving.conform(training[[*serving.input_columns]].assign(
        **{key: 0 for key in serving.key_columns if key not in serving.input_columns}))
    result = {}
    for name, kind in column_kinds(serving).items():
        if kind == "text":
            continue
        column = conformed[name].dropna()
        if kind == "categorical":
            values = column.value_counts(sort=True).index[:max_categories].tolist()
            result[name] = ColumnCandidates(name, kind, values, 1.0)
            continue
        numbers = _as_numbers(kind, column.tolist())
        known = ~np.isnan(numbers)
        order = np.argsort(numbers[known], kind="stable")
        observed, numbers = column[known].iloc[order], numbers[known][order]
        if not len(observed):
            continue
        positions = np.unique(np.round(np.linspace(0, 1, quantiles + 1) * (len(observed) - 1)).astype(int))
        picked, seen = [], set()
        for position in positions:
            if numbers[position] not in seen:
                seen.add(numbers[position])
                picked.append(observed.iloc[position])
        result[name] = ColumnCandidates(name, kind, picked, _scale(numbers))
    grouped = [column for group in linked for column in group]
    repeated = sorted({c for c in grouped if grouped.count(c) > 1})
    if repeated:
        raise ValueError(f"linked: the column(s) {repeated} are in more than one group")
    for group in linked:
        unknown = [c for c in group if c not in result]
        if len(group) < 2 or unknown:
            raise ValueError(f"linked: {list(group)} must name two or more changeable input columns of the model "
                             f"'{serving.name}'" + (f"; not {unknown}" if unknown else ""))
        parts = tuple(result.pop(c) for c in group)
        rows = conformed[list(group)].dropna()
        if parts[0].kind == "categorical":
            combinations_seen = rows.value_counts(sort=True).index[:max_categories].tolist()
        else:
            order = np.argsort(_as_numbers(parts[0].kind, rows[group[0]].tolist()), kind="stable")
            rows = rows.iloc[order]
            positions = np.round(np.linspace(0, 1, quantiles + 1) * max(len(rows) - 1, 0)).astype(int)
            combinations_seen = list(dict.fromkeys(tuple(rows.iloc[p]) for p in positions)) if len(rows) else []
        candidates = LinkedCandidates(parts, [tuple(v.item() if isinstance(v, np.generic) else v for v in c)
                                              for c in combinations_seen])
        result[candidates.name] = candidates
    return result


def candidate_values_from_statistics(serving: Any, statistics: Mapping[str, Any], *,
                                     max_categories: int = 50) -> dict[str, ColumnCandidates]:
    """Candidate values from a bundle's training statistics (``statistics.json``), without the training rows.

    Numeric candidates are the recorded quantiles (0, 1, 5, 25, 50, 75, 95, 99 and 100 %),
    dates ten evenly spaced days between the first and last training date, categories the
    most frequent recorded values: coarser than :func:`candidate_values`.
    """
    columns = statistics.get("columns", {})
    result = {}
    for name, kind in column_kinds(serving).items():
        described = columns.get(name)
        if kind == "text" or described is None:
            continue
        if kind == "categorical" and "categories" in described:
            values = [value for value, _ in described["categories"]["values"][:max_categories]]
            result[name] = ColumnCandidates(name, kind, values, 1.0)
        elif kind == "numeric" and "numeric" in described:
            levels = dict((float(q), float(v)) for q, v in described["numeric"]["quantiles"])
            iqr = levels.get(0.75, 0.0) - levels.get(0.25, 0.0)
            std = float(described["numeric"].get("std") or 0.0)
            values = sorted(set(levels.values()))
            if described.get("kind") == "integer":
                values = sorted({int(round(v)) for v in values})
            result[name] = ColumnCandidates(name, kind, values, iqr if iqr > 0 else (std if std > 0 else 1.0))
        elif kind == "date" and "datetime" in described:
            first, last = (pd.Timestamp(described["datetime"][k]) for k in ("min", "max"))
            days = pd.date_range(first, last, periods=10).normalize()
            values = [day.date().isoformat() for day in days]
            result[name] = ColumnCandidates(name, kind, values, max((last - first).days / 2, 1.0))
    return result


@dataclass
class CounterfactualExplanation:
    """The smallest changes found that flip one row's served decision.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per counterfactual, nearest first: ``changes`` (1 or 2), ``columns``,
        ``from``, ``to`` (lists, one entry per changed column), ``score`` (the served
        probability or value after the change), ``prediction`` (the served decision or
        value) and ``distance``. Empty when no change of at most ``max_changes`` columns flips it.
    score, prediction
        The row's own served score and decision (or value).
    goal : str
        What a counterfactual must reach, in words.
    searched : int
        How many changed rows were scored.
    columns_changed : list of str
        The columns the search could change.
    closest : dict or None
        When nothing flips: the change searched whose score came closest to the cut-off
        (``columns``, ``from``, ``to``, ``score``, ``distance``), to show how far off it is.
    """

    table: pd.DataFrame
    score: float
    prediction: Any
    goal: str
    searched: int
    columns_changed: list[str] = field(default_factory=list)
    closest: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy."""
        rows = [{key: _plain(value) for key, value in row.items()} for row in self.table.to_dict("records")]
        return {"score": float(self.score), "prediction": _plain(self.prediction), "goal": self.goal,
                "searched": int(self.searched), "columns_changed": self.columns_changed, "counterfactuals": rows,
                "closest": None if self.closest is None else {k: _plain(v) for k, v in self.closest.items()}}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (pd.Timestamp,)) or hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _served(serving: Any, frame: pd.DataFrame, batch_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Served score and decision (classification) or value twice (regression), in batches."""
    scores, predictions = [], []
    score_column = "probability" if serving.task == "classification" else "prediction"
    for start in range(0, len(frame), batch_rows):
        served = serving.predict(frame.iloc[start:start + batch_rows])
        scores.append(served[score_column].to_numpy(dtype=np.float64))
        predictions.append(served["prediction"].to_numpy())
    if not scores:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(scores), np.concatenate(predictions)


def counterfactuals(serving: Any, row: pd.DataFrame, candidates: Mapping[str, ColumnCandidates | LinkedCandidates], *,
                    immutable: Sequence[str] = (), max_changes: int = 2, target_value: float | None = None,
                    limit: int = 5, batch_rows: int = 20_000) -> CounterfactualExplanation:
    """The smallest changes to one or two raw inputs that flip the served decision of ``row``.

    Parameters
    ----------
    serving : ServingFunction
        A classification or regression bundle.
    row : pandas.DataFrame
        One row with the bundle's input columns (its key columns too, if it has them).
    candidates : dict of str to ColumnCandidates or LinkedCandidates
        From :func:`candidate_values` (training rows) or :func:`candidate_values_from_statistics`.
        A :class:`LinkedCandidates` group counts as one change (a ``column`` ``a+b`` whose
        ``from`` and ``to`` are tuples).
    immutable : sequence of str
        Input columns that must not change (a linked group with one of them does not change).
    max_changes : {1, 2}
        At most this many columns change; pairs are searched only when no single change flips.
    target_value : float, optional
        Regression only (required there): a counterfactual moves the prediction to the
        other side of this value (``>= target_value`` from below, ``< target_value`` from above).
    limit : int
        How many counterfactuals to return, nearest first.
    batch_rows : int
        Changed rows scored per call of the serving function.
    """
    if serving.task not in ("classification", "regression"):
        raise ValueError(f"counterfactuals explain a classification or regression bundle, not {serving.task!r}")
    if max_changes not in (1, 2):
        raise ValueError(f"max_changes must be 1 or 2, got {max_changes!r}")
    if serving.task == "regression" and target_value is None:
        raise ValueError("a regression counterfactual needs target_value: the value the prediction must move past")
    if len(row) != 1:
        raise ValueError(f"expected one row to explain, got {len(row)}")
    unknown = [c for c in immutable if c not in serving.input_columns]
    if unknown:
        raise KeyError(f"immutable column(s) {unknown} are not inputs of the model '{serving.name}'; "
                       f"its inputs are {serving.input_columns}")
    base = row.reset_index(drop=True).copy()
    for key in serving.key_columns:  # keys only pass through; a row without them still gets explained
        if key not in base.columns:
            base[key] = 0
    base, problems = serving.conform(base[list(dict.fromkeys([*serving.input_columns, *serving.key_columns]))])
    if problems:  # the row as the model reads it (CSV text as numbers, Yes/No as booleans), or why not
        from mlpatterns.serving.stateless_serving_function import InputError

        raise InputError("the row to explain holds bad values", problems)
    score, prediction = (values[0] for values in _served(serving, base, 1))
    if serving.task == "classification":
        goal = f"the served decision becomes {1 - int(prediction)} (threshold {serving.threshold:.4g})"

        def flips(scores: np.ndarray, predictions: np.ndarray) -> np.ndarray:
            return predictions != prediction
    else:
        above = score >= target_value
        goal = f"the prediction moves {'below' if above else 'to or above'} {target_value:g}"

        def flips(scores: np.ndarray, predictions: np.ndarray) -> np.ndarray:
            return (scores >= target_value) != above
    fixed = set(immutable)
    mutable = [c for c in candidates.values() if not fixed & set(c.columns)]
    unknown = sorted({column for c in mutable for column in c.columns} - set(serving.input_columns))
    if unknown:
        raise KeyError(f"candidates for {unknown}, which are not inputs of the model '{serving.name}'")
    options, current = {}, {}
    for column in mutable:
        value = base.at[0, column.name] if len(column.columns) == 1 else tuple(base.at[0, c] for c in column.columns)
        values = [v for v in column.values if not column.same(v, value)]
        if values:
            options[column.name] = (values, column.distances(value, values), column.columns)
            current[column.name] = value
    toward = -1.0 if (serving.task == "classification" and prediction == 1) or \
        (serving.task == "regression" and score >= target_value) else 1.0  # the direction that flips it
    found, searched, closest = [], 0, None
    for changes in range(1, max_changes + 1):
        for names in combinations(list(options), changes):
            grids = np.meshgrid(*[np.arange(len(options[n][0])) for n in names], indexing="ij")
            picks = [grid.ravel() for grid in grids]
            frame = base.loc[np.zeros(len(picks[0]), dtype=int)].reset_index(drop=True)
            distance = np.zeros(len(picks[0]))
            for name, pick in zip(names, picks, strict=True):
                values, distances, columns = options[name]
                if len(columns) == 1:
                    frame[name] = pd.Series([values[i] for i in pick], dtype=object)
                else:  # linked columns move together
                    for j, column in enumerate(columns):
                        frame[column] = pd.Series([values[i][j] for i in pick], dtype=object)
                distance += distances[pick]
            scores, predictions = _served(serving, frame, batch_rows)
            searched += len(frame)
            best = int(np.argmax(toward * scores)) if len(scores) else None
            if best is not None and (closest is None or toward * scores[best] > toward * closest["score"]):
                closest = {"columns": list(names), "from": [current[n] for n in names],
                           "to": [options[n][0][pick[best]] for n, pick in zip(names, picks, strict=True)],
                           "score": float(scores[best]), "distance": float(distance[best])}
            for i in np.flatnonzero(flips(scores, predictions)):
                found.append({"changes": changes, "columns": list(names),
                              "from": [current[n] for n in names],
                              "to": [options[n][0][pick[i]] for n, pick in zip(names, picks, strict=True)],
                              "score": float(scores[i]), "prediction": predictions[i], "distance": float(distance[i])})
        if found:  # pairs only when no single change flips
            break
    columns = ["changes", "columns", "from", "to", "score", "prediction", "distance"]
    table = pd.DataFrame(found, columns=columns)
    if len(table):  # nearest first; among equally near changes, the one that goes furthest past the cut-off
        cut = serving.threshold if serving.task == "classification" else target_value
        table["margin"] = (table["score"] - cut).abs()
        table = table.sort_values(["changes", "distance", "margin"], ascending=[True, True, False], kind="stable")
        table = table.drop(columns="margin").head(limit).reset_index(drop=True)
    return CounterfactualExplanation(table, float(score), prediction, goal, searched,
                                     [c.name for c in mutable if c.name in options], None if found else closest)


def _same(value: Any, current: Any, kind: str) -> bool:
    if kind == "categorical":
        return bool(pd.isna(current)) and bool(pd.isna(value)) or (not pd.isna(current) and value == current)
    a, b = _as_numbers(kind, [value, current])
    return bool(a == b)
