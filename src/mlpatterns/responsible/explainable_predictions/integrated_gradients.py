"""Explainable Predictions (29): Captum integrated gradients for the wide-and-deep networks.

Problem: a network's gradients say how its output moves near one input, not how much
each input contributed to a prediction; and a network fed categorical indices has no
gradient with respect to an index at all.

Solution: integrated gradients (Sundararajan et al., 2017), computed by Captum's
:class:`~captum.attr.IntegratedGradients`, attribute ``f(x) - f(baseline)`` to the
inputs along the straight path from an explicit *baseline* to ``x``. The network
(:class:`~mlpatterns.models.wide_and_deep.WideAndDeep`) is differentiated with respect
to the inputs it can be differentiated by:

* the numeric inputs, whose baseline is their **training mean** (the estimators'
  ``mean_``; for a bundle, the mean of the transformed training rows, where a
  standardized number's mean is 0 and a missing-value indicator's is the training
  share of missing values), or a row given by the caller;
* each categorical column's deep **embedding vector** and its **wide** weight(s) (the
  lookups of its index), whose baseline is **zero**: "no information about this
  column" (for a bundle, ``embedding_baseline="mean"`` takes their training mean
  instead, whose output is closer to a typical prediction). A column's attribution is
  the sum over its embedding dimensions and its wide weights.

The attributed output is the one served: P(positive) (or a class or label probability,
``target``) for a classifier, the value for a regression (in the target's units).
Two checks come with every result (:attr:`IntegratedGradientsResult.check`):

* completeness: Captum's convergence delta, ``sum(attributions) - (f(x) - f(baseline))``,
  within ``tolerance x max(|f(x) - f(baseline)|, mean over the rows of |f(x) - f(baseline)|)``
  for every row (a row whose output hardly differs from the baseline's still sums large
  attributions of both signs, whose integration error the second term allows); the
  number of integration steps doubles (up to ``max_steps``) until it holds. The
  network runs in float64 for this, so the error is the integral's, not rounding;
* served output: the torch network's output equals the ONNX network's within float32
  rounding (``1e-5 x max(1, |output|)``), so the attributions explain what is served.

:func:`integrated_gradients` explains a fitted
:class:`~mlpatterns.models.WideAndDeepClassifier`/``Regressor`` (checked against its ONNX
export, given or made here as a bundle's is).
:func:`bundle_integrated_gradients` explains a serving bundle of a ``wide_and_deep``
model: it rebuilds the torch network from the ONNX file's weights and the manifest's
architecture, checks it against the bundle's served output, and adds the attributions
up by raw input column (a feature cross's share split equally between its columns).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["IntegratedGradientsResult", "bundle_integrated_gradients", "integrated_gradients", "network_from_onnx",
           "plot_integrated_gradients"]

ONNX_TOLERANCE = 1e-5  # relative to max(1, |output|): float32 rounding of two evaluation orders


@dataclass
class IntegratedGradientsResult:
    """Attributions of the served output to a network's inputs, and their checks.

    Attributes
    ----------
    attributions : numpy.ndarray
        Rows x network inputs (numeric features, then one entry per categorical column).
    names : list of str
        The network inputs' names.
    output, baseline_output : numpy.ndarray
        ``f(x)`` and ``f(baseline)`` per row (the served output, by torch).
    delta : numpy.ndarray
        Captum's convergence delta per row: ``attributions.sum(1) - (output - baseline_output)``.
    steps : int
        The integration steps used (Gauss-Legendre).
    check : dict
        ``completeness`` (``max_abs_delta``, ``tolerance``, ``passed``) and ``onnx``
        (``max_abs_difference``, ``tolerance``, ``passed``).
    raw_names, raw_attributions
        The attributions added up by raw input column (bundles only; else empty).
    """

    attributions: np.ndarray
    names: list[str]
    output: np.ndarray
    baseline_output: np.ndarray
    delta: np.ndarray
    steps: int
    check: dict[str, Any]
    raw_names: list[str] = field(default_factory=list)
    raw_attributions: np.ndarray | None = None

    def frame(self, *, raw: bool = False) -> pd.DataFrame:
        """The attributions as a DataFrame (by raw column with ``raw=True``)."""
        if raw:
            if self.raw_attributions is None:
                raise ValueError("these attributions were not mapped to raw columns (only a bundle's are)")
            return pd.DataFrame(self.raw_attributions, columns=self.raw_names)
        return pd.DataFrame(self.attributions, columns=self.names)

    def importance(self, *, raw: bool = False) -> pd.Series:
        """Mean absolute attribution per input, largest first (a global importance)."""
        return self.frame(raw=raw).abs().mean().sort_values(ascending=False)

    def summary(self) -> dict[str, Any]:
        """JSON-able facts: the checks, steps, mean baseline output and the global importance."""
        raw = self.raw_attributions is not None
        return {"rows": len(self.output), "steps": self.steps, "check": self.check,
                "mean_output": float(np.mean(self.output)) if len(self.output) else None,
                "baseline_output": float(np.mean(self.baseline_output)) if len(self.output) else None,
                "importance": {k: float(v) for k, v in self.importance(raw=raw).items()}}


class _Decomposed:
    """A served wide-and-deep module as differentiable pieces: standardise -> core -> rescale -> head -> pick."""

    def __init__(self, module: Any, head: str, pick: Any) -> None:
        import copy

        from mlpatterns.models.wide_and_deep import StandardisedInputs, TargetScale, WideAndDeep

        module = copy.deepcopy(module).double()  # float64: no float32 rounding in the completeness sums
        self.mean = self.scale = self.last_index = None
        self.out_mean, self.out_std = 0.0, 1.0
        inner = module
        while not isinstance(inner, WideAndDeep):
            if isinstance(inner, StandardisedInputs):
                self.mean, self.scale, self.last_index = inner.mean, inner.scale, inner.last_index
            elif isinstance(inner, TargetScale):
                self.out_mean, self.out_std = inner.mean, inner.std
            else:
                raise TypeError(f"expected a WideAndDeep network (possibly in StandardisedInputs or TargetScale), "
                                f"got {type(inner).__name__}")
            inner = inner.inner
        self.core, self.head, self.pick = inner.eval(), head, pick
        self.cardinalities = inner.config["cardinalities"]
        self.outputs = inner.config["n_outputs"]
        self.dims = list(inner.embeddings.dims) if inner.embeddings is not None else []

    def dense_inputs(self, categorical: Any) -> tuple[Any, Any]:
        """Each row's deep embedding vectors and wide lookups (the inputs IG integrates over)."""
        import torch

        n = categorical.shape[0]
        if not self.cardinalities:
            return torch.zeros(n, 0), torch.zeros(n, 0)
        if self.last_index is not None:
            categorical = torch.minimum(categorical, self.last_index)
        deep = self.core.embeddings(categorical)
        wide = self.core.wide(categorical + self.core.offsets).reshape(n, -1)
        return deep, wide

    def forward(self, numeric: Any, deep: Any, wide: Any) -> Any:
        import torch

        z = numeric if self.mean is None else (numeric - self.mean) / self.scale
        out = self.core.bias + self.core.deep(torch.cat([z, deep], dim=1))
        if self.cardinalities:
            out = out + wide.reshape(len(wide), len(self.cardinalities), self.outputs).sum(dim=1)
        out = out * self.out_std + self.out_mean
        if self.head == "sigmoid":
            out = torch.sigmoid(out)
        elif self.head == "softmax":
            out = torch.softmax(out, dim=1)
        if isinstance(self.pick, int):
            return out[:, self.pick]
        return out @ torch.as_tensor(np.asarray(self.pick, dtype=np.float64))  # a reframed value: probabilities @ centers

    def column_attributions(self, numeric: Any, deep: Any, wide: Any) -> np.ndarray:
        """Attributions per numeric input, then per categorical column (embedding dims + wide weights)."""
        parts = [numeric.detach().numpy().astype(np.float64)]
        deep, wide = deep.detach().numpy().astype(np.float64), wide.detach().numpy().astype(np.float64)
        start = 0
        for j, dim in enumerate(self.dims):
            own = deep[:, start:start + dim].sum(axis=1) + wide[:, j * self.outputs:(j + 1) * self.outputs].sum(axis=1)
            parts.append(own[:, None])
            start += dim
        return np.hstack(parts)


def _attribute(parts: _Decomposed, numeric: np.ndarray, categorical: np.ndarray, numeric_baseline: np.ndarray,
               steps: int, max_steps: int, tolerance: float, dense_baseline: tuple[Any, Any] | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, dict[str, Any]]:
    import torch
    from captum.attr import IntegratedGradients

    numeric_t = torch.as_tensor(np.ascontiguousarray(numeric, dtype=np.float64))
    categorical_t = torch.as_tensor(np.ascontiguousarray(categorical, dtype=np.int64))
    with torch.no_grad():
        deep, wide = parts.dense_inputs(categorical_t)
    inputs = (numeric_t, deep, wide)
    base = torch.as_tensor(np.broadcast_to(np.asarray(numeric_baseline, dtype=np.float64), numeric.shape).copy())
    if dense_baseline is None:  # "no information about the column": the zero vector
        baselines = (base, torch.zeros_like(deep), torch.zeros_like(wide))
    else:  # one row of mean embedding vectors and wide weights, for every row
        baselines = (base, *(b.reshape(1, -1).expand_as(x).contiguous() for b, x in zip(dense_baseline, (deep, wide),
                                                                                        strict=True)))
    with torch.no_grad():
        output = parts.forward(*inputs).numpy()
        baseline_output = parts.forward(*baselines).numpy()
    change = np.abs(output - baseline_output)
    typical = float(change.mean()) if len(change) else 0.0
    allowed = np.maximum(tolerance * np.maximum(change, typical), 1e-9 * np.maximum(1.0, np.abs(output)))
    if parts.cardinalities:
        explainer = IntegratedGradients(parts.forward)
    else:  # numbers only: nothing to integrate over for the (empty) categorical inputs
        def numbers_only(numeric: Any) -> Any:
            return parts.forward(numeric, numeric.new_zeros(len(numeric), 0), numeric.new_zeros(len(numeric), 0))

        explainer, inputs, baselines = IntegratedGradients(numbers_only), inputs[:1], baselines[:1]
    while True:
        attributions, delta = explainer.attribute(inputs, baselines=baselines, n_steps=steps, method="gausslegendre",
                                                  internal_batch_size=max(1, 65536 // steps),
                                                  return_convergence_delta=True)
        attributions = tuple(attributions) + (deep[:, :0], wide[:, :0])[:3 - len(inputs)]
        delta = delta.detach().numpy()
        if np.all(np.abs(delta) <= allowed) or steps * 2 > max_steps:
            break
        steps *= 2
    check = {"max_abs_delta": float(np.max(np.abs(delta))) if len(delta) else 0.0,
             "tolerance": f"|delta| <= {tolerance:g} x max(|f(x) - f(baseline)|, its mean over the rows)",
             "passed": bool(np.all(np.abs(delta) <= allowed))}
    return parts.column_attributions(*attributions), output, baseline_output, delta, steps, check


def _onnx_check(output: np.ndarray, served: np.ndarray) -> dict[str, Any]:
    difference = np.abs(np.asarray(served, dtype=np.float64) - output)
    allowed = ONNX_TOLERANCE * np.maximum(1.0, np.abs(output))
    return {"max_abs_difference": float(difference.max()) if len(difference) else 0.0,
            "tolerance": f"|torch - onnx| <= {ONNX_TOLERANCE:g} x max(1, |output|)",
            "passed": bool(np.all(difference <= allowed))}


def integrated_gradients(network_estimator: Any, X: Any, *, baseline: Any = "mean", steps: int = 64,
                         max_steps: int = 1024, tolerance: float = 0.01, target: Any = None,
                         feature_names: list[str] | None = None, onnx: bytes | None = None) -> IntegratedGradientsResult:
    """Integrated gradients of a fitted wide-and-deep estimator's served output for rows ``X``.

    Parameters
    ----------
    network_estimator : WideAndDeepClassifier or WideAndDeepRegressor
        A fitted estimator (:mod:`mlpatterns.models.wide_and_deep_estimators`).
    X : array-like
        Rows of the estimator's matrix: numbers first, then categorical indices.
    baseline : "mean" or array-like
        The numeric inputs' baseline: ``"mean"``, the training mean (``mean_``), or one
        row of numbers (``n_numeric_`` values). Categorical inputs' baseline is always
        the zero embedding and zero wide weight.
    steps, max_steps : int
        Integration steps to start with; doubled until completeness holds, at most ``max_steps``.
    tolerance : float
        Completeness tolerance, relative to ``|f(x) - f(baseline)|`` (see the module docstring).
    target : class label, optional
        The class whose probability is explained (default: the last class, the positive
        one of a binary classifier). Ignored for a regressor.
    feature_names : list of str, optional
        Names of ``X``'s columns (default: a DataFrame's columns, else ``x0, x1, ...``).
    onnx : bytes, optional
        The estimator's ONNX network to check against (as a bundle holds it, made by
        :func:`mlpatterns.export.onnx_export.torch_to_onnx`); by default exported here with
        the same TorchScript exporter call (inputs ``numeric`` and ``categorical``, a softmax
        for a classifier).
    """
    import onnxruntime as ort

    from mlpatterns.models import WideAndDeepClassifier, WideAndDeepRegressor

    if not isinstance(network_estimator, (WideAndDeepClassifier, WideAndDeepRegressor)):
        raise TypeError(f"expected a fitted WideAndDeepClassifier or WideAndDeepRegressor, "
                        f"got {type(network_estimator).__name__}")
    names = list(feature_names) if feature_names is not None else (
        [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None)
    numeric, categorical = network_estimator.onnx_inputs(X)
    n_numeric = network_estimator.n_numeric_
    names = names or [f"x{j}" for j in range(n_numeric + categorical.shape[1])]
    if len(names) != n_numeric + categorical.shape[1]:
        raise ValueError(f"feature_names has {len(names)} names for {n_numeric + categorical.shape[1]} columns")
    classifier = isinstance(network_estimator, WideAndDeepClassifier)
    pick = 0
    if classifier:
        classes = list(network_estimator.classes_)
        label = classes[-1] if target is None else target
        if label not in classes:
            raise ValueError(f"target {target!r} is not one of the classes {classes}")
        pick = classes.index(label)
    numeric_baseline = _numeric_baseline(baseline, network_estimator.mean_, n_numeric)
    parts = _Decomposed(network_estimator.network_, "softmax" if classifier else "identity", pick)
    attributions, output, baseline_output, delta, used, completeness = _attribute(
        parts, numeric, categorical, numeric_baseline, steps, max_steps, tolerance)
    if onnx is None:
        onnx = _exported(network_estimator.network_, numeric, categorical, softmax=classifier)
    session = ort.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    feeds = {"numeric": numeric.astype(np.float32), "categorical": categorical.astype(np.int64)}
    declared = {item.name for item in session.get_inputs()}  # an unused (empty) categorical input is dropped
    served = session.run(None, {name: value for name, value in feeds.items() if name in declared})[0]
    return IntegratedGradientsResult(attributions, names, output, baseline_output, delta, used,
                                     {"completeness": completeness, "onnx": _onnx_check(output, served[:, pick])})


def _exported(network: Any, numeric: np.ndarray, categorical: np.ndarray, *, softmax: bool) -> bytes:
    """The network as ONNX, exported as :func:`mlpatterns.export.onnx_export.torch_to_onnx` exports it
    (that module is not imported here: the export package depends on serving, which depends on this one)."""
    import io
    import warnings

    import torch

    class Served(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
            out = self.inner(numeric, categorical)
            return torch.softmax(out, dim=1) if softmax else out

    buffer = io.BytesIO()
    sample = (torch.as_tensor(np.ascontiguousarray(numeric[:2], dtype=np.float32)),
              torch.as_tensor(np.ascontiguousarray(categorical[:2], dtype=np.int64)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(Served(network).eval(), sample, buffer, dynamo=False, input_names=["numeric", "categorical"],
                          output_names=["output"],
                          dynamic_axes={"numeric": {0: "rows"}, "categorical": {0: "rows"}, "output": {0: "rows"}})
    return buffer.getvalue()


def _numeric_baseline(baseline: Any, mean: np.ndarray, n_numeric: int) -> np.ndarray:
    if isinstance(baseline, str):
        if baseline != "mean":
            raise ValueError(f"baseline must be 'mean' or a row of {n_numeric} numbers, got {baseline!r}")
        return np.asarray(mean, dtype=np.float32)
    row = np.asarray(baseline, dtype=np.float32).reshape(-1)
    if row.shape != (n_numeric,):
        raise ValueError(f"baseline must be 'mean' or a row of {n_numeric} numbers, got shape {row.shape}")
    return row


def network_from_onnx(onnx_bytes: bytes, architecture: dict[str, Any], *, target_scale: dict[str, float] | None = None
                      ) -> Any:
    """The torch network of a ``wide_and_deep`` bundle, rebuilt from its ONNX weights.

    ``architecture`` is the manifest's ``model.architecture`` (the
    :class:`~mlpatterns.models.wide_and_deep.WideAndDeep` config) and ``target_scale`` its
    ``model.target_scale`` (a regression's). The ONNX file names every weight after the
    torch parameter it was exported from, so the state dict is read back whole; a
    missing or extra weight raises ``ValueError``.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    from mlpatterns.models.wide_and_deep import TargetScale, WideAndDeep

    core = WideAndDeep.from_config(architecture)
    module = core if target_scale is None else TargetScale(core, target_scale["mean"], target_scale["std"])
    graph = onnx.load_from_string(onnx_bytes).graph
    weights = {item.name.removeprefix("inner."): torch.as_tensor(numpy_helper.to_array(item).copy())
               for item in graph.initializer}
    expected = module.state_dict()
    missing = [name for name in expected if name not in weights]
    if missing:
        raise ValueError(f"the ONNX network lacks the weight(s) {missing} of the architecture {architecture}")
    module.load_state_dict({name: weights[name].reshape(expected[name].shape) for name in expected}, strict=True)
    return module.eval()


def bundle_integrated_gradients(serving: Any, rows: pd.DataFrame, training: pd.DataFrame | None = None, *,
                                baseline: Any = "mean", steps: int = 64, max_steps: int = 1024,
                                tolerance: float = 0.01, target: int | None = None,
                                embedding_baseline: str = "zeros") -> IntegratedGradientsResult:
    """Integrated gradients of a ``wide_and_deep`` bundle's served output for raw ``rows``.

    Parameters
    ----------
    serving : ServingFunction
        A bundle whose model is one ``wide_and_deep`` network (``model.type``).
    rows : pandas.DataFrame
        Raw input rows to explain (bad rows raise :class:`InputError`).
    training : pandas.DataFrame, optional
        Raw training rows: ``baseline="mean"`` takes the mean of their transformed numeric inputs.
    baseline : "mean", "zeros" or array-like
        The numeric inputs' baseline: the training mean, zeros (the training mean of every
        standardized number, but a missing-value indicator's 0) or one row of numbers.
    steps, max_steps, tolerance
        As :func:`integrated_gradients`.
    target : int, optional
        The output column explained for a multiclass or multilabel bundle (required there).
    embedding_baseline : {"zeros", "mean"}
        The categorical inputs' baseline: the zero embedding and wide weight (default), or
        their mean over the training rows (needs ``training``), whose output is closer to
        a typical prediction.

    The attributions are also added up by raw input column (:attr:`IntegratedGradientsResult.raw_attributions`).
    """
    from mlpatterns.responsible.explainable_predictions.raw_columns import (
        feature_sources,
        to_raw_columns,
    )

    model = serving.bundle.manifest["model"]
    if model.get("type") != "wide_and_deep" or "architecture" not in model:
        raise ValueError(f"integrated gradients explain a wide_and_deep network; the model '{serving.name}' is "
                         f"{model.get('type', 'a model graph')!r} (use SHAP for it)")
    network = network_from_onnx(serving.bundle.files[model["file"]], model["architecture"],
                                target_scale=model.get("target_scale"))
    outputs = model["architecture"]["n_outputs"]
    head, pick = _served_head(serving, model, outputs, target)
    keys = {key: 0 for key in serving.key_columns if key not in serving.input_columns}  # keys only pass through
    conformed, problems = serving.conform(rows.assign(**{k: v for k, v in keys.items() if k not in rows.columns}))
    if problems:
        from mlpatterns.serving.stateless_serving_function import InputError

        raise InputError(f"{len({p.row for p in problems})} bad row(s) to explain", problems)
    features = serving.features(conformed)
    training_features = None
    if training is not None:
        from mlpatterns.serving.stateless_serving_function import good_rows

        conformed_training, problems = serving.conform(
            training.reset_index(drop=True).assign(**{k: v for k, v in keys.items() if k not in training}))
        kept = good_rows(len(conformed_training), problems)  # a problem names a position, not an index label
        training_features = serving.features(conformed_training[kept].reset_index(drop=True))
    if isinstance(baseline, str) and baseline == "mean":
        if training_features is None:
            raise ValueError("baseline='mean' needs the training rows (training=...); or pass baseline='zeros'")
        numeric_baseline = training_features.numeric.mean(axis=0)
    elif isinstance(baseline, str) and baseline == "zeros":
        numeric_baseline = np.zeros(features.numeric.shape[1], dtype=np.float32)
    else:
        numeric_baseline = _numeric_baseline(baseline, np.zeros(0), features.numeric.shape[1])
    parts = _Decomposed(network, head, pick)
    dense_baseline = None
    if embedding_baseline == "mean":
        if training is None:
            raise ValueError("embedding_baseline='mean' needs the training rows (training=...)")
        import torch

        with torch.no_grad():
            deep, wide = parts.dense_inputs(torch.as_tensor(training_features.categorical))
        dense_baseline = (deep.mean(dim=0), wide.mean(dim=0))
    elif embedding_baseline != "zeros":
        raise ValueError(f"embedding_baseline must be 'zeros' or 'mean', got {embedding_baseline!r}")
    attributions, output, baseline_output, delta, used, completeness = _attribute(
        parts, features.numeric, features.categorical, numeric_baseline, steps, max_steps, tolerance, dense_baseline)
    served = serving.predict_features(features)
    served = served if served.ndim == 1 else served[:, pick]
    names = features.numeric_names + features.categorical_names
    sources = feature_sources(serving.transform, names)
    raw = to_raw_columns(attributions, sources, serving.input_columns)
    return IntegratedGradientsResult(attributions, names, output, baseline_output, delta, used,
                                     {"completeness": completeness, "onnx": _onnx_check(output, served)},
                                     list(serving.input_columns), raw)


def _served_head(serving: Any, model: dict[str, Any], outputs: int, target: int | None) -> tuple[str, Any]:
    """The activation the bundle's export applied and what its served output takes from it."""
    task = serving.task
    if task == "regression":
        if model.get("output") == "bucket_probabilities":  # Reframing (5): the mean of the buckets
            return "softmax", np.asarray(model["centers"], dtype=np.float32)
        return "identity", 0
    if task == "classification":  # a logit (sigmoid), or three classes of which the last is positive
        return ("sigmoid", 0) if outputs == 1 else ("softmax", outputs - 1)
    if target is None or not 0 <= int(target) < outputs:
        raise ValueError(f"a {task} bundle needs target: the output column to explain, 0 to {outputs - 1}")
    return ("softmax" if task == "multiclass" else "sigmoid"), int(target)


def plot_integrated_gradients(result: IntegratedGradientsResult, path: Any, *, title: str = "") -> None:
    """A bar chart of the mean absolute attribution per raw column (per input without a mapping), written
    to ``path`` (PNG) through a temporary file renamed into place; the checks in its title."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlpatterns.atomic_files import save_figure

    importance = result.importance(raw=result.raw_attributions is not None).iloc[:20][::-1]
    checks = result.check
    figure, axis = plt.subplots(figsize=(7, 0.35 * len(importance) + 1.6))
    axis.barh(list(importance.index), importance.to_numpy(), color="#4c72b0")
    axis.set_xlabel(f"mean |integrated gradients attribution|, {len(result.output)} rows")
    axis.set_title(f"{title + ': ' if title else ''}f(baseline) {np.mean(result.baseline_output):.3g}, "
                   f"mean f(x) {np.mean(result.output):.3g}\ncompleteness max |delta| "
                   f"{checks['completeness']['max_abs_delta']:.1e} ({result.steps} steps); "
                   f"torch vs ONNX {checks['onnx']['max_abs_difference']:.1e}", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path, dpi=100)
