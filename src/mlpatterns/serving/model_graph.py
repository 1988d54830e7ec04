"""Running a bundle's model graph (several ONNX models composed as one) with ONNX Runtime.

The graph's format (its nodes, what each computes, :class:`GraphError` and
:func:`leaf_files`) lives in :mod:`mlpatterns.bundles.graph`, below serving, so that
reading and verifying a bundle needs no ONNX Runtime; those names are imported from
there and stay importable from here. :class:`ModelGraph` evaluates a graph: one ONNX
Runtime session per leaf file, every node a float64 matrix with one row per input row.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from mlpatterns.bundles.graph import LOG_FLOOR, GraphError, leaf_files

__all__ = ["LOG_FLOOR", "GraphError", "ModelGraph", "leaf_files"]


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
