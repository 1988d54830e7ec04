"""Export a fitted (meta-)estimator as ONNX files and the model graph that composes them.

:func:`export_graph` walks the chapter-3 meta-estimators of :mod:`mlpatterns.problem`
down to plain scikit-learn models, converts each with the verified
:func:`~mlpatterns.export.onnx_export.sklearn_to_onnx`, and returns the node of
:mod:`mlpatterns.serving.model_graph` that recombines them as the estimator does.
What exists only at training time (a resampler, out-of-fold predictions, the
threshold search) is left behind; what prediction needs is in the graph.

The whole graph is then checked against the estimator like one export
(:func:`~mlpatterns.tolerance.compare_outputs`), at the scale its leaves'
float32 rounding reaches through the composition: averaged in a mean, times
``p (1 - p)`` in a logistic, through the meta-model (by finite differences, over
``p`` for log-probabilities) in a stack, and either branch for a row whose router is
undecided within its own rounding.

Every file is byte-reproducible
(:func:`~mlpatterns.export.onnx_export.reproducible_onnx_bytes`): the same fitted
estimator gives the same files, and the graph node is plain JSON data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlpatterns.export.onnx_export import output_scale, reproducible_onnx_bytes, sklearn_to_onnx
from mlpatterns.tolerance import EPS32, TOLERANCE_FACTOR, compare_outputs, export_tolerance

__all__ = ["export_graph"]


def export_graph(estimator: Any, sample: np.ndarray, stem: str = "model") -> tuple[dict[str, bytes], dict[str, Any]]:
    """ONNX files (name -> bytes) and the graph node computing ``estimator``'s output.

    A classifier's node yields its class probabilities (``predict_proba``), a
    regressor's its prediction (one column); :class:`MultilabelClassifier` one
    probability per label. ``sample`` (float32 rows of the training matrix) is what
    every conversion is verified on.
    """
    sample = np.ascontiguousarray(sample, dtype=np.float32)
    files: dict[str, bytes] = {}
    leaves: dict[str, tuple[Any, np.ndarray]] = {}
    node = _export(estimator, sample, stem, files, leaves)
    rows = sample.astype(np.float64)
    expected = estimator.predict_proba(rows) if _is_classifier(estimator) else estimator.predict(rows)
    _verify_node(node, files, sample, np.asarray(expected, dtype=np.float64).reshape(len(sample), -1), leaves)
    return files, node


def _is_classifier(estimator: Any) -> bool:
    from sklearn.base import is_classifier

    return bool(is_classifier(estimator))


def _leaf(estimator: Any, sample: np.ndarray, name: str, files: dict[str, bytes], leaves: dict[str, Any],
          column: int | None = None) -> dict[str, Any]:
    classifier = _is_classifier(estimator)
    files[name] = sklearn_to_onnx(estimator, sample, "classification" if classifier else "regression")
    leaves[name] = (estimator, _leaf_scale(estimator, sample.astype(np.float64), classifier))
    node: dict[str, Any] = {"onnx": name, "output": "probabilities" if classifier else "value"}
    if column is not None:
        node["column"] = column
    return node


def _export(estimator: Any, sample: np.ndarray, stem: str, files: dict[str, bytes],
            leaves: dict[str, Any]) -> dict[str, Any]:
    from mlpatterns.models import WideAndDeepClassifier, WideAndDeepRegressor
    from mlpatterns.problem.cascade import CascadeRegressor
    from mlpatterns.problem.ensembles import KeyedStackingClassifier, KeyedStackingRegressor
    from mlpatterns.problem.multilabel import MultilabelClassifier
    from mlpatterns.problem.neutral_class import NeutralClassClassifier
    from mlpatterns.problem.rebalancing import DownsampledEnsembleClassifier, ResampledClassifier
    from mlpatterns.problem.rebalancing_anomaly import AnomalyClassifier
    from mlpatterns.problem.reframing import ReframedRegressor

    if isinstance(estimator, (ResampledClassifier, NeutralClassClassifier, ReframedRegressor)):
        return _leaf(estimator.estimator_, sample, f"{stem}.onnx", files, leaves)
    if isinstance(estimator, DownsampledEnsembleClassifier):
        ensemble = estimator.ensemble_
        if any(not np.array_equal(f, np.arange(sample.shape[1])) for f in ensemble.estimators_features_):
            raise ValueError("only downsampled ensembles whose members see every feature are exported")
        # each member is an imbalanced-learn pipeline (sampler, model); the sampler only acts in fit
        members = [member.steps[-1][1] for member in ensemble.estimators_]
        return {"mean": [_export(member, sample, f"{stem}-member{i}", files, leaves) for i, member in enumerate(members)]}
    if isinstance(estimator, (KeyedStackingRegressor, KeyedStackingClassifier)):
        names = list(estimator.named_estimators_)
        members = [_export(m, sample, f"{stem}-{name}", files, leaves) for name, m in zip(names, estimator.estimators_, strict=True)]
        if isinstance(estimator, KeyedStackingRegressor):
            members = [{**m, "column": 0} if "onnx" in m else m for m in members]
        meta_sample = estimator._stack_features(sample.astype(np.float64)).astype(np.float32)
        meta = _leaf(estimator.final_estimator_, meta_sample, f"{stem}-meta.onnx", files, leaves)
        return {"stack": members, "meta": meta,
                "meta_input": "log" if isinstance(estimator, KeyedStackingClassifier) else "identity"}
    if isinstance(estimator, CascadeRegressor):
        if not _is_classifier(estimator.router_) or len(estimator.router_.classes_) != 2:
            raise ValueError("a cascade whose training rows fall in one regime only cannot be exported; "
                             "choose a threshold inside the range of the target")
        return {"route": _export(estimator.router_, sample, f"{stem}-router", files, leaves),
                "branches": [_export(estimator.typical_, sample, f"{stem}-typical", files, leaves),
                             _export(estimator.extreme_, sample, f"{stem}-extreme", files, leaves)]}
    if isinstance(estimator, MultilabelClassifier):
        if not estimator.multilabel_ or any(m is None for m in estimator.estimators_):
            raise ValueError("only a multilabel model whose every label has both values in training is exported")
        return {"concat": [_leaf(m, sample, f"{stem}-label{j}.onnx", files, leaves, column=list(m.classes_).index(1))
                           for j, m in enumerate(estimator.estimators_)]}
    if isinstance(estimator, AnomalyClassifier):
        return _export_anomaly(estimator, sample, stem, files, leaves)
    if isinstance(estimator, (WideAndDeepClassifier, WideAndDeepRegressor)):
        return _export_network(estimator, sample, f"{stem}.onnx", files, leaves)
    return _leaf(estimator, sample, f"{stem}.onnx", files, leaves)


def _export_network(estimator: Any, sample: np.ndarray, name: str, files: dict[str, bytes],
                    leaves: dict[str, Any]) -> dict[str, Any]:
    """A wide-and-deep estimator: its network takes the matrix split into (numeric, categorical)."""
    from mlpatterns.export.onnx_export import torch_to_onnx
    from mlpatterns.models import WideAndDeepClassifier

    classifier = isinstance(estimator, WideAndDeepClassifier)
    if classifier and len(estimator.classes_) < 2:
        raise ValueError("a classifier fitted on one class has nothing to serve; its training rows need two classes")
    numeric, categorical = estimator.onnx_inputs(sample)
    files[name] = torch_to_onnx(estimator.network_, numeric, categorical,
                                "multiclass" if classifier else "regression")
    leaves[name] = (estimator, _leaf_scale(estimator, sample.astype(np.float64), classifier))
    node: dict[str, Any] = {"onnx": name, "output": "probabilities" if classifier else "value",
                            "numeric_columns": int(estimator.n_numeric_)}
    return node


def _export_anomaly(estimator: Any, sample: np.ndarray, stem: str, files: dict[str, bytes],
                    leaves: dict[str, Any]) -> dict[str, Any]:
    """An anomaly detector's score, turned into P(rare class) as AnomalyClassifier does."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import IsolationForest

    detector = estimator.detector_
    if not isinstance(detector, IsolationForest):
        raise ValueError(f"only an IsolationForest anomaly detector is exported, got {type(detector).__name__}")
    name = f"{stem}-detector.onnx"
    proto = to_onnx(detector, initial_types=[("features", FloatTensorType([None, sample.shape[1]]))],
                    target_opset={"": 17, "ai.onnx.ml": 3})
    files[name] = reproducible_onnx_bytes(proto, f"mlpatterns_{type(detector).__name__}")
    # The ONNX model's second output is decision_function = score_samples - offset_;
    # AnomalyClassifier's anomaly score is -score_samples, so
    # anomaly = -(decision + offset) and the logit is (anomaly - threshold) / scale.
    sign = 1.0 if estimator.pos_label_ == estimator.classes_[1] else -1.0
    scale = sign * -1.0 / estimator.scale_
    shift = sign * (-float(detector.offset_) - estimator.threshold_) / estimator.scale_
    node = {"logistic": {"onnx": name, "output": "probabilities", "column": 0}, "scale": scale, "shift": shift}
    # the score is 2**-(mean path / c) - offset_, rounded at the magnitude of both terms
    rows = sample.astype(np.float64)
    leaves[name] = (detector, (np.abs(detector.score_samples(rows)) + abs(float(detector.offset_)))[:, None])
    _verify_node(node, files, sample, estimator.predict_proba(rows), leaves)
    return node


def _leaf_scale(estimator: Any, rows: np.ndarray, classifier: bool) -> np.ndarray:
    """What a leaf's float32 computation carries per row and output column (its largest output if unknown)."""
    task = "classification" if classifier else "regression"
    scale = output_scale(estimator, rows, task)
    if scale is None:
        output = estimator.predict_proba(rows) if classifier else estimator.predict(rows)
        scale = np.abs(np.asarray(output, dtype=np.float64).reshape(len(rows), -1)).max(axis=0, keepdims=True)
    return np.broadcast_to(scale, (len(rows), scale.shape[1]))


def _node_scale(node: dict[str, Any], files: dict[str, bytes], sample: np.ndarray, leaves: dict[str, Any]) -> np.ndarray:
    """The magnitude each output of ``node`` carries: its leaves' scales, carried through the composition."""
    from mlpatterns.serving.model_graph import LOG_FLOOR, ModelGraph

    def value(child: dict[str, Any]) -> np.ndarray:
        return ModelGraph(child, files).run(sample)

    def scale(child: dict[str, Any]) -> np.ndarray:
        return _node_scale(child, files, sample, leaves)

    if "onnx" in node:
        found = leaves[node["onnx"]][1]
        return found if "column" not in node else found[:, [node["column"]]]
    if "mean" in node:
        return np.mean([scale(child) for child in node["mean"]], axis=0)
    if "concat" in node:
        return np.hstack([scale(child) for child in node["concat"]])
    if "logistic" in node:  # dp = p (1 - p) |a| dx, and p's own rounding
        p = value(node)[:, [1]]
        return np.repeat(p * (1 - p) * abs(node["scale"]) * scale(node["logistic"])[:, [0]] + 1.0, 2, axis=1)
    if "route" in node:  # a router whose rounding could send a row either way allows either branch
        router, typical, extreme = value(node["route"]), *(value(b) for b in node["branches"])
        chosen = np.where((np.argmax(router, axis=1) == 1)[:, None], *(scale(b) for b in node["branches"][::-1]))
        undecided = np.abs(router[:, 1] - router[:, 0]) <= 2 * export_tolerance(router, scale(node["route"])).max(axis=1)
        return np.where(undecided[:, None], np.maximum(chosen, np.abs(extreme - typical) / (TOLERANCE_FACTOR * EPS32)),
                        chosen)
    # a stack: the meta-model's own rounding, plus its members' rounding carried through it (finite differences)
    members = np.hstack([value(child) for child in node["stack"]])
    error = np.hstack([scale(child) for child in node["stack"]]) * TOLERANCE_FACTOR * EPS32
    if node.get("meta_input", "identity") == "log":
        error = error / np.maximum(members, LOG_FLOOR)
        members = np.log(np.clip(members, LOG_FLOOR, 1.0))
    meta, own = leaves[node["meta"]["onnx"]]
    output = meta.predict_proba if _is_classifier(meta) else meta.predict
    base = np.asarray(output(members), dtype=np.float64).reshape(len(members), -1)
    carried = np.zeros_like(base)
    for j in range(members.shape[1]):
        moved = members.copy()
        moved[:, j] += error[:, j]
        carried = carried + np.abs(np.asarray(output(moved), dtype=np.float64).reshape(base.shape) - base)
    return own + carried / (TOLERANCE_FACTOR * EPS32)


def _verify_node(node: dict[str, Any], files: dict[str, bytes], sample: np.ndarray, expected: np.ndarray,
                 leaves: dict[str, Any]) -> None:
    from mlpatterns.serving.model_graph import ModelGraph

    got = ModelGraph(node, files).run(sample)
    compare_outputs(got, expected, _node_scale(node, files, sample, leaves), what="the exported model graph")
