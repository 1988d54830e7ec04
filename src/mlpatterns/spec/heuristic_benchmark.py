"""The spec's ``baseline:`` section: the Heuristic Benchmark (28) a run's models are compared with.

``heuristics`` are the simple rules tried (``global``, ``lookup``, ``previous_period``,
``threshold``; default: every one that applies), the best kept on the valid split by
``metric``; ``levels`` the lookup's segments, finest first; ``min_count`` the fewest
training rows a segment (or a side of the threshold's cut) needs; ``statistic`` mean or
median (regression); ``threshold_columns`` the numeric columns the single cut may use;
``period`` the previous period (a time split); ``units`` the target's units or what a
positive is; ``margin`` the gain a model must show; ``decision`` the alert rate at which
a classifier's catch is counted.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.spec._checks import SpecError, expect, mapping, positive_int, string_list

__all__ = ["BASELINE_FIELDS", "check_baseline", "parse_baseline"]

BASELINE_FIELDS = ("levels", "min_count", "statistic", "heuristics", "metric", "threshold_columns", "period",
                   "units", "margin", "decision")
_HEURISTICS = ("global", "lookup", "previous_period", "threshold")  # as mlpatterns.responsible.heuristic_selection
_PERIODS = ("day", "week", "month")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _margin(value: Any) -> float | str:
    where = "baseline.margin"
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1])
        except ValueError:
            share = -1.0
        expect(share >= 0, where, f"expected a number >= 0 or a share of the heuristic's value such as '1%', "
               f"got {value!r}")
        return f"{share:g}%"
    expect(_number(value) and value >= 0, where, f"expected a number >= 0 (in the primary metric) or a share of "
           f"the heuristic's value such as '1%', got {value!r}")
    return float(value)


def _decision(value: Any) -> dict[str, float]:
    decision = mapping(value, "baseline.decision", ("alert_rate", "threshold"))
    expect(len(decision) == 1, "baseline.decision",
           "expected one of 'alert_rate' (the share of rows flagged) or 'threshold' (the heuristic's score from "
           f"which a row is flagged), got {sorted(decision)}")
    (field, number), = decision.items()
    if field == "alert_rate":
        expect(_number(number) and 0 < number < 1, "baseline.decision.alert_rate",
               f"expected a share of rows between 0 and 1, got {number!r}")
    else:
        expect(_number(number), "baseline.decision.threshold", f"expected a number, got {number!r}")
    return {field: float(number)}


def parse_baseline(raw: Any, *, task: str | None = None, split: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the ``baseline:`` section; every mistake names its field.

    With ``task`` and ``split`` (the parsed target's task and split section) it also
    checks the fields against them (:func:`check_baseline`).
    """
    baseline = mapping(raw or {}, "baseline", BASELINE_FIELDS)
    if "min_count" in baseline:
        positive_int(baseline["min_count"], "baseline.min_count")
    expect(baseline.get("statistic", "mean") in ("mean", "median"), "baseline.statistic",
           f"expected 'mean' or 'median', got {baseline.get('statistic')!r}")
    if "levels" in baseline:
        expect(isinstance(baseline["levels"], list), "baseline.levels", "expected a list of column lists")
        baseline["levels"] = [string_list(level, f"baseline.levels[{i}]") for i, level in enumerate(baseline["levels"])]
    if "heuristics" in baseline:
        names = baseline["heuristics"]
        names = [names] if isinstance(names, str) else names
        expect(isinstance(names, list) and names and all(isinstance(n, str) for n in names), "baseline.heuristics",
               f"expected a list of some of {list(_HEURISTICS)}, got {baseline['heuristics']!r}")
        unknown = [n for n in names if n not in _HEURISTICS]
        expect(not unknown, "baseline.heuristics",
               f"unknown heuristic(s) {unknown}; expected some of {list(_HEURISTICS)}")
        expect(len(set(names)) == len(names), "baseline.heuristics", f"a heuristic is named twice in {names}")
        baseline["heuristics"] = list(names)
    if "metric" in baseline:
        from mlpatterns.metrics import METRICS

        expect(baseline["metric"] in METRICS, "baseline.metric",
               f"expected one of {list(METRICS)}, got {baseline['metric']!r}")
    if "threshold_columns" in baseline:
        baseline["threshold_columns"] = string_list(baseline["threshold_columns"], "baseline.threshold_columns")
        expect(bool(baseline["threshold_columns"]), "baseline.threshold_columns", "expected at least one column")
    if "period" in baseline:
        period = baseline["period"]
        expect(period in _PERIODS or (_number(period) and period > 0), "baseline.period",
               f"expected one of {list(_PERIODS)} or a positive span (days for a time column, the column's units "
               f"for a numeric one), got {period!r}")
    if "units" in baseline:
        expect(isinstance(baseline["units"], str) and baseline["units"].strip() != "", "baseline.units",
               f"expected a word or two such as 'lb', 'minutes' or 'late flights', got {baseline['units']!r}")
    if "margin" in baseline:
        baseline["margin"] = _margin(baseline["margin"])
    if "decision" in baseline:
        baseline["decision"] = _decision(baseline["decision"])
    if task is not None and split is not None:
        check_baseline(baseline, task, split)
    return baseline


def check_baseline(baseline: dict[str, Any], task: str, split: dict[str, Any]) -> None:
    """Check a parsed ``baseline:`` section against the target's task and the split."""
    if "metric" in baseline:  # imports numpy: only when a metric is named, so loading a spec stays light
        from mlpatterns.metrics import TASK_METRICS

        expect(baseline["metric"] in TASK_METRICS[task], "baseline.metric",
               f"a {task} target is scored by one of {list(TASK_METRICS[task])}, got {baseline['metric']!r}")
    by_time = split.get("by") == "time"
    if "previous_period" in baseline.get("heuristics", []):
        expect(by_time, "baseline.heuristics", "'previous_period' needs a time split (split.by: time)")
    if "period" in baseline and not by_time:
        raise SpecError("baseline.period: the previous period's heuristic needs a time split (split.by: time)")
    if "threshold" in baseline.get("heuristics", []) or "threshold_columns" in baseline:
        where = "baseline.heuristics" if "threshold" in baseline.get("heuristics", []) else "baseline.threshold_columns"
        expect(task in ("classification", "regression"), where,
               f"the single threshold applies to a classification or regression target, not {task}")
    if "decision" in baseline:
        expect(task == "classification", "baseline.decision",
               f"an alert rate applies to a binary classification target, not {task}")
