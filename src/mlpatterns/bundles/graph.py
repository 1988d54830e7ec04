"""How a bundle composes several ONNX models into one prediction, as data.

The problem-representation patterns serve more than one model as one: a stack of
members and a meta-model (Ensembles, 7), a router and a model per regime (Cascade,
8), one model per label (Multilabel, 6), an average of downsampled models
(Rebalancing, 10). A bundle stays data, not code (DESIGN.md): the manifest's
``model.graph`` describes the composition as nested JSON nodes, every leaf an ONNX
file of the bundle. This module holds the format: what a well-formed graph is
(:func:`leaf_files` checks it and lists its files; :func:`~mlpatterns.bundles.format.read_bundle`
refuses a bundle whose graph is malformed or names a file it lacks). It imports nothing
but the standard library; :class:`mlpatterns.serving.model_graph.ModelGraph` evaluates a
graph with ONNX Runtime.

Every node evaluates to a float64 matrix with one row per input row:

``{"onnx": FILE, "output": "probabilities" | "value", "column": k, "numeric_columns": n}``
    A model. ``probabilities`` takes the model's last output (a scikit-learn
    classifier's class probabilities, a network's softmax or sigmoid), ``value``
    its first (a regressor's prediction); ``column`` keeps only column ``k``. A
    model with one input (``features``) reads the whole feature matrix; a network
    with two (``numeric``, ``categorical``) reads its first ``n`` columns as numbers
    and the rest as category indices.
``{"mean": [NODE, ...]}``
    The element-wise average of the nodes (bagged or downsampled members).
``{"concat": [NODE, ...]}``
    The nodes side by side (one column per label).
``{"stack": [NODE, ...], "meta": NODE, "meta_input": "identity" | "log"}``
    The members side by side, optionally as clipped log-probabilities, are the
    ``features`` input of the meta-model leaf.
``{"route": NODE, "branches": [NODE, NODE]}``
    Each row takes its value from ``branches[j]``, where ``j`` is the router's most
    probable class (column 0 or 1 of its probabilities).
``{"logistic": NODE, "scale": a, "shift": b}``
    ``[1 - p, p]`` with ``p = sigmoid(a * x + b)`` of the node's single column (an
    anomaly detector's score turned into a probability).

Examples
--------
>>> graph = {"mean": [{"onnx": "a.onnx", "output": "probabilities"},
...                   {"onnx": "b.onnx", "output": "probabilities"}]}
>>> sorted(leaf_files(graph))
['a.onnx', 'b.onnx']
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["LOG_FLOOR", "GraphError", "leaf_files"]

LOG_FLOOR = 1e-6  # log-probabilities of stacked members are clipped here (as KeyedStackingClassifier)
_NODE_KINDS = ("onnx", "mean", "concat", "stack", "route", "logistic")


class GraphError(ValueError):
    """A model graph that is not well formed; the message gives the node's path."""


def _children(node: dict[str, Any], where: str) -> list[tuple[dict[str, Any], str]]:
    kind = _kind(node, where)
    if kind in ("mean", "concat", "stack"):
        items = node[kind]
        if not isinstance(items, list) or not items:
            raise GraphError(f"{where}.{kind}: expected a non-empty list of nodes")
        children = [(child, f"{where}.{kind}[{i}]") for i, child in enumerate(items)]
        if kind == "stack":
            children.append((node.get("meta"), f"{where}.meta"))
        return children
    if kind == "route":
        branches = node.get("branches")
        if not isinstance(branches, list) or len(branches) != 2:
            raise GraphError(f"{where}.branches: expected two nodes (class 0, class 1 of the router)")
        return [(node["route"], f"{where}.route"), (branches[0], f"{where}.branches[0]"),
                (branches[1], f"{where}.branches[1]")]
    if kind == "logistic":
        return [(node["logistic"], f"{where}.logistic")]
    return []


def _kind(node: Any, where: str) -> str:
    if not isinstance(node, dict):
        raise GraphError(f"{where}: expected a node (a mapping), got {type(node).__name__}")
    kinds = [k for k in _NODE_KINDS if k in node]
    if len(kinds) != 1:
        raise GraphError(f"{where}: expected exactly one of {list(_NODE_KINDS)}, got keys {sorted(node)}")
    return kinds[0]


def _check(node: Any, where: str) -> None:
    kind = _kind(node, where)
    if kind == "onnx":
        if not isinstance(node["onnx"], str):
            raise GraphError(f"{where}.onnx: expected a file name")
        if node.get("output") not in ("probabilities", "value"):
            raise GraphError(f"{where}.output: expected 'probabilities' or 'value', got {node.get('output')!r}")
        for name in ("column", "numeric_columns"):
            value = node.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise GraphError(f"{where}.{name}: expected a column number, got {value!r}")
    if kind == "stack":
        if _kind(node.get("meta"), f"{where}.meta") != "onnx":
            raise GraphError(f"{where}.meta: the meta-model must be an ONNX leaf")
        if node.get("meta_input", "identity") not in ("identity", "log"):
            raise GraphError(f"{where}.meta_input: expected 'identity' or 'log', got {node.get('meta_input')!r}")
    if kind == "logistic":
        for name in ("scale", "shift"):
            value = node.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
                raise GraphError(f"{where}.{name}: expected a finite number, got {value!r}")
    for child, child_where in _children(node, where):
        _check(child, child_where)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def leaf_files(node: Any, where: str = "graph") -> list[str]:
    """Every ONNX file a graph reads, in the order they first appear."""
    _check(node, where)
    files: list[str] = []

    def visit(item: dict[str, Any], at: str) -> None:
        if "onnx" in item and item["onnx"] not in files:
            files.append(item["onnx"])
        for child, child_where in _children(item, at):
            visit(child, child_where)

    visit(node, where)
    return files
