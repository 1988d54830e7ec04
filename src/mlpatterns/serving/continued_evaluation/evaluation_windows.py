"""Metrics per time window, with confidence intervals: the evaluation of Continued Model Evaluation (18).

Problem: a deployed model decays as the world drifts from its training data, and one
number over "all of production" hides when it started. A metric per day or week shows
the decay, but a window with 40 labelled rows can look alarming by chance alone.

Solution: join the prediction log with the ground truth that arrived later (by key; the
label ingested last wins), cut the predictions into time windows by ``event_time`` and
compute each window's metrics per model version, each with a confidence interval and
the count it rests on, so that a small window is not over-read. DuckDB does all the
aggregation over the ``predictions`` and ``labels`` views that a prediction log's
``register(con)`` creates; only one row per window reaches Python.

Confidence intervals (``confidence``, default 95 %):

- proportions (accuracy, precision, recall, positive rate): Wilson score interval;
- ROC-AUC: Hanley & McNeil (1982) standard error, ``auc +- z se`` clipped to [0, 1];
- means (log loss, Brier score, MAE, bias, mean prediction): normal approximation,
  ``mean +- z sd / sqrt(n)``;
- RMSE: the normal interval of the mean squared error, square-rooted (the delta
  method's interval to first order, never below 0).

Counts are weighted by the sampling rate (``n_estimated = sum(1 / sample_rate)``, the
number of predictions served); metrics and intervals rest on the logged rows.

Examples
--------
>>> import duckdb, pandas as pd
>>> con = duckdb.connect()
>>> predictions = pd.DataFrame({
...     "event_time": pd.to_datetime(["2013-07-01 08:00", "2013-07-01 09:00", "2013-07-01 10:00",
...                                   "2013-07-02 08:00"]),
...     "model": "flights", "version": "1", "key": ["a", "b", "c", "d"], "inputs": "{}",
...     "prediction": [0.9, 0.2, 0.6, 0.4], "predicted_label": ["1", "0", "1", "0"], "sample_rate": 1.0})
>>> labels = pd.DataFrame({"key": ["a", "b", "c", "d"], "label": ["1", "0", "0", "0"],
...                        "labelled_at": pd.Timestamp("2013-07-03")})
>>> _ = con.register("predictions", predictions), con.register("labels", labels)
>>> result = evaluate_windows(con, task="classification", window="1d", min_labelled=2)
>>> result[["window_start", "n_labelled", "roc_auc", "accuracy", "too_small"]].to_string(index=False)
'window_start  n_labelled  roc_auc  accuracy  too_small\\n  2013-07-01           3      1.0  0.666667      False\\n  2013-07-02           1      NaN  1.000000       True'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.metrics import METRIC_DIRECTIONS

__all__ = ["TASKS", "WINDOW_METRICS", "WINDOW_ORIGIN", "evaluate_windows", "metric_direction", "parse_window",
           "windowed_predictions_sql"]

TASKS = ("classification", "regression", "multiclass")
# The metrics of each task, the headline first (as mlpatterns.metrics orders them).
WINDOW_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "accuracy", "precision", "recall", "log_loss", "brier", "positive_rate",
                       "mean_prediction"),
    "regression": ("rmse", "mae", "bias", "mean_prediction"),
    "multiclass": ("accuracy",),
}
# Descriptive quantities: a change either way matters, neither direction is "better".
_NO_DIRECTION = ("positive_rate", "mean_prediction", "bias")
WINDOW_ORIGIN = datetime(2000, 1, 3)  # a Monday (DuckDB's time_bucket origin): days start at midnight UTC
LOG_LOSS_CLIP = 1e-7  # as mlpatterns.metrics.evaluate clips probabilities
_UNITS = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SAFE_NAME = re.compile(r"[^\"'\\\x00-\x1f]+")


def metric_direction(name: str) -> str | None:
    """``"maximize"`` when a larger value of the metric is better, ``"minimize"`` when a smaller one
    is, None for descriptive quantities (``positive_rate``, ``mean_prediction``, ``bias``) that should
    stay near their reference, as Optuna and :data:`mlpatterns.metrics.METRIC_DIRECTIONS` name them.

    >>> metric_direction("roc_auc"), metric_direction("rmse"), metric_direction("mean_prediction")
    ('maximize', 'minimize', None)
    """
    if name in _NO_DIRECTION:
        return None
    if name in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[name]
    known = sorted({*METRIC_DIRECTIONS, *_NO_DIRECTION})
    raise KeyError(f"unknown metric {name!r}; known: {', '.join(known)}")


def parse_window(value: str | timedelta, *, name: str = "window") -> timedelta:
    """A duration from ``"30min"``, ``"1h"``, ``"1d"``, ``"7d"``, ``"1w"`` (units s, min, h, d, w) or a timedelta.

    >>> parse_window("7d") == parse_window("1w") == timedelta(days=7)
    True
    """
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, str) and (match := re.fullmatch(r"\s*(\d+)\s*([a-z]+)\s*", value.lower())) \
            and match.group(2) in _UNITS:
        duration = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise ValueError(f"{name} must be a duration such as '1h', '1d', '7d', '1w' or a datetime.timedelta, "
                         f"not {value!r}")
    if duration < timedelta(microseconds=1):
        raise ValueError(f"{name} must be a positive duration, not {value!r}")
    return duration


def as_utc_naive(value: Any, name: str) -> datetime | None:
    """``value`` (a datetime, Timestamp or ISO text; None passes) as a naive datetime meaning UTC, as the log stores times."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a datetime or an ISO date/time text, not {value!r}") from error
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(UTC).tz_localize(None)
    return stamp.to_pydatetime()


def json_path(column: str, name: str = "column") -> str:
    """The SQL literal of the JSON path of an input column (``'$."dest"'``); refuses quotes and control characters."""
    if not isinstance(column, str) or not _SAFE_NAME.fullmatch(column):
        raise ValueError(f"{name} must be an input column name without quotes or backslashes, not {column!r}")
    return f"'$.\"{column}\"'"


def windowed_predictions_sql(select: str, *, window: timedelta, step: timedelta, since: datetime | None = None,
                             until: datetime | None = None, source: str = "predictions") -> tuple[str, list]:
    """SQL of the rows of ``source`` (the ``predictions`` view, alias ``p``) in each window they fall in.

    Windows start at ``WINDOW_ORIGIN + k * step`` and last ``window``; a row at ``event_time`` t
    belongs to every window with ``start <= t < start + window`` (one when ``step == window``,
    tumbling; ``ceil(window / step)`` at most when sliding). The query selects ``window_start``
    (TIMESTAMP) and the expressions in ``select`` (over ``p``'s columns). Returns the SQL and its
    parameters (``since <= event_time < until``).
    """
    window_us, step_us = window // timedelta(microseconds=1), step // timedelta(microseconds=1)
    origin_us = int((WINDOW_ORIGIN - datetime(1970, 1, 1)) // timedelta(microseconds=1))
    copies = -(-window_us // step_us)
    where, params = [], []
    if since is not None:
        where.append("event_time >= ?")
        params.append(since)
    if until is not None:
        where.append("event_time < ?")
        params.append(until)
    # floor division of integers, exact (DuckDB's // truncates towards 0)
    bucket = f"((p.__t - ((p.__t % {step_us}) + {step_us}) % {step_us}) // {step_us})"
    if copies == 1:
        start, spread, keep = f"{bucket} * {step_us}", "", ""
    else:
        start = f"({bucket} - __copy.j) * {step_us}"
        spread, keep = f", range({copies}) AS __copy(j)", f"WHERE p.__t < {start} + {window_us}"
    inner = (f"SELECT *, epoch_us(event_time) - {origin_us} AS __t FROM {source}"
             + (f" WHERE {' AND '.join(where)}" if where else ""))
    sql = (f"SELECT make_timestamp(({start}) + {origin_us}) AS window_start, {select} "
           f"FROM ({inner}) AS p{spread} {keep}")
    return sql, params


def _label_join(select: str) -> str:
    return ("WITH __labels AS (SELECT key, arg_max(label, (labelled_at, label)) AS label FROM labels "
            f"WHERE key IS NOT NULL GROUP BY key) {select}")


def evaluate_windows(con: Any, *, task: str, window: str | timedelta = "1d", step: str | timedelta | None = None,
                     by: Sequence[str] = ("model", "version"), slices: Sequence[str] | None = None,
                     since: Any = None, until: Any = None, positive: str = "1", confidence: float = 0.95,
                     min_labelled: int = 30) -> pd.DataFrame:
    """Metrics of the logged predictions per time window and model version, with confidence intervals.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        A connection with the views ``predictions`` and ``labels`` (``PredictionLog.register(con)``).
    task : {"classification", "regression", "multiclass"}
        Binary classification reads ``prediction`` (P(positive)) and ``predicted_label``;
        regression ``prediction`` against the label as a number; multiclass ``predicted_label``.
    window : str or timedelta, default "1d"
        Window length (:func:`parse_window`); windows are aligned to midnight UTC (weeks start Mondays).
    step : str or timedelta, optional
        Distance between window starts: the window (tumbling, default) or less (sliding).
    by : sequence of {"model", "version"}, default both
        What a window's rows are grouped by besides the window.
    slices : sequence of str, optional
        Input columns (read from the ``inputs`` JSON, as text) to group by as well.
    since, until : datetime or str, optional
        Only predictions with ``since <= event_time < until`` (UTC; aware times are converted).
    positive : str, default "1"
        The positive class's label text (binary classification).
    confidence : float, default 0.95
        Level of the confidence intervals.
    min_labelled : int, default 30
        Windows with fewer labelled rows get their metrics and ``too_small = True``.

    Returns
    -------
    pandas.DataFrame
        One row per window (with predictions) and group, ordered by them: ``window_start``,
        ``window_end``, the ``by`` and slice columns, ``n_predictions``, ``n_estimated``,
        ``n_labelled``, ``label_coverage``, ``too_small``, then per metric of
        :data:`WINDOW_METRICS` ``[task]``: ``<metric>``, ``<metric>_low``, ``<metric>_high``,
        ``<metric>_n`` (rows it rests on); ``notes`` says why a metric is missing (NaN), e.g.
        a window whose labelled rows hold one class has no ROC-AUC.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    window_td = parse_window(window)
    step_td = window_td if step is None else parse_window(step, name="step")
    if step_td > window_td:
        raise ValueError(f"step ({step}) must not be longer than the window ({window}): rows would fall in no window")
    by = (by,) if isinstance(by, str) else tuple(by)
    if not set(by) <= {"model", "version"} or len(set(by)) != len(by):
        raise ValueError(f"by must name 'model' and/or 'version', not {list(by)}")
    slices = () if slices is None else ((slices,) if isinstance(slices, str) else tuple(slices))
    clash = set(slices) & {"window_start", "window_end", "model", "version", "notes", "too_small"}
    if clash or len(set(slices)) != len(slices):
        raise ValueError(f"slices must be distinct input columns other than {sorted(clash)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, not {confidence!r}")
    if isinstance(min_labelled, bool) or not isinstance(min_labelled, int) or min_labelled < 0:
        raise ValueError(f"min_labelled must be a whole number of at least 0, not {min_labelled!r}")
    if not isinstance(positive, str):
        raise ValueError(f"positive must be the positive class's label text (e.g. '1'), not {positive!r}")
    since_dt, until_dt = as_utc_naive(since, "since"), as_utc_naive(until, "until")

    groups = [*by, *(f'"{name}"' for name in slices)]
    columns = [*by, *(f"json_extract_string(p.inputs, {json_path(name, 'slices')}) AS \"{name}\"" for name in slices)]
    rows_sql, params = windowed_predictions_sql(
        ", ".join([*(f"p.{c}" if c in by else c for c in columns), "p.prediction AS p", "p.predicted_label AS pl",
                   "p.sample_rate", "p.label AS y_text"]),
        window=window_td, step=step_td, since=since_dt, until=until_dt,
        source="(SELECT pr.*, lb.label FROM predictions pr LEFT JOIN __labels lb ON pr.key = lb.key)")
    keys = ", ".join(["window_start", *groups])
    aggregate = (f"SELECT {keys}, count(*) AS n_predictions, sum(1.0 / sample_rate) AS n_estimated, "
                 f"count(y_text) AS n_labelled, {_AGGREGATES[task].format(pos=_literal(positive))} "
                 f"FROM __rows GROUP BY {keys}")
    if task != "classification":
        raw = con.execute(f"{_label_join(f', __rows AS ({rows_sql}) {aggregate}')} ORDER BY {keys}", params).df()
    else:
        raw = con.execute(_ranked_sql(rows_sql, aggregate, keys, groups, positive, hashed=bool(groups)), params).df()
        if groups and (raw["auc_partition_n"].fillna(0) != raw["scored_n"].fillna(0)).any():
            # two groups of a window hashed alike (about 2**-64 a pair) and were ranked together: rank again by them
            raw = con.execute(_ranked_sql(rows_sql, aggregate, keys, groups, positive, hashed=False), params).df()
    return _finish(raw, task, window_td, by, slices, confidence, min_labelled)


def _ranked_sql(rows_sql: str, aggregate: str, keys: str, groups: list[str], positive: str, *, hashed: bool) -> str:
    """The classification query: the aggregates of each window and group, and ROC-AUC's rank sum of the positives.

    ROC-AUC comes from the average ranks of the scores (ties share their mean rank; Mann-Whitney U). One sort
    per (window, group) partition gives both ends of a score's tie group: ``rank()`` is 1 + the rows below it,
    ``count(*)`` over the default RANGE frame the rows at or below it; their mean is the average rank, summed
    over the positives as integers (exact). The partitions are keyed by the window's start and, when
    ``hashed``, one hash of the group columns: fixed-width keys sort several times faster than the text
    columns themselves (measured at 10 M rows), and only they, the label and the score go through the sort.
    The scored rows of each partition (``auc_partition_n``) are checked against its group's (``scored_n``),
    so a hash collision (two groups in one partition) is caught.
    """
    if hashed:  # the partitions carry the window's start and the hash, nothing else, through the sort
        select, part = f"hash({', '.join(groups)}) AS __g", ["window_start", "__g"]
        on = f"a.window_start = r.window_start AND hash({', '.join(f'a.{c}' for c in groups)}) = r.__g"
    else:
        select, part = ", ".join(groups), ["window_start", *groups]
        on = " AND ".join(f"a.{c} IS NOT DISTINCT FROM r.{c}" for c in part)
    part_sql = ", ".join(part)
    return _label_join(
        f", __rows AS MATERIALIZED ({rows_sql}), __agg AS ({aggregate}), "
        f"__scored AS (SELECT window_start{', ' + select if select else ''}, y_text = {_literal(positive)} AS y, p "
        f"FROM __rows WHERE {_SCORED}), "
        f"__ranked AS (SELECT {part_sql}, y, rank() OVER __w AS below, count(*) OVER __w AS upto FROM __scored "
        f"WINDOW __w AS (PARTITION BY {part_sql} ORDER BY p)), "
        f"__ranks AS (SELECT {part_sql}, sum(below + upto) FILTER (y) / 2.0 AS rank_sum_pos, count(*) FILTER (y) "
        f"AS auc_pos, count(*) FILTER (NOT y) AS auc_neg, count(*) AS auc_partition_n FROM __ranked "
        f"GROUP BY {part_sql}) "
        f"SELECT a.*, r.rank_sum_pos, r.auc_pos, r.auc_neg, r.auc_partition_n "
        f"FROM __agg a LEFT JOIN __ranks r ON {on} ORDER BY {keys}")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_CLIPPED = f"greatest(least(p, {1 - LOG_LOSS_CLIP}), {LOG_LOSS_CLIP})"
_SCORED = "y_text IS NOT NULL AND p IS NOT NULL AND NOT isnan(p)"
_Y = "(y_text = {pos})::INTEGER"
_LOSS = f"-({_Y} * ln({_CLIPPED}) + (1 - {_Y}) * ln(1 - {_CLIPPED}))"
_AGGREGATES = {
    "classification": (
        "avg(p) AS mean_prediction, stddev_samp(p) AS mean_prediction_sd, count(p) AS mean_prediction_n, "
        f"avg({_LOSS}) FILTER ({_SCORED}) AS log_loss, stddev_samp({_LOSS}) FILTER ({_SCORED}) AS log_loss_sd, "
        f"avg(power(p - {_Y}, 2)) FILTER ({_SCORED}) AS brier, "
        f"stddev_samp(power(p - {_Y}, 2)) FILTER ({_SCORED}) AS brier_sd, count(*) FILTER ({_SCORED}) AS scored_n, "
        "count(*) FILTER (y_text IS NOT NULL AND pl IS NOT NULL) AS accuracy_n, "
        "count(*) FILTER (y_text IS NOT NULL AND pl IS NOT NULL AND pl = y_text) AS accuracy_k, "
        "count(*) FILTER (y_text IS NOT NULL AND pl = {pos}) AS precision_n, "
        "count(*) FILTER (y_text = {pos} AND pl = {pos}) AS precision_k, "
        "count(*) FILTER (y_text = {pos} AND pl IS NOT NULL) AS recall_n, "
        "count(*) FILTER (y_text = {pos} AND pl = {pos}) AS recall_k, "
        "count(y_text) AS positive_rate_n, count(*) FILTER (y_text = {pos}) AS positive_rate_k"),
    "regression": (
        "avg(p) AS mean_prediction, stddev_samp(p) AS mean_prediction_sd, count(p) AS mean_prediction_n, "
        "count(*) FILTER (y_text IS NOT NULL AND try_cast(y_text AS DOUBLE) IS NULL) AS unparsed_labels, "
        "avg(power(p - try_cast(y_text AS DOUBLE), 2)) AS mse, stddev_samp(power(p - try_cast(y_text AS DOUBLE), 2)) "
        "AS mse_sd, avg(abs(p - try_cast(y_text AS DOUBLE))) AS mae, "
        "stddev_samp(abs(p - try_cast(y_text AS DOUBLE))) AS mae_sd, avg(p - try_cast(y_text AS DOUBLE)) AS bias, "
        "stddev_samp(p - try_cast(y_text AS DOUBLE)) AS bias_sd, count(p - try_cast(y_text AS DOUBLE)) AS error_n"),
    "multiclass": (
        "count(*) FILTER (y_text IS NOT NULL AND pl IS NOT NULL) AS accuracy_n, "
        "count(*) FILTER (y_text IS NOT NULL AND pl IS NOT NULL AND pl = y_text) AS accuracy_k"),
}


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``k / n`` (NaN where ``n == 0``)."""
    k, n = np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = k / n
        centre = (share + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def hanley_mcneil_se(auc: np.ndarray, n_pos: np.ndarray, n_neg: np.ndarray) -> np.ndarray:
    """Standard error of a ROC-AUC (Hanley & McNeil 1982, exponential approximation of Q1, Q2)."""
    a = np.asarray(auc, dtype=np.float64)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    with np.errstate(divide="ignore", invalid="ignore"):
        variance = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return np.sqrt(np.maximum(variance, 0.0))


def _finish(raw: pd.DataFrame, task: str, window: timedelta, by: tuple[str, ...], slices: tuple[str, ...],
            confidence: float, min_labelled: int) -> pd.DataFrame:
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    out = raw[["window_start", *by, *slices]].copy()
    out.insert(1, "window_end", out["window_start"] + pd.Timedelta(window))
    for name in ("n_predictions", "n_labelled"):
        out[name] = raw[name].astype(np.int64)
    out["n_estimated"] = raw["n_estimated"].astype(np.float64)
    out["label_coverage"] = (out["n_labelled"] / out["n_predictions"]).astype(np.float64)
    out["too_small"] = out["n_labelled"] < min_labelled
    notes: list[list[str]] = [[] for _ in range(len(raw))]

    def mean_metric(name: str, value: str, sd: str, n: str, transform=None) -> None:
        count = raw[n].fillna(0).to_numpy(dtype=np.float64)
        mean = raw[value].to_numpy(dtype=np.float64, na_value=np.nan)
        half = z * raw[sd].to_numpy(dtype=np.float64, na_value=np.nan) / np.sqrt(np.where(count > 0, count, np.nan))
        low, high = mean - half, mean + half
        if transform is not None:
            mean, low, high = transform(mean), transform(np.maximum(low, 0)), transform(high)
        _put(out, name, mean, low, high, count)

    def share_metric(name: str) -> None:
        k, n = raw[f"{name}_k"].fillna(0).to_numpy(np.float64), raw[f"{name}_n"].fillna(0).to_numpy(np.float64)
        low, high = wilson_interval(k, n, z)
        with np.errstate(divide="ignore", invalid="ignore"):
            _put(out, name, np.where(n > 0, k / n, np.nan), low, high, n)

    if task == "classification":
        pos, neg = raw["auc_pos"].fillna(0).to_numpy(np.float64), raw["auc_neg"].fillna(0).to_numpy(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (raw["rank_sum_pos"].to_numpy(np.float64, na_value=np.nan) - pos * (pos + 1) / 2) / (pos * neg)
        auc = np.where((pos > 0) & (neg > 0), auc, np.nan)
        se = hanley_mcneil_se(auc, pos, neg)
        _put(out, "roc_auc", auc, np.clip(auc - z * se, 0, 1), np.clip(auc + z * se, 0, 1), pos + neg)
        for i in np.flatnonzero((pos + neg > 0) & ((pos == 0) | (neg == 0))):
            notes[i].append(f"roc_auc: the {int(pos[i] + neg[i])} labelled rows hold one class only "
                            f"({int(pos[i])} positive, {int(neg[i])} negative)")
        for name in ("accuracy", "precision", "recall"):
            share_metric(name)
        mean_metric("log_loss", "log_loss", "log_loss_sd", "scored_n")
        mean_metric("brier", "brier", "brier_sd", "scored_n")
        share_metric("positive_rate")
        mean_metric("mean_prediction", "mean_prediction", "mean_prediction_sd", "mean_prediction_n")
        for i in np.flatnonzero((out["n_labelled"] > 0).to_numpy() & (raw["precision_n"].fillna(0) == 0).to_numpy()):
            notes[i].append("precision: no labelled row was predicted positive")
    elif task == "regression":
        mean_metric("rmse", "mse", "mse_sd", "error_n", transform=np.sqrt)
        mean_metric("mae", "mae", "mae_sd", "error_n")
        mean_metric("bias", "bias", "bias_sd", "error_n")
        mean_metric("mean_prediction", "mean_prediction", "mean_prediction_sd", "mean_prediction_n")
        for i in np.flatnonzero(raw["unparsed_labels"].fillna(0).to_numpy() > 0):
            notes[i].append(f"{int(raw['unparsed_labels'].iloc[i])} labels are not numbers and are left out")
    else:
        share_metric("accuracy")
    for i in np.flatnonzero(out["n_labelled"].to_numpy() == 0):
        notes[i].insert(0, "no labelled rows (yet)")
    out["notes"] = ["; ".join(n) for n in notes]
    return out.reset_index(drop=True)


def _put(out: pd.DataFrame, name: str, value, low, high, count) -> None:
    value = np.asarray(value, dtype=np.float64)
    missing = ~np.isfinite(value)
    out[name] = value
    out[f"{name}_low"] = np.where(missing, np.nan, low)
    out[f"{name}_high"] = np.where(missing, np.nan, high)
    out[f"{name}_n"] = np.asarray(count, dtype=np.float64).astype(np.int64)

