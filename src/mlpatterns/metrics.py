"""Test metrics of every task, as the lifecycle, tuning and the report compute them.

Binary classification reports ranking (ROC-AUC, PR-AUC), calibration (log loss, Brier)
and, at the served threshold, precision, recall and F1; regression RMSE, MAE and R²;
multiclass accuracy, macro F1, log loss and each class's precision, recall and F1;
multilabel (6) macro ROC-AUC and, at the label thresholds, F1s and Hamming loss; a
neutral class (9) the precision of decisive predictions and the undecided share.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

__all__ = ["HEADLINE_METRICS", "METRICS", "METRIC_DIRECTIONS", "TASK_METRICS", "Metric", "evaluate",
           "evaluate_multiclass", "evaluate_multilabel", "evaluate_neutral", "higher_is_better"]


@dataclass(frozen=True)
class Metric:
    """A test metric: its name in reports, whether higher is better, and the tasks it scores."""

    name: str
    direction: str  # "maximize" or "minimize", as Optuna names them
    tasks: tuple[str, ...]


# The one list of metrics that the run reports, the CLI compares and tuning optimises. Tasks:
# classification (binary), regression, multiclass, multilabel, neutral (a neutral class, 9).
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("roc_auc", "maximize", ("classification", "neutral")),
    Metric("pr_auc", "maximize", ("classification", "neutral")),
    Metric("log_loss", "minimize", ("classification", "multiclass")),
    Metric("brier", "minimize", ("classification",)),
    Metric("f1", "maximize", ("classification",)),
    Metric("precision", "maximize", ("classification",)),
    Metric("recall", "maximize", ("classification",)),
    Metric("rmse", "minimize", ("regression",)),
    Metric("mae", "minimize", ("regression",)),
    Metric("r2", "maximize", ("regression",)),
    Metric("accuracy", "maximize", ("multiclass",)),
    Metric("macro_f1", "maximize", ("multiclass", "multilabel")),
    Metric("macro_roc_auc", "maximize", ("multiclass", "multilabel")),
    Metric("micro_f1", "maximize", ("multilabel",)),
    Metric("hamming_loss", "minimize", ("multilabel",)),
    Metric("subset_accuracy", "maximize", ("multilabel",)),
    Metric("decisive_accuracy", "maximize", ("neutral",)),
)}
METRIC_DIRECTIONS = {name: metric.direction for name, metric in METRICS.items()}
# The metric each task is judged by first: the CLI's comparison with the heuristic, tuning's default.
HEADLINE_METRICS = {"classification": "roc_auc", "regression": "rmse", "multiclass": "log_loss",
                    "multilabel": "macro_roc_auc", "neutral": "roc_auc"}
# Each task's metrics, its headline first (the order tuning.metric lists them in).
TASK_METRICS = {task: (head, *(name for name, m in METRICS.items() if task in m.tasks and name != head))
                for task, head in HEADLINE_METRICS.items()}


def higher_is_better(name: str) -> bool:
    """Whether a larger value of the metric ``name`` is better.

    >>> higher_is_better("roc_auc"), higher_is_better("rmse")
    (True, False)
    """
    return METRICS[name].direction == "maximize"


def evaluate(task: str, y: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Test metrics: ranking and calibration for classification, errors for regression.

    With a ``threshold`` (the served decision threshold), classification adds the
    precision, recall and F1 of the decisions it makes.
    """
    from sklearn import metrics

    if task == "classification":
        clipped = np.clip(scores, 1e-7, 1 - 1e-7)
        result = {
            "roc_auc": float(metrics.roc_auc_score(y, scores)),
            "pr_auc": float(metrics.average_precision_score(y, scores)),
            "log_loss": float(metrics.log_loss(y, clipped, labels=[0, 1])),
            "brier": float(metrics.brier_score_loss(y, scores)),
            "positive_rate": float(np.mean(y)),
        }
        if threshold is not None:
            decided = scores >= threshold
            result.update({
                "threshold": float(threshold),
                "precision": float(metrics.precision_score(y, decided, zero_division=0)),
                "recall": float(metrics.recall_score(y, decided, zero_division=0)),
                "f1": float(metrics.f1_score(y, decided, zero_division=0)),
            })
        return result
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y, scores))),
        "mae": float(metrics.mean_absolute_error(y, scores)),
        "r2": float(metrics.r2_score(y, scores)),
    }


def evaluate_multilabel(Y: np.ndarray, proba: np.ndarray, labels: list[str],
                        thresholds: np.ndarray | None = None) -> dict[str, float]:
    """Multilabel (6) test metrics: macro ROC-AUC; with thresholds, F1s, Hamming loss, subset accuracy."""
    from sklearn.metrics import roc_auc_score

    from mlpatterns.problem.multilabel import multilabel_report

    aucs = [roc_auc_score(Y[:, j], proba[:, j]) for j in range(Y.shape[1]) if len(np.unique(Y[:, j])) == 2]
    result = {"macro_roc_auc": float(np.mean(aucs)) if aucs else float("nan")}
    if thresholds is not None:
        report = multilabel_report(Y.astype(int), (proba >= thresholds).astype(int), labels=labels)
        result.update({k: report[k] for k in ("macro_f1", "micro_f1", "hamming_loss", "subset_accuracy")})
        result.update({f"f1_{name}": values["f1"] for name, values in report["labels"].items()})
    return result


def evaluate_multiclass(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Multiclass test metrics: accuracy, macro F1, log loss, and each class's precision, recall and F1.

    A class without test rows gets no recall or F1, and a class never predicted no
    precision: those would be 0 by convention, not measurements.

    >>> import numpy as np
    >>> result = evaluate_multiclass(np.array([0, 1, 1]), np.array([[.9, .1, 0], [.2, .8, 0], [.1, .9, 0]]),
    ...                              ["a", "b", "rare"])
    >>> result["macro_f1"], "f1_rare" in result, result["share_rare"]
    (1.0, False, 0.0)
    """
    from sklearn import metrics

    y = y.astype(np.int64)
    labels = np.arange(len(classes))
    decided = np.argmax(proba, axis=1)
    clipped = np.clip(proba, 1e-7, 1)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    result = {
        "accuracy": float(metrics.accuracy_score(y, decided)),
        # over the classes that occur in the truth or the decisions (scikit-learn's default): a class with
        # no test row and never predicted says nothing of the model
        "macro_f1": float(metrics.f1_score(y, decided, average="macro", zero_division=0)),
        "log_loss": float(metrics.log_loss(y, clipped, labels=labels)),
    }
    present = np.unique(y)
    if len(present) > 1:  # one-vs-rest ROC-AUC over the classes the test rows hold
        with contextlib.suppress(ValueError):  # a class whose test rows are all of one kind
            result["macro_roc_auc"] = float(metrics.roc_auc_score(
                y, clipped[:, present] / clipped[:, present].sum(axis=1, keepdims=True), multi_class="ovr",
                labels=present))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y, decided, labels=labels, zero_division=0)
    predicted = np.bincount(decided, minlength=len(classes))
    for j, name in enumerate(classes):
        result[f"share_{name}"] = float(support[j] / max(len(y), 1))
        if predicted[j]:  # precision of the decisions for this class
            result[f"precision_{name}"] = float(precision[j])
        if support[j]:  # recall and F1 of a class the test rows hold
            result.update({f"recall_{name}": float(recall[j]), f"f1_{name}": float(f1[j])})
    return result


def evaluate_neutral(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Neutral Class (9) test metrics on the binary truth: decisive precision and the undecided share.

    ``proba`` holds P(negative), P(neutral), P(positive); the ranking metrics use
    P(positive | decisive) = P(positive) / (P(negative) + P(positive)).
    """
    from sklearn import metrics

    from mlpatterns.problem.neutral_class import decisive_report

    decided = np.array([-1, 0, 1])[np.argmax(proba, axis=1)]
    report = decisive_report(np.where(y > 0.5, 1, -1), decided)
    score = proba[:, 2] / np.maximum(proba[:, 0] + proba[:, 2], 1e-12)
    return {
        "roc_auc": float(metrics.roc_auc_score(y, score)),
        "pr_auc": float(metrics.average_precision_score(y, score)),
        "decisive_accuracy": report["accuracy"],
        "precision_positive": report["precision"].get(1, float("nan")),
        "precision_negative": report["precision"].get(-1, float("nan")),
        "undecided_share": report["undecided_share"],
        "positive_rate": float(np.mean(y)),
    }
