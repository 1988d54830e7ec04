"""Search spaces for Hyperparameter Tuning (15): integer, float and categorical parameters.

A search space maps a parameter name (any string: a scikit-learn ``get_params`` key
such as ``boosting__learning_rate``, or a spec path such as
``models.stack.members.boosting.params.learning_rate``) to a distribution. It is
declared as data, the way a spec's ``tuning.space`` declares it, and validated with
errors that name the field::

    learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
    max_leaf_nodes: {type: int, low: 15, high: 255, log: true}
    l2_regularization: {type: float, low: 0.0, high: 10.0, step: 0.5}
    hidden: {type: categorical, choices: [[64, 32], [128, 64, 32]]}
    loss: [squared_error, absolute_error]      # a list is a categorical

Optuna keeps categorical choices that are numbers, strings, booleans or null; other
choices (lists, mappings) are stored as their JSON text and decoded when suggested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CategoricalParam", "FloatParam", "IntParam", "SearchSpaceError", "decode_params", "encode_params",
           "parse_search_space", "suggest_params"]

_PLAIN = (bool, int, float, str, type(None))


class SearchSpaceError(ValueError):
    """A search space that cannot be sampled; the message names the parameter and the field."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class IntParam:
    """A whole number in ``[low, high]`` (both included), every ``step``, or log-uniform."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def bounds(self) -> list[int]:
        return [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "step": self.step, "log": self.log}


@dataclass(frozen=True)
class FloatParam:
    """A number in ``[low, high]``: uniform, log-uniform, or on a grid of ``step``."""

    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def bounds(self) -> list[float]:
        return [self.low, self.high]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "step": self.step, "log": self.log}


@dataclass(frozen=True)
class CategoricalParam:
    """One of ``choices``; choices that Optuna cannot store are kept as JSON text."""

    choices: tuple[Any, ...]

    def _stored(self) -> list[Any]:
        return [c if isinstance(c, _PLAIN) else json.dumps(c) for c in self.choices]

    def suggest(self, trial: Any, name: str) -> Any:
        stored = self._stored()
        return self.choices[stored.index(trial.suggest_categorical(name, stored))]

    def encode(self, choice: Any) -> Any:
        """The stored form of ``choice`` (for ``study.enqueue_trial``)."""
        return self._stored()[self.choices.index(choice)]

    def decode(self, stored: Any) -> Any:
        """The choice whose stored form is ``stored`` (as in ``study.best_params``)."""
        return self.choices[self._stored().index(stored)]

    def bounds(self) -> list[Any]:
        return list(self.choices)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "choices": list(self.choices)}


Param = IntParam | FloatParam | CategoricalParam


def _parse_param(raw: Any, where: str) -> Param:
    def expect(condition: bool, field: str, message: str) -> None:
        if not condition:
            raise SearchSpaceError(f"{where}{'.' + field if field else ''}: {message}")

    if isinstance(raw, (list, tuple)):
        raw = {"type": "categorical", "choices": list(raw)}
    expect(isinstance(raw, Mapping), "", "expected {type: int|float|categorical, ...} or a list of choices, "
           f"got {raw!r}")
    kind = raw.get("type")
    expect(kind in ("int", "float", "categorical"), "type", f"expected 'int', 'float' or 'categorical', got {kind!r}")
    allowed = ("type", "choices") if kind == "categorical" else ("type", "low", "high", "step", "log")
    unknown = sorted(set(raw) - set(allowed))
    expect(not unknown, "", f"unknown field(s) {unknown}; a {kind} parameter takes {list(allowed)}")
    if kind == "categorical":
        choices = raw.get("choices")
        expect(isinstance(choices, (list, tuple)) and len(choices) > 0, "choices",
               f"expected a non-empty list of choices, got {choices!r}")
        stored = [c if isinstance(c, _PLAIN) else json.dumps(c, sort_keys=True) for c in choices]
        expect(len(set(map(repr, stored))) == len(stored), "choices", f"expected distinct choices, got {choices!r}")
        return CategoricalParam(tuple(choices))
    low, high, log = raw.get("low"), raw.get("high"), raw.get("log", False)
    whole = kind == "int"
    for field, value in (("low", low), ("high", high)):
        ok = isinstance(value, int) and not isinstance(value, bool) if whole else _number(value)
        expect(ok, field, f"expected {'a whole number' if whole else 'a number'}, got {value!r}")
    expect(low <= high, "high", f"expected at least low ({low}), got {high!r}")
    expect(isinstance(log, bool), "log", f"expected true or false, got {log!r}")
    expect(not log or low > 0, "low", f"a log scale needs low > 0, got {low!r}")
    step = raw.get("step", 1 if whole else None)
    if step is not None:
        ok = isinstance(step, int) and not isinstance(step, bool) if whole else _number(step)
        expect(ok and step > 0, "step", f"expected a positive {'whole ' if whole else ''}number, got {step!r}")
        expect(not log or (whole and step == 1), "step", "a log scale takes no step")
    if whole:
        return IntParam(low, high, step, log)
    return FloatParam(float(low), float(high), None if step is None else float(step), log)


def parse_search_space(raw: Any, where: str = "space") -> dict[str, Param]:
    """Validate a search space given as data; errors name ``where.<parameter>.<field>``.

    Examples
    --------
    >>> space = parse_search_space({"learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},
    ...                             "max_depth": [3, 6, None]})
    >>> space["learning_rate"]
    FloatParam(low=0.01, high=0.3, step=None, log=True)
    >>> parse_search_space({"max_leaf_nodes": {"type": "int", "low": 64, "high": 8}})
    Traceback (most recent call last):
    ...
    mlpatterns.training.hyperparameter_tuning.search_space.SearchSpaceError: space.max_leaf_nodes.high: expected at least low (64), got 8
    """
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(f"{where}: expected a mapping of parameter names to distributions, "
                               f"got {type(raw).__name__}")
    if not raw:
        raise SearchSpaceError(f"{where}: expected at least one parameter")
    space = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise SearchSpaceError(f"{where}: expected parameter names as text, got {name!r}")
        space[name] = value if isinstance(value, (IntParam, FloatParam, CategoricalParam)) else _parse_param(
            value, f"{where}.{name}")
    return space


def suggest_params(trial: Any, space: Mapping[str, Param]) -> dict[str, Any]:
    """One value per parameter from an Optuna trial (``trial.suggest_*``), choices decoded."""
    return {name: param.suggest(trial, name) for name, param in space.items()}


def decode_params(space: Mapping[str, Param], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's stored parameters (``study.best_params``) with categorical choices decoded."""
    return {name: space[name].decode(value) if isinstance(space.get(name), CategoricalParam) else value
            for name, value in stored.items()}


def encode_params(space: Mapping[str, Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values in Optuna's stored form (categorical choices that are not plain as JSON)."""
    return {name: space[name].encode(value) if isinstance(space.get(name), CategoricalParam) else value
            for name, value in params.items()}
