"""Export trained models to ONNX, and prove the export computes what the model computes.

ONNX is the language-neutral form of the Stateless Serving Function (16): ONNX
Runtime scores it without scikit-learn or torch in the serving process. A
converter can silently compute something else (skl2onnx mistranslates the
categorical splits of HistGradientBoosting, for instance), so every export here is
run once on a sample and compared with the original model; a mismatch is an error,
never a bundle.
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

__all__ = ["ExportMismatchError", "sklearn_to_onnx", "torch_matrix_to_onnx", "torch_to_onnx"]

TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 1e-5


class ExportMismatchError(RuntimeError):
    """The ONNX model does not reproduce the original model's outputs."""


def _verify(onnx_bytes: bytes, feeds: dict[str, np.ndarray], expected: np.ndarray, pick: Any) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    taken = {i.name for i in session.get_inputs()}  # an unused input (no categories) is dropped
    got = pick(session.run(None, {name: value for name, value in feeds.items() if name in taken}))
    got = np.asarray(got, dtype=np.float64)
    # Relative as well as absolute: ONNX runs in float32, so large regression targets
    # differ from the float64 model by more than any fixed absolute tolerance.
    if not np.allclose(got, expected, rtol=RELATIVE_TOLERANCE, atol=TOLERANCE):
        error = float(np.max(np.abs(got - expected)))
        raise ExportMismatchError(
            f"the ONNX export differs from the trained model by up to {error:.3g} "
            f"(tolerance {TOLERANCE} + {RELATIVE_TOLERANCE} x value); refusing to bundle it"
        )


def sklearn_to_onnx(model: Any, sample: np.ndarray, task: str) -> bytes:
    """Convert a fitted scikit-learn model taking one float32 matrix; input named ``features``.

    ``task="classification"`` exports a classifier (outputs: labels, then the
    probability of every class); anything else a regressor.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    options = {id(model): {"zipmap": False}} if task == "classification" else None
    with warnings.catch_warnings():
        # skl2onnx writes numpy booleans into integer attributes; protobuf 6 converts them
        # with a DeprecationWarning (protobuf 7 refuses them, hence the pin in pyproject).
        warnings.simplefilter("ignore", DeprecationWarning)
        proto = convert_sklearn(
            model, initial_types=[("features", FloatTensorType([None, sample.shape[1]]))], options=options
        )
    onnx_bytes = proto.SerializeToString()
    if task == "classification":  # every class's probability, binary or not
        _verify(onnx_bytes, {"features": sample}, model.predict_proba(sample), lambda out: out[1])
    else:
        _verify(onnx_bytes, {"features": sample}, model.predict(sample), lambda out: out[0].reshape(-1))
    return onnx_bytes


def torch_to_onnx(model: Any, numeric: np.ndarray, categorical: np.ndarray, task: str) -> bytes:
    """Export a network taking ``(numeric, categorical)``.

    The output is P(positive) for ``task="classification"``, class probabilities for
    ``"multiclass"``, label probabilities for ``"multilabel"`` and the value for ``"regression"``.
    """
    import torch

    class _Serving(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
            out = self.inner(numeric, categorical)
            if task == "multiclass":
                return torch.softmax(out, dim=1)
            return torch.sigmoid(out) if task in ("classification", "multilabel") else out

    wrapper = _Serving(model).eval()
    numeric_t = torch.as_tensor(np.ascontiguousarray(numeric, dtype=np.float32))
    categorical_t = torch.as_tensor(np.ascontiguousarray(categorical, dtype=np.int64))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(
            wrapper, (numeric_t[:2], categorical_t[:2]), buffer, dynamo=False,
            input_names=["numeric", "categorical"], output_names=["output"],
            dynamic_axes={"numeric": {0: "rows"}, "categorical": {0: "rows"}, "output": {0: "rows"}},
        )
    onnx_bytes = buffer.getvalue()
    with torch.no_grad():
        expected = wrapper(numeric_t, categorical_t).numpy().astype(np.float64)
    _verify(
        onnx_bytes, {"numeric": numeric_t.numpy(), "categorical": categorical_t.numpy()},
        expected, lambda out: out[0].reshape(expected.shape),
    )
    return onnx_bytes


def torch_matrix_to_onnx(model: Any, sample: np.ndarray, *, float64: bool = True) -> bytes:
    """Export a network taking one float matrix (input ``features``, as a scikit-learn export) to one value a row.

    The ONNX input is float32, as the bundle's feature matrix; with ``float64`` the
    network runs in float64 inside the graph (an emulator's tolerance is measured on
    its float64 output, Useful Overfitting, 11), otherwise in float32.
    """
    import copy

    import torch

    dtype = torch.float64 if float64 else torch.float32

    class _Serving(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = copy.deepcopy(inner).to(dtype).eval()

        def forward(self, features: torch.Tensor) -> torch.Tensor:
            return self.inner(features.to(dtype))

    wrapper = _Serving(model).eval()
    features = torch.as_tensor(np.ascontiguousarray(sample, dtype=np.float32))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(wrapper, (features[:2],), buffer, dynamo=False, input_names=["features"],
                          output_names=["output"], dynamic_axes={"features": {0: "rows"}, "output": {0: "rows"}})
    onnx_bytes = buffer.getvalue()
    with torch.no_grad():
        expected = wrapper(features).numpy().astype(np.float64).reshape(-1)
    _verify(onnx_bytes, {"features": features.numpy()}, expected, lambda out: out[0].reshape(-1))
    return onnx_bytes
