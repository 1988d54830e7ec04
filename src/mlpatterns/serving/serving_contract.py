"""The contract of a served bundle that the batch and the online path of the Stateless Serving Function (16) share, without pandas.

The bad-row report (:class:`RowProblem`, :class:`InputError`) and the checks of a bundle's
manifest (signature, outputs, model graph): one definition, so that both paths refuse the
same bundles and name the same problems, and so that a server can verify a bundle before
(or without) importing pandas.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any

from mlpatterns.bundles.format import BundleError
from mlpatterns.serving.model_graph import GraphError

__all__ = ["TASKS", "InputError", "RowProblem", "checked_signature", "is_finite_number", "json_value", "model_graph",
           "read_outputs"]

TASKS = ("classification", "regression", "multiclass", "multilabel")
_INPUT_TYPES = ("boolean", "number", "date", "text")


@dataclass(frozen=True)
class RowProblem:
    """One bad input row: its position, the column and what was wrong."""

    row: int
    column: str
    problem: str


@dataclass
class InputError(ValueError):
    """Input that does not match the signature; ``problems`` lists every bad row."""

    message: str
    problems: list[RowProblem] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "; ".join(f"row {p.row}, {p.column}: {p.problem}" for p in self.problems[:5])
        more = f" (and {len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return f"{self.message}{': ' + shown + more if shown else ''}"


def is_finite_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def json_value(value: Any) -> Any:
    """A cell of a frame or an array as a JSON value: NumPy scalars as Python ones, NaN, NA and
    NaT as null, a pandas Timestamp as ISO 8601 text (pandas is not imported for it)."""
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)) and type(value).__module__ == "numpy":
        value = item()
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    pd = sys.modules.get("pandas")  # a pandas value exists only once pandas is imported
    if pd is not None:
        if value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
    return value


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def checked_signature(path: Any, signature: Any) -> dict[str, Any]:
    """The manifest's signature, or a :class:`BundleError` saying what a signature holds."""
    ok = (
        isinstance(signature, dict)
        and isinstance(signature.get("inputs"), list)
        and all(isinstance(i, dict) and isinstance(i.get("name"), str) and i.get("type") in _INPUT_TYPES
                and isinstance(i.get("dtype", ""), str)
                and _texts(i.get("true_values", [])) and _texts(i.get("false_values", []))
                for i in signature["inputs"])
        and (signature.get("null_values") is None or (_texts(signature["null_values"]) and signature["null_values"]))
        and isinstance(signature.get("keys", []), list)
        and all(isinstance(k, str) for k in signature.get("keys", []))
        and isinstance(signature.get("outputs"), list)
        and all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in signature["outputs"])
    )
    if not ok:
        raise BundleError(
            f"{path}: the signature must hold 'inputs' (each a name, a type among {_INPUT_TYPES}, optionally "
            "a dtype and lists of true_values/false_values texts), 'keys' (column names), 'outputs' "
            "(each a name) and optionally 'null_values' (a non-empty list of texts)"
        )
    return signature


def read_outputs(path: Any, manifest: dict[str, Any], task: str) -> tuple[list[str], list[str], list[float]]:
    """What the task's outputs are named after: ``(classes, labels, thresholds)`` (empty lists where
    the task has none), checked."""
    classes: list[str] = []
    labels: list[str] = []
    thresholds: list[float] = []
    if task == "multiclass":
        classes = manifest.get("classes")
        if not (isinstance(classes, list) and len(classes) >= 2 and all(isinstance(c, str) for c in classes)):
            raise BundleError(f"{path}: a multiclass bundle needs 'classes', a list of class names")
    if task == "multilabel":
        labels, given = manifest.get("labels"), manifest.get("thresholds")
        if not (isinstance(labels, list) and labels and all(isinstance(c, str) for c in labels)
                and isinstance(given, list) and len(given) == len(labels)
                and all(is_finite_number(t) for t in given)):
            raise BundleError(f"{path}: a multilabel bundle needs 'labels' (names) and "
                              "'thresholds' (one number per label)")
        thresholds = [float(t) for t in given]
    return list(classes), list(labels), thresholds


def model_graph(model: Any) -> Any:
    """The manifest's model graph; a single-file model is a graph of one leaf."""
    if not isinstance(model, dict):
        raise GraphError(f"expected a mapping, got {type(model).__name__}")
    if "graph" in model:
        return model["graph"]
    if not isinstance(model.get("file"), str):
        raise GraphError("file: expected the model's file name, or a 'graph'")
    # scikit-learn classifiers output [labels, probabilities]; networks one output
    kind = "probabilities" if model.get("output") in ("probabilities", "bucket_probabilities") else "value"
    return {"onnx": model["file"], "output": kind}
