"""Evaluating Two-Phase Predictions (19) offline: phase 1's threshold and what it costs.

The book asks to evaluate each phase and the combination. On validation rows with phase
1's scores, the coarse truth and phase 2's answers, :func:`tradeoff_curve` gives, for
each threshold, the share of phase-2 calls spared, phase 1's recall of the rows worth a
closer look and the accuracy of the combined answer; :func:`choose_threshold` picks the
threshold that spares the most calls while phase 1's recall stays at or above a target;
:func:`plot_tradeoff` draws the curve (matplotlib, imported when called).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["choose_threshold", "plot_tradeoff", "regression_tradeoff_curve", "tradeoff_curve"]


def _scores_and_truth(scores: Any, flagged: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    truth = np.asarray(flagged)
    if truth.shape != scores.shape:
        raise ValueError(f"y_coarse: expected one 0/1 value per score ({len(scores)}), got shape {truth.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores: expected finite numbers")
    if not np.isin(truth, (0, 1)).all() or not truth.any():
        raise ValueError("y_coarse: expected 0/1 values with at least one 1 (a row worth a closer look)")
    return scores, truth.astype(bool)


def choose_threshold(scores: Any, y_coarse: Any, *, min_recall: float = 0.95) -> float:
    """The highest threshold whose phase-1 recall of the rows worth a closer look is at least ``min_recall``.

    A row goes to phase 2 when its score is at or above the threshold, so the highest
    such threshold spares the most phase-2 calls for that recall. Choose it on
    validation rows, never on the test rows that report the result.
    """
    scores, truth = _scores_and_truth(scores, y_coarse)
    if not 0 < min_recall <= 1:
        raise ValueError(f"min_recall: expected a share in (0, 1], got {min_recall!r}")
    positives = np.sort(scores[truth])[::-1]
    # the k-th highest positive score keeps k positives at or above it
    needed = int(np.ceil(min_recall * len(positives) - 1e-9))
    return float(positives[max(needed, 1) - 1])


def tradeoff_curve(scores: Any, y_coarse: Any, y_true: Any, phase_two_predictions: Any, *, negative: Any,
                   thresholds: Any = None) -> pd.DataFrame:
    """Accuracy of the combined answer against the share of phase-2 calls spared, one row per threshold.

    Parameters
    ----------
    scores : array of shape (rows,)
        Phase 1's scores of validation rows.
    y_coarse : array of shape (rows,)
        1 where the row is worth a closer look (the coarse truth).
    y_true : array of shape (rows,)
        The fine truth (the answer phase 2 gives).
    phase_two_predictions : array of shape (rows,)
        Phase 2's answer for every row, as if it were called for each.
    negative : object
        The answer of the rows phase 1 does not send on.
    thresholds : array, optional
        Default: 0, the scores' percentiles in steps of 0.5, and just above the highest score.

    Returns
    -------
    DataFrame
        ``threshold``, ``calls_spared`` (share of rows not sent to phase 2),
        ``phase_one_recall`` (share of the rows worth a look that are sent),
        ``accuracy`` and ``balanced_accuracy`` (the mean of the recalls of the classes of
        ``y_true``) of the combined answer, ``agreement`` (share of rows answered as phase 2
        alone answers them) and ``phase_two_accuracy``, ``phase_two_balanced_accuracy``
        (phase 2 on every row).
    """
    scores, truth = _scores_and_truth(scores, y_coarse)
    y_true = np.asarray(y_true, dtype=object)
    answers = np.asarray(phase_two_predictions, dtype=object)
    if y_true.shape != scores.shape or answers.shape != scores.shape:
        raise ValueError(f"y_true and phase_two_predictions: expected one value per score ({len(scores)})")
    if thresholds is None:
        thresholds = _default_thresholds(scores)
    phase_two_right = answers == y_true
    negative_right = y_true == negative
    phase_two_negative = answers == negative
    classes = [y_true == c for c in pd.unique(y_true)]

    def balanced(right: np.ndarray) -> float:
        return float(np.mean([right[members].mean() for members in classes]))

    rows = []
    for t in np.asarray(thresholds, dtype=np.float64):
        sent = scores >= t
        right = np.where(sent, phase_two_right, negative_right)
        rows.append({"threshold": float(t), "calls_spared": float(1 - sent.mean()),
                     "phase_one_recall": float(sent[truth].mean()), "accuracy": float(right.mean()),
                     "balanced_accuracy": balanced(right), "agreement": float((sent | phase_two_negative).mean()),
                     "phase_two_accuracy": float(phase_two_right.mean()),
                     "phase_two_balanced_accuracy": balanced(phase_two_right)})
    return pd.DataFrame(rows)


def _default_thresholds(scores: np.ndarray) -> np.ndarray:
    return np.unique(np.concatenate([[0.0], np.percentile(scores, np.arange(0.5, 100, 0.5)),
                                     [np.nextafter(scores.max(), np.inf)]]))


def regression_tradeoff_curve(scores: Any, y_coarse: Any, y_true: Any, phase_two_predictions: Any, *,
                              negative: float, thresholds: Any = None) -> pd.DataFrame:
    """:func:`tradeoff_curve` for a phase 2 that predicts a number: the error of the combined answer.

    The rows phase 1 does not send are answered ``negative`` (e.g. the mean of the rows not
    worth a look). Columns: ``threshold``, ``calls_spared``, ``phase_one_recall``, ``mae`` and
    ``rmse`` of the combined answer, ``agreement`` (share of rows answered as phase 2 alone
    answers them) and ``phase_two_mae``, ``phase_two_rmse`` (phase 2 on every row).
    """
    scores, truth = _scores_and_truth(scores, y_coarse)
    y_true = np.asarray(y_true, dtype=np.float64)
    answers = np.asarray(phase_two_predictions, dtype=np.float64)
    if y_true.shape != scores.shape or answers.shape != scores.shape:
        raise ValueError(f"y_true and phase_two_predictions: expected one value per score ({len(scores)})")
    if isinstance(negative, bool) or not isinstance(negative, (int, float)) or not np.isfinite(negative):
        raise ValueError(f"negative: expected a finite number, got {negative!r}")
    if thresholds is None:
        thresholds = _default_thresholds(scores)
    phase_two_error, negative_error = answers - y_true, float(negative) - y_true
    same = answers == float(negative)
    rows = []
    for t in np.asarray(thresholds, dtype=np.float64):
        sent = scores >= t
        error = np.where(sent, phase_two_error, negative_error)
        rows.append({"threshold": float(t), "calls_spared": float(1 - sent.mean()),
                     "phase_one_recall": float(sent[truth].mean()), "mae": float(np.abs(error).mean()),
                     "rmse": float(np.sqrt((error ** 2).mean())), "agreement": float((sent | same).mean()),
                     "phase_two_mae": float(np.abs(phase_two_error).mean()),
                     "phase_two_rmse": float(np.sqrt((phase_two_error ** 2).mean()))})
    return pd.DataFrame(rows)


def plot_tradeoff(curve: pd.DataFrame, path: str | os.PathLike[str], *,
                  chosen: float | Mapping[str, float] | None = None,
                  title: str = "Two-phase predictions: accuracy against phase-2 calls spared") -> Path:
    """Draw :func:`tradeoff_curve`'s table (accuracy and recall against calls spared), or
    :func:`regression_tradeoff_curve`'s (errors and recall), into a PNG at ``path``.

    ``chosen``: a threshold, or labels and thresholds, marked by a vertical line each.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=110)
    ordered = curve.sort_values("calls_spared")
    spared = 100 * ordered["calls_spared"]
    lines = axis
    if "mae" in ordered.columns:  # regression_tradeoff_curve: errors on the left, recall on the right
        axis.plot(spared, ordered["mae"], label="combined MAE", color="tab:blue")
        axis.plot(spared, ordered["rmse"], label="combined RMSE", color="tab:purple")
        for column, what in (("phase_two_mae", "MAE"), ("phase_two_rmse", "RMSE")):
            axis.axhline(ordered[column].iloc[0], color="tab:gray", linestyle=":", linewidth=1)
            axis.annotate(f"phase 2 on every row: {what}", (0, ordered[column].iloc[0]), fontsize=7,
                          color="tab:gray", xytext=(2, 2), textcoords="offset points")
        axis.set_ylabel("error (target units)")
        recall_axis = axis.twinx()
        recall_axis.plot(spared, 100 * ordered["phase_one_recall"], label="phase-1 recall (rows worth a look)",
                         color="tab:orange", linestyle="--")
        recall_axis.set_ylabel("phase-1 recall (%)")
        lines = recall_axis
    else:
        axis.plot(spared, 100 * ordered["accuracy"], label="combined accuracy", color="tab:blue")
        axis.plot(spared, 100 * ordered["balanced_accuracy"], label="combined balanced accuracy",
                  color="tab:purple")
        axis.plot(spared, 100 * ordered["phase_one_recall"], label="phase-1 recall (rows worth a look)",
                  color="tab:orange", linestyle="--")
        for column, what in (("phase_two_accuracy", "accuracy"),
                             ("phase_two_balanced_accuracy", "balanced accuracy")):
            axis.axhline(100 * ordered[column].iloc[0], color="tab:gray", linestyle=":", linewidth=1)
            axis.annotate(f"phase 2 on every row: {what}", (0, 100 * ordered[column].iloc[0]), fontsize=7,
                          color="tab:gray", xytext=(2, 2), textcoords="offset points")
        axis.set_ylabel("%")
    marks = {} if chosen is None else chosen if isinstance(chosen, Mapping) else {"chosen threshold": chosen}
    for (label, threshold), color in zip(marks.items(), ["tab:green", "tab:red", "tab:brown", "tab:olive"],
                                         strict=False):
        at = curve.iloc[int(np.argmin(np.abs(curve["threshold"].to_numpy() - threshold)))]
        axis.axvline(100 * at["calls_spared"], color=color, linewidth=1, label=f"{label}: {threshold:.3f}")
    axis.set_xlabel("phase-2 calls spared (%)")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    handles = [h for a in {id(axis): axis, id(lines): lines}.values() for h in a.get_legend_handles_labels()[0]]
    if lines is axis:
        axis.legend(handles=handles, fontsize=8, loc="lower left")
    else:  # between the error curves (low) and the recall (high, then falling)
        axis.legend(handles=handles, fontsize=8, loc="lower right", bbox_to_anchor=(0.9, 0.12))
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
