"""How a bundle composes several ONNX models into one prediction, as data.

The problem-representation patterns serve more than one model as one: a stack of
members and a meta-model (Ensembles, 7), a router and a model per regime (Cascade,
8), one model per label (Multilabel, 6), an average of downsampled models
(Rebalancing, 10). A bundle stays data, not code (DESIGN.md): the manifest's
``model.graph`` describes the composition as nested JSON nodes, every leaf an ONNX
file of the bundle, and :class:`ModelGraph` evaluates it with ONNX Runtime.

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

import os
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["GraphError", "ModelGraph", "leaf_files"]

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
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise GraphError(f"{where}.{name}: expected a finite number, got {value!r}")
    for child, child_where in _children(node, where):
        _check(child, child_where)


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


class ModelGraph:
    """A model graph ready to run: one ONNX Runtime session per leaf file.

    ``files`` maps each leaf file name to its bytes (the bundle's files).
    """

    def __init__(self, graph: Any, files: dict[str, bytes], *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.graph = graph
        names = leaf_files(graph)
        missing = [name for name in names if name not in files]
        if missing:
            raise GraphError(f"graph: the bundle has no file(s) {missing}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or int(os.environ.get("MLPATTERNS_ONNX_THREADS", "1"))
        self._sessions: dict[str, Any] = {}
        for name in names:
            try:
                self._sessions[name] = ort.InferenceSession(files[name], options,
                                                            providers=["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own exception types
                raise GraphError(f"graph: {name} is not a loadable ONNX model ({error})") from error
            inputs = [i.name for i in self._sessions[name].get_inputs()]
            if not (inputs == ["features"] or (inputs and set(inputs) <= {"numeric", "categorical"})):
                raise GraphError(f"graph: {name} takes inputs {inputs}; expected ['features'] or "
                                 "['numeric', 'categorical']")

    def run(self, matrix: np.ndarray, numeric_columns: int | None = None) -> np.ndarray:
        """Evaluate the graph on a float32 feature matrix (numbers, then category indices).

        ``numeric_columns`` is where the numbers end for a two-input network leaf that
        does not say so itself.
        """
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)

        def feeds(node: dict[str, Any]) -> dict[str, np.ndarray]:
            names = [i.name for i in self._sessions[node["onnx"]].get_inputs()]
            if names == ["features"]:
                return {"features": matrix}
            n = node.get("numeric_columns", numeric_columns)
            if n is None or n > matrix.shape[1]:
                raise GraphError(f"graph: {node['onnx']} needs to know how many columns are numbers")
            # a network without categorical columns has no 'categorical' input in ONNX
            categories = matrix[:, n:]
            if np.any(categories < 0) or np.any(np.isnan(categories)):
                raise GraphError(f"graph: {node['onnx']} got a negative or missing category index")
            # an index past the last bucket shares it (the network clamps); keep the cast in range
            parts = {"numeric": matrix[:, :n], "categorical": np.minimum(categories, 2.0**62).astype(np.int64)}
            return {name: parts[name] for name in names}

        return self._evaluate(self.graph, feeds)

    def _leaf(self, node: dict[str, Any], inputs: dict[str, np.ndarray]) -> np.ndarray:
        outputs = self._sessions[node["onnx"]].run(None, inputs)
        picked = outputs[-1] if node["output"] == "probabilities" else outputs[0]
        values = np.asarray(picked, dtype=np.float64)
        values = values.reshape(len(values), -1)
        column = node.get("column")
        return values if column is None else values[:, [column]]

    def _evaluate(self, node: dict[str, Any], feeds: Callable[[dict[str, Any]], dict[str, np.ndarray]]) -> np.ndarray:
        if "onnx" in node:
            return self._leaf(node, feeds(node))
        if "mean" in node:
            return np.mean([self._evaluate(child, feeds) for child in node["mean"]], axis=0)
        if "concat" in node:
            return np.hstack([self._evaluate(child, feeds) for child in node["concat"]])
        if "stack" in node:
            stacked = np.hstack([self._evaluate(child, feeds) for child in node["stack"]])
            if node.get("meta_input", "identity") == "log":
                stacked = np.log(np.clip(stacked, LOG_FLOOR, 1.0))
            return self._leaf(node["meta"], {"features": stacked.astype(np.float32)})
        if "route" in node:
            route = np.argmax(self._evaluate(node["route"], feeds), axis=1)
            typical, extreme = (self._evaluate(branch, feeds) for branch in node["branches"])
            return np.where((route == 1)[:, None], extreme, typical)
        values = self._evaluate(node["logistic"], feeds)[:, 0]
        positive = 1.0 / (1.0 + np.exp(-(node["scale"] * values + node["shift"])))
        return np.column_stack([1.0 - positive, positive])
