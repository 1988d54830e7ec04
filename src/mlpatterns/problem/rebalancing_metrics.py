"""Rebalancing (pattern 10): metrics for a rare class, where accuracy says nothing.

:func:`imbalance_report` gathers PR-AUC, ROC-AUC, precision, recall and F1 at a
threshold, and recall at a fixed precision. :func:`recall_at_precision_scorer` lets
scikit-learn's ``TunedThresholdClassifierCV`` move the threshold to the most recall
reachable at a precision of at least ``min_precision``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    make_scorer,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

__all__ = ["imbalance_report", "recall_at_precision", "recall_at_precision_scorer"]


def _check_min_precision(min_precision):
    if not 0 < min_precision <= 1:
        raise ValueError(f"min_precision must lie in (0, 1], got {min_precision!r}")


def recall_at_precision(y_true, scores, min_precision=0.5):
    """The highest recall over all thresholds at which precision is at least ``min_precision``.

    ``y_true`` is binary (1 or True for the positive class); ``scores`` rank the
    positive class. Returns 0.0 where no threshold reaches the precision.

    Examples
    --------
    >>> recall_at_precision([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], min_precision=1.0)
    0.5
    """
    _check_min_precision(min_precision)
    precision, recall, _ = precision_recall_curve(np.asarray(y_true), np.asarray(scores))
    reached = recall[precision >= min_precision]
    return float(reached.max()) if len(reached) else 0.0


def _constrained_recall(y_true, y_pred, min_precision, pos_label):
    precision = precision_score(y_true, y_pred, pos_label=pos_label, zero_division=0)
    recall = recall_score(y_true, y_pred, pos_label=pos_label, zero_division=0)
    # below the precision floor, rank thresholds by how close they come to it
    return recall if precision >= min_precision else precision - min_precision


def recall_at_precision_scorer(min_precision=0.5, pos_label=1):
    """A scorer of predicted labels: recall if precision is at least ``min_precision``.

    Meant for ``TunedThresholdClassifierCV(scoring=...)``: the tuned threshold is then
    the one that gives the most recall while precision stays at or above the floor.
    Below the floor the score is negative (the precision shortfall), so the search still
    moves towards it.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.model_selection import TunedThresholdClassifierCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(800, 2))
    >>> y = (X[:, 0] + rng.normal(size=800) > 2).astype(int)
    >>> tuned = TunedThresholdClassifierCV(LogisticRegression(), cv=3,
    ...     scoring=recall_at_precision_scorer(0.4)).fit(X, y)
    >>> bool(tuned.best_threshold_ < 0.5)
    True
    """
    _check_min_precision(min_precision)
    return make_scorer(_constrained_recall, min_precision=min_precision, pos_label=pos_label)


def imbalance_report(y_true, scores, threshold=0.5, min_precision=0.5):
    """Precision-recall metrics of a positive-class score, with accuracy only for contrast.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Binary labels, 1 (or True) for the rare, positive class.
    scores : array-like of shape (n_samples,)
        A score that ranks the positive class: a probability or a decision function.
    threshold : float, default=0.5
        Scores at or above it are predicted positive, for precision, recall, F1 and
        accuracy.
    min_precision : float, default=0.5
        The precision floor of ``recall_at_precision``.

    Returns
    -------
    dict
        ``positive_rate``, ``pr_auc`` (average precision), ``roc_auc``, ``precision``,
        ``recall``, ``f1``, ``accuracy`` and ``recall_at_precision``.

    Examples
    --------
    >>> report = imbalance_report([0, 0, 0, 1], [0.1, 0.2, 0.7, 0.8])
    >>> report["accuracy"], report["precision"], report["recall"], report["pr_auc"]
    (0.75, 0.5, 1.0, 1.0)
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if len(y_true) != len(scores):
        raise ValueError(f"y_true and scores must have the same length, got {len(y_true)} "
                         f"and {len(scores)}")
    if set(np.unique(y_true)) != {0, 1}:
        raise ValueError("y_true must hold both classes, 0 and 1 (1 for the positive class)")
    predicted = (scores >= threshold).astype(int)
    precision = precision_score(y_true, predicted, zero_division=0)
    recall = recall_score(y_true, predicted, zero_division=0)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {
        "positive_rate": float(y_true.mean()),
        "pr_auc": float(average_precision_score(y_true, scores)),
        "roc_auc": float(roc_auc_score(y_true, scores)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float(np.mean(predicted == y_true)),
        "recall_at_precision": recall_at_precision(y_true, scores, min_precision),
    }
