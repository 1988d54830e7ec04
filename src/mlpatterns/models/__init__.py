"""Model architectures the spec can train; torch is imported only when one is fitted.

* :class:`WideAndDeep`: the torch network (wide linear part + embeddings and MLP).
* :class:`WideAndDeepClassifier`, :class:`WideAndDeepRegressor`: the same network as
  scikit-learn estimators over one feature matrix, so that it can be a member of a
  stack, a cascade or any meta-estimator of :mod:`mlpatterns.problem`.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.models.wide_and_deep_estimators import WideAndDeepClassifier, WideAndDeepRegressor

__all__ = ["WideAndDeep", "WideAndDeepClassifier", "WideAndDeepRegressor"]  # noqa: F822


def __getattr__(name: str) -> Any:
    if name == "WideAndDeep":
        from mlpatterns.models.wide_and_deep import WideAndDeep

        return WideAndDeep
    raise AttributeError(f"module 'mlpatterns.models' has no attribute {name!r}")
