"""Export trained models to ONNX, and prove the export computes what the model computes.

ONNX is the language-neutral form of the Stateless Serving Function (16): ONNX
Runtime scores it without scikit-learn or torch in the serving process. A
converter can silently compute something else (skl2onnx mistranslates the
categorical splits of HistGradientBoosting, for instance), so every export here is
run once on a sample and compared with the original model; a mismatch is an
:class:`ExportMismatchError`, never a bundle.

How close is close enough: ONNX Runtime computes in float32, the scikit-learn model
in float64, so the two differ by float32 rounding, and rounding is relative to the
magnitudes the computation *carries*, not to the output. A Ridge model on house
prices adds an intercept of 180,000 to terms of tens of thousands; its output can be
small while every addition rounds at 180,000 x 2**-23. A fixed tolerance (absolute,
or relative to the output) is either too loose for small targets or fails such
exports. Here each output element gets ``TOLERANCE_FACTOR x eps32 x scale``
(:func:`~mlpatterns.tolerance.export_tolerance`), where ``scale`` (:func:`output_scale`) is, per row and
output column:

* a linear model (also behind a pipeline of standardisation and one-hot encoding):
  ``|intercept| + sum_j |coef_j| m_j``, ``m_j`` the magnitude of input ``j`` as float32
  carries it (``(|x_j| + |mean_j|) / std_j`` for a standardised column);
* a tree ensemble: ``sqrt(sum_t partial_t**2 + leaf_t**2)`` over its trees, the random
  walk of rounding each leaf value and each running sum (averaged for a forest);
* a torch network: ``sum`` over every ``Linear`` and ``Embedding`` unit of
  ``|d output / d unit| x (|W| |x| + |b|)``, the rounding of each unit propagated to the output,
  plus 1 for a probability (ONNX Runtime's float32 ``Sigmoid`` is accurate to about one
  rounding of 1, not of ``p``: a relative error of 1.7 % at ``p = 8e-6``);
* a probability: ``p (1 - p)`` times its logit's scale, plus 1 (its own rounding);
* any other model: the largest ``|output|`` of that column over the sample;

and never less than the output itself. Measured on diamonds prices, Ames sale prices
and both scaled by 1e6, the largest difference is 0.2 such roundings for linear
regressions and up to 1 for probabilities, tree ensembles and wide-and-deep networks;
``TOLERANCE_FACTOR = 4`` leaves room and nothing more:
changing a coefficient by 1e-4 of its value moves the output by 1e-4 of its term,
i.e. 8.4 roundings of the scale when the term is 1% of the scale, and is refused.
A coefficient whose term is under ``TOLERANCE_FACTOR x eps32 / 1e-4`` (0.48%) of the
scale can change by 1e-4 unnoticed: the margin left for honest rounding; under 0.12%
the change is smaller than one rounding of the sum it is part of, and no check of
float32 outputs can see it. (A standardised column whose ``|mean| / std`` is large,
a longitude, say, makes the scale large: its float32 mean rounds in every row.)

:func:`~mlpatterns.tolerance.compare_outputs` is the check itself, for any two
computations of one model (the lifecycle's training-serving skew check is one; it lives
in :mod:`mlpatterns.tolerance` with :class:`ExportMismatchError`, which this module
re-exports); :func:`verify_sklearn_export` checks an existing export against a model.

Every export is byte-reproducible: the same fitted model gives the same bytes
(:func:`reproducible_onnx_bytes`), so that a digest names a model. skl2onnx names each
graph with a random uuid; here a graph is named ``mlpatterns_<model class>`` and carries
no doc strings (where torch.onnx can write source locations), only the producer's name
and version.

This module is build time: it imports skl2onnx, onnx and torch when it exports.
Serving a bundle never imports it (nor anything of :mod:`mlpatterns.export`).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

import numpy as np

from mlpatterns.tolerance import (
    EPS32,
    TOLERANCE_FACTOR,
    ExportMismatchError,
    compare_outputs,
    export_tolerance,
)

__all__ = ["EPS32", "TOLERANCE_FACTOR", "ExportMismatchError", "compare_outputs", "export_tolerance", "output_scale",
           "reproducible_onnx_bytes", "sklearn_to_onnx", "torch_matrix_to_onnx", "torch_to_onnx",
           "verify_sklearn_export"]


def reproducible_onnx_bytes(model: Any, graph_name: str) -> bytes:
    """``model`` (an ``onnx.ModelProto`` or its bytes) serialised so the bytes depend on the model alone.

    The main graph is named ``graph_name`` (skl2onnx names it with a random uuid) and the
    doc strings of the model, its graphs and their nodes are emptied (torch.onnx may write
    source locations there); the operator sets are sorted by domain (skl2onnx lists them in
    the order of a Python set, which differs between processes); the producer's name and
    version stay. Serialisation is protobuf's deterministic one.
    """
    import onnx

    if isinstance(model, bytes):
        model = onnx.load_model_from_string(model)
    model.doc_string = ""
    _clear_doc_strings(model.graph)
    model.graph.name = graph_name
    # skl2onnx collects the operator sets in a set: their order follows the process's string hashing
    imports = sorted((entry.domain, entry.version) for entry in model.opset_import)
    del model.opset_import[:]
    for domain, version in imports:
        model.opset_import.add(domain=domain, version=version)
    return model.SerializeToString(deterministic=True)


def _clear_doc_strings(graph: Any) -> None:
    graph.doc_string = ""
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.doc_string = ""
    for node in graph.node:
        node.doc_string = ""
        for attribute in node.attribute:  # the bodies of If, Loop and Scan
            for subgraph in [attribute.g] if attribute.HasField("g") else []:
                _clear_doc_strings(subgraph)
            for subgraph in attribute.graphs:
                _clear_doc_strings(subgraph)


def _graph_name(model: Any) -> str:
    return f"mlpatterns_{type(model).__name__}"


def _verify(onnx_bytes: bytes, feeds: dict[str, np.ndarray], expected: np.ndarray, pick: Any,
            scale: np.ndarray | None, what: str) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    taken = {i.name for i in session.get_inputs()}  # an unused input (no categories) is dropped
    got = pick(session.run(None, {name: value for name, value in feeds.items() if name in taken}))
    compare_outputs(got, expected, scale, what=f"the ONNX export of {what}")

def output_scale(model: Any, X: np.ndarray, task: str) -> np.ndarray | None:
    """The magnitude a float32 computation of ``model`` carries for each row and output column of ``X``.

    Outputs are ``predict`` for ``task="regression"``, ``predict_proba`` otherwise.
    Known are linear models (alone or after standardisation, one-hot encoding and
    column selection in a pipeline), gradient-boosted or random-forest tree ensembles
    and the wide-and-deep estimators; ``None`` for any other model (:func:`export_tolerance` then takes the
    largest output of each column). See the module's description for the formulas.
    """
    X = np.asarray(X, dtype=np.float64)
    if hasattr(model, "network_") and hasattr(model, "onnx_inputs"):  # a wide-and-deep estimator
        import torch

        inputs = tuple(torch.as_tensor(part) for part in model.onnx_inputs(X))
        if task == "regression":
            return _network_scale(model.network_.eval(), inputs)
        return _network_scale(model.network_.eval(), inputs, torch.nn.Softmax(dim=1)) + PROBABILITY_ROUNDING
    logits = _linear_scale(model, X)
    if logits is None:
        logits = _ensemble_scale(model, X, task != "regression")
    if logits is None or task == "regression":
        return logits
    if _is_forest(model):  # averaged probabilities, plus their own rounding (and that of 1 - p)
        return logits + 1.0
    p = np.asarray(model.predict_proba(X), dtype=np.float64)
    if logits.shape[1] == 1:  # one logit: both classes move by p (1 - p) times its rounding
        return np.repeat((p[:, 1] * (1 - p[:, 1]) * logits[:, 0])[:, None] + 1.0, p.shape[1], axis=1)
    # a softmax: dp_i = p_i (dz_i - sum_k p_k dz_k)
    return p * (logits + np.sum(p * logits, axis=1, keepdims=True)) + 1.0


def _magnitudes(step: Any, X: Any, M: Any) -> tuple[Any, Any] | None:
    """``step``'s output and the magnitude float32 carries in each of its columns, or None (unknown step)."""
    from scipy import sparse
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if step == "passthrough" or step is None:
        return X, M
    if isinstance(step, StandardScaler):
        mean = np.zeros(X.shape[1]) if step.mean_ is None else np.abs(step.mean_)
        std = np.ones(X.shape[1]) if step.scale_ is None else step.scale_
        return step.transform(X), (M + mean) / std
    if isinstance(step, OneHotEncoder):  # indicator columns, exact in float32
        Z = step.transform(X)
        return Z, abs(Z)
    if not isinstance(step, ColumnTransformer):
        return None
    parts = []
    for _, transformer, columns in step.transformers_:
        if transformer == "drop" or (hasattr(columns, "__len__") and len(columns) == 0):
            continue
        part = _magnitudes(transformer, X[:, columns], M[:, columns])
        if part is None:
            return None
        parts.append(part)
    if any(sparse.issparse(z) for z, _ in parts):
        return sparse.hstack([z for z, _ in parts]).tocsr(), sparse.hstack([m for _, m in parts]).tocsr()
    return np.hstack([z for z, _ in parts]), np.hstack([m for _, m in parts])


def _linear_scale(model: Any, X: np.ndarray) -> np.ndarray | None:
    """``|intercept| + sum_j |coef_j| m_j`` per row and logit, or None for anything but a linear model."""
    from sklearn.pipeline import Pipeline

    steps = list(model.steps) if isinstance(model, Pipeline) else [(None, model)]
    final = steps[-1][1]
    if not (type(final).__module__.startswith("sklearn.linear_model") and hasattr(final, "coef_")):
        return None
    Z, M = X, np.abs(X)
    for _, step in steps[:-1]:
        found = _magnitudes(step, Z, M)
        if found is None:
            return None
        Z, M = found
    coef = np.abs(np.atleast_2d(np.asarray(final.coef_, dtype=np.float64)))
    intercept = np.abs(np.atleast_1d(np.asarray(final.intercept_, dtype=np.float64)))
    return np.asarray(M @ coef.T, dtype=np.float64) + intercept


def _is_forest(model: Any) -> bool:
    from sklearn import ensemble

    return isinstance(model, (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor,
                              ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor))


def _ensemble_scale(model: Any, X: np.ndarray, classifier: bool) -> np.ndarray | None:
    """The random walk of float32 rounding over a tree ensemble's leaves and running sums, or None."""
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )

    if isinstance(model, (HistGradientBoostingClassifier, GradientBoostingClassifier)):
        partial = np.asarray(list(model.staged_decision_function(X)), dtype=np.float64)  # (trees, rows[, k])
    elif isinstance(model, (HistGradientBoostingRegressor, GradientBoostingRegressor)):
        partial = np.asarray(list(model.staged_predict(X)), dtype=np.float64)
    elif _is_forest(model):  # each tree's output summed, then averaged
        trees = [t.predict_proba(X) if classifier else t.predict(X) for t in model.estimators_]
        partial = np.cumsum(np.asarray(trees, dtype=np.float64), axis=0) / len(trees)
    else:
        return None
    partial = partial.reshape(partial.shape[0], partial.shape[1], -1)
    leaves = np.diff(partial, axis=0, prepend=0.0)
    return np.sqrt(np.sum(partial**2, axis=0) + np.sum(leaves**2, axis=0))


#: what a probability's own rounding adds to its scale: ONNX Runtime's float32 Sigmoid is accurate to about
#: 1.2 x 2**-23 absolutely, not relatively (measured over [-12, 12]: a relative error of 1.7 % at p = 8e-6)
PROBABILITY_ROUNDING = 1.0


def _network_scale(module: Any, inputs: tuple[Any, ...], post: Any = None) -> np.ndarray:
    """Per row and output: ``sum`` over Linear and Embedding units of ``|d output / d unit| x`` what the unit carries."""
    import torch

    inputs = tuple(t.detach().clone().requires_grad_(True) if t.is_floating_point() else t for t in inputs)
    carried: list[tuple[Any, Any]] = []

    def record(layer: Any, args: tuple[Any, ...], output: Any) -> None:
        if isinstance(layer, torch.nn.Linear):
            bias = None if layer.bias is None else layer.bias.abs()
            magnitude = torch.nn.functional.linear(args[0].abs(), layer.weight.abs(), bias)
        else:
            magnitude = output.abs()
        carried.append((output, magnitude.detach()))

    hooks = [m.register_forward_hook(record) for m in module.modules()
             if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))]
    try:
        with torch.enable_grad():
            out = module(*inputs) if post is None else post(module(*inputs))
            out = out.reshape(out.shape[0], -1)
            scale = out.detach().abs().clone()
            outputs = [o for o, _ in carried if o.requires_grad]
            for j in range(out.shape[1] if outputs else 0):
                grads = torch.autograd.grad(out[:, j].sum(), outputs, retain_graph=True, allow_unused=True)
                for grad, (_, magnitude) in zip(grads, [c for c in carried if c[0].requires_grad], strict=True):
                    if grad is not None:
                        scale[:, j] += (grad.abs() * magnitude).reshape(len(scale), -1).sum(dim=1)
    finally:
        for hook in hooks:
            hook.remove()
    return scale.double().numpy()


def sklearn_to_onnx(model: Any, sample: np.ndarray, task: str) -> bytes:
    """Convert a fitted scikit-learn model taking one float32 matrix; input named ``features``.

    ``task="classification"`` exports a classifier (outputs: labels, then the
    probability of every class); anything else a regressor. Raises
    :class:`ExportMismatchError` when ONNX Runtime's output on ``sample`` differs from
    the model's by more than float32 rounding at the output's scale.
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
    if type(model).__name__ in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        from mlpatterns.export.tree_thresholds import repair_hist_gradient_boosting_thresholds

        repair_hist_gradient_boosting_thresholds(proto, model)  # skl2onnx rounds them to the nearest float32
    onnx_bytes = reproducible_onnx_bytes(proto, _graph_name(model))
    verify_sklearn_export(onnx_bytes, model, sample, task)
    return onnx_bytes


def verify_sklearn_export(onnx_bytes: bytes, model: Any, sample: np.ndarray, task: str) -> None:
    """Raise :class:`ExportMismatchError` unless ``onnx_bytes`` computes ``model``'s output on ``sample``."""
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    rows = sample.astype(np.float64)
    scale = output_scale(model, rows, task)
    if task == "classification":  # every class's probability, binary or not
        _verify(onnx_bytes, {"features": sample}, model.predict_proba(rows), lambda out: out[1], scale,
                type(model).__name__)
    else:
        _verify(onnx_bytes, {"features": sample}, model.predict(rows), lambda out: out[0], scale,
                type(model).__name__)


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
    onnx_bytes = reproducible_onnx_bytes(buffer.getvalue(), _graph_name(model))
    with torch.no_grad():
        expected = wrapper(numeric_t, categorical_t).numpy().astype(np.float64)
    scale = _network_scale(wrapper, (numeric_t, categorical_t))
    if task != "regression":  # a probability: ONNX Runtime's Sigmoid and Softmax round it absolutely
        scale = scale + PROBABILITY_ROUNDING
    _verify(onnx_bytes, {"numeric": numeric_t.numpy(), "categorical": categorical_t.numpy()}, expected,
            lambda out: out[0], scale, type(model).__name__)
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
    onnx_bytes = reproducible_onnx_bytes(buffer.getvalue(), _graph_name(model))
    with torch.no_grad():
        expected = wrapper(features).numpy().astype(np.float64).reshape(-1)
    _verify(onnx_bytes, {"features": features.numpy()}, expected, lambda out: out[0],
            _network_scale(wrapper, (features,)), type(model).__name__)
    return onnx_bytes
