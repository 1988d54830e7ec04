"""Fairness Lens (30): the limits a model or its data must keep across sensitive slices.

A fairness check that only prints numbers is read once and forgotten; a limit that fails
the run when it is crossed is not. A threshold is named after the metric and the gap it
bounds: ``<metric>_difference`` is the largest allowed gap (largest slice value minus the
smallest) and ``<metric>_ratio`` the smallest allowed ratio (smallest over largest, the
"four-fifths rule" at 0.8). ``min_share`` bounds the smallest slice's share of the rows.
Only slices with at least ``min_rows`` rows take part in a gap, and for a rate over part of a slice
(the false negative rate counts its positives, the false positive rate its negatives) at
least ``min_rows`` rows in that part: a gap measured on a handful of rows is noise, and the
tiny slices are reported as such instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlpatterns.responsible.fairness_lens.slices import MISSING_SLICE

__all__ = ["DATA_THRESHOLDS", "MODEL_METRICS", "FairnessThresholdError", "ThresholdCrossing", "check_thresholds",
           "model_threshold_names", "raise_on_crossings"]

#: the metrics reported per slice after training, by task
MODEL_METRICS = {
    "classification": ("selection_rate", "accuracy", "error_rate", "false_positive_rate", "false_negative_rate",
                       "roc_auc"),
    "regression": ("mae", "rmse", "mean_prediction", "mean_target", "mean_error"),
}

#: the thresholds on the data before training, by task
DATA_THRESHOLDS = {
    "classification": ("label_rate_difference", "label_rate_ratio", "min_share"),
    "regression": ("target_mean_difference", "target_mean_ratio", "min_share"),
}


def model_threshold_names(task: str) -> tuple[str, ...]:
    """Every threshold a model's slices can be held to: ``<metric>_difference`` and ``<metric>_ratio``."""
    return tuple(f"{metric}_{gap}" for metric in MODEL_METRICS[task] for gap in ("difference", "ratio")
                 if not (gap == "ratio" and metric == "mean_error"))  # a ratio of signed errors means nothing


class FairnessThresholdError(ValueError):
    """A fairness threshold of the spec was crossed; the message names the metric, slices, values and limit."""

    def __init__(self, message: str, crossings: list[ThresholdCrossing]) -> None:
        super().__init__(message)
        self.crossings = crossings


@dataclass(frozen=True)
class ThresholdCrossing:
    """One threshold crossed for one sensitive column."""

    threshold: str  # e.g. false_negative_rate_difference
    column: str  # the sensitive column (or intersection, "sex & race")
    value: float  # the measured gap
    limit: float  # the spec's threshold
    slices: dict[str, float]  # the slices that make the gap and their values

    def message(self) -> str:
        kind = "at most" if not self.threshold.endswith(("_ratio", "min_share")) else "at least"
        slices = ", ".join(f"{name!r} {value:.4g}" for name, value in self.slices.items())
        return (f"{self.threshold} across {self.column!r} is {self.value:.4g} ({slices}); the spec allows "
                f"{kind} {self.limit:g}")

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "column": self.column, "value": self.value, "limit": self.limit,
                "slices": self.slices, "message": self.message()}


def _gap(slices: list[dict[str, Any]], metric: str, gap: str, min_rows: int) -> tuple[float, dict[str, float]] | None:
    """The gap over the slices that are not tiny, nor tiny in the rows the metric counts (``<metric>_rows``)."""
    values = {s["slice"]: s[metric] for s in slices if not s["tiny"] and s.get(metric) is not None
              and s.get(f"{metric}_rows", min_rows) >= min_rows}
    if len(values) < 2:
        return None
    low, high = min(values, key=values.__getitem__), max(values, key=values.__getitem__)
    if gap == "difference":
        return values[high] - values[low], {low: values[low], high: values[high]}
    if values[low] < 0:
        return None  # a ratio of signed values (mean_error) means nothing
    if values[high] == 0:
        return 1.0, {low: values[low], high: values[high]}
    return values[low] / values[high], {low: values[low], high: values[high]}


def check_thresholds(result: dict[str, Any], thresholds: dict[str, float]) -> list[ThresholdCrossing]:
    """The thresholds that ``result`` crosses.

    Parameters
    ----------
    result : dict
        A data balance or model slice result (:func:`data_balance`, :func:`model_slices`):
        ``result["columns"][column]["slices"]`` lists the slices with their metrics and
        ``tiny`` flag (and ``result["min_rows"]``: a rate over part of a slice, such as the false negative
        rate over its positives, also needs that many rows in the part).
    thresholds : dict
        Threshold name to limit: ``<metric>_difference`` (largest allowed gap),
        ``<metric>_ratio`` (smallest allowed ratio), ``min_share`` (smallest allowed share
        of rows of any slice but the missing values').

    Returns
    -------
    list of ThresholdCrossing
        Empty when every threshold holds. Tiny slices never count in a gap.
    """
    crossings = []
    for column, section in result["columns"].items():
        slices = section["slices"]
        for name, limit in thresholds.items():
            if name == "min_share":  # a share is a count: measurable for every slice, tiny ones included
                kept = [s for s in slices if s["slice"] != MISSING_SLICE]
                if kept:
                    smallest = min(kept, key=lambda s: s["share"])
                    if smallest["share"] < limit:
                        crossings.append(ThresholdCrossing(name, column, smallest["share"], limit,
                                                           {smallest["slice"]: smallest["share"]}))
                continue
            metric, _, gap = name.rpartition("_")
            measured = _gap(slices, metric, gap, result.get("min_rows", 0))
            if measured is None:
                continue
            value, ends = measured
            if (gap == "difference" and value > limit) or (gap == "ratio" and value < limit):
                crossings.append(ThresholdCrossing(name, column, float(value), float(limit), ends))
    return crossings


def raise_on_crossings(crossings: list[ThresholdCrossing], what: str) -> None:
    """Raise :class:`FairnessThresholdError` naming every crossing, if there is any."""
    if crossings:
        lines = "; ".join(c.message() for c in crossings)
        raise FairnessThresholdError(f"Fairness Lens: {what} crosses {len(crossings)} threshold(s): {lines}",
                                     crossings)
