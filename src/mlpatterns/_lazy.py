"""Lazy re-exports for package ``__init__`` modules: each public name's module is imported on first use.

A chapter package re-exports the public names of its modules (``from mlpatterns.training
import Trainer``), yet importing the package must not import torch, scikit-learn or
Optuna. The package lists each name with the module that defines it and hands that table
to :func:`lazy_exports`, whose result is the package's module ``__getattr__`` (PEP 562).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``; ``exports`` maps a name to its module, relative to ``package``.

    The first lookup of a name imports its module and stores the value in the package,
    so later lookups do not come back here.

    >>> getter = lazy_exports("mlpatterns.training", {"FunctionGrid": "useful_overfitting.grid"})
    >>> getter("FunctionGrid").__module__
    'mlpatterns.training.useful_overfitting.grid'
    >>> getter("Trainer")
    Traceback (most recent call last):
    ...
    AttributeError: module 'mlpatterns.training' has no attribute 'Trainer'
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
