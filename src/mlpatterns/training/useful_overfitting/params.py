"""The parameters of an :class:`~mlpatterns.training.useful_overfitting.OverfitEmulator`, checked.

The checks need neither scikit-learn nor torch, so a spec that declares an emulator
(``type: emulator``) checks its ``params`` with them when it loads, and the emulator
with the same function when it is fitted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

__all__ = ["ACTIVATIONS", "LOSSES", "SOLVERS", "check_emulator_params"]

ACTIVATIONS = ("tanh", "relu", "silu")  # the layers of useful_overfitting.network.ACTIVATION_LAYERS
SOLVERS = ("lbfgs", "adam")
LOSSES = ("adaptive", "squared_error")


def _whole(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _positive_or_none(value: Any, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, Real)
                              or not math.isfinite(value) or value <= 0):
        raise ValueError(f"{name} must be a positive number or None, got {value!r}")


def check_emulator_params(params: Mapping[str, Any], n_features: int) -> dict[int, float]:
    """Check the emulator parameters present in ``params``; return the periods by column index.

    A parameter left out keeps the emulator's default, which is valid. Raises
    ``ValueError`` naming the parameter.

    >>> check_emulator_params({"hidden": [16, 16], "periods": {1: 365}}, n_features=2)
    {1: 365.0}
    >>> check_emulator_params({"activation": "sigmoid"}, n_features=1)
    Traceback (most recent call last):
    ...
    ValueError: activation must be one of ['relu', 'silu', 'tanh'], got 'sigmoid'
    """
    _positive_or_none(params.get("tol"), "tol")
    if "hidden" in params:
        hidden = params["hidden"]
        for width in hidden if isinstance(hidden, (tuple, list)) else [hidden]:
            _whole(width, "hidden widths")
    for name, allowed in (("activation", ACTIVATIONS), ("solver", SOLVERS), ("loss", LOSSES)):
        if name in params and params[name] not in allowed:
            raise ValueError(f"{name} must be one of {sorted(allowed)}, got {params[name]!r}")
    for name in ("max_steps", "check_every"):
        if name in params:
            _whole(params[name], name)
    if params.get("batch_size") is not None:
        _whole(params["batch_size"], "batch_size")
    _positive_or_none(params.get("learning_rate"), "learning_rate")
    if params.get("random_state") is not None:
        _whole(params["random_state"], "random_state", minimum=0)
    periods = params.get("periods")
    periods = {} if periods is None else periods
    if not isinstance(periods, Mapping):
        raise ValueError(f"periods must be a dict {{column index: period}}, got {params.get('periods')!r}")
    checked = {}
    for column, period in periods.items():
        if isinstance(column, bool) or not isinstance(column, Integral) or not 0 <= column < n_features:
            raise ValueError(f"periods: column {column!r} is not an index below n_features={n_features}")
        if isinstance(period, bool) or not isinstance(period, Real) or not math.isfinite(period) or period <= 0:
            raise ValueError(f"periods: the period of column {column} must be a positive number, got {period!r}")
        checked[int(column)] = float(period)
    return checked
