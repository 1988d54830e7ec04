"""Check a spec's model ``params`` against the real parameters of the models they configure.

A typo (``max_iterr``) or a wrong value type (``max_iter: ten``) in a spec must cost no
data loading, no splitting and leave no output: :func:`check_model_params` runs when
the spec loads and raises :class:`~mlpatterns.spec.SpecError` with the field's path.

The scikit-learn models are built with the spec's parameters (an unknown name is a
``TypeError`` from the constructor) and fitted once on a few synthetic rows, which
runs scikit-learn's own validation of every value; iteration counts are lowered for
that fit only, after checking that they are whole numbers. A network's parameters
are this project's own (:func:`~mlpatterns.models.training_loop.train_network` and
:class:`~mlpatterns.models.wide_and_deep.WideAndDeep`) and are checked here by type.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from mlpatterns.spec._checks import SpecError

__all__ = ["MEMBER_NETWORK_PARAMS", "NETWORK_PARAMS", "check_model_params"]

# scikit-learn parameters that count rounds or trees: lowered to 1 for the check fit
_ITERATIONS = ("max_iter", "n_estimators")


def _whole(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# A network's parameters (the architecture's and train_network's), each with its check and what it expects
_NETWORK_CHECKS = {
    "hidden": (lambda v: isinstance(v, list) and bool(v) and all(_whole(u, 1) for u in v),
               "a list of layer widths, e.g. [64, 32]"),
    "dropout": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "epochs": (lambda v: _whole(v, 1), "a whole number of at least 1"),
    "batch_size": (lambda v: _whole(v, 1), "a whole number of at least 1"),
    "learning_rate": (lambda v: _number(v) and v > 0, "a positive number"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a number of at least 0"),
    "patience": (lambda v: _whole(v, 1), "a whole number of at least 1"),
    "examples_per_epoch": (lambda v: v is None or _whole(v, 1), "a whole number of at least 1, or null"),
}

NETWORK_PARAMS = tuple(_NETWORK_CHECKS)


def _check_network(params: dict[str, Any], where: str) -> None:
    unknown = sorted(set(params) - set(NETWORK_PARAMS))
    if unknown:
        raise SpecError(f"{where}: unknown parameter(s) {unknown} for a wide_and_deep network; "
                        f"expected some of {list(NETWORK_PARAMS)}")
    for name, value in params.items():
        ok, expected = _NETWORK_CHECKS[name]
        if not ok(value):
            raise SpecError(f"{where}.{name}: expected {expected}, got {value!r}")


def _tiny_data(task: str) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    X[:, 2] = rng.integers(0, 4, size=60)  # a categorical index column, as the transform gives
    if task == "regression":
        return X, X[:, 0] * 3 + rng.normal(size=60)
    classes = 3 if task == "multiclass" else 2
    return X, np.arange(60) % classes


def _check_sklearn(kind: str, params: dict[str, Any], task: str, where: str) -> None:
    from mlpatterns.spec.models import sklearn_model

    for name in _ITERATIONS:
        if name in params and not _whole(params[name], 1):
            raise SpecError(f"{where}.{name}: expected a whole number of at least 1, got {params[name]!r}")
    classification = task != "regression"
    default = sklearn_model(kind, {}, classification, 0, where, (2, [5]), inner=True)
    final = default.steps[-1][1] if hasattr(default, "steps") else default  # a linear pipeline's model
    known = set(final.get_params(deep=False))
    for name in params:
        if name not in known:
            raise SpecError(f"{where}.{name}: not a parameter of {type(final).__name__} (the {kind} model of a "
                            f"{'classification' if classification else 'regression'} target); expected some of "
                            f"{sorted(known)}")
    try:
        estimator = sklearn_model(kind, params, classification, 0, where.removesuffix(".params"), (2, [5]),
                                  inner=True)
        for name in _ITERATIONS:  # the value is checked above; one iteration validates the rest quickly
            if name in params:
                estimator.set_params(**{name: 1})
        X, y = _tiny_data(task)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence and small-data warnings of the check fit
            estimator.fit(X, y)
    except SpecError:
        raise
    except (TypeError, ValueError) as error:
        message = str(error).split("\n")[0]
        raise SpecError(f"{where}: {message}") from None


def _check_isolation_forest(params: dict[str, Any], where: str) -> None:
    from sklearn.ensemble import IsolationForest

    if "n_estimators" in params and not _whole(params["n_estimators"], 1):
        raise SpecError(f"{where}.n_estimators: expected a whole number of at least 1, got {params['n_estimators']!r}")
    try:
        detector = IsolationForest(**{**params, "n_estimators": 2})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector.fit(_tiny_data("regression")[0])
    except (TypeError, ValueError) as error:
        raise SpecError(f"{where}: {str(error).splitlines()[0]}") from None


def check_model_params(name: str, model: dict[str, Any], target: dict[str, Any]) -> None:
    """Raise :class:`SpecError` naming ``models.<name>...params.<param>`` for a parameter that the model
    does not take or a value it refuses."""
    task = "multiclass" if "neutral" in target else target["task"]
    if task == "multilabel" or "reframe" in target:
        task = "classification"  # one label's classifier; a classifier over target buckets
    where = f"models.{name}"
    kind = model["type"]
    if kind == "wide_and_deep":
        _check_network(model["params"], f"{where}.params")
    elif kind in ("gradient_boosting", "random_forest", "linear"):
        _check_sklearn(kind, model["params"], task, f"{where}.params")
    elif kind == "anomaly_detector":
        _check_isolation_forest(model["params"], f"{where}.params")
    for member_name, member in (model.get("members") or {}).items():
        _check_member(member, task, f"{where}.members.{member_name}")
    for part in ("final", "router", "typical", "extreme"):
        if part in model:
            _check_member(model[part], "classification" if part == "router" else task, f"{where}.{part}")


MEMBER_NETWORK_PARAMS = ("hidden", "dropout", "epochs", "batch_size", "learning_rate", "weight_decay",
                          "random_state")  # WideAndDeepClassifier/Regressor's, as a stack member


def _check_member(member: dict[str, Any], task: str, where: str) -> None:
    if member["type"] == "wide_and_deep":
        params = dict(member["params"])
        unknown = sorted(set(params) - set(MEMBER_NETWORK_PARAMS))
        if unknown:
            raise SpecError(f"{where}.params: unknown parameter(s) {unknown} for a wide_and_deep member; "
                            f"expected some of {list(MEMBER_NETWORK_PARAMS)}")
        params.pop("random_state", None)
        _check_network(params, f"{where}.params")
        return
    _check_sklearn(member["type"], member["params"], task, f"{where}.params")
