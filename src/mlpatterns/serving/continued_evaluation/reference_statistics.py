"""The reference a bundle carries for Continued Model Evaluation (18): the statistics of the raw columns
it was trained on, and of what it served on its test split.

Problem: drift is a comparison, and comparing served data with "the training data" needs that data, or
a faithful summary of it, wherever the model is served. Solution: every bundle carries both summaries
(``statistics.json`` from the pipeline's validate step; ``prediction_statistics.json`` from its export
step); :func:`training_statistics` reads them back from a verified bundle. This module is small on
purpose: the export step's cache key hashes its code, not the drift queries'.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.data_statistics import DataStatistics

__all__ = ["prediction_statistics", "training_statistics"]


def training_statistics(bundle_path: str | Path) -> tuple[DataStatistics, DataStatistics | None]:
    """The bundle's training statistics (``statistics.json``) and its predictions' (``prediction_statistics.json``,
    None for a bundle written before it existed). The bundle is verified (sha256 of every file) as it is read."""
    from mlpatterns.bundles.format import BundleError, read_bundle

    bundle = read_bundle(bundle_path)
    name = bundle.manifest.get("statistics", "statistics.json")
    if name not in bundle.files:
        raise BundleError(f"{bundle.path}: the bundle carries no training statistics ({name}); "
                          "bundles written by `mlpatterns run` have them")
    inputs = DataStatistics.from_dict(bundle.json(name))
    name = bundle.manifest.get("prediction_statistics", "prediction_statistics.json")
    outputs = DataStatistics.from_dict(bundle.json(name)) if name in bundle.files else None
    return inputs, outputs


def prediction_statistics(task: str, output: np.ndarray, *, classes: Sequence[str] | None = None,
                          threshold: float | None = None) -> DataStatistics | None:
    """Statistics of what a bundle serves, as the prediction log holds it: ``prediction`` (P(positive) of a
    binary classifier, a regression's value) and ``predicted_label`` (label text: ``"1"``/``"0"`` at
    ``threshold``, default 0.5, or a multiclass model's class). ``output`` is the model's output on the test
    split (``predict_features``); None for outputs the log keeps no column of (multilabel)."""
    output = np.asarray(output, dtype=np.float64)
    columns: dict[str, Any] = {}
    if task in ("classification", "regression") and output.ndim == 1:
        columns["prediction"] = output
        if task == "classification":
            columns["predicted_label"] = np.where(output >= (0.5 if threshold is None else threshold), "1", "0")
    elif task == "multiclass" and output.ndim == 2 and classes is not None and len(classes) == output.shape[1]:
        columns["predicted_label"] = np.asarray([str(c) for c in classes], dtype=object)[np.argmax(output, axis=1)]
    if not columns or len(output) == 0:
        return None
    frame = pd.DataFrame({name: pd.Series(values, dtype=object if name == "predicted_label" else np.float64)
                          for name, values in columns.items()})
    return DataStatistics.from_frame(frame, categorical=[c for c in frame.columns if c == "predicted_label"])
