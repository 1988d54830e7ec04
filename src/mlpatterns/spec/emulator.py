"""Useful Overfitting (11) from a spec: ``type: emulator`` trains an emulator on the whole enumerated grid.

Problem: a deterministic function over an enumerable input space (a physics
simulation, a closed-form formula) needs a model that reproduces it at every input,
but the spec's usual path holds rows out, stops early on them and reports errors
averaged over a test split.

Solution: the spec says ``split: none`` (train, valid and test are all the whole data
set, which is the whole grid) and a model of ``type: emulator``, whose ``params`` go
to :class:`~mlpatterns.training.useful_overfitting.OverfitEmulator`. It trains on the
transformed numeric columns until its max absolute error over the grid is at most
``tol``; the run's metrics report that max error, the mean error and whether ``tol``
was reached. The network is exported to ONNX computing in float64 (its input stays
the bundle's float32 feature matrix), so the served bundle reproduces the values the
tolerance was measured on.

Periods are declared by column name in the column's raw units (``day_of_year: 365``).
The spec's transform standardises every numeric column, ``x' = (x - mean) / std``, so
the period the network sees is ``period / std``: ``2 pi x' / (period / std)`` is
``2 pi (x - mean) / period``, which turns a full circle when ``x`` moves by ``period``.
Converting the period keeps the transform, and the served bundle, the same as for any
other model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mlpatterns.spec._checks import SpecError, expect
from mlpatterns.spec.schema import Spec

__all__ = ["EMULATOR_PARAMS", "check_emulator", "train_emulator", "transformed_periods"]

EMULATOR_PARAMS = ("tol", "hidden", "activation", "periods", "solver", "loss", "max_steps", "check_every",
                   "learning_rate", "batch_size")
_NON_NUMERIC = ("categorical", "bucketize", "crosses", "date_parts", "text")


def check_emulator(name: str, model: dict[str, Any], target: dict[str, Any], split: dict[str, Any],
                   features: dict[str, Any]) -> None:
    """Check an emulator's section against the target, split and features; raise :class:`SpecError`."""
    from mlpatterns.training.useful_overfitting.params import check_emulator_params

    where = f"models.{name}"
    expect(target["task"] == "regression", f"{where}.type",
           f"an emulator reproduces a deterministic function's value and needs a regression target, "
           f"got a {target['task']} target")
    expect(bool(split.get("none")), "split",
           f"models.{name} is an emulator (Useful Overfitting): it trains on the whole enumerated input "
           f"space; expected 'split: none'")
    declared = [group for group in _NON_NUMERIC if features.get(group)]
    expect(not declared, f"features.{declared[0]}" if declared else "features",
           f"an emulator (models.{name}) reads numeric features only, the axes of its input grid")
    params = model["params"]
    unknown = sorted(set(params) - set(EMULATOR_PARAMS))
    expect(not unknown, f"{where}.params", f"unknown parameter(s) {unknown}; expected some of {list(EMULATOR_PARAMS)}")
    periods = params.get("periods") or {}
    expect(isinstance(periods, Mapping), f"{where}.params.periods",
           f"expected a mapping of numeric feature to its period in the column's units "
           f"(e.g. {{day_of_year: 365}}), got {periods!r}")
    for column, period in periods.items():
        expect(column in features["numeric"], f"{where}.params.periods.{column}",
               f"not a numeric feature; expected one of {features['numeric']}")
        expect(isinstance(period, (int, float)) and not isinstance(period, bool) and math.isfinite(period)
               and period > 0, f"{where}.params.periods.{column}",
               f"expected a positive period in the column's units, got {period!r}")
    try:  # the emulator's own checks (periods by column name are checked above)
        check_emulator_params({k: v for k, v in params.items() if k != "periods"}, len(features["numeric"]))
    except ValueError as error:
        raise SpecError(f"{where}.params: {error}") from None


def transformed_periods(periods: Mapping[str, float], names: list[str], transform: Any) -> dict[int, float]:
    """Raw-unit periods by column name as periods of the standardised columns, by column index.

    >>> import pandas as pd
    >>> from mlpatterns.reproducibility.transform import FeatureTransform
    >>> transform = FeatureTransform(numeric=["day"]).fit(pd.DataFrame({"day": [1.0, 3.0]}))
    >>> transformed_periods({"day": 365}, ["day"], transform)  # std 1: (x - 2) / 1
    {0: 365.0}
    """
    state = transform.state_["numeric"]
    return {names.index(column): float(period) / float(state[column]["std"]) for column, period in periods.items()}


def train_emulator(name: str, model_spec: dict[str, Any], spec: Spec, data: dict[str, Any],
                   context: dict[str, Any], progress: Any, seed: int) -> Any:
    """Train ``models.<name>`` of ``type: emulator`` on the whole grid; export and describe it.

    ``data[split]`` is ``(TransformedFeatures, target)``, every split the whole grid
    (``split: none``); ``context["transform"]`` is the fitted transform, whose scales
    convert the periods. Returns a :class:`~mlpatterns.spec.models.TrainedModel`.
    """
    from mlpatterns.export.onnx_export import torch_matrix_to_onnx
    from mlpatterns.spec.models import SAMPLE_ROWS, TrainedModel
    from mlpatterns.training.useful_overfitting import OverfitEmulator

    (train, y_train), (test, y_test) = data["train"], data["test"]
    params = dict(model_spec["params"])
    raw_periods = dict(params.pop("periods", None) or {})
    periods = transformed_periods(raw_periods, list(train.numeric_names), context["transform"])
    task_id = progress.add_task(f"{name}: emulator", total=None) if progress else None
    try:
        emulator = OverfitEmulator(**params, periods=periods, random_state=seed)
        emulator.fit(np.asarray(train.numeric, dtype=np.float64), y_train)
    except (TypeError, ValueError) as error:
        raise SpecError(f"models.{name}.params: {error}") from error
    if progress is not None:
        progress.update(task_id, total=1, completed=1)
    test_output = emulator.predict(np.asarray(test.numeric, dtype=np.float64))
    error = np.abs(test_output - y_test)  # the test split is the whole grid
    metrics = {"grid_max_abs_error": float(error.max()), "grid_mean_abs_error": float(error.mean()),
               "tol": emulator.tol_, "converged": float(emulator.converged_), "steps": float(emulator.n_steps_)}
    onnx_bytes = torch_matrix_to_onnx(emulator.network_, test.numeric[:SAMPLE_ROWS], float64=True)
    info = {"type": "emulator", "framework": "torch", "estimator": "OverfitEmulator", "file": "model.onnx",
            "output": "value", "precision": "float64", "inputs": list(train.numeric_names),
            "params": {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()},
            "periods": raw_periods, "tol": emulator.tol_, "max_error": emulator.max_error_,
            "mean_error": emulator.mean_error_, "converged": emulator.converged_, "steps": emulator.n_steps_,
            "history": emulator.history_}
    valid_output = emulator.predict(np.asarray(data["valid"][0].numeric, dtype=np.float64))
    return TrainedModel(test_output, {"model.onnx": onnx_bytes}, info, {}, valid_output, metrics)
