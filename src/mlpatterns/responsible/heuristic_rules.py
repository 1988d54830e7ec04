"""Heuristic Benchmark (pattern 28): the simple rules besides the lookup table.

Problem: a model's metric means little until it is set beside a rule anyone could
have written on day one. The book names a few such rules; which one is hardest to
beat depends on the data, so the benchmark tries several and keeps the best on the
validation split (:mod:`mlpatterns.responsible.heuristic_selection`).

Solution, each a scikit-learn regressor whose prediction is a rate (for a 0/1
target, usable as a probability) or a value in the target's units:

* the global rate or mean (or median): :class:`sklearn.dummy.DummyRegressor`, used as is;
* the lookup table with back-off: :class:`mlpatterns.responsible.HeuristicBenchmark`;
* :class:`ThresholdHeuristic`, a single cut on one numeric feature (a decision stump:
  "late rate 0.25 when the flight leaves after 15:30, else 0.11"), the feature and the
  cut found on the training rows by scikit-learn's tree;
* :class:`PreviousPeriodHeuristic`, the target's mean over the most recent period of
  the history it is fitted on ("last week's late rate per route"), per segment with
  the same back-off as the lookup table.

Examples
--------
>>> import pandas as pd
>>> X = pd.DataFrame({"hour": [6, 7, 8, 17, 18, 19]})
>>> rule = ThresholdHeuristic().fit(X, [0, 0, 0, 1, 1, 0])
>>> rule.feature_, rule.threshold_, rule.predict(pd.DataFrame({"hour": [5, 20]})).round(3).tolist()
('hour', 12.5, [0.0, 0.667])
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

from mlpatterns.responsible.heuristic_benchmark import HeuristicBenchmark

__all__ = ["PERIODS", "PreviousPeriodHeuristic", "ThresholdHeuristic"]

#: calendar spans a ``period`` may name (a number is a span in the time column's own units, days for dates)
PERIODS = {"day": pd.Timedelta(days=1), "week": pd.Timedelta(days=7), "month": pd.DateOffset(months=1)}


def _finite_target(estimator: BaseEstimator, y, length: int) -> np.ndarray:
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")
    target = column_or_1d(y, warn=True, dtype=np.float64)
    check_consistent_length(np.empty(length), target)
    if not np.all(np.isfinite(target)):
        raise ValueError("y contains NaN or infinity; the heuristic needs a finite target")
    return target


def _text(stamp: pd.Timestamp) -> str:
    """A UTC time as ISO text; a midnight as its date alone."""
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()


class ThresholdHeuristic(RegressorMixin, BaseEstimator):
    """One cut on one numeric feature: the target's mean (or median) on each side.

    The feature and the cut point are those of a depth-1
    :class:`~sklearn.tree.DecisionTreeRegressor` fitted on every given column, so the
    cut is the one that most reduces the squared error (for a 0/1 target, the Gini
    impurity) or, with ``statistic="median"``, the absolute error. Missing values go
    to the side the tree chose for them.

    Parameters
    ----------
    statistic : {"mean", "median"}, default="mean"
        The statistic on each side of the cut.
    min_count : int, default=1
        Fewest training rows on each side.

    Attributes
    ----------
    feature_ : str or int
        The column cut: its name (DataFrame input) or position.
    threshold_ : float
        The cut point: rows with ``feature <= threshold_`` are *below*.
    below_, above_ : float
        The statistic on each side (equal, with no cut, when no column splits the rows).
    missing_below_ : bool
        Whether a missing value counts as below.
    """

    def __init__(self, statistic: str = "mean", min_count: int = 1) -> None:
        self.statistic = statistic
        self.min_count = min_count

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True
        return tags

    def fit(self, X, y):
        """Find the best single cut on the training rows ``X``, ``y``."""
        from sklearn.tree import DecisionTreeRegressor

        if self.statistic not in ("mean", "median"):
            raise ValueError(f"statistic must be 'mean' or 'median', got {self.statistic!r}")
        if not isinstance(self.min_count, (int, np.integer)) or self.min_count < 1:
            raise ValueError(f"min_count must be a positive integer, got {self.min_count!r}")
        names = list(X.columns) if isinstance(X, pd.DataFrame) else None
        array = validate_data(self, X=X, dtype=np.float64, ensure_all_finite="allow-nan")
        target = _finite_target(self, y, len(array))
        criterion = "squared_error" if self.statistic == "mean" else "absolute_error"
        tree = DecisionTreeRegressor(max_depth=1, criterion=criterion, min_samples_leaf=self.min_count,
                                     random_state=0).fit(array, target)
        self.stump_ = tree.tree_
        values = tree.tree_.value[:, 0, 0]
        if tree.tree_.node_count == 1:  # nothing splits the rows: the global statistic
            self.feature_, self.threshold_, self.missing_below_ = (names or [0])[0], float("inf"), True
            self.below_ = self.above_ = float(values[0])
        else:
            index = int(tree.tree_.feature[0])
            self.feature_ = names[index] if names else index
            self.threshold_ = float(tree.tree_.threshold[0])
            self.missing_below_ = bool(tree.tree_.missing_go_to_left[0])
            self.below_, self.above_ = float(values[1]), float(values[2])
        self.feature_index_ = int(max(tree.tree_.feature[0], 0))
        return self

    def predict(self, X) -> np.ndarray:
        """``below_`` where the feature is at most ``threshold_``, else ``above_``."""
        check_is_fitted(self, "stump_")
        array = validate_data(self, X=X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")
        column = array[:, self.feature_index_]
        below = np.where(np.isnan(column), self.missing_below_, column <= self.threshold_)
        return np.where(below, self.below_, self.above_)


class PreviousPeriodHeuristic(RegressorMixin, BaseEstimator):
    """The target's mean over the most recent period of the history: "yesterday's rate".

    ``fit`` keeps the rows of the last period before the end of the history it is
    given (its latest time, inclusive) and fits a
    :class:`~mlpatterns.responsible.HeuristicBenchmark` on them, so a segment with
    fewer than ``min_count`` rows in that period backs off to coarser segments and
    finally to the period's overall mean. Fitted on the rows before a scored split,
    it predicts every scored row from the period just before that split.

    Parameters
    ----------
    time_column : str or int, default=0
        The time column: its name (DataFrame input) or position. Dates and times (or
        ISO 8601 text, read as UTC) or numbers (a year, an epoch).
    period : {"day", "week", "month"}, float or None, default=None
        The span kept: a calendar span for a time column, a number of days for a time
        column or of the column's own units for a numeric one, or ``None`` for the
        rows of the latest time value alone. The period is the span that ends at the
        history's latest time: ``"week"`` keeps rows later than 7 days before it.
    levels : list of list of str or int, optional
        Segments from finest to coarsest (column names or positions); ``None``: none,
        the period's overall statistic.
    min_count : int, default=20
        Fewest rows of the period a segment needs.
    statistic : {"mean", "median"}, default="mean"
        The statistic.

    Attributes
    ----------
    period_start_, period_end_ : str
        The first and latest time of the rows kept (ISO text for times).
    period_rows_ : int
        Rows in the period.
    lookup_ : HeuristicBenchmark
        The lookup fitted on the period's rows.
    """

    def __init__(self, time_column: str | int = 0, period: str | float | None = None,
                 levels: Sequence[Sequence[str | int]] | None = None, min_count: int = 20,
                 statistic: str = "mean") -> None:
        self.time_column = time_column
        self.period = period
        self.levels = levels
        self.min_count = min_count
        self.statistic = statistic

    @classmethod
    def _estimator_check_instances(cls) -> list[PreviousPeriodHeuristic]:
        """Instances for scikit-learn's estimator checks (numeric times in column 0)."""
        return [cls(), cls(period=1.0, min_count=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        tags.regressor_tags.poor_score = True
        return tags

    def _frame(self, X, reset: bool) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            validate_data(self, X=X, reset=reset, dtype=None, ensure_all_finite=False, skip_check_array=True)
            return X.reset_index(drop=True)
        return pd.DataFrame(validate_data(self, X=X, reset=reset, dtype=None, ensure_all_finite=False))

    def _window(self, times: pd.Series) -> np.ndarray:
        if times.dtype == object:  # numbers held as objects stay numbers; text is read as ISO 8601 times
            as_numbers = pd.to_numeric(times, errors="coerce")
            if as_numbers.notna().sum() == times.notna().sum():
                times = as_numbers
        numeric = pd.api.types.is_numeric_dtype(times) and not pd.api.types.is_bool_dtype(times)
        if numeric:
            values = times.to_numpy(dtype=np.float64)
            if isinstance(self.period, str):
                raise ValueError(f"period {self.period!r} needs a date or time column; the time column "
                                 f"{self.time_column!r} holds numbers: give the span as a number")
            last = np.nanmax(values)
            start = last if self.period is None else last - float(self.period)
            kept = (values > start) | (values == last)  # NaN compares False: a row without a time is left out
            self.period_start_, self.period_end_ = float(np.nanmin(values[kept])), float(last)
            return kept
        stamps = pd.to_datetime(times, utc=True, format="ISO8601" if times.dtype == object else None)
        last = stamps.max()
        if self.period is None:
            kept = (stamps == last).to_numpy()
        else:
            span = PERIODS[self.period] if isinstance(self.period, str) else pd.Timedelta(days=float(self.period))
            kept = (stamps > last - span).to_numpy()  # NaT compares False
        self.period_start_, self.period_end_ = _text(stamps[kept].min()), _text(last)
        return kept

    def fit(self, X, y):
        """Keep the history's last period and fit the segment lookup on it."""
        if isinstance(self.period, str) and self.period not in PERIODS:
            raise ValueError(f"period must be one of {list(PERIODS)}, a number or None, got {self.period!r}")
        if self.period is not None and not isinstance(self.period, str) and not float(self.period) > 0:
            raise ValueError(f"period must be a positive span, got {self.period!r}")
        frame = self._frame(X, reset=True)
        target = _finite_target(self, y, len(frame))
        if self.time_column not in frame.columns:
            raise KeyError(f"time_column: unknown column {self.time_column!r}; columns are {list(frame.columns)}")
        times = frame[self.time_column]
        if times.isna().all():
            raise ValueError(f"the time column {self.time_column!r} has no time in any row")
        kept = self._window(times)
        self.period_rows_ = int(kept.sum())
        columns = [c for c in frame.columns if c != self.time_column]
        levels = [] if self.levels is None else self.levels
        if self.levels is None and not columns:
            columns = [self.time_column]
        self.lookup_ = HeuristicBenchmark(levels=levels, min_count=self.min_count, statistic=self.statistic)
        self.lookup_.fit(frame.loc[kept, columns].reset_index(drop=True), target[kept])
        self.columns_ = columns
        return self

    def predict(self, X) -> np.ndarray:
        """Each row's segment statistic over the fitted period."""
        check_is_fitted(self, "lookup_")
        frame = self._frame(X, reset=False)
        return self.lookup_.predict(frame[self.columns_])
