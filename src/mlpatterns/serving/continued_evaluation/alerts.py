"""Alerts on a deployed model's metrics, drift and label coverage (Continued Model Evaluation, 18).

Problem: a metric table per window is only useful if someone reads it; a model that decays
on a Sunday should page someone, or retrain itself, without anyone looking. Solution:
thresholds, fixed in advance on the training period, that turn the newest complete window's
evaluation and drift into :class:`Alert` objects: printed, a non-zero exit status of
``mlpatterns monitor check``, and an optional webhook (:func:`send_webhook`).

Thresholds are plain data (a spec's ``monitoring:`` section gives them, this module does not
read specs)::

    {"metrics": {"roc_auc": {"min": 0.70, "on": "bound"}, "log_loss": {"max": 0.6, "on": "estimate"}},
     "drift": {"psi": 0.25, "ks": 0.2, "missing": 0.1, "columns": {"tailnum": {"psi": None}}},
     "min_label_coverage": 0.5, "features": [], "ignore": ["tailnum"]}

A metric limit is checked on the point estimate (``on: estimate``) or, by default, on the
confidence interval's far side (``on: bound``): a ``min`` alerts only when even the upper
bound is below it, a ``max`` only when even the lower bound is above it, so that a small
window's noise raises no alert. A window with fewer labelled predictions than
``min_labelled`` (or flagged ``too_small``) raises no metric alert at all. Drift limits
are on the statistics themselves, never on p-values (with thousands of rows every p-value
is about 0); :data:`DRIFT_LIMITS` maps their names to the columns of
:func:`~mlpatterns.serving.continued_evaluation.drift.drift_windows` that they bound
(``missing`` bounds the rise of the missing share over the training share). The
predictions' own drift (role ``prediction``) is watched even when ``features`` lists inputs.

The frames read are exactly those of
:func:`~mlpatterns.serving.continued_evaluation.evaluation_windows.evaluate_windows` and
:func:`~mlpatterns.serving.continued_evaluation.drift.drift_windows`; a frame without a
column that a threshold needs is a :class:`ValueError` naming it (never a silent "no alert").
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["DRIFT_LIMITS", "MIN_DRIFT_ROWS", "Alert", "check_alerts", "send_webhook"]

#: A drift limit's name (the spec's ``monitoring.drift``) -> the ``drift_windows`` column it bounds.
DRIFT_LIMITS: Mapping[str, str] = MappingProxyType({
    "psi": "psi", "jensen_shannon": "js", "ks": "ks", "chi_square": "chi_square",
    "out_of_range": "out_of_range_share", "unseen_categories": "unseen_share", "missing": "missing_share"})
_EVALUATION = ("window_start", "window_end", "n_predictions", "n_labelled", "label_coverage", "too_small")
_DRIFT = ("window_start", "window_end", "column", "role", "n_rows", *DRIFT_LIMITS.values(), "reference_missing_share")
# PSI is biased upward by about (bins - 1) / n: with 10 bins and no shift at all, 40 rows give a median PSI near
# 0.28; 200 rows about 0.05. A window's column with fewer rows than this raises no drift alert.
MIN_DRIFT_ROWS = 200
_MAKERS = {"evaluation": "mlpatterns.serving.continued_evaluation.evaluation_windows.evaluate_windows",
           "drift": "mlpatterns.serving.continued_evaluation.drift.drift_windows"}


@dataclass(frozen=True)
class Alert:
    """One crossed threshold: ``kind`` (metric, drift, coverage), ``what`` crossed it (``roc_auc``,
    ``psi of dep_delay``), in which ``window`` (start/end, UTC) and ``version``, the ``value`` and the
    ``limit``, and a sentence that says so."""

    kind: str
    what: str
    window: str
    value: float
    limit: float
    message: str
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return self.message


def _require(frame: Any, columns: Iterable[str], kind: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"the {kind} frame has no column(s) {missing}: check_alerts reads the frame that "
                         f"{_MAKERS[kind]} returns (this one has {[str(c) for c in frame.columns]})")


def _when(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return str(value)


def _window_of(row: Mapping[str, Any]) -> str:
    return f"{_when(row['window_start'])}/{_when(row['window_end'])}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _flag(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and bool(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _stamp(value: Any) -> Any:
    import pandas as pd

    from mlpatterns.serving.continued_evaluation.evaluation_windows import as_utc_naive

    return pd.Timestamp(as_utc_naive(value, "at"))


def _newest(frame: Any, at: Any, newest_only: bool) -> Any:
    """The rows of the newest window that ended by ``at`` (all complete windows unless ``newest_only``)."""
    if len(frame) == 0:
        return frame
    ends = frame["window_end"].map(_stamp)
    if at is not None:
        frame, ends = frame[ends <= _stamp(at)], ends[ends <= _stamp(at)]
    if not newest_only or len(frame) == 0:
        return frame
    return frame[ends == ends.max()]


def _slice_label(row: Mapping[str, Any], slice_columns: Sequence[str]) -> str:
    parts = [f"{c}={row[c]}" for c in slice_columns if row[c] is not None and str(row[c]) not in ("", "nan")]
    return f" [{', '.join(parts)}]" if parts else ""


def _metric_alerts(frame: Any, rules: Mapping[str, Mapping[str, Any]], min_labelled: int,
                   slice_columns: Sequence[str]) -> list[Alert]:
    alerts: list[Alert] = []
    for row in frame.to_dict("records"):
        count = _number(row["n_labelled"])
        if _flag(row["too_small"]) or count is None or count < min_labelled:
            continue  # too few labelled predictions to read a metric
        window, version = _window_of(row), row.get("version")  # version: a column unless by=("model",)
        where = f"version {version}, " if version is not None else ""
        for metric, rule in rules.items():
            estimate = _number(row[metric])
            if estimate is None:
                continue  # the window cannot measure it (evaluate_windows' notes say why)
            for side in ("min", "max"):
                if side not in rule:
                    continue
                limit = float(rule[side])
                bound = _number(row[f"{metric}_high" if side == "min" else f"{metric}_low"]) \
                    if rule.get("on", "bound") == "bound" else None
                value = estimate if bound is None else bound
                if not (value < limit if side == "min" else value > limit):
                    continue
                read = "the estimate" if bound is None else \
                    f"its confidence interval's {'upper' if side == 'min' else 'lower'} bound"
                label = f"{metric}{_slice_label(row, slice_columns)}"
                alerts.append(Alert(
                    kind="metric", what=label, window=window, value=float(value), limit=limit, version=_text(version),
                    message=f"{label} {estimate:.4g} ({read} {value:.4g}) is "
                            f"{'below the minimum' if side == 'min' else 'above the maximum'} {limit:g} in window "
                            f"{window} ({where}{count:.0f} labelled)"))
    return alerts


def _coverage_alerts(frame: Any, minimum: float, slice_columns: Sequence[str]) -> list[Alert]:
    alerts: list[Alert] = []
    for row in frame.to_dict("records"):
        if _slice_label(row, slice_columns):
            continue  # coverage is a property of the whole window
        share = _number(row["label_coverage"])
        if share is None or share >= minimum:
            continue
        window, version = _window_of(row), _text(row.get("version"))
        alerts.append(Alert(kind="coverage", what="label coverage", window=window, value=share, limit=minimum,
                            version=version,
                            message=f"label coverage {share:.1%} ({row['n_labelled']:.0f} of "
                                    f"{row['n_predictions']:.0f} logged predictions have their truth) is below "
                                    f"{minimum:.1%} in window {window}"
                                    + (f" (version {version})" if version else "")))
    return alerts


def _drift_alerts(frame: Any, drift: Mapping[str, Any], watch: Sequence[str], ignore: Sequence[str],
                  min_rows: int) -> list[Alert]:
    alerts: list[Alert] = []
    overrides = drift.get("columns") or {}
    for row in frame.to_dict("records"):
        feature = row["column"]
        if feature in ignore or (watch and feature not in watch and row["role"] != "prediction"):
            continue
        if (_number(row["n_rows"]) or 0) < min_rows:
            continue  # too few rows: chance alone moves PSI, JS and chi-square past any limit
        per_feature = overrides.get(feature) or {}
        for statistic, column in DRIFT_LIMITS.items():
            limit = per_feature[statistic] if statistic in per_feature else drift.get(statistic)
            value = _number(row[column])
            if limit is None or value is None:
                continue
            reference = _number(row["reference_missing_share"])
            if statistic == "missing" and reference is not None:
                value -= reference  # the rise over the training share
            if value <= float(limit):
                continue
            what, window = f"{statistic} of {feature}", _window_of(row)
            alerts.append(Alert(kind="drift", what=what, window=window, value=float(value), limit=float(limit),
                                message=f"{what} {value:.4g} is above {float(limit):g} in window {window}"))
    alerts.sort(key=lambda a: a.value / a.limit if a.limit else math.inf, reverse=True)  # the worst first
    return alerts


def _check_thresholds(thresholds: Mapping[str, Any]) -> None:
    drift = thresholds.get("drift") or {}
    named = [(name, "monitoring.drift") for name in drift if name != "columns"]
    named += [(name, f"monitoring.drift.columns.{column}") for column, limits in (drift.get("columns") or {}).items()
              for name in (limits or {})]
    for name, where in named:
        if name not in DRIFT_LIMITS:
            raise ValueError(f"{where}: unknown drift statistic {name!r}; expected one of {', '.join(DRIFT_LIMITS)}")
    for metric, rule in (thresholds.get("metrics") or {}).items():
        if rule.get("on", "bound") not in ("bound", "estimate"):
            raise ValueError(f"monitoring.metrics.{metric}.on: expected 'bound' or 'estimate', got {rule['on']!r}")


def check_alerts(evaluation_frame: Any, drift_frame: Any, thresholds: Mapping[str, Any], *, min_labelled: int = 1,
                 at: Any = None, newest_only: bool = True, slice_columns: Sequence[str] = (),
                 min_drift_rows: int = MIN_DRIFT_ROWS) -> list[Alert]:
    """The alerts of the newest complete window (ended by ``at``, default: any), or of every window.

    Parameters
    ----------
    evaluation_frame : pandas.DataFrame or None
        :func:`~mlpatterns.serving.continued_evaluation.evaluation_windows.evaluate_windows`'s frame:
        ``window_start``, ``window_end``, ``n_predictions``, ``n_labelled``, ``label_coverage``,
        ``too_small``, and ``<metric>``, ``<metric>_low``, ``<metric>_high`` of every metric with a
        threshold (``version`` and the ``slice_columns`` where it has them).
    drift_frame : pandas.DataFrame or None
        :func:`~mlpatterns.serving.continued_evaluation.drift.drift_windows`'s frame: ``window_start``,
        ``window_end``, ``column``, ``role``, the columns of :data:`DRIFT_LIMITS` and
        ``reference_missing_share``.
    thresholds : mapping
        See the module's docstring (a spec's ``monitoring:`` section).
    min_labelled : int, default 1
        A window with fewer labelled predictions raises no metric alert.
    at : datetime or str, optional
        Only windows that ended by then.
    newest_only : bool, default True
        Only the newest of those windows; else every one.
    slice_columns : sequence of str
        The evaluation's slice columns (``evaluate_windows(slices=...)``).
    min_drift_rows : int, default :data:`MIN_DRIFT_ROWS`
        A window with fewer served rows raises no drift alert (drift statistics are biased upward
        in small samples).

    Returns
    -------
    list of Alert
        Metric alerts first, then coverage, then drift, worst first.

    Raises
    ------
    ValueError
        A frame lacks a column that these thresholds read (the message names it and the function
        whose frame is expected), or a threshold names an unknown drift statistic.
    """
    thresholds = dict(thresholds or {})
    _check_thresholds(thresholds)
    rules = thresholds.get("metrics") or {}
    alerts: list[Alert] = []
    if evaluation_frame is not None:
        _require(evaluation_frame, [*_EVALUATION, *slice_columns,
                                    *(f"{m}{end}" for m in rules for end in ("", "_low", "_high"))], "evaluation")
        evaluation = _newest(evaluation_frame, at, newest_only)
        alerts += _metric_alerts(evaluation, rules, min_labelled, slice_columns)
        if thresholds.get("min_label_coverage") is not None:
            alerts += _coverage_alerts(evaluation, float(thresholds["min_label_coverage"]), slice_columns)
    if drift_frame is not None:
        _require(drift_frame, _DRIFT, "drift")
        if thresholds.get("drift"):
            alerts += _drift_alerts(_newest(drift_frame, at, newest_only), thresholds["drift"],
                                    list(thresholds.get("features") or ()), list(thresholds.get("ignore") or ()),
                                    min_drift_rows)
    return alerts


def send_webhook(url: str, alerts: Sequence[Alert], *, timeout: float = 10.0,
                 context: Mapping[str, Any] | None = None) -> str | None:
    """POST the alerts as JSON to ``url``; None when the receiver answered 2xx, else what went wrong.

    The body is ``{"alerts": [Alert.to_dict(), ...], "count": n, "sent_at": ISO time, **context}``.
    Never raises for a network or HTTP error: a failing webhook must not crash the check that
    found the alerts (the caller prints the returned error).
    """
    import urllib.error
    import urllib.request

    body = json.dumps({"alerts": [a.to_dict() for a in alerts], "count": len(alerts),
                       "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **(context or {})},
                      default=str).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "mlpatterns-monitor"})
    shown = _webhook_origin(url)  # a webhook's path or user info often is its secret (Slack, Discord)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own URL
            status = response.status
    except urllib.error.HTTPError as error:
        return f"webhook {shown}: the receiver answered HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return f"webhook {shown}: not delivered ({reason})"
    return None if 200 <= status < 300 else f"webhook {shown}: the receiver answered HTTP {status}"


def _webhook_origin(url: str) -> str:
    """``scheme://host[:port]/...`` of a webhook URL: what an error may show of it."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/..."
