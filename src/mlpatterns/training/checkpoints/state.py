"""What a checkpoint (pattern 12) must hold besides weights, in a form that loads safely.

Resuming *exactly* needs every source of randomness: Python's ``random``, NumPy's global
generator and torch's CPU generator (dropout, initialisation). They are captured here as
tensors, ints and tuples, so that the checkpoint loads with ``torch.load(weights_only=True)``.
:func:`check_weights_only` refuses anything else at save time, naming where it sits,
instead of at load time, when the run is already lost. :func:`load_model_state` loads
weights and names the keys that differ when the checkpoint comes from another architecture.

Examples
--------
>>> import torch
>>> state = capture_rng_state()
>>> first = torch.rand(2)
>>> restore_rng_state(state)
>>> bool(torch.equal(first, torch.rand(2)))
True
"""

from __future__ import annotations

import collections
import random
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "CheckpointMismatchError",
    "capture_rng_state",
    "check_weights_only",
    "load_model_state",
    "restore_rng_state",
    "seed_everything",
]

_SCALARS = (str, int, float, bool, complex, bytes, type(None))


class CheckpointMismatchError(ValueError):
    """The checkpoint's weights do not fit the model (another architecture)."""


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's CPU generator.

    Call it before building a model to make its initial weights repeatable too.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator user code may draw from
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The global random generators' states, weights-only loadable."""
    import torch

    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002 - saved, not used
    return {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put the global generators back where :func:`capture_rng_state` found them."""
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])


def check_weights_only(value: Any, where: str = "state") -> None:
    """Raise ``TypeError`` naming the first value ``torch.load(weights_only=True)`` would refuse.

    Accepted: tensors, ``torch.Size``/``dtype``/``device``, str, numbers, bytes, None, and
    dict, list, tuple and set of these.
    """
    import torch

    if isinstance(value, torch.Tensor) or type(value) in _SCALARS:
        return
    if isinstance(value, (torch.Size, torch.dtype, torch.device)):
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            if type(key) not in _SCALARS:
                raise TypeError(f"{where} has a key of type {type(key).__qualname__}; use str or int keys")
            check_weights_only(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple, set):
        for index, item in enumerate(value):
            check_weights_only(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} holds a {type(value).__module__}.{type(value).__qualname__}, which "
        f"torch.load(weights_only=True) refuses; store tensors, numbers, strings and "
        f"plain containers instead"
    )


def _listed(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_model_state(model: Any, state_dict: Mapping[str, Any], source: str = "the checkpoint") -> None:
    """``model.load_state_dict(state_dict)``, with an error naming the mismatched keys.

    Raises :class:`CheckpointMismatchError` listing the keys missing from the checkpoint,
    the keys the model does not have, and the keys whose shapes differ.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{key} (checkpoint {tuple(state_dict[key].shape)}, model {tuple(own[key].shape)})"
        for key in own
        if key in state_dict
        and hasattr(state_dict[key], "shape")
        and tuple(state_dict[key].shape) != tuple(own[key].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint: {_listed(missing)}")
    if unexpected:
        problems.append(f"not in the model: {_listed(unexpected)}")
    if shapes:
        problems.append(f"different shapes: {_listed(shapes)}")
    if problems:
        raise CheckpointMismatchError(
            f"{source} was written for a different model architecture ({type(model).__name__}): "
            + "; ".join(problems)
        )
    model.load_state_dict(state_dict)
