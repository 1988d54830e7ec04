"""Every public estimator of mlpatterns passes scikit-learn's estimator checks.

Estimators are found, not listed: every class exported in a chapter package's
``__all__`` that derives from ``BaseEstimator`` is checked. A class whose
constructor needs arguments says how to build check instances through a
``_estimator_check_instances()`` classmethod.
"""

from __future__ import annotations

import importlib
import inspect

from sklearn.base import BaseEstimator
from sklearn.utils.estimator_checks import parametrize_with_checks

CHAPTER_PACKAGES = [
    "mlpatterns.data",
    "mlpatterns.problem",
    "mlpatterns.training",
    "mlpatterns.serving",
    "mlpatterns.reproducibility",
    "mlpatterns.responsible",
    "mlpatterns.models",
]


def public_estimator_classes() -> list[type]:
    found: dict[str, type] = {}
    for name in CHAPTER_PACKAGES:
        try:
            package = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name == name:  # chapter not written yet
                continue
            raise
        for export in getattr(package, "__all__", []):
            obj = getattr(package, export)
            if inspect.isclass(obj) and issubclass(obj, BaseEstimator) and not inspect.isabstract(obj):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return [found[key] for key in sorted(found)]


# Checks an estimator fails by design, by class name, with the reason.
EXPECTED_FAILED_CHECKS = {
    # the split column must hold a value in every row (SchemaBridge allows NaN in the other columns, so the
    # pickle check sends NaN anywhere, the split column included)
    "SchemaBridge": {"check_estimators_pickle": "the split column refuses missing values, by design"},
}


def check_instances() -> list[BaseEstimator]:
    instances = []
    for cls in public_estimator_classes():
        factory = getattr(cls, "_estimator_check_instances", None)
        instances.extend(factory() if factory is not None else [cls()])
    return instances


def test_estimators_are_found() -> None:
    assert public_estimator_classes(), "no public estimator found in the chapter packages"


@parametrize_with_checks(
    check_instances(), expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})
)
def test_sklearn_compatible_estimator(estimator, check) -> None:
    check(estimator)
