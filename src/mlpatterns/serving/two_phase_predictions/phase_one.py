"""Phase 1 of Two-Phase Predictions (19): a small network for the device, as int8 ONNX.

:func:`fit_phase_one` trains a multilayer perceptron (or, with no hidden layer, a
logistic regression) on the coarse question, "is this row worth a closer look?", and
writes it as a float32 ONNX graph built node by node: standardisation (``Sub``,
``Mul``), then ``MatMul`` + ``Add`` (+ ``Relu``) per layer and a ``Sigmoid``, one input
``features`` (float32, one column per feature) and one output ``probability`` (rows x 1).
The feature names are stored in the model's metadata (``columns``), so the device needs
nothing but the file. :func:`quantize_phase_one` turns the weights (and, given
calibration rows, the activations) into int8 with ``onnxruntime.quantization``.

The same weights give the same bytes: the graph is written directly, with a fixed name
and deterministic protobuf serialisation. torch and onnx are imported when called.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["fit_phase_one", "phase_one_columns", "quantize_phase_one"]

OPSET = 17


def _matrix(X: Any) -> tuple[np.ndarray, list[str]]:
    """``X`` as a finite float64 matrix and its column names (``x0``, ``x1``... for an array)."""
    columns = [str(c) for c in X.columns] if hasattr(X, "columns") else None
    try:
        matrix = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"X: expected numbers, one column per feature ({error})") from error
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 1:
        raise ValueError(f"X: expected a matrix with at least 2 rows and 1 column, got shape {matrix.shape}")
    columns = columns or [f"x{j}" for j in range(matrix.shape[1])]
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"X: row {row}, column '{columns[col]}': expected a finite number, got {matrix[row, col]!r}")
    return matrix, columns


def fit_phase_one(
    X: Any, y: Any, *, hidden_units: Sequence[int] = (16,), epochs: int = 30, batch_size: int = 512,
    learning_rate: float = 0.01, weight_decay: float = 1e-4, seed: int = 0,
) -> bytes:
    """Train the phase-1 network on ``X`` and the coarse 0/1 target ``y``; return it as float32 ONNX bytes.

    Parameters
    ----------
    X : DataFrame or array of shape (rows, features)
        Numeric features; a DataFrame's column names are stored in the model (else ``x0``...).
    y : array of shape (rows,)
        1 for "worth a closer look" (the rows phase 2 should see), 0 otherwise.
    hidden_units : sequence of int
        The widths of the hidden ReLU layers; ``()`` is a logistic regression.
    epochs, batch_size, learning_rate, weight_decay, seed
        Adam on the binary cross-entropy, minibatches in a seeded order.

    Returns
    -------
    bytes
        The ONNX model: input ``features`` (float32, rows x features), output
        ``probability`` (float32, rows x 1), the feature names in metadata ``columns``.
    """
    import torch

    matrix, columns = _matrix(X)
    target = np.asarray(y)
    if target.shape != (len(matrix),):
        raise ValueError(f"y: expected one 0/1 value per row of X ({len(matrix)}), got shape {target.shape}")
    if not np.isin(target, (0, 1)).all() or len(np.unique(target)) != 2:
        raise ValueError(f"y: expected both 0 and 1 (1 = worth a closer look), got values {np.unique(target)[:5]}")
    widths = [int(w) for w in hidden_units]
    if any(w < 1 for w in widths):
        raise ValueError(f"hidden_units: expected positive widths, got {list(hidden_units)}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    mean = matrix.mean(axis=0)
    std = matrix.std(axis=0)
    std[std == 0] = 1.0
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    sizes = [matrix.shape[1], *widths, 1]
    layers = [torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    network = torch.nn.Sequential(*[m for layer in layers[:-1] for m in (layer, torch.nn.ReLU())], layers[-1])
    inputs = torch.as_tensor((matrix - mean) / std, dtype=torch.float32)
    labels = torch.as_tensor(np.array(target, dtype=np.float32)).reshape(-1, 1)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate, weight_decay=weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a network this small trains twice as fast on one thread as on two
    try:
        for _ in range(epochs):
            order = torch.randperm(len(inputs), generator=generator)
            for start in range(0, len(inputs), batch_size):
                batch = order[start:start + batch_size]
                optimizer.zero_grad()
                loss_fn(network(inputs[batch]), labels[batch]).backward()
                optimizer.step()
    finally:
        torch.set_num_threads(threads)
    weights = [(layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy()) for layer in layers]
    return _onnx_network(mean, std, weights, columns)


def _onnx_network(mean: np.ndarray, std: np.ndarray, weights: list[tuple[np.ndarray, np.ndarray]],
                  columns: list[str]) -> bytes:
    """The network as an ONNX graph: standardise, then MatMul + Add (+ Relu) per layer, then Sigmoid."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def constant(name: str, value: np.ndarray) -> Any:
        return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)

    initializers = [constant("mean", mean.reshape(1, -1)), constant("inverse_std", (1.0 / std).reshape(1, -1))]
    nodes = [helper.make_node("Sub", ["features", "mean"], ["centered"]),
             helper.make_node("Mul", ["centered", "inverse_std"], ["h0"])]
    current = "h0"
    for i, (weight, bias) in enumerate(weights):
        initializers += [constant(f"W{i}", weight), constant(f"b{i}", bias)]
        nodes += [helper.make_node("MatMul", [current, f"W{i}"], [f"z{i}"]),
                  helper.make_node("Add", [f"z{i}", f"b{i}"], [f"a{i}"])]
        current = f"a{i}"
        if i < len(weights) - 1:
            nodes.append(helper.make_node("Relu", [current], [f"h{i + 1}"]))
            current = f"h{i + 1}"
    nodes.append(helper.make_node("Sigmoid", [current], ["probability"]))
    graph = helper.make_graph(
        nodes, "mlpatterns_phase_one",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", len(columns)])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["rows", 1])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="mlpatterns", ir_version=8)
    helper.set_model_props(model, {"columns": json.dumps(columns), "pattern": "two_phase_predictions/phase_one"})
    onnx.checker.check_model(model)
    return model.SerializeToString(deterministic=True)


def _model_bytes(model: bytes | str | os.PathLike[str]) -> bytes:
    if isinstance(model, bytes):
        return model
    return Path(model).read_bytes()


def phase_one_columns(model: bytes | str | os.PathLike[str]) -> list[str] | None:
    """The feature names stored in a phase-1 model's metadata (``columns``), or None."""
    import onnx

    props = {p.key: p.value for p in onnx.load_model_from_string(_model_bytes(model)).metadata_props}
    return json.loads(props["columns"]) if "columns" in props else None


class _Rows:
    """The calibration rows, one batch at a time, as ``quantize_static`` reads them."""

    def __init__(self, matrix: np.ndarray, batch: int = 256) -> None:
        self._batches = iter([{"features": matrix[i:i + batch]} for i in range(0, len(matrix), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def quantize_phase_one(model: bytes | str | os.PathLike[str], calibration: Any = None) -> bytes:
    """The phase-1 model with int8 weights: dynamic quantization, or static given ``calibration`` rows.

    Without ``calibration`` the ``MatMul`` weights become int8 and the activations are
    quantized on the fly (``quantize_dynamic``). With ``calibration`` (a matrix of
    representative feature rows, e.g. a few hundred training rows) weights and
    activations are int8 with ranges measured on those rows (``quantize_static``, QDQ).
    The metadata (feature names) is kept.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    source = _model_bytes(model)
    with tempfile.TemporaryDirectory() as folder, _quiet_root_logger():
        given, written = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        given.write_bytes(source)
        if calibration is None:
            quantize_dynamic(given, written, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
        else:
            rows, _ = _matrix(calibration)
            quantize_static(given, written, _Rows(rows.astype(np.float32)), quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=["MatMul", "Add"], activation_type=QuantType.QInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
        return _reproducible(written.read_bytes(), source)


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Hide ``onnxruntime.quantization``'s advice to pre-process, which it logs on the root logger."""
    root = logging.getLogger()

    def advice(record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage() and "pre-processing" not in record.getMessage()

    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)


def _reproducible(quantized: bytes, source: bytes) -> bytes:
    """The quantized bytes with the float model's metadata, serialised deterministically."""
    import onnx

    model = onnx.load_model_from_string(quantized)
    original = onnx.load_model_from_string(source)
    del model.metadata_props[:]
    for prop in original.metadata_props:
        model.metadata_props.add(key=prop.key, value=prop.value)
    model.graph.name = original.graph.name
    return model.SerializeToString(deterministic=True)
