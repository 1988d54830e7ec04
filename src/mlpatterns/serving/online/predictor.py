"""Stateless Serving Function (16), the online path: a few rows as dicts in, keyed predictions out.

Problem: the batch path (:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction`)
is built for frames: one row through it takes milliseconds of pandas overhead, and pandas
and scikit-learn take about a second to import, which a serving process pays at every
cold start.

Solution: :class:`OnlinePredictor` loads the same verified bundle and serves rows as
plain Python values: each value conformed as ``ServingFunction.conform`` conforms it,
the fitted transform applied from its JSON state, the model run by ONNX Runtime, the
outputs named as ``ServingFunction.predict`` names them. It imports neither pandas nor
scikit-learn, and gives the batch path's features and scores bit for bit and its row
problems word for word. A bundle it cannot serve exactly (a text encoder) raises
:class:`OnlinePathUnsupported` at load, so the caller can serve it with the batch path.

Examples
--------
``predictor = OnlinePredictor.load("runs/flights/bundles/gradient_boosting")`` then
``outputs, problems = predictor.predict_rows([{"distance": 1400, ...}])`` gives
``[{"year": 2013, ..., "probability": 0.12, "prediction": 0}]`` and ``[]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlpatterns.bundles.format import Bundle, BundleError, read_bundle
from mlpatterns.serving.model_graph import GraphError, ModelGraph
from mlpatterns.serving.online._features import OnlinePathUnsupported, RowTransform, parse_row_dates
from mlpatterns.serving.online._values import converter, is_null
from mlpatterns.serving.serving_contract import (
    TASKS,
    InputError,
    RowProblem,
    checked_signature,
    is_finite_number,
    model_graph,
    read_outputs,
)

__all__ = ["ROW_INDEPENDENT_ESTIMATORS", "InputError", "OnlinePathUnsupported", "OnlinePredictor", "RowProblem"]

# Models whose ONNX graph (skl2onnx's TreeEnsemble operators) scores each row on its own, so that a
# row's scores are bit for bit the same whatever other rows share its call (a test checks it). A
# network or a linear model is not: ONNX Runtime multiplies one row (GEMV) with another rounding than
# several (GEMM), about 1e-7 apart on the flights wide-and-deep model.
ROW_INDEPENDENT_ESTIMATORS = frozenset({
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor", "GradientBoostingClassifier",
    "GradientBoostingRegressor", "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier",
    "ExtraTreesRegressor", "DecisionTreeClassifier", "DecisionTreeRegressor"})


class OnlinePredictor:
    """Rows as dicts in, keyed predictions as dicts out, through a verified bundle, without pandas.

    :attr:`row_independent` says whether a row's scores are the same bit for bit whatever
    other rows are predicted in the same call (a tree ensemble from scikit-learn, see
    :data:`ROW_INDEPENDENT_ESTIMATORS`), so that rows of several requests may share a call.
    """

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        manifest = bundle.manifest
        self.name: str = str(manifest["name"])
        self.task: str = manifest["task"]
        if self.task not in TASKS:
            raise BundleError(f"{bundle.path}: task must be one of {list(TASKS)}, got {self.task!r}")
        self.signature: dict[str, Any] = checked_signature(bundle.path, manifest["signature"])  # as ServingFunction
        signature = self.signature
        self.inputs = [(item["name"], *converter(item)) for item in signature["inputs"]]
        self.key_columns: list[str] = [str(k) for k in signature.get("keys", [])]
        self.input_columns = [name for name, _, _ in self.inputs]
        threshold = manifest.get("threshold", 0.5)
        if not is_finite_number(threshold):
            raise BundleError(f"{bundle.path}: threshold must be a number, got {threshold!r}")
        self.threshold = float(threshold)
        self.classes, self.labels, self.thresholds = read_outputs(bundle.path, manifest, self.task)
        model = manifest["model"]
        self._bucket_values = model.get("output") == "bucket_probabilities"
        self.quantiles: list[float] = [float(q) for q in model.get("quantiles_out", [])]
        kinds = {name: kind for name, _, kind in self.inputs}
        try:
            self.transform = RowTransform(bundle.json(manifest["transform"]), kinds)
        except BundleError as error:
            raise BundleError(f"{bundle.path}: {error}") from error
        if self.transform.input_columns != self.input_columns:
            raise BundleError(f"{bundle.path}: the signature's inputs {self.input_columns} do not match the "
                              f"transform's {self.transform.input_columns}")
        try:
            self._graph = ModelGraph(model_graph(model), bundle.files)
        except GraphError as error:
            raise BundleError(f"{bundle.path}: model.{error}") from error
        self.row_independent = (model.get("framework") == "scikit-learn" and "file" in model
                                and model.get("estimator") in ROW_INDEPENDENT_ESTIMATORS)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, public_key: str | os.PathLike[str] | bytes | None = None,
             ) -> OnlinePredictor:
        """Read, verify and load a bundle directory (its signature checked with ``public_key`` if given)."""
        return cls(read_bundle(path) if public_key is None else read_bundle(path, public_key=public_key))

    @property
    def output_columns(self) -> list[str]:
        return [item["name"] for item in self.bundle.manifest["signature"]["outputs"]]

    # -- input checks ----------------------------------------------------------------------------
    def conform_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[RowProblem]]:
        """Each row's inputs converted to their trained types, and the problems of the bad rows,
        as :meth:`ServingFunction.conform` gives them for the same rows (sorted by row, then column).

        A row without one of the input or key fields raises :class:`InputError`.
        """
        fields = [*self.input_columns, *self.key_columns]
        missing = [(i, [f for f in fields if f not in row]) for i, row in enumerate(rows)]
        missing = [(i, names) for i, names in missing if names]
        if missing:
            i, names = missing[0]
            raise InputError(f"row {i}: missing field(s) {names}; the model '{self.name}' expects inputs "
                             f"{self.input_columns} and keys {self.key_columns}")
        conformed_rows, problems = [], []
        for i, row in enumerate(rows):
            conformed: dict[str, Any] = {}
            found: dict[str, str] = {}
            for name, convert, _ in self.inputs:
                value = row[name]
                if isinstance(value, np.generic):  # a NumPy scalar from a Python caller: its Python value
                    value = value.item()
                if is_null(value):
                    conformed[name] = None
                    continue
                conformed[name], expected = convert(value)
                if expected is not None:
                    found[name] = f"expected {expected}, got {value!r}"
            for column in parse_row_dates(conformed, self.transform.date_columns):
                found[column] = f"expected an ISO 8601 date or timestamp, got {conformed[column]!r}"
            for key in self.key_columns:
                if is_null(row[key]):
                    found[key] = "key is null; every row needs its key"
            conformed_rows.append(conformed)
            problems += [RowProblem(i, column, found[column]) for column in sorted(found)]
        return conformed_rows, problems

    # -- prediction ------------------------------------------------------------------------------
    def features(self, conformed_rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The model's float32 input matrix (numbers, then category indices) of conformed good rows:
        ``ServingFunction.features(frame).matrix()`` for the same rows."""
        width = self.transform.numeric_width + len(self.transform.index_steps)
        if not conformed_rows:
            return np.zeros((0, width), dtype=np.float32)
        return np.asarray([self.transform.row(row) for row in conformed_rows], dtype=np.float64).astype(np.float32)

    def model_output(self, matrix: np.ndarray) -> np.ndarray:
        """The model graph's raw output matrix (as ``ServingFunction.model_output``)."""
        return self._graph.run(matrix, numeric_columns=self.transform.numeric_width)

    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[RowProblem]]:
        """Predictions for the good rows, in input order, and the problems of the others.

        Each prediction holds the key fields as given, then the outputs ``ServingFunction.predict``
        gives (``probability`` and ``prediction``; ``probability_<class>``...; ``prediction_<label>``...;
        ``prediction`` and ``q10``...), as Python floats, ints and strings.
        """
        conformed, problems = self.conform_rows(rows)
        bad = {p.row for p in problems}
        good = [i for i in range(len(rows)) if i not in bad]
        if not good:
            return [], problems
        output = self.model_output(self.features([conformed[i] for i in good]))
        return self._outputs([rows[i] for i in good], output), problems

    def _outputs(self, rows: list[Mapping[str, Any]], output: np.ndarray) -> list[dict[str, Any]]:
        names = self.classes or self.labels
        if names and output.shape[1] != len(names):
            raise BundleError(f"{self.bundle.path}: the model gives {output.shape[1]} columns for the "
                              f"{len(names)} {'classes' if self.classes else 'labels'} {names}")
        columns: dict[str, list[Any]] = {}
        if self.task == "classification":
            scores = output[:, -1]
            columns["probability"] = scores.tolist()
            columns["prediction"] = (scores >= self.threshold).astype(np.int64).tolist()
        elif self.task == "regression":
            model = self.bundle.manifest["model"]
            scores = output @ np.asarray(model["centers"]) if self._bucket_values else output[:, 0]
            columns["prediction"] = scores.tolist()
        elif self.task == "multiclass":
            for j, name in enumerate(self.classes):
                columns[f"probability_{name}"] = output[:, j].tolist()
            columns["prediction"] = [self.classes[j] for j in np.argmax(output, axis=1).tolist()]
        else:
            for j, name in enumerate(self.labels):
                columns[f"probability_{name}"] = output[:, j].tolist()
            for j, name in enumerate(self.labels):
                columns[f"prediction_{name}"] = (output[:, j] >= self.thresholds[j]).astype(np.int64).tolist()
        if self.quantiles:
            model = self.bundle.manifest["model"]
            bounds = quantiles_from_bucket_proba(output, model["edges"], model["bucket_ids"], self.quantiles)
            for j, q in enumerate(self.quantiles):
                columns[f"q{round(q * 100):02d}"] = bounds[:, j].tolist()
        return [{**{key: row[key] for key in self.key_columns}, **{name: values[i] for name, values in columns.items()}}
                for i, row in enumerate(rows)]


def quantiles_from_bucket_proba(proba: np.ndarray, edges: Any, bucket_ids: Any, quantiles: list[float]) -> np.ndarray:
    """Quantiles of bucket distributions, each bucket read as uniform between its edges: the same
    arithmetic as :func:`mlpatterns.problem.reframing.quantiles_from_bucket_proba`, whose module
    imports scikit-learn (a test checks that both agree)."""
    edges, bucket_ids = np.asarray(edges, dtype=np.float64), np.asarray(bucket_ids, dtype=np.int64)
    low = edges[bucket_ids]
    high = edges[np.minimum(bucket_ids + 1, len(edges) - 1)]
    cumulative = np.cumsum(proba, axis=1)
    rows = np.arange(len(proba))
    out = np.empty((len(proba), len(quantiles)))
    for j, q in enumerate(np.asarray(quantiles, dtype=np.float64)):
        index = np.minimum((cumulative < q).sum(axis=1), proba.shape[1] - 1)
        before = np.where(index > 0, cumulative[rows, index - 1], 0.0)
        mass = np.maximum(proba[rows, index], 1e-12)
        share = np.clip((q - before) / mass, 0, 1)
        out[:, j] = low[index] + share * (high[index] - low[index])
    return out
