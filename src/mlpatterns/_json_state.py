"""Saving a fitted estimator's learned state as JSON, never as a pickle.

The Transform pattern (21) ships the fitted preprocessing with the model, and a
bundle is data, not code: loading one must never unpickle. An estimator that mixes
in :class:`JSONStateMixin` can be written as ``{"class", "params", "state"}`` with
plain JSON values and rebuilt from that without executing anything it carries.
Only classes registered with :func:`register_json_state` can be rebuilt, so a
tampered manifest cannot name an arbitrary class.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["JSONStateMixin", "decode_value", "encode_value", "estimator_from_json", "register_json_state"]

_REGISTRY: dict[str, type] = {}


def register_json_state(cls: type) -> type:
    """Class decorator: allow ``cls`` to be rebuilt from JSON by :func:`estimator_from_json`."""
    known = _REGISTRY.get(cls.__name__)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"two JSON-state classes are named {cls.__name__!r}: {known.__module__} and {cls.__module__}")
    _REGISTRY[cls.__name__] = cls
    return cls


def encode_value(value: Any) -> Any:
    """A JSON-able form of NumPy arrays, scalars, tuples and nested containers."""
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return {"__ndarray__": [encode_value(v) for v in value.tolist()], "dtype": "object",
                    "shape": list(value.shape)}
        return {"__ndarray__": value.ravel().tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            return {"__dict_items__": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
        return {k: encode_value(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store a value of type {type(value).__name__} as JSON state")


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value`."""
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__ndarray__" in value:
        dtype = value["dtype"]
        if dtype == "object":
            items = [decode_value(v) for v in value["__ndarray__"]]
            array = np.empty(len(items), dtype=object)
            array[:] = items
            return array.reshape(value["shape"])
        return np.asarray(value["__ndarray__"], dtype=np.dtype(dtype)).reshape(value["shape"])
    if "__tuple__" in value:
        return tuple(decode_value(v) for v in value["__tuple__"])
    if "__dict_items__" in value:
        return {decode_value(k): decode_value(v) for k, v in value["__dict_items__"]}
    return {k: decode_value(v) for k, v in value.items()}


class JSONStateMixin:
    """Mixin for scikit-learn estimators whose learned state is plain data.

    The default :meth:`fitted_state` stores every public attribute ending in ``_``
    (scikit-learn's convention for learned state); override it when an attribute
    is not plain data.
    """

    def fitted_state(self) -> dict[str, Any]:
        """The learned attributes as a JSON-able dict."""
        return {
            name: encode_value(value)
            for name, value in vars(self).items()
            if name.endswith("_") and not name.startswith("_")
        }

    def to_json_dict(self) -> dict[str, Any]:
        """``{"class", "params", "state"}``: everything needed to rebuild this estimator."""
        return {
            "class": type(self).__name__,
            "params": encode_value(self.get_params(deep=False)),  # type: ignore[attr-defined]
            "state": self.fitted_state(),
        }

    @classmethod
    def from_json_dict(cls, payload: dict[str, Any]) -> Any:
        """Rebuild an estimator written by :meth:`to_json_dict`."""
        estimator = cls(**decode_value(payload.get("params", {})))
        for name, value in payload.get("state", {}).items():
            if not (isinstance(name, str) and name.endswith("_") and not name.startswith("_")):
                raise ValueError(f"{cls.__name__}: {name!r} is not a learned attribute (name_)")
            setattr(estimator, name, decode_value(value))
        return estimator


def estimator_from_json(payload: dict[str, Any]) -> Any:
    """Rebuild a registered estimator from ``{"class", "params", "state"}``."""
    if not isinstance(payload, dict) or "class" not in payload:
        raise ValueError("an estimator's JSON must be an object with a 'class' field")
    name = payload["class"]
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(
            f"unknown estimator class {name!r} in JSON state; known: {sorted(_REGISTRY)}"
        )
    return cls.from_json_dict(payload)
