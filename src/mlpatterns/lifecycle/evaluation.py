"""Evaluating the models of ``mlpatterns run``: the Heuristic Benchmark (28), and the check that the served
bundle computes what training computed (no training-serving skew). Each model's own test metrics are
:func:`mlpatterns.spec.models.evaluate_model`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.transform import TransformedFeatures
from mlpatterns.spec import Spec

__all__ = ["UNKNOWN_SCALE_ROOM", "check_skew", "compare_with_benchmark", "heuristic_benchmark"]


def heuristic_benchmark(spec: Spec, parts: dict[str, pd.DataFrame], data: dict[str, Any],
                        input_columns: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """Heuristic Benchmark (28): the simple rules of the ``baseline:`` section, the best chosen on valid.

    Returns the chosen rule's test metrics (the shape of a model's) and the report of every rule tried
    (:func:`mlpatterns.responsible.heuristic_selection.select_heuristic`)."""
    from mlpatterns.responsible.heuristic_selection import HeuristicPlan, select_heuristic
    from mlpatterns.spec import SpecError
    from mlpatterns.spec.heuristic_benchmark import check_baseline

    baseline = spec.baseline
    check_baseline(baseline, spec.task, spec.split)
    levels = baseline.get("levels") or [[c] for c in list(spec.features.get("categorical", []))[:1]] \
        or [list(input_columns)]
    train = parts["train"]
    threshold_columns = baseline.get("threshold_columns") or [
        c for c in dict.fromkeys([*spec.features.get("numeric", []), *spec.features.get("bucketize", {})])
        if c in train.columns and pd.api.types.is_numeric_dtype(train[c]) and not pd.api.types.is_bool_dtype(train[c])]
    for column in baseline.get("threshold_columns", []):
        if column not in train.columns or not pd.api.types.is_numeric_dtype(train[column]):
            raise SpecError(f"baseline.threshold_columns: expected numeric columns, got {column!r}")
    decision = baseline.get("decision", {})
    plan = HeuristicPlan(
        task=spec.task, target=", ".join(spec.label_columns), heuristics=tuple(baseline.get("heuristics", ())) or None,
        levels=levels, min_count=baseline.get("min_count", 20), statistic=baseline.get("statistic", "mean"),
        threshold_columns=threshold_columns,
        time_column=spec.split["column"] if spec.split.get("by") == "time" else None,
        period=baseline.get("period"), metric=baseline.get("metric"),
        labels=spec.target.get("classes") if spec.task == "multiclass" else spec.target.get("columns"),
        units=baseline.get("units"), margin=baseline.get("margin"), alert_rate=decision.get("alert_rate"),
        alert_threshold=decision.get("threshold"))
    try:
        return select_heuristic(plan, parts, {split: data[split][1] for split in ("train", "valid", "test")})
    except ValueError as error:
        if str(error).startswith("heuristics:"):
            raise SpecError(f"baseline.{error}") from None
        raise


def compare_with_benchmark(spec: Spec, model_metrics: dict[str, float], benchmark_report: dict[str, Any],
                           test_output: np.ndarray | None = None, y_test: np.ndarray | None = None,
                           name: str = "the model") -> dict[str, Any]:
    """Heuristic Benchmark (28): a model's gain over the heuristic chosen on valid, in the problem's units.

    ``benchmark_report`` is the benchmark step's report; ``test_output`` and ``y_test`` (the model's test
    scores and the test target) let a classifier's gain be counted as the share of positives caught at the
    heuristic's alert rate. Returns ``gain``, ``margin``, ``beats_margin``, the gain in units and a one-line
    ``message`` (:func:`mlpatterns.responsible.heuristic_comparison.compare_with_heuristic`)."""
    from mlpatterns.responsible.heuristic_comparison import compare_with_heuristic

    return compare_with_heuristic(benchmark_report, model_metrics, test_output=test_output, y_test=y_test,
                                  name=name)


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



