"""Heuristic Benchmark (pattern 28): fit one simple rule on the train split and say what it does in words.

:func:`fit_rule` is the step of :func:`~mlpatterns.responsible.heuristic_selection.select_heuristic`
that turns a rule's name into a fitted estimator, its scores on the valid and test splits,
and a sentence a person can check ("the share of late flights on each side of one cut of
sched_dep_time at 1529.5: 0.213 above, 0.109 at or below").

The global, lookup and threshold rules are fitted on the train split only. The previous
period's rule is what one would run in production: it scores the valid split from the
last period of the train split, and the test split from the last period before the test
split begins (the end of the valid split, whose outcomes are known by then).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["fit_rule"]


def _what(plan: Any, statistic: str) -> str:
    if plan.task == "regression":
        return f"{statistic} {plan.target}"
    return f"share of {plan.units or 'positives'}" if plan.task == "classification" else "share"


def _value(plan: Any, value: float) -> str:
    unit = f" {plan.units}" if plan.task == "regression" and plan.units else ""
    return f"{value:.4g}{unit}"


def fit_rule(name: str, plan: Any, statistic: str, parts: dict[str, pd.DataFrame],
             y: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    """Fit the rule ``name`` and score the valid and test splits.

    Parameters
    ----------
    name : {"global", "lookup", "previous_period", "threshold"}
    plan : HeuristicPlan
        Levels, minimum count, threshold columns, time column and period.
    statistic : {"mean", "median"}
    parts : dict
        ``"train"``, ``"valid"``, ``"test"`` raw rows.
    y : dict
        ``"train"`` and ``"valid"`` 1-D targets.

    Returns
    -------
    scores : dict
        ``"valid"`` and ``"test"`` predictions.
    description : str
        What the rule does, with its fitted numbers.
    """
    what = _what(plan, statistic)
    if name == "global":
        from sklearn.dummy import DummyRegressor

        rule = DummyRegressor(strategy=statistic).fit(np.zeros((len(y["train"]), 1)), y["train"])
        value = float(rule.constant_.ravel()[0])
        scores = {split: np.full(len(parts[split]), value) for split in ("valid", "test")}
        return scores, f"the {what} in the training rows, {_value(plan, value)}, for every row"
    if name == "lookup":
        from mlpatterns.responsible.heuristic_benchmark import HeuristicBenchmark

        columns = sorted({c for level in plan.levels for c in level})
        rule = HeuristicBenchmark(levels=plan.levels, min_count=plan.min_count, statistic=statistic)
        rule.fit(parts["train"][columns], y["train"])
        scores = {split: rule.predict(parts[split][columns]) for split in ("valid", "test")}
        shares = ", ".join(f"{share:.0%}" for share in rule.level_share_)
        return scores, (f"the {what} per segment of the training rows by {_levels(plan.levels)}, then overall, "
                        f"where a segment has fewer than {plan.min_count} rows (training rows answered at each "
                        f"level: {shares})")
    if name == "threshold":
        from mlpatterns.responsible.heuristic_rules import ThresholdHeuristic

        columns = list(plan.threshold_columns)
        rule = ThresholdHeuristic(statistic=statistic, min_count=plan.min_count)
        rule.fit(parts["train"][columns].astype(np.float64), y["train"])
        scores = {split: rule.predict(parts[split][columns].astype(np.float64)) for split in ("valid", "test")}
        if not np.isfinite(rule.threshold_):
            return scores, f"the {what} in the training rows, {_value(plan, rule.below_)}: no cut helps"
        return scores, (f"the {what} on each side of one cut of {rule.feature_} at {rule.threshold_:.6g} "
                        f"(found on the training rows among {', '.join(columns)}): {_value(plan, rule.above_)} "
                        f"above, {_value(plan, rule.below_)} at or below")
    if name == "previous_period":
        return _previous_period(plan, statistic, what, parts, y)
    raise ValueError(f"unknown heuristic {name!r}")


def _levels(levels: list[list[str]]) -> str:
    return ", then ".join(" x ".join(level) for level in levels)


def _previous_period(plan: Any, statistic: str, what: str, parts: dict[str, pd.DataFrame],
                     y: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], str]:
    from mlpatterns.responsible.heuristic_rules import PreviousPeriodHeuristic

    # a segment is keyed by the other columns: the time column places rows in the period, it is no segment
    levels = [kept for level in (plan.levels or []) if (kept := [c for c in level if c != plan.time_column])] or None
    columns = [plan.time_column, *sorted({c for level in (levels or []) for c in level} - {plan.time_column})]

    def fitted(history: pd.DataFrame, target: np.ndarray) -> PreviousPeriodHeuristic:
        rule = PreviousPeriodHeuristic(time_column=plan.time_column, period=plan.period, levels=levels,
                                       min_count=plan.min_count, statistic=statistic)
        return rule.fit(history[columns], target)

    for_valid = fitted(parts["train"], y["train"])
    for_test = fitted(pd.concat([parts["train"][columns], parts["valid"][columns]], ignore_index=True),
                      np.concatenate([y["train"], y["valid"]]))
    scores = {"valid": for_valid.predict(parts["valid"][columns]), "test": for_test.predict(parts["test"][columns])}
    span = {None: "the last time point (the last day, for dates)", "day": "the last day", "week": "the last 7 days",
            "month": "the last month"}.get(plan.period, f"the last {plan.period} (time units; days for dates)")
    segments = f" per segment by {_levels(levels)}, then that period's overall {what}" if levels else ""
    return scores, (f"the {what} over {span} before the scored split{segments} (for the test split: "
                    f"{for_test.period_start_} to {for_test.period_end_}, {for_test.period_rows_} rows; "
                    f"{what} there {_value(plan, for_test.lookup_.global_)})")
