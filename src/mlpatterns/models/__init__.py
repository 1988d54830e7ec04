"""Model architectures the spec can train; torch is imported only when one is used."""

from __future__ import annotations

from typing import Any

__all__ = ["WideAndDeep"]


def __getattr__(name: str) -> Any:
    if name == "WideAndDeep":
        from mlpatterns.models.wide_and_deep import WideAndDeep

        return WideAndDeep
    raise AttributeError(f"module 'mlpatterns.models' has no attribute {name!r}")
