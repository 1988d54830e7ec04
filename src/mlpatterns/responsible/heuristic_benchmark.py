"""Heuristic Benchmark (pattern 28): the simple rule a model has to beat.

Problem: a metric such as "AUC 0.71" or "RMSE 1.05 lb" means little to the people
who decide whether a model is worth deploying.

Solution: score, on the same test rows, a heuristic anyone can explain, and
report the model next to it. :class:`HeuristicBenchmark` is the lookup-table
heuristic the book recommends for tabular data: the historical mean of the target
per segment (for flights, the delay rate per route and departure hour), backing
off to coarser segments, then to the global mean, where a segment has too few
training rows. For a 0/1 target the mean is a rate, usable as a probability.

Examples
--------
>>> import pandas as pd
>>> X = pd.DataFrame({"route": ["a", "a", "b", "b", "c"], "hour": [5, 5, 6, 6, 7]})
>>> y = [1, 0, 0, 0, 1]
>>> rule = HeuristicBenchmark(levels=[["route", "hour"], ["route"]], min_count=2).fit(X, y)
>>> rule.predict(pd.DataFrame({"route": ["a", "b", "z"], "hour": [5, 9, 1]})).tolist()
[0.5, 0.0, 0.4]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

__all__ = ["HeuristicBenchmark"]


class HeuristicBenchmark(RegressorMixin, BaseEstimator):
    """Mean target per segment, backing off from fine to coarse segments.

    Parameters
    ----------
    levels : list of list of str or int, optional
        Segment definitions from finest to coarsest, as column names (DataFrame
        input) or positions. ``None`` uses one level made of every column.
    min_count : int, default=20
        Fewest training rows a segment needs before its mean is trusted.
    statistic : {"mean", "median"}, default="mean"
        The per-segment statistic.

    Attributes
    ----------
    tables_ : list of dict
        Per level, the segment key (a tuple) and its statistic.
    global_ : float
        The statistic over all training rows: the last fallback.
    level_share_ : list of float
        Share of training rows whose prediction came from each level (the last
        entry is the global fallback).
    """

    def __init__(self, levels: Sequence[Sequence[str | int]] | None = None, min_count: int = 20,
                 statistic: str = "mean") -> None:
        self.levels = levels
        self.min_count = min_count
        self.statistic = statistic

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True
        return tags

    def _frame(self, X, reset: bool) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            validate_data(self, X=X, reset=reset, dtype=None, ensure_all_finite=False,
                          skip_check_array=True)
            return X.reset_index(drop=True)
        array = validate_data(self, X=X, reset=reset, dtype=None, ensure_all_finite=False)
        return pd.DataFrame(array)

    def _resolved_levels(self, frame: pd.DataFrame) -> list[list]:
        levels = self.levels if self.levels is not None else [list(frame.columns)]
        resolved = []
        for i, level in enumerate(levels):
            missing = [c for c in level if c not in frame.columns]
            if missing:
                raise KeyError(f"levels[{i}]: unknown column(s) {missing}; columns are {list(frame.columns)}")
            resolved.append(list(level))
        return resolved

    def fit(self, X, y):
        if self.statistic not in ("mean", "median"):
            raise ValueError(f"statistic must be 'mean' or 'median', got {self.statistic!r}")
        if not isinstance(self.min_count, (int, np.integer)) or self.min_count < 1:
            raise ValueError(f"min_count must be a positive integer, got {self.min_count!r}")
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        frame = self._frame(X, reset=True)
        target = column_or_1d(y, warn=True, dtype=np.float64)
        check_consistent_length(frame, target)
        if not np.all(np.isfinite(target)):
            raise ValueError("y contains NaN or infinity; the heuristic needs a finite target")
        self.levels_ = self._resolved_levels(frame)
        self.global_ = float(np.mean(target) if self.statistic == "mean" else np.median(target))
        self.tables_ = []
        data = frame.assign(__target__=target)
        for level in self.levels_:
            grouped = data.groupby(level, dropna=False, sort=False)["__target__"]
            stats = grouped.agg([self.statistic, "count"])
            stats = stats[stats["count"] >= self.min_count]
            self.tables_.append({_key(k): float(v) for k, v in stats[self.statistic].items()})
        _, sources = self._lookup(frame)
        self.level_share_ = np.bincount(sources, minlength=len(self.levels_) + 1) / max(len(frame), 1)
        return self

    def _lookup(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        prediction = np.full(len(frame), np.nan)
        source = np.full(len(frame), len(self.levels_), dtype=np.int64)
        for depth, (level, table) in enumerate(zip(self.levels_, self.tables_, strict=True)):
            todo = np.isnan(prediction)
            if not todo.any():
                break
            keys = frame.loc[todo, level].itertuples(index=False, name=None)
            found = np.array([table.get(_key(k), np.nan) for k in keys], dtype=np.float64)
            rows = np.flatnonzero(todo)
            hit = ~np.isnan(found)
            prediction[rows[hit]] = found[hit]
            source[rows[hit]] = depth
        prediction[np.isnan(prediction)] = self.global_
        return prediction, source

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "tables_")
        return self._lookup(self._frame(X, reset=False))[0]


def _key(value) -> tuple:
    values = value if isinstance(value, tuple) else (value,)
    return tuple(None if (isinstance(v, float) and np.isnan(v)) or v is pd.NA else v for v in values)
