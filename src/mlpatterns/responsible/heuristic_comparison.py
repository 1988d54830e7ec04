"""Heuristic Benchmark (pattern 28): a model's gain over the chosen heuristic, in the problem's own units.

Problem: "ROC AUC 0.726 against 0.691" does not tell an operations manager what the
model buys; a model that barely beats the rule may not be worth its upkeep.

Solution: :func:`compare_with_heuristic` states the gain as the people who use the
predictions count it (regression: how much closer each prediction is, in pounds or
minutes; classification: how many more of the positives, say late flights, are caught
when as many rows are flagged as the heuristic's alert rate allows) and flags a model
whose gain in the primary metric is not above the stated margin.

Examples
--------
>>> report = {"task": "regression", "metric": "rmse", "metric_direction": "minimize", "chosen": "lookup",
...           "description": "mean weight", "units": "lb", "margin": 0.0127,
...           "heuristics": {"lookup": {"test": {"rmse": 1.27, "mae": 1.02}}}}
>>> result = compare_with_heuristic(report, {"rmse": 1.04, "mae": 0.81}, name="gbm")
>>> result["beats_margin"], round(result["mae_gain"], 2)
(True, 0.21)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpatterns.responsible.heuristic_selection import share_caught

__all__ = ["compare_with_heuristic", "positive_scores"]


def positive_scores(test_output: np.ndarray) -> np.ndarray:
    """A binary model's score for the positive class from its test output.

    One column (or a flat array) is the positive probability; three columns are a
    neutral class's P(negative), P(neutral), P(positive) (pattern 9), scored as
    P(positive | decisive); two columns are P(negative), P(positive).
    """
    output = np.asarray(test_output, dtype=np.float64)
    if output.ndim == 1 or output.shape[1] == 1:
        return output.reshape(len(output))
    if output.shape[1] == 3:
        return output[:, 2] / np.maximum(output[:, 0] + output[:, 2], 1e-12)
    return output[:, -1]


def compare_with_heuristic(report: dict[str, Any], model_metrics: dict[str, float],
                           test_output: np.ndarray | None = None, y_test: np.ndarray | None = None,
                           name: str = "the model") -> dict[str, Any]:
    """The model's gain over the heuristic chosen in ``report``, and whether it beats the margin.

    Parameters
    ----------
    report : dict
        :func:`~mlpatterns.responsible.heuristic_selection.select_heuristic`'s report.
    model_metrics : dict
        The model's test metrics (the same metrics as the heuristic's).
    test_output, y_test : numpy.ndarray, optional
        Classification: the model's test scores and the 0/1 test target, to count the
        positives it catches at the heuristic's alert rate. Without them the gain is
        stated in the metric alone.
    name : str
        The model's name, for the message.

    Returns
    -------
    dict
        ``metric``, ``model``, ``heuristic`` (the two values), ``gain`` (positive when the
        model is better), ``margin``, ``beats_margin``, ``units``, the gain in units
        (regression: ``mae_gain``, ``rmse_gain``; classification: ``alert_rate``,
        ``model_share_caught``, ``heuristic_share_caught``, ``extra_caught_per_1000_positives``)
        and ``message``, one line in plain words.
    """
    metric, chosen, units = report["metric"], report["chosen"], report["units"]
    heuristic_metrics = report["heuristics"][chosen]["test"]
    heuristic = float(heuristic_metrics[metric])
    higher = report["metric_direction"] == "maximize"
    result: dict[str, Any] = {"heuristic_name": chosen, "metric": metric, "heuristic": heuristic,
                              "margin": float(report["margin"]), "units": units}
    if metric not in model_metrics or not np.isfinite(model_metrics[metric]):
        result.update(model=None, gain=None, beats_margin=False,
                      message=f"{name}: no test {metric} to compare with the heuristic '{chosen}'")
        return result
    model = float(model_metrics[metric])
    gain = model - heuristic if higher else heuristic - model
    beats = bool(gain > result["margin"])
    result.update(model=model, gain=gain, beats_margin=beats)
    verdict = (f"beats the heuristic by more than the margin ({result['margin']:.4g})" if beats else
               f"does NOT beat the heuristic by the margin ({result['margin']:.4g}): the simple rule may do")
    metric_words = f"{metric} {model:.4g} vs {heuristic:.4g}"
    if report["task"] == "regression":
        result["rmse_gain"] = heuristic_metrics["rmse"] - model_metrics.get("rmse", np.nan)
        result["mae_gain"] = heuristic_metrics["mae"] - model_metrics.get("mae", np.nan)
        closer = result["mae_gain"]
        in_units = f" {units}" if metric in ("rmse", "mae") else ""
        words = f"{abs(closer):.3g} {units} {'closer' if closer >= 0 else 'further'} per prediction on average"
        model_mae = model_metrics.get("mae", np.nan)
        result["message"] = (f"{name}: {words} than the heuristic '{chosen}' (MAE {model_mae:.4g}"
                             f" vs {heuristic_metrics['mae']:.4g} {units}; {metric_words}{in_units}); {verdict}")
        return result
    decision = report.get("decision")
    if report["task"] == "classification" and decision and test_output is not None and y_test is not None:
        rate = decision["alert_rate"]
        caught = share_caught(np.asarray(y_test, dtype=np.float64), positive_scores(test_output), rate)
        result.update(alert_rate=rate, model_share_caught=caught,
                      heuristic_share_caught=decision["heuristic_share_caught"],
                      extra_caught_per_1000_positives=1000 * (caught - decision["heuristic_share_caught"]))
        result["message"] = (f"{name}: flagging the {rate:.1%} of rows it scores highest catches {caught:.1%} of "
                             f"{units}, the heuristic '{chosen}' {decision['heuristic_share_caught']:.1%} "
                             f"({100 * (caught - decision['heuristic_share_caught']):+.1f} points; {metric_words}); "
                             f"{verdict}")
        return result
    result["message"] = f"{name}: {metric_words} for the heuristic '{chosen}' ({gain:+.4g}); {verdict}"
    return result

