"""The one list of metrics names what each task's evaluation really reports."""

from __future__ import annotations

import numpy as np
import pytest

from mlpatterns.metrics import (
    HEADLINE_METRICS,
    METRIC_DIRECTIONS,
    METRICS,
    TASK_METRICS,
    evaluate,
    evaluate_multiclass,
    evaluate_multilabel,
    evaluate_neutral,
    higher_is_better,
)

rng = np.random.default_rng(0)


def reported(task: str) -> dict[str, float]:
    n = 200
    if task == "classification":
        y = rng.integers(0, 2, n).astype(float)
        return evaluate(task, y, np.clip(y * 0.6 + rng.random(n) * 0.4, 0, 1), threshold=0.5)
    if task == "regression":
        y = rng.normal(size=n)
        return evaluate(task, y, y + rng.normal(size=n) * 0.1)
    if task == "multiclass":
        y = rng.integers(0, 3, n)
        proba = rng.dirichlet(np.ones(3), n)
        proba[np.arange(n), y] += 1
        return evaluate_multiclass(y.astype(float), proba / proba.sum(axis=1, keepdims=True), ["a", "b", "c"])
    if task == "multilabel":
        Y = rng.integers(0, 2, (n, 3)).astype(float)
        return evaluate_multilabel(Y, np.clip(Y * 0.6 + rng.random((n, 3)) * 0.4, 0, 1), ["a", "b", "c"],
                                   np.full(3, 0.5))
    y = rng.integers(0, 2, n).astype(float)
    return evaluate_neutral(y, rng.dirichlet(np.ones(3), n))


@pytest.mark.parametrize("task", list(TASK_METRICS))
def test_every_task_metric_is_reported_and_the_headline_comes_first(task):
    assert set(TASK_METRICS[task]) <= set(reported(task)), task
    assert TASK_METRICS[task][0] == HEADLINE_METRICS[task]


def test_directions_follow_the_metrics_meaning():
    assert set(METRIC_DIRECTIONS) == set(METRICS)
    assert [higher_is_better(m) for m in ("roc_auc", "accuracy", "r2")] == [True, True, True]
    assert [higher_is_better(m) for m in ("rmse", "log_loss", "hamming_loss", "brier")] == [False] * 4
    with pytest.raises(KeyError):
        higher_is_better("not_a_metric")
