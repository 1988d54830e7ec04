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
is about 0): ``psi``, ``jensen_shannon``, ``ks``, ``chi_square``, the shares ``out_of_range`` and
``unseen_categories``, and ``missing``, the rise of the missing share over the training share
(:func:`~mlpatterns.serving.continued_evaluation.drift.drift_windows`'s columns, by these names).
The predictions' own drift (role ``prediction``) is watched even when ``features`` lists inputs.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DRIFT_STATISTICS", "Alert", "check_alerts", "send_webhook"]

DRIFT_STATISTICS = ("psi", "jensen_shannon", "ks", "chi_square", "out_of_range", "unseen_categories", "missing")
_DRIFT_ALIASES = {"missing_share": "missing", "js": "jensen_shannon", "ks_statistic": "ks",
                  "out_of_range_share": "out_of_range", "unseen_share": "unseen_categories",
                  "unseen_categories_share": "unseen_categories"}
_START, _END = ("window_start", "start"), ("window_end", "end")
_LABELLED = ("labelled", "n_labelled", "labeled")
_PREDICTIONS = ("predictions", "n_predictions", "rows")
_LOW, _HIGH = ("{}_low", "{}_lower", "{}_ci_low"), ("{}_high", "{}_upper", "{}_ci_high")


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


def _column(frame: Any, names: Sequence[str], metric: str | None = None) -> str | None:
    for name in names:
        name = name.format(metric) if metric is not None else name
        if name in frame.columns:
            return name
    return None


def _when(value: Any) -> str:
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return str(value)


def _window_of(row: Mapping[str, Any], start: str | None, end: str | None) -> str:
    if start and end:
        return f"{_when(row[start])}/{_when(row[end])}"
    return _when(row[start or end]) if (start or end) else "all"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _stamp(value: Any) -> Any:
    import pandas as pd

    stamp = pd.Timestamp(value)
    return stamp.tz_convert(None) if stamp.tzinfo is not None else stamp


def _newest(frame: Any, at: Any, newest_only: bool) -> Any:
    """The rows of the newest window that ended by ``at`` (all complete windows unless ``newest_only``)."""
    if frame is None or len(frame) == 0:
        return frame
    end = _column(frame, _END)
    if end is None:
        return frame
    ends = frame[end].map(_stamp)
    if at is not None:
        frame, ends = frame[ends <= _stamp(at)], ends[ends <= _stamp(at)]
    if not newest_only or len(frame) == 0:
        return frame
    return frame[ends == ends.max()]


def _slice_label(row: Mapping[str, Any], slice_columns: Sequence[str]) -> str:
    parts = [f"{c}={row[c]}" for c in slice_columns if row.get(c) is not None and str(row.get(c)) not in ("", "nan")]
    return f" [{', '.join(parts)}]" if parts else ""


def _metric_alerts(frame: Any, rules: Mapping[str, Mapping[str, Any]], min_labelled: int,
                   slice_columns: Sequence[str]) -> list[Alert]:
    alerts: list[Alert] = []
    start, end = _column(frame, _START), _column(frame, _END)
    labelled = _column(frame, _LABELLED)
    for row in frame.to_dict("records"):
        count = _number(row.get(labelled)) if labelled else None
        if _flag(row.get("too_small")) or (count is not None and count < min_labelled):
            continue  # too few labelled predictions to read a metric
        window, version = _window_of(row, start, end), row.get("version")
        where = f"version {version}, " if version is not None else ""
        for metric, rule in rules.items():
            if metric not in frame.columns:
                continue
            estimate = _number(row.get(metric))
            if estimate is None:
                continue
            on = rule.get("on", "bound")
            for side in ("min", "max"):
                if side not in rule:
                    continue
                limit = float(rule[side])
                bound_column = _column(frame, _HIGH if side == "min" else _LOW, metric)
                bound = _number(row.get(bound_column)) if on == "bound" and bound_column is not None else None
                value = estimate if bound is None else bound
                crossed = value < limit if side == "min" else value > limit
                if not crossed:
                    continue
                read = "the estimate" if bound is None else \
                    f"its confidence interval's {'upper' if side == 'min' else 'lower'} bound"
                label = f"{metric}{_slice_label(row, slice_columns)}"
                alerts.append(Alert(
                    kind="metric", what=label, window=window, value=float(value), limit=limit, version=_text(version),
                    message=f"{label} {estimate:.4g} ({read} {value:.4g}) is "
                            f"{'below the minimum' if side == 'min' else 'above the maximum'} {limit:g} in window "
                            f"{window} ({where}{'' if count is None else f'{count:.0f} labelled'})"))
    return alerts


def _flag(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and bool(value)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _drift_long(frame: Any) -> list[dict[str, Any]]:
    """Drift rows as (window, version, feature, statistic, value), from a long or a wide frame."""
    start, end = _column(frame, _START), _column(frame, _END)
    rows = []
    long = "statistic" in frame.columns and "value" in frame.columns
    for row in frame.to_dict("records"):
        base = {"window": _window_of(row, start, end), "version": _text(row.get("version")),
                "feature": row.get("feature", row.get("column")), "role": row.get("role", "input")}
        if long:
            name = _DRIFT_ALIASES.get(str(row["statistic"]), str(row["statistic"]))
            rows.append({**base, "statistic": name, "value": _number(row["value"])})
            continue
        for column in frame.columns:
            name = _DRIFT_ALIASES.get(column, column)
            if name in DRIFT_STATISTICS:
                value = _number(row[column])
                reference = _number(row.get("reference_missing_share"))
                if name == "missing" and value is not None and reference is not None:
                    value = value - reference  # the rise over the training share
                rows.append({**base, "statistic": name, "value": value})
    return rows


def _drift_alerts(frame: Any, drift: Mapping[str, Any], watch: Sequence[str], ignore: Sequence[str]) -> list[Alert]:
    alerts: list[Alert] = []
    overrides = drift.get("columns") or {}
    for row in _drift_long(frame):
        feature, statistic, value = row["feature"], row["statistic"], row["value"]
        watched = not watch or feature in watch or row["role"] == "prediction"
        if value is None or not watched or feature in ignore:
            continue
        per_feature = overrides.get(feature, {})
        limit = per_feature[statistic] if statistic in per_feature else drift.get(statistic)
        if limit is None or value <= float(limit):
            continue
        what = f"{statistic} of {feature}" if feature is not None else statistic
        where = f" (version {row['version']})" if row["version"] is not None else ""
        alerts.append(Alert(kind="drift", what=what, window=row["window"], value=float(value), limit=float(limit),
                            version=row["version"],
                            message=f"{what} {value:.4g} is above {float(limit):g} in window "
                                    f"{row['window']}{where}"))
    alerts.sort(key=lambda a: a.value / a.limit if a.limit else math.inf, reverse=True)  # the worst first
    return alerts


def _coverage_alerts(frame: Any, minimum: float, slice_columns: Sequence[str]) -> list[Alert]:
    alerts: list[Alert] = []
    start, end = _column(frame, _START), _column(frame, _END)
    labelled, predictions = _column(frame, _LABELLED), _column(frame, _PREDICTIONS)
    if labelled is None or predictions is None:
        return alerts
    for row in frame.to_dict("records"):
        if _slice_label(row, slice_columns):
            continue  # coverage is a property of the whole window
        total, count = _number(row.get(predictions)), _number(row.get(labelled))
        if not total or count is None:
            continue
        share = _number(row.get("label_coverage"))
        share, window = count / total if share is None else share, _window_of(row, start, end)
        if share < minimum:
            version = _text(row.get("version"))
            alerts.append(Alert(kind="coverage", what="label coverage", window=window, value=share, limit=minimum,
                                version=version,
                                message=f"label coverage {share:.1%} ({count:.0f} of {total:.0f} logged predictions "
                                        f"have their truth) is below {minimum:.1%} in window {window}"
                                        + (f" (version {version})" if version else "")))
    return alerts


def check_alerts(evaluation_frame: Any, drift_frame: Any, thresholds: Mapping[str, Any], *, min_labelled: int = 1,
                 at: Any = None, newest_only: bool = True, slice_columns: Sequence[str] = ()) -> list[Alert]:
    """The alerts of the newest complete window (ended by ``at``, default: any), or of every window.

    ``evaluation_frame`` is :func:`~mlpatterns.serving.continued_evaluation.evaluation_windows.
    evaluate_windows`'s frame (metrics, their ``<metric>_low``/``<metric>_high`` bounds, ``labelled``
    and ``predictions`` counts, ``too_small``); ``drift_frame`` the drift per window and feature
    (either may be None). ``thresholds``: see the module's docstring. Metric alerts come first, then
    coverage, then drift, worst first.
    """
    thresholds = dict(thresholds or {})
    alerts: list[Alert] = []
    evaluation = _newest(evaluation_frame, at, newest_only)
    if evaluation is not None and len(evaluation):
        alerts += _metric_alerts(evaluation, thresholds.get("metrics") or {}, min_labelled, slice_columns)
        if thresholds.get("min_label_coverage") is not None:
            alerts += _coverage_alerts(evaluation, float(thresholds["min_label_coverage"]), slice_columns)
    drift = _newest(drift_frame, at, newest_only)
    if drift is not None and len(drift) and thresholds.get("drift"):
        alerts += _drift_alerts(drift, thresholds["drift"], list(thresholds.get("features") or ()),
                                list(thresholds.get("ignore") or ()))
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
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the user's own URL
            status = response.status
    except urllib.error.HTTPError as error:
        return f"webhook {url}: the receiver answered HTTP {error.code} {error.reason}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return f"webhook {url}: not delivered ({reason})"
    return None if 200 <= status < 300 else f"webhook {url}: the receiver answered HTTP {status}"
