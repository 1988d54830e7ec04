"""Build, train and export the model that one ``models.<name>`` section of a spec declares.

The spec's ``target:`` picks the problem representation (chapter 3): a binary class,
a value, a value reframed as buckets (Reframing, 5), several labels (Multilabel, 6)
or a binary class with a neutral band (Neutral Class, 9). The model section picks the
model: a single scikit-learn or torch model, a stack (Ensembles, 7), a cascade
(Cascade, 8) or an anomaly detector, optionally rebalanced and with its decision
threshold moved on the validation split (Rebalancing, 10). Whatever the
combination, the result is a :class:`TrainedModel`: the test-split output that the
served bundle must reproduce, the ONNX files and the manifest fields that compose
them (:mod:`mlpatterns.serving.model_graph`).

The gradient-boosted single model stops early on the hash-split validation rows; a
meta-estimator's inner models cannot see them, so they train for ``max_iter``
rounds (scikit-learn's early stopping on a random slice of the training rows would
leak same-key information and is switched off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlpatterns.metrics import evaluate, evaluate_multiclass, evaluate_multilabel, evaluate_neutral
from mlpatterns.spec._checks import SpecError
from mlpatterns.spec.schema import Spec

__all__ = ["NEUTRAL_CLASSES", "TrainedModel", "build_estimator", "classes_of", "evaluate_model", "fit_boosting",
           "served_task", "sklearn_model", "train_model", "tune_threshold"]

NEUTRAL_CLASSES = ["negative", "neutral", "positive"]
SAMPLE_ROWS = 2000  # rows every export is verified on


@dataclass
class TrainedModel:
    """A trained model as the lifecycle bundles it."""

    test_output: np.ndarray  # what the served bundle's predict_features must give on the test split
    files: dict[str, bytes]
    model: dict[str, Any]  # the manifest's "model" section
    serving: dict[str, Any] = field(default_factory=dict)  # threshold(s), classes, labels
    valid_output: np.ndarray | None = None
    test_metrics: dict[str, float] = field(default_factory=dict)  # what only this kind of model reports
    # the size of the numbers the float32 computation of each test output carries (see
    # mlpatterns.export.onnx_export.output_scale); None: the outputs' own size
    score_scale: np.ndarray | None = None


def served_task(spec: Spec) -> str:
    """The bundle's task: a neutral band turns a binary target into three classes."""
    return "multiclass" if "neutral" in spec.target else spec.task


def classes_of(spec: Spec) -> list[str]:
    """The class names of a multiclass bundle: the neutral class's three, or the target's labels as text."""
    return list(NEUTRAL_CLASSES) if "neutral" in spec.target else list(spec.target["classes"])


def evaluate_model(spec: Spec, y_test: np.ndarray, trained: TrainedModel) -> dict[str, float]:
    """The test metrics of a trained model: its task's metrics of ``test_output``, and its own ``test_metrics``."""
    task = served_task(spec)
    if task == "multilabel":
        result = evaluate_multilabel(y_test, trained.test_output, trained.serving["labels"],
                                     np.asarray(trained.serving["thresholds"]))
    elif task == "multiclass" and "neutral" in spec.target:
        result = evaluate_neutral(y_test, trained.test_output)
    elif task == "multiclass":
        result = evaluate_multiclass(y_test, trained.test_output, spec.target["classes"])
    else:
        result = evaluate(task, y_test, trained.test_output, trained.serving.get("threshold"))
    return {**result, **trained.test_metrics}


# -- scikit-learn models ---------------------------------------------------------------------------
def sklearn_model(kind: str, params: dict[str, Any], classification: bool, seed: int, where: str,
                   layout: tuple[int, list[int]], *, inner: bool) -> Any:
    """A scikit-learn model over the feature matrix; ``layout`` is (numeric columns, cardinalities)."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    params = dict(params)
    try:
        if kind == "gradient_boosting":
            cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
            # a single model stops early on the hash-split validation rows (see _train_boosting);
            # inside a meta-estimator it cannot see them, and random training rows would leak
            defaults: dict[str, Any] = {"random_state": seed, "early_stopping": not inner}
            if inner:
                params.pop("n_iter_no_change", None)
            return cls(**{**defaults, **params})
        if kind == "random_forest":
            cls = RandomForestClassifier if classification else RandomForestRegressor
            return cls(**{"n_estimators": 100, "min_samples_leaf": 5, "random_state": seed, **params})
        if kind == "wide_and_deep":  # a torch network as a scikit-learn member
            from mlpatterns.models import WideAndDeepClassifier, WideAndDeepRegressor

            cls = WideAndDeepClassifier if classification else WideAndDeepRegressor
            return cls(**{"n_numeric": layout[0], "cardinalities": layout[1], "random_state": seed, **params})
        return _linear_model(params, classification, layout[0], layout[0] + len(layout[1]))
    except TypeError as error:
        raise SpecError(f"{where}.params: {error}") from error


def _linear_model(params: dict[str, Any], classification: bool, n_numeric: int, n_columns: int) -> Any:
    """Standardised numbers and one-hot hashed categories into a logistic or ridge regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = ColumnTransformer([
        ("numeric", StandardScaler(), list(range(n_numeric))),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), list(range(n_numeric, n_columns))),
    ])
    final = LogisticRegression(**{"max_iter": 1000, **params}) if classification else Ridge(**params)
    return make_pipeline(columns, final)


def build_estimator(name: str, model_spec: dict[str, Any], spec: Spec, seed: int,
                    layout: tuple[int, list[int]]) -> Any:
    """The scikit-learn (meta-)estimator of a model section, unfitted.

    ``layout`` is the feature matrix's number of numeric columns and the
    cardinality of each categorical column after them.
    """
    from mlpatterns.problem import (
        AnomalyClassifier,
        CascadeRegressor,
        DownsampledEnsembleClassifier,
        KeyedStackingClassifier,
        KeyedStackingRegressor,
        MultilabelClassifier,
        NeutralClassClassifier,
        ResampledClassifier,
    )

    where, kind = f"models.{name}", model_spec["type"]
    classification = spec.task != "regression"  # binary, multiclass or multilabel

    def member(section: dict[str, Any], at: str, is_classifier: bool = classification) -> Any:
        return sklearn_model(section["type"], section["params"], is_classifier, seed, at, layout, inner=True)

    if kind == "stacking":
        members = [(n, member(m, f"{where}.members.{n}")) for n, m in model_spec["members"].items()]
        final = member(model_spec["final"], f"{where}.final") if "final" in model_spec else None
        cls = KeyedStackingClassifier if classification else KeyedStackingRegressor
        return cls(members, final_estimator=final, n_splits=model_spec["n_splits"])
    if kind == "cascade":
        # a part the spec leaves out is a seeded gradient-boosted model without early stopping (whose
        # random slice of training rows would leak same-key rows)
        default = {"type": "gradient_boosting", "params": {}}
        parts = {part: member(model_spec.get(part, default), f"{where}.{part}", part == "router")
                 for part in ("router", "typical", "extreme")}
        return CascadeRegressor(**parts, threshold=model_spec.get("extreme_above"), n_splits=model_spec["n_splits"])
    if kind == "anomaly_detector":
        from sklearn.ensemble import IsolationForest

        try:
            detector = IsolationForest(**{"random_state": seed, **model_spec["params"]})
        except TypeError as error:
            raise SpecError(f"{where}.params: {error}") from error
        return AnomalyClassifier(detector, threshold="f1", pos_label=1.0, random_state=seed)
    rebalance = model_spec.get("rebalance", {})
    params = dict(model_spec["params"])
    if rebalance.get("method") == "class_weight":
        params.setdefault("class_weight", "balanced")
    estimator = sklearn_model(kind, params, classification, seed, where, layout, inner=True)
    method = rebalance.get("method")
    ratio = rebalance.get("sampling_strategy", "auto")
    if method in ("downsample", "upsample", "smote"):
        estimator = ResampledClassifier(estimator, sampler=method, sampling_strategy=ratio, random_state=seed)
    elif method == "downsampled_ensemble":
        estimator = DownsampledEnsembleClassifier(estimator, n_estimators=rebalance.get("n_estimators", 10),
                                                  sampling_strategy=ratio, random_state=seed)
    if "neutral" in spec.target:
        estimator = NeutralClassClassifier(estimator)
    if spec.task == "multilabel":
        estimator = MultilabelClassifier(estimator, threshold_strategy=0.5)  # thresholds tuned on valid below
    return estimator


# -- thresholds ------------------------------------------------------------------------------------
def tune_threshold(rule: Any, y_valid: np.ndarray, scores: np.ndarray) -> float:
    """Threshold moving on the validation split: a fixed number, best F1, or most recall at a precision."""
    from sklearn.metrics import precision_recall_curve

    from mlpatterns.problem.multilabel import best_f1_threshold

    if isinstance(rule, (int, float)):
        return float(rule)
    if len(np.unique(y_valid)) < 2:
        return 0.5
    if "min_precision" not in rule:
        return best_f1_threshold(y_valid, scores)
    precision, recall, thresholds = precision_recall_curve(y_valid, scores)
    ok = precision[:-1] >= rule["min_precision"]
    if not ok.any():  # no cut reaches the precision: take the most precise one
        return float(thresholds[int(np.argmax(precision[:-1]))])
    return float(thresholds[ok][int(np.argmax(recall[:-1][ok]))])


def serving_fields(model_spec: dict[str, Any], spec: Spec, y_valid: np.ndarray, valid: np.ndarray) -> dict[str, Any]:
    task = served_task(spec)
    if task == "multiclass":
        return {"classes": classes_of(spec)}
    if task == "multilabel":
        rule = model_spec.get("threshold", {"strategy": "f1"})
        thresholds = [tune_threshold(rule, y_valid[:, j], valid[:, j]) for j in range(y_valid.shape[1])]
        return {"labels": list(spec.target["columns"]), "thresholds": thresholds}
    if task == "classification":
        rule = model_spec.get("threshold", 0.5)
        return {"threshold": tune_threshold(rule, y_valid, valid), "threshold_rule": rule}
    return {}


# -- training --------------------------------------------------------------------------------------
def train_model(name: str, model_spec: dict[str, Any], spec: Spec, data: dict[str, Any], context: dict[str, Any],
                progress: Any, seed: int) -> TrainedModel:
    """Train the model of ``models.<name>`` on the split data; export and describe it.

    ``data[split]`` is ``(TransformedFeatures, target)``; ``context`` holds each split's
    ``groups`` (the split key, for keyed out-of-fold folds) and ``neutral`` mask.
    """
    kind = model_spec["type"]
    if kind == "wide_and_deep":
        from mlpatterns.spec.network import train_network_model

        return train_network_model(name, model_spec, spec, data, context, progress, seed)
    if kind == "emulator":  # Useful Overfitting (11): the whole grid, to a max-error tolerance
        from mlpatterns.spec.emulator import train_emulator

        return train_emulator(name, model_spec, spec, data, context, progress, seed)
    if "reframe" in spec.target:
        return _train_reframed(name, model_spec, spec, data, progress, seed)
    simple = kind == "gradient_boosting" and spec.task != "multilabel" and "neutral" not in spec.target \
        and model_spec.get("rebalance", {}).get("method") in (None, "class_weight")
    if simple:
        return _train_boosting(name, model_spec, spec, data, progress, seed)
    return _train_estimator(name, model_spec, spec, data, context, progress, seed)


def _output(estimator: Any, X: np.ndarray, task: str) -> np.ndarray:
    if task == "classification":
        return estimator.predict_proba(X)[:, -1]
    if task == "regression":
        return np.asarray(estimator.predict(X), dtype=np.float64)
    return np.asarray(estimator.predict_proba(X), dtype=np.float64)


def _train_estimator(name, model_spec, spec, data, context, progress, seed) -> TrainedModel:
    from mlpatterns.export.graph_export import export_graph
    from mlpatterns.problem import CascadeRegressor, KeyedStackingClassifier, KeyedStackingRegressor

    (train, y_train), (valid, y_valid), (test, _) = (data[s] for s in ("train", "valid", "test"))
    X = train.matrix()
    estimator = build_estimator(name, model_spec, spec, seed, (train.numeric.shape[1], list(train.cardinalities)))
    task_id = progress.add_task(f"{name}: {model_spec['type']}", total=None) if progress else None
    fit_params: dict[str, Any] = {}
    if isinstance(estimator, (KeyedStackingClassifier, KeyedStackingRegressor, CascadeRegressor)):
        fit_params["groups"] = context["groups"]["train"]  # keyed out-of-fold folds
    if "neutral" in spec.target:
        fit_params["neutral_mask"] = context["neutral"]["train"]
    try:
        estimator.fit(X, y_train, **fit_params)
    except ValueError as error:
        raise SpecError(f"models.{name}: {error}") from error
    if progress is not None:
        progress.update(task_id, total=1, completed=1)
    task = served_task(spec)
    files, graph = export_graph(estimator, test.matrix()[:SAMPLE_ROWS])
    info: dict[str, Any] = {"type": model_spec["type"], "framework": "scikit-learn",
                            "estimator": type(estimator).__name__, "graph": graph,
                            "params": _plain_params(estimator)}
    for attribute in ("report_", "routing_accuracy_", "threshold_"):
        value = getattr(estimator, attribute, None)
        if value is not None:
            info[attribute.rstrip("_")] = _jsonable(value)
    valid_output = _output(estimator, valid.matrix(), task)
    serving = serving_fields(model_spec, spec, y_valid, valid_output)
    return TrainedModel(_output(estimator, test.matrix(), task), files, info, serving, valid_output,
                        _composite_metrics(estimator, test.matrix(), data["test"][1]))


def _train_boosting(name, model_spec, spec, data, progress, seed) -> TrainedModel:
    """A single gradient-boosted model, trained as a careful user would with scikit-learn.

    Early stopping (unless ``params.early_stopping`` says otherwise) follows scikit-learn's
    ``"auto"`` rule, on when the train split has more than 10,000 rows, but it watches the
    validation split (whole keys, or the later times) rather than a random slice of the
    training rows, which would leak same-key information; it allows ``DEFAULT_MAX_ITER``
    rounds and stops after ``DEFAULT_PATIENCE`` rounds without a better validation score.
    Then (``refit``, the default) the model is trained again on the train and validation
    rows, for the round count with the best validation score, so that the served model
    learns from every row that is not a test row. The validation output that tunes the
    threshold and scores tuning trials comes from the first model, which never saw those rows.
    """
    from mlpatterns.export.onnx_export import sklearn_to_onnx

    (train, y_train), (valid, y_valid), (test, _) = (data[s] for s in ("train", "valid", "test"))
    classification = spec.task in ("classification", "multiclass")
    params = dict(model_spec["params"])
    if model_spec.get("rebalance", {}).get("method") == "class_weight":
        params.setdefault("class_weight", "balanced")
    early_stopping = params.get("early_stopping", "auto")
    if early_stopping == "auto":
        early_stopping = len(y_train) > AUTO_EARLY_STOPPING_ROWS
    early_stopping = bool(early_stopping) and not spec.split.get("none")
    params["early_stopping"] = early_stopping
    if early_stopping:  # the validation split decides the rounds: a generous ceiling, some patience
        params.setdefault("max_iter", DEFAULT_MAX_ITER)
        params.setdefault("n_iter_no_change", DEFAULT_PATIENCE)
    layout = (train.numeric.shape[1], list(train.cardinalities))
    model = sklearn_model("gradient_boosting", params, classification, seed, f"models.{name}", layout, inner=False)
    validation = (valid.matrix(), y_valid) if early_stopping else None
    fit_boosting(model, train.matrix(), y_train, validation, progress, f"{name}: gradient boosting")
    task = spec.task if classification else "regression"
    valid_output = _output(model, valid.matrix(), task)  # before the refit: out of sample
    iterations = int(model.n_iter_)
    if early_stopping and len(model.validation_score_) > 1:
        # the round with the best validation score (scores[0] is before the first round); the rounds of
        # patience after it only confirmed it
        iterations = max(1, int(np.argmax(model.validation_score_)))
    refit = bool(model_spec.get("refit", True)) and not spec.split.get("none")
    if refit:  # the same rounds on every non-test row
        model = sklearn_model("gradient_boosting", {**params, "max_iter": iterations, "early_stopping": False},
                              classification, seed, f"models.{name}", layout, inner=True)
        both = np.vstack([train.matrix(), valid.matrix()])
        fit_boosting(model, both, np.concatenate([y_train, y_valid]), None, progress,
                      f"{name}: refit on train + valid, {iterations} rounds")
    onnx_bytes = sklearn_to_onnx(model, test.matrix()[:SAMPLE_ROWS], "classification" if classification else
                                 "regression")
    info = {"type": "gradient_boosting", "framework": "scikit-learn", "estimator": type(model).__name__,
            "file": "model.onnx", "params": _plain_params(model), "iterations": int(model.n_iter_),
            "early_stopping": early_stopping, "refit_on_train_and_valid": refit,
            "output": "probabilities" if classification else "value"}
    serving = serving_fields(model_spec, spec, y_valid, valid_output)
    return TrainedModel(_output(model, test.matrix(), task), {"model.onnx": onnx_bytes}, info, serving,
                        valid_output, score_scale=_score_scale(model, test.matrix(), task))


def _score_scale(model: Any, X: np.ndarray, task: str) -> np.ndarray | None:
    """:func:`~mlpatterns.export.onnx_export.output_scale` for the outputs the lifecycle compares."""
    from mlpatterns.export.onnx_export import output_scale

    scale = output_scale(model, X.astype(np.float64), "classification" if task != "regression" else "regression")
    if scale is None:
        return None
    scale = np.asarray(scale, dtype=np.float64).reshape(len(X), -1)
    return scale[:, -1:] if task == "classification" else scale  # P(positive) is the last column


AUTO_EARLY_STOPPING_ROWS = 10_000  # as scikit-learn's early_stopping="auto"
DEFAULT_MAX_ITER = 1000  # gradient boosting's ceiling when the validation split stops it early
DEFAULT_PATIENCE = 30  # rounds without a better validation score before it stops
_PROGRESS_STEPS = 8  # progress updates over the ceiling of rounds (each continues with warm_start)


def fit_boosting(model: Any, X: np.ndarray, y: np.ndarray, validation: tuple[np.ndarray, np.ndarray] | None,
                  progress: Any, description: str) -> None:
    """Fit a HistGradientBoosting model, reporting its rounds as they are done.

    With a progress display the rounds run in a few ``warm_start`` steps, which give the
    same trees as one fit (tested); without one, in a single fit.
    """
    fit = {"X_val": validation[0], "y_val": validation[1]} if validation is not None else {}
    ceiling = int(model.max_iter)
    if progress is None:
        model.fit(X, y, **fit)
        return
    task_id = progress.add_task(description, total=ceiling)
    step = max(25, -(-ceiling // _PROGRESS_STEPS))
    model.set_params(warm_start=True)
    done = 0
    while done < ceiling:
        model.set_params(max_iter=min(ceiling, done + step))
        model.fit(X, y, **fit)
        stopped = model.n_iter_ < model.max_iter
        done = model.max_iter
        progress.update(task_id, completed=model.n_iter_, total=model.n_iter_ if stopped else ceiling)
        if stopped:
            break
    model.set_params(warm_start=False, max_iter=ceiling)


def _train_reframed(name, model_spec, spec, data, progress, seed) -> TrainedModel:
    """Reframing (5): a gradient-boosted classifier over target buckets."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlpatterns.export.onnx_export import sklearn_to_onnx
    from mlpatterns.problem.reframing import ReframedRegressor

    reframe = spec.target["reframe"]
    (train, y_train), (test, _) = data["train"], data["test"]
    task_id = progress.add_task(f"{name}: reframed gradient boosting", total=None) if progress else None
    try:
        # no early stopping on a random slice of training rows: it would leak same-key rows
        model = ReframedRegressor(HistGradientBoostingClassifier(**{"random_state": seed, "early_stopping": False,
                                                                    **model_spec["params"]}),
                                  n_buckets=reframe["buckets"], strategy=reframe["strategy"])
    except TypeError as error:
        raise SpecError(f"models.{name}.params: {error}") from error
    model.fit(train.matrix(), y_train)
    if progress is not None:
        progress.update(task_id, total=1, completed=1)
    if model.estimator_ is None:
        raise SpecError("target.reframe: the training target is constant; there is nothing to reframe")
    onnx_bytes = sklearn_to_onnx(model.estimator_, test.matrix()[:SAMPLE_ROWS], "classification")
    info = {"type": "gradient_boosting", "framework": "scikit-learn", "estimator": "ReframedRegressor",
            "file": "model.onnx", "output": "bucket_probabilities", "centers": model.centers_.tolist(),
            "edges": model.edges_.tolist(), "bucket_ids": model.bucket_ids_.tolist(),
            "quantiles_out": list(reframe["quantiles"])}
    return TrainedModel(model.predict(test.matrix()), {"model.onnx": onnx_bytes}, info)


def _composite_metrics(estimator: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Test metrics of a stack's members (Ensembles, 7) and of a cascade's regimes (Cascade, 8)."""
    from sklearn.metrics import roc_auc_score, root_mean_squared_error

    from mlpatterns.problem import CascadeRegressor, KeyedStackingClassifier, KeyedStackingRegressor

    result: dict[str, float] = {}
    if isinstance(estimator, CascadeRegressor):
        table = estimator.evaluate(X, y)
        for regime in ("typical", "extreme"):
            result[f"rmse_{regime}"] = float(table.loc[regime, "rmse"])
            result[f"routing_accuracy_{regime}"] = float(table.loc[regime, "routing_accuracy"])
        result["extreme_share"] = float(table.loc["extreme", "n"] / table.loc["all", "n"])
    elif isinstance(estimator, KeyedStackingRegressor):
        for name, member in estimator.named_estimators_.items():
            result[f"rmse_{name}"] = float(root_mean_squared_error(y, member.predict(X)))
    elif isinstance(estimator, KeyedStackingClassifier) and len(np.unique(y)) == 2:
        for name, member in estimator.named_estimators_.items():
            result[f"roc_auc_{name}"] = float(roc_auc_score(y, member.predict_proba(X)[:, -1]))
    return result


def _plain_params(estimator: Any) -> dict[str, Any]:
    return {k: v for k, v in estimator.get_params(deep=False).items()
            if isinstance(v, (int, float, str, bool, type(None)))}


def _jsonable(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return {str(k): _jsonable(v) for k, v in value.to_dict().items()}
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    return value
