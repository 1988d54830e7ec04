"""The spec's ``monitoring:`` section (Continued Model Evaluation, 18): what the monitor watches and when it alerts.

A deployed model decays as the world drifts away from its training data. This section
says where its predictions are logged, how to cut time into windows, which metric and
drift thresholds raise an alert, where alerts go, and whether an alert retrains the
pipeline on the newest data and promotes the result only if it beats the champion::

    monitoring:
      log: logs/predictions            # the prediction log: a folder (Parquet), sqlite:///PATH.db, postgresql://...
      model: flights-delay             # the logged model name to watch; default: register.name, else the spec's name
      window: 1d                       # the evaluation window (s, m, h, d, w); default 1d
      step: 1d                         # how far one window moves on; default: the window (no overlap)
      min_labelled: 200                # a window with fewer labelled predictions raises no metric alert
      confidence: 0.95                 # of the metrics' confidence intervals
      min_label_coverage: 0.5          # alert when less than half of a window's predictions have their truth
      metrics:                         # per metric: min and/or max, on the CI bound (default) or the estimate
        roc_auc: {min: 0.70}           # "bound": alert only when the whole interval lies past the limit
        log_loss: {max: 0.60, on: estimate}
        # roc_auc: 0.70                # shorthand: min for a higher-is-better metric, max for the others
      drift:                           # thresholds on drift statistics of every watched feature
        psi: 0.25
        jensen_shannon: 0.1
        ks: 0.2
        out_of_range: 0.01             # share of served values outside the training range
        unseen_categories: 0.05        # share of served values of a category never seen in training
        chi_square: 0.05               # categories: chi-square / rows (Cramer's phi squared)
        missing: 0.1                   # rise of the share of missing values over the training share
        columns: {tailnum: {psi: null}}   # per-feature overrides; null turns a check off
      features: [dep_delay, carrier]   # watch only these (default: every input the bundle serves, not its keys)
      ignore: [tailnum]                # never these
      slices: [origin]                 # evaluate per value of these input columns (each slice its own windows)
                                       # (sampling is the server's: mlpatterns serve --log-sample-rate R;
                                       # every logged row carries its rate and counts are weighted by it)
      webhook: https://hooks.example/alerts   # POSTed a JSON list of the alerts
      retrain:
        on_alert: true                 # monitor check retrains when an alert fires
        window: 30d                    # retrain on the newest 30 days of the spec's data before the holdout
        holdout: 7d                    # champion and challenger compete on the labelled predictions logged in
                                       # the last 7 days, which the challenger does not train on;
                                       # default: monitoring.window
        time_column: time_hour         # default: the time split's column
        cooldown: 7d                   # no retraining sooner than this after the last one
        promote_margin: 0.005          # the challenger must beat the champion by this on the primary metric
        metric: roc_auc                # the primary metric; default: the task's headline metric

Loading a spec checks these fields only (no pandas); the log is opened by the monitor. The drift
limits' names are the keys of :data:`mlpatterns.serving.continued_evaluation.alerts.DRIFT_LIMITS`
(a module of the standard library only, so importing it here loads no pandas).
"""

from __future__ import annotations

import re
from typing import Any

from mlpatterns.serving.continued_evaluation.alerts import DRIFT_LIMITS
from mlpatterns.spec._checks import check_plain_name, expect, mapping, positive_int, string_list

__all__ = ["MONITOR_METRICS", "TASK_METRICS", "duration_seconds", "parse_monitoring"]

# mlpatterns.metrics.METRIC_DIRECTIONS, named here so that loading a spec imports no numpy
# (tests/spec/test_monitoring_section.py holds them equal): name -> higher is better; and the monitor's
# descriptive quantities (evaluation_windows), which have no better direction (None): they take min/max
# mlpatterns.serving.continued_evaluation.evaluation_windows.WINDOW_METRICS, named here so that loading a spec
# imports no pandas (tests/spec/test_monitoring_section.py holds them equal): what evaluate_windows computes per task
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("roc_auc", "accuracy", "precision", "recall", "log_loss", "brier", "positive_rate",
                       "mean_prediction"),
    "regression": ("rmse", "mae", "bias", "mean_prediction"),
    "multiclass": ("accuracy",),
}
MONITOR_METRICS: dict[str, bool | None] = {"positive_rate": None, "mean_prediction": None, "bias": None,
                                           "roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False, "f1": True,
                   "precision": True, "recall": True, "rmse": False, "mae": False, "r2": True, "accuracy": True,
                   "macro_f1": True, "macro_roc_auc": True, "micro_f1": True, "hamming_loss": False,
                   "subset_accuracy": True, "decisive_accuracy": True}
_FIELDS = ("log", "model", "window", "step", "min_labelled", "confidence", "min_label_coverage", "metrics", "drift",
           "features", "ignore", "slices", "webhook", "retrain")
_RETRAIN = ("on_alert", "window", "holdout", "time_column", "cooldown", "promote_margin", "metric")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def duration_seconds(text: Any, where: str = "duration") -> float:
    """``"30d"`` -> 2592000.0: a number and a unit (s, m, h, d, w); a :class:`SpecError` naming ``where``."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    expect(match is not None and float(match.group(1)) > 0, where,
           f"expected a duration such as 30m, 12h, 1d or 2w (a positive whole number and one of s, m, h, d, w), got {text!r}")
    assert match is not None
    return float(match.group(1)) * _UNITS[match.group(2)]


def _number(value: Any, where: str, *, low: float = 0.0, high: float | None = None, open_low: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value > low if open_low else value >= low)
    ok = ok and (high is None or value <= high)
    bounds = f"{'above' if open_low else 'at least'} {low:g}" + ("" if high is None else f" and at most {high:g}")
    expect(ok, where, f"expected a number {bounds}, got {value!r}")
    return float(value)


def _metric_thresholds(raw: Any) -> dict[str, dict[str, Any]]:
    section = mapping(raw or {}, "monitoring.metrics", tuple(MONITOR_METRICS))
    thresholds: dict[str, dict[str, Any]] = {}
    for name, value in section.items():
        where = f"monitoring.metrics.{name}"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            expect(MONITOR_METRICS[name] is not None, where,
                   f"{name} has no better direction: give {{min: ..., max: ...}}, got {value!r}")
            value = {"min" if MONITOR_METRICS[name] else "max": value}
        rule = mapping(value, where, ("min", "max", "on"))
        expect("min" in rule or "max" in rule, where, "expected 'min' and/or 'max' (the limit(s) of the metric)")
        for side in ("min", "max"):
            if side in rule:
                expect(isinstance(rule[side], (int, float)) and not isinstance(rule[side], bool), f"{where}.{side}",
                       f"expected a number, got {rule[side]!r}")
                rule[side] = float(rule[side])
        if "min" in rule and "max" in rule:
            expect(rule["min"] <= rule["max"], where, f"expected min <= max, got {rule['min']} > {rule['max']}")
        rule.setdefault("on", "bound")
        expect(rule["on"] in ("bound", "estimate"), f"{where}.on",
               "expected 'bound' (alert when the whole confidence interval lies past the limit) or 'estimate' "
               f"(alert on the point estimate), got {rule['on']!r}")
        thresholds[name] = rule
    return thresholds


def _drift_thresholds(raw: Any) -> dict[str, Any]:
    section = mapping(raw or {}, "monitoring.drift", (*DRIFT_LIMITS, "columns"))
    drift: dict[str, Any] = {}
    for name in DRIFT_LIMITS:
        if name in section and section[name] is not None:
            drift[name] = _number(section[name], f"monitoring.drift.{name}")
    columns = mapping(section.get("columns", {}) or {}, "monitoring.drift.columns")
    drift["columns"] = {}
    for column, values in columns.items():
        values = mapping(values, f"monitoring.drift.columns.{column}", tuple(DRIFT_LIMITS))
        drift["columns"][column] = {name: None if value is None else _number(value, f"monitoring.drift.columns."
                                                                                    f"{column}.{name}")
                                    for name, value in values.items()}
    return drift


def _retrain(raw: Any) -> dict[str, Any]:
    if raw is True:
        raw = {"on_alert": True}
    section = mapping(raw or {}, "monitoring.retrain", _RETRAIN)
    section.setdefault("on_alert", False)
    expect(isinstance(section["on_alert"], bool), "monitoring.retrain.on_alert", "expected true or false")
    for name in ("window", "holdout", "cooldown"):
        if name in section:
            duration_seconds(section[name], f"monitoring.retrain.{name}")
    if "time_column" in section:
        expect(isinstance(section["time_column"], str) and section["time_column"] != "",
               "monitoring.retrain.time_column", f"expected a column name, got {section['time_column']!r}")
    section["promote_margin"] = _number(section.get("promote_margin", 0.0), "monitoring.retrain.promote_margin")
    if "metric" in section:
        expect(section["metric"] in MONITOR_METRICS, "monitoring.retrain.metric",
               f"expected one of {sorted(MONITOR_METRICS)}, got {section['metric']!r}")
    return section


def parse_monitoring(raw: Any, spec_name: str, register: dict[str, Any] | None = None,
                     split: dict[str, Any] | None = None, task: str | None = None) -> dict[str, Any]:
    """``monitoring:``: the log, the windows, the alert thresholds and the retraining trigger (defaults filled).

    With ``task``, a metric threshold the monitor does not compute for that task (``roc_auc`` of a
    regression) is refused here rather than found missing by ``mlpatterns monitor check``."""
    section = mapping(raw, "monitoring", _FIELDS)
    expect("log" in section, "monitoring", "missing field 'log' (where the predictions are logged: a folder, "
           "sqlite:///PATH.db or postgresql://...)")
    expect(isinstance(section["log"], str) and section["log"].strip() != "", "monitoring.log",
           f"expected a folder or a URL (sqlite:///PATH.db, postgresql://...), got {section['log']!r}")
    section.setdefault("model", (register or {}).get("name", spec_name))
    check_plain_name(section["model"], "monitoring.model")
    section.setdefault("window", "1d")
    duration_seconds(section["window"], "monitoring.window")
    section.setdefault("step", section["window"])
    duration_seconds(section["step"], "monitoring.step")
    positive_int(section.setdefault("min_labelled", 100), "monitoring.min_labelled")
    section["confidence"] = _number(section.get("confidence", 0.95), "monitoring.confidence", high=1, open_low=True)
    expect(section["confidence"] < 1, "monitoring.confidence", "expected a number below 1 (e.g. 0.95)")
    if section.get("min_label_coverage") is not None:
        section["min_label_coverage"] = _number(section["min_label_coverage"], "monitoring.min_label_coverage",
                                                high=1)
    section["metrics"] = _metric_thresholds(section.get("metrics"))
    if task is not None:
        computed = TASK_METRICS.get(task, ())
        for name in section["metrics"]:
            expect(name in computed, f"monitoring.metrics.{name}",
                   f"the monitor computes {list(computed)} for a {task} model" if computed else
                   f"the monitor computes no metric for a {task} model (its drift is watched)")
    section["drift"] = _drift_thresholds(section.get("drift"))
    for name in ("features", "ignore", "slices"):
        section[name] = string_list(section.get(name, []) or [], f"monitoring.{name}")
    both = sorted(set(section["features"]) & set(section["ignore"]))
    expect(not both, "monitoring.ignore", f"{both} are also in monitoring.features: watch or ignore a feature")
    if section.get("webhook") is not None:
        hook = section["webhook"]
        expect(isinstance(hook, str) and hook.startswith(("http://", "https://")), "monitoring.webhook",
               f"expected an http:// or https:// URL, got {hook!r}")
    retrain = _retrain(section.get("retrain"))
    if retrain["on_alert"] or "window" in retrain:
        retrain.setdefault("window", "30d")
        retrain.setdefault("holdout", section["window"])
        time_split = (split or {}).get("by") == "time"
        if "time_column" not in retrain:
            expect(time_split, "monitoring.retrain.time_column",
                   "retraining on the newest window needs the data's time column: name it here, or split the "
                   "data by time (split: {by: time, column: ...})")
            retrain["time_column"] = split["column"]  # type: ignore[index]
    section["retrain"] = retrain
    return section
