"""Heuristic Benchmark (pattern 28): try the simple rules, keep the best on the validation split.

Problem: which simple rule is hardest to beat depends on the data (the global rate
ranks nothing, a lookup table may be too thin, yesterday's value may be all there
is to know), and choosing it on the test split would flatter it.

Solution: :func:`select_heuristic` fits every applicable rule of
:mod:`mlpatterns.responsible.heuristic_rules` (and the lookup table,
:class:`~mlpatterns.responsible.HeuristicBenchmark`) on the train split, scores the
valid and test splits, keeps the best by the task's primary metric **on the valid
split**, and describes each rule in words. For a 0/1 target it also measures the
decision the rule supports: the share of positives caught when the rows it scores
highest are flagged at an alert rate (:func:`share_caught`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.metrics import (
    HEADLINE_METRICS,
    METRICS,
    evaluate,
    evaluate_multiclass,
    evaluate_multilabel,
)

__all__ = ["HEURISTICS", "HeuristicPlan", "default_margin", "select_heuristic", "share_caught"]

#: the rules, simplest first (a tie on the valid split goes to the earlier one)
HEURISTICS = ("global", "lookup", "previous_period", "threshold")


@dataclass(frozen=True)
class HeuristicPlan:
    """What to try and how to judge it.

    Parameters
    ----------
    task : {"classification", "regression", "multiclass", "multilabel"}
    target : str
        The target's name, for the descriptions.
    heuristics : tuple of str, optional
        Rules to try, among :data:`HEURISTICS`; ``None``: every one that applies.
    levels : list of list of str, optional
        The lookup's segments, finest first (also the previous period's).
    min_count : int
        Fewest training rows a segment (or a side of the cut) needs.
    statistic : {"mean", "median"}
        Regression only; a rate is always a mean.
    threshold_columns : list of str
        Numeric columns the single cut may use.
    time_column : str, optional
        The time column of a time split: the previous period's rule needs it.
    period : {"day", "week", "month"}, float or None
        The previous period (:class:`~mlpatterns.responsible.heuristic_rules.PreviousPeriodHeuristic`).
    metric : str, optional
        The primary metric; ``None``: the task's headline metric (ROC AUC, RMSE, log loss, macro ROC AUC).
    labels : list of str, optional
        Class names (multiclass) or label names (multilabel).
    units : str, optional
        Regression: the target's units ("lb"); classification: what a positive is ("late flights").
    margin : float or str, optional
        The improvement a model must show in the primary metric: a number, or ``"N%"`` of the
        heuristic's value; ``None``: :func:`default_margin`.
    alert_rate : float, optional
        Classification: the share of rows flagged; ``None``: the train split's positive rate.
    alert_threshold : float, optional
        Classification, instead of ``alert_rate``: the heuristic flags rows scoring at least this.
    """

    task: str
    target: str = "the target"
    heuristics: tuple[str, ...] | None = None
    levels: list[list[str]] | None = None
    min_count: int = 20
    statistic: str = "mean"
    threshold_columns: list[str] = field(default_factory=list)
    time_column: str | None = None
    period: str | float | None = None
    metric: str | None = None
    labels: list[str] | None = None
    units: str | None = None
    margin: float | str | None = None
    alert_rate: float | None = None
    alert_threshold: float | None = None


def default_margin(metric: str, heuristic_value: float) -> tuple[float, str]:
    """The margin a model must beat the heuristic by when none is stated, and the rule in words.

    0.01 for a score between 0 and 1 that grows with quality (ROC AUC, accuracy, F1), 1 % of
    the heuristic's value for an error (RMSE, MAE, log loss, Brier, Hamming loss).

    >>> default_margin("roc_auc", 0.7), default_margin("rmse", 1.25)
    ((0.01, '0.01 roc_auc'), (0.0125, "1% of the heuristic's rmse"))
    """
    if METRICS[metric].direction == "maximize":
        return 0.01, f"0.01 {metric}"
    return 0.01 * abs(heuristic_value), f"1% of the heuristic's {metric}"


def share_caught(y: np.ndarray, scores: np.ndarray, alert_rate: float) -> float:
    """Share of the positives among the ``alert_rate`` share of rows that score highest.

    Rows tied at the cut-off score are flagged in part (the expected share under a random
    order among them), so a rule with few distinct scores is not favoured or penalised
    by how ties happen to be broken.

    >>> share_caught(np.array([1, 0, 1, 0]), np.array([0.9, 0.5, 0.5, 0.1]), 0.5)
    0.75
    """
    y = np.asarray(y, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    positives = y.sum()
    if positives == 0 or len(y) == 0:
        return float("nan")
    flagged = alert_rate * len(y)
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], y[order]
    if flagged <= 0:
        return 0.0
    cut = ranked[min(int(np.ceil(flagged)) - 1, len(y) - 1)]
    above = ranked > cut
    tied = ranked == cut
    caught = truth[above].sum() + truth[tied].sum() * (flagged - above.sum()) / tied.sum()
    return float(caught / positives)


def _metrics(plan: HeuristicPlan, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if plan.task == "multilabel":
        return evaluate_multilabel(y, scores, plan.labels or [str(j) for j in range(y.shape[1])])
    if plan.task == "multiclass":
        return evaluate_multiclass(y, scores, plan.labels or [str(j) for j in range(scores.shape[1])])
    return evaluate("classification" if plan.task == "classification" else "regression", y, scores)


def _columns_of(plan: HeuristicPlan, y: np.ndarray, width: int) -> list[np.ndarray]:
    """The 1-D targets each rule is fitted on: one, a 0/1 column per class, or each label."""
    if plan.task == "multilabel":
        return [y[:, j].astype(np.float64) for j in range(width)]
    if plan.task == "multiclass":
        return [(y == j).astype(np.float64) for j in range(width)]
    return [np.asarray(y, dtype=np.float64)]


def _width(plan: HeuristicPlan, y_train: np.ndarray) -> int:
    if plan.task == "multilabel":
        return int(y_train.shape[1])
    if plan.task == "multiclass":
        return len(plan.labels) if plan.labels else int(np.max(y_train)) + 1
    return 1


def _combine(plan: HeuristicPlan, columns: list[np.ndarray]) -> np.ndarray:
    if plan.task == "multilabel":
        return np.column_stack(columns)
    if plan.task == "multiclass":  # each class's share, normalised to sum to 1
        proba = np.clip(np.column_stack(columns), 0, None)
        return proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)
    return columns[0]


def applicable(plan: HeuristicPlan) -> dict[str, str | None]:
    """Each rule and why it does not apply (``None`` where it does)."""
    binary_or_regression = plan.task in ("classification", "regression")
    return {
        "global": None,
        "lookup": None if plan.levels else "no segment levels",
        "previous_period": None if plan.time_column else "the split is not by time (split.by: time)",
        "threshold": (None if plan.threshold_columns and binary_or_regression else
                      "no numeric feature" if binary_or_regression else f"not for a {plan.task} target"),
    }


def select_heuristic(plan: HeuristicPlan, parts: dict[str, pd.DataFrame],
                     targets: dict[str, np.ndarray]) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit each rule on the train split, score valid and test, keep the best on valid.

    Parameters
    ----------
    plan : HeuristicPlan
    parts : dict
        ``"train"``, ``"valid"``, ``"test"``: the raw rows (every column the rules read).
    targets : dict
        The same splits' targets as numbers (0/1, a class index, or a 0/1 matrix).

    Returns
    -------
    test_metrics : dict
        The chosen rule's test metrics, as :mod:`mlpatterns.metrics` computes a model's.
    report : dict
        JSON-able: every rule tried with its description and valid and test metrics,
        the one chosen and why, the skipped ones and why, the metric, margin, units and
        (classification) the decision measured at the alert rate.
    """
    from mlpatterns.responsible.heuristic_fitting import fit_rule

    reasons = applicable(plan)
    wanted = plan.heuristics or tuple(name for name in HEURISTICS if reasons[name] is None)
    unknown = [name for name in wanted if name not in reasons]
    if unknown:
        raise ValueError(f"heuristics: unknown rule(s) {unknown}; expected some of {list(HEURISTICS)}")
    refused = {name: reasons[name] for name in wanted if reasons[name] is not None}
    if refused:
        raise ValueError("heuristics: " + "; ".join(f"{name!r} does not apply: {why}"
                                                    for name, why in refused.items()))
    metric = plan.metric or HEADLINE_METRICS[plan.task]
    higher = METRICS[metric].direction == "maximize"
    statistic = plan.statistic if plan.task == "regression" else "mean"
    tried: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[str, np.ndarray]] = {}
    width = _width(plan, targets["train"])
    columns = {split: _columns_of(plan, targets[split], width) for split in ("train", "valid")}
    for name in wanted:
        per_column = [fit_rule(name, plan, statistic, parts, {split: columns[split][j] for split in columns})
                      for j in range(width)]
        scores[name] = {split: _combine(plan, [c[0][split] for c in per_column]) for split in ("valid", "test")}
        tried[name] = {"description": per_column[0][1] if len(per_column) == 1 else
                       f"{per_column[0][1]} (one such rule per class or label)",
                       **{split: _metrics(plan, targets[split], scores[name][split]) for split in ("valid", "test")}}
    valid = {name: tried[name]["valid"].get(metric, float("nan")) for name in wanted}
    ranked = [name for name in wanted if np.isfinite(valid[name])]
    if not ranked:
        raise ValueError(f"no heuristic has a finite valid {metric}; the valid split may hold one class only")
    chosen = (max if higher else min)(ranked, key=lambda n: (valid[n], -wanted.index(n)) if higher
                                      else (valid[n], wanted.index(n)))
    others = ", ".join(f"{n} {valid[n]:.4g}" for n in wanted if n != chosen)
    heuristic_value = tried[chosen]["test"][metric]
    margin, margin_rule = _margin(plan, metric, heuristic_value)
    report: dict[str, Any] = {
        "task": plan.task, "target": plan.target, "metric": metric,
        "metric_direction": METRICS[metric].direction, "heuristics": tried, "chosen": chosen,
        "why": f"the best valid {metric}: {chosen} {valid[chosen]:.4g}" + (f" (others: {others})" if others else ""),
        "description": tried[chosen]["description"], "skipped": {n: why for n, why in reasons.items()
                                                                 if why is not None and n not in wanted},
        "units": plan.units or ("target units" if plan.task == "regression" else "positives"),
        "margin": margin, "margin_rule": margin_rule,
    }
    test_metrics = dict(tried[chosen]["test"])  # a model's metrics' shape: the share caught is in the report
    if plan.task == "classification":
        report["decision"] = _decision(plan, targets, scores, chosen)
        for name in wanted:
            tried[name]["test"]["share_caught"] = share_caught(targets["test"], scores[name]["test"],
                                                               report["decision"]["alert_rate"])
    return test_metrics, report


def _margin(plan: HeuristicPlan, metric: str, heuristic_value: float) -> tuple[float, str]:
    if plan.margin is None:
        return default_margin(metric, heuristic_value)
    if isinstance(plan.margin, str):
        share = float(plan.margin.rstrip("%")) / 100
        return share * abs(heuristic_value), f"{plan.margin} of the heuristic's {metric}"
    return float(plan.margin), f"{plan.margin} {metric} (baseline.margin)"


def _decision(plan: HeuristicPlan, targets: dict[str, np.ndarray], scores: dict[str, dict[str, np.ndarray]],
              chosen: str) -> dict[str, Any]:
    y_test, test_scores = targets["test"], scores[chosen]["test"]
    if plan.alert_threshold is not None:
        rate = float(np.mean(test_scores >= plan.alert_threshold))
        source = f"the test rows the heuristic scores at least {plan.alert_threshold} (baseline.decision.threshold)"
    elif plan.alert_rate is not None:
        rate, source = float(plan.alert_rate), "baseline.decision.alert_rate"
    else:
        rate = float(np.mean(targets["train"]))
        source = "the train split's positive rate (flag as many rows as are usually positive)"
    return {"alert_rate": rate, "alert_rate_from": source, "test_rows": int(len(y_test)),
            "test_positives": int(np.sum(y_test)), "heuristic_share_caught": share_caught(y_test, test_scores, rate)}
