"""Evaluating the models of ``mlpatterns run``: the Heuristic Benchmark (28), and the check that the served
bundle computes what training computed (no training-serving skew). Each model's own test metrics are
:func:`mlpatterns.spec.models.evaluate_model`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.metrics import evaluate, evaluate_multiclass, evaluate_multilabel
from mlpatterns.reproducibility.transform import TransformedFeatures
from mlpatterns.spec import Spec

__all__ = ["UNKNOWN_SCALE_ROOM", "check_skew", "heuristic_benchmark"]


def heuristic_benchmark(spec: Spec, parts: dict[str, pd.DataFrame], data: dict[str, Any],
                        input_columns: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """Heuristic Benchmark (28): historical rates or means by the declared levels.

    Returns the heuristic's test metrics and a report of the heuristics tried."""
    from mlpatterns.responsible.heuristic_benchmark import HeuristicBenchmark

    levels = spec.baseline.get("levels") or [[c] for c in list(spec.features["categorical"])[:1]] or None
    columns = sorted({c for level in (levels or []) for c in level}) or input_columns
    (_, y_train), (_, y_test) = data["train"], data["test"]

    def predict(y: np.ndarray) -> np.ndarray:
        # a class's share is a mean of 0/1; a median of 0/1 would be no probability
        statistic = spec.baseline.get("statistic", "mean") if spec.task == "regression" else "mean"
        baseline = HeuristicBenchmark(levels=levels, min_count=spec.baseline.get("min_count", 20),
                                      statistic=statistic)
        return baseline.fit(parts["train"][columns], y).predict(parts["test"][columns])

    if spec.task == "multilabel":
        proba = np.column_stack([predict(y_train[:, j]) for j in range(y_train.shape[1])])
        return evaluate_multilabel(y_test, proba, spec.target["columns"]), {"chosen": "lookup"}
    if spec.task == "multiclass":  # each class's historical share by segment
        classes = spec.target["classes"]
        proba = np.column_stack([predict((y_train == j).astype(np.float64)) for j in range(len(classes))])
        proba = np.clip(proba, 0, None)
        proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)
        return evaluate_multiclass(y_test, proba, classes), {"chosen": "lookup"}
    return evaluate(spec.task, y_test, predict(y_train)), {"chosen": "lookup"}


UNKNOWN_SCALE_ROOM = 16.0  # x the outputs' size, when the size of the numbers inside the model is not known


def check_skew(serving: Any, served_file: Path, training_features: TransformedFeatures,
               training_scores: np.ndarray, scale: np.ndarray | None = None) -> dict[str, float]:
    """Score the written test file as batch serving reads it; compare with training.

    The rows go through the file (Parquet), the reader of :mod:`mlpatterns.tables`, the
    serving function's type conversion and the bundle's transform and ONNX model, so
    any difference between the training path and the serving path shows up here.
    """
    from mlpatterns.tables import iter_frames

    _, frames = iter_frames(served_file, chunk_rows=1 << 30)
    rows = pd.concat(list(frames), ignore_index=True)
    rows, problems = serving.conform(rows)
    if problems:
        raise RuntimeError(f"training-serving skew: the bundle '{serving.name}' rejects {len(problems)} "
                           f"test value(s), e.g. {problems[0]}")
    served = serving.features(rows)
    identical = bool(np.array_equal(served.numeric, training_features.numeric)
                     and np.array_equal(served.categorical, training_features.categorical))
    if not identical:
        raise RuntimeError(f"training-serving skew: the bundle '{serving.name}' computes different features")
    served_scores = serving.predict_features(served)
    from mlpatterns.tolerance import ExportMismatchError, compare_outputs

    if scale is None:
        # a composite graph or a network: the export check verified it at the scale of the numbers inside it;
        # here the outputs' own size with room for the rounding carried through the graph
        scale = UNKNOWN_SCALE_ROOM * np.abs(np.asarray(training_scores, dtype=np.float64)).reshape(
            len(training_scores), -1).max(axis=0, keepdims=True)
    try:  # float32 rounding at the scale of the numbers each score is computed from, no more
        compare_outputs(served_scores, training_scores, scale, what=f"the bundle '{serving.name}', on the test file,")
    except ExportMismatchError as error:
        raise RuntimeError(f"training-serving skew: {error}") from None
    return {"features_identical": 1.0, "max_score_difference": float(np.max(np.abs(served_scores - training_scores)))}



