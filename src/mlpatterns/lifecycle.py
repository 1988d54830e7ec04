"""``mlpatterns run``: the lifecycle of one spec, step by step.

load data -> repeatable split by key hash (22) -> fit the transform on the train
split only (21, using 1-3) -> train each model (gradient boosting; wide-and-deep
with embeddings and crosses, 2-3) -> evaluate on the test split next to the
heuristic benchmark (28) -> export to ONNX, verified -> write one bundle per model
(the stateless serving function, 16) -> reload each bundle and check that it
computes the training-time features bit for bit (no training-serving skew) and
the same predictions.

Each step is a plain function of its inputs, so the Workflow Pipeline (25) can
cache and trace them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.models.spec_models import classes_of, served_task, train_model
from mlpatterns.reproducibility.categorical_encoding import MergedCategoriesWarning
from mlpatterns.reproducibility.transform import FeatureTransform, TransformedFeatures
from mlpatterns.spec import _COMPARISONS, Spec, SpecError
from mlpatterns.tables import read_frame, to_boolean

__all__ = ["RunResult", "data_path", "evaluate", "evaluate_multiclass", "evaluate_multilabel", "evaluate_neutral", "label_text",
           "label_texts", "load_data", "make_target", "neutral_mask", "read_data", "run_spec"]

SPLITS = ("train", "valid", "test")


@dataclass
class RunResult:
    spec: Spec
    rows: dict[str, int]
    metrics: dict[str, dict[str, float]]
    bundles: dict[str, Path]
    output_dir: Path
    dropped_target_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    skew: dict[str, dict[str, float]] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None  # the study behind the tuned model (Hyperparameter Tuning, 15)
    rank: int = 0  # this process's rank in a data-parallel job (Distribution Strategy, 14); only 0 writes
    world_size: int = 1
    plots: dict[str, Path] = field(default_factory=dict)  # each network's learning curves (PNG)


def load_data(spec: Spec) -> pd.DataFrame:
    """The spec's data: a built-in data set or a CSV/Parquet file (read with DuckDB)."""
    return read_data(spec)[0]


def data_path(spec: Spec) -> Path | None:
    """The file a spec's ``data.path`` names (relative to the working directory, else to the spec)."""
    if "path" not in spec.data:
        return None
    path = Path(spec.data["path"])
    if not path.is_absolute() and spec.source is not None and not path.exists():
        path = spec.source.parent / path
    if not path.is_file():
        raise SpecError(f"data.path: no such file {str(path)!r}")
    return path


def read_data(spec: Spec) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The spec's data, and how it was read: the null markers and, for each true/false column of a CSV, the
    texts that meant true and false (``Yes``/``No``), which serving must accept back."""
    from mlpatterns import datasets
    from mlpatterns.tables import TableError, boolean_texts

    reading: dict[str, Any] = {"null_values": spec.data.get("null_values"), "boolean_texts": {}}
    path = data_path(spec)
    if path is None:
        frame = getattr(datasets, f"load_{spec.data['dataset']}")()
    else:
        try:
            frame = read_frame(path, null_values=reading["null_values"])
            if len(frame) == 0:
                raise SpecError(f"data.path: {path} holds no data rows"
                                + ("" if len(frame.columns) > 1 else " (nor a header)"))
            used = [c for c in [*spec.feature_columns(), *spec.label_columns] if c in frame.columns]
            flags = [c for c in dict.fromkeys(used) if pd.api.types.is_bool_dtype(frame[c].dtype)]
            reading["boolean_texts"] = boolean_texts(path, flags, null_values=reading["null_values"])
        except TableError as error:
            raise SpecError(f"data.path: {error}") from None
    fraction = spec.data.get("sample_fraction")
    if fraction is not None:
        from mlpatterns.reproducibility.repeatable_splitting import repeatable_sample

        # Sample on a finer bucketing than the split's (a multiple of it), so the sampled
        # keys still spread evenly over the split's buckets.
        buckets = spec.split.get("num_buckets", 100) * 100
        key = spec.split["key"] or [spec.split["column"]]  # a time split samples whole time points
        try:
            frame = repeatable_sample(frame, key, fraction, num_buckets=buckets, nulls=spec.split.get("nulls", "raise"),
                                      separator=spec.split.get("separator", ""))
        except ValueError as error:
            raise SpecError(f"data.sample_fraction: {_with_spec_option(str(error))}") from None
        frame = frame.reset_index(drop=True)
    return frame, reading


def explain_text_columns(spec: Spec, frame: pd.DataFrame) -> None:
    """A column the spec needs as numbers but the file gave as text: name the row and the value that did it."""
    from mlpatterns.tables import describe_bad_values

    path = data_path(spec)
    if path is None:
        return
    needed = {c: f"features.numeric.{c}" for c in spec.features.get("numeric", [])}
    needed.update({c: f"features.bucketize.{c}" for c in spec.features.get("bucketize", {})})
    if spec.task == "regression" or "positive_when" in spec.target:
        needed[spec.target["column"]] = "target.column"
    for column, where in needed.items():
        if column not in frame.columns or pd.api.types.is_numeric_dtype(frame[column].dtype) \
                or pd.api.types.is_bool_dtype(frame[column].dtype):
            continue
        bad = describe_bad_values(path, column, "number", null_values=spec.data.get("null_values"))
        if bad is not None:
            raise SpecError(f"{where}: expected numbers, but {column!r} is read as text: in {path.name}, {bad}; "
                            f"fix that value, or declare it a null marker in data.null_values "
                            f"(e.g. null_values: [{bad.value!r}, ''])")


def make_target(spec: Spec, frame: pd.DataFrame, reading: dict[str, Any] | None = None,
                ) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Rows with a known target, and the target as numbers (0/1 for classification, class codes for multiclass).

    A multilabel target is a matrix, one 0/1 column per label (Multilabel, 6). Labels are
    the text the user sees: a ``Yes``/``No`` column that the CSV reader took for booleans
    has the labels ``Yes`` and ``No`` (from ``reading``, see :func:`read_data`).
    """
    if spec.task == "multilabel":
        return _multilabel_target(spec, frame)
    column = frame[spec.target["column"]]
    texts = ((reading or {}).get("boolean_texts") or {}).get(spec.target["column"])
    if texts and spec.task != "regression" and "positive_when" not in spec.target:
        column = column.map({True: texts["true"][0], False: texts["false"][0]}, na_action="ignore") \
            if texts["true"] and texts["false"] else column
    known = column.notna().to_numpy()
    frame, column = frame.loc[known].reset_index(drop=True), column[known].reset_index(drop=True)
    if spec.task == "regression":
        return frame, column.to_numpy(dtype=np.float64), int((~known).sum())
    if spec.task == "multiclass":
        labels = label_texts(column)
        classes = _sorted_labels(column, labels)
        if len(classes) < 2:
            raise SpecError(f"target.column: a multiclass target needs at least two classes; "
                            f"{spec.target['column']!r} only holds {classes}")
        spec.target["classes"] = classes  # recorded in the manifest: the served class names
        codes = {label: i for i, label in enumerate(classes)}
        return frame, labels.map(codes).to_numpy(dtype=np.float64), int((~known).sum())
    if "positive_when" in spec.target:
        (rule, threshold), = spec.target["positive_when"].items()
        values = column.to_numpy(dtype=np.float64)
        target = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
                  "==": np.equal}[_COMPARISONS[rule]](values, threshold)
    else:
        texts = label_texts(column)
        labels = _sorted_labels(column, texts)
        if "positive_label" in spec.target:
            label = label_text(spec.target["positive_label"])
            if label not in labels:
                raise SpecError(f"target.positive_label: {spec.target['positive_label']!r} never occurs in "
                                f"{spec.target['column']!r}; its labels are {labels[:20]}")
        elif len(labels) != 2:
            hint = " (set task: multiclass for one class among several)" if len(labels) > 2 else ""
            raise SpecError(
                f"target.column: a classification target needs exactly two classes or a "
                f"'positive_when'/'positive_label' rule; {spec.target['column']!r} has {len(labels)} "
                f"value(s), e.g. {labels[:10]}{hint}"
            )
        else:
            label = labels[1]  # the second in sorted order; the run says so
            spec.target["positive_label_chosen"] = True
        spec.target["positive_label"] = label  # recorded in the manifest, as text
        spec.target["labels"] = labels
        target = (texts == label).to_numpy()
    return frame, target.astype(np.float64), int((~known).sum())


def label_text(value: Any) -> str:
    """A target label as the text a user sees: ``Yes``, ``3`` (not ``3.0``), ``true``."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def label_texts(column: pd.Series) -> pd.Series:
    """Every label of a target column as text (see :func:`label_text`), one conversion per distinct value."""
    texts = {value: label_text(value) for value in column.unique()}
    return column.map(texts).astype(object)


def _sorted_labels(column: pd.Series, texts: pd.Series) -> list[str]:
    """The distinct labels as text, in the order of their values: numbers by value, text alphabetically."""
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        values = sorted(column.unique().tolist())
        return list(dict.fromkeys(label_text(v) for v in values))
    return sorted(texts.unique().tolist())


def _multilabel_target(spec: Spec, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, int]:
    columns = spec.target["columns"]
    known = frame[columns].notna().all(axis=1).to_numpy()
    frame = frame.loc[known].reset_index(drop=True)
    labels = frame[columns].to_numpy(dtype=np.float64)
    for j, column in enumerate(columns):
        values = np.unique(labels[:, j])
        if not np.isin(values, (0.0, 1.0)).all():
            raise SpecError(f"target.columns[{j}]: expected 0/1 or true/false values in {column!r}, "
                            f"got e.g. {values[~np.isin(values, (0.0, 1.0))][:5].tolist()}")
    return frame, labels, int((~known).sum())


def neutral_mask(spec: Spec, frame: pd.DataFrame) -> np.ndarray | None:
    """Neutral Class (9): the rows whose binary label is arbitrary, or None without a neutral rule."""
    rule = spec.target.get("neutral")
    if rule is None:
        return None
    if "band" in rule:
        low, high = rule["band"]
        values = frame[spec.target["column"]].to_numpy(dtype=np.float64)
        return (values >= low) & (values <= high)
    column = frame[rule["column"]]
    values = column.map(to_boolean, na_action="ignore")
    bad = values.isna() & column.notna()
    if bad.any():
        raise SpecError(f"target.neutral.column: expected true/false values in {rule['column']!r}, "
                        f"got e.g. {column[bad].iloc[0]!r}")
    return values.fillna(False).to_numpy(dtype=bool)


def evaluate(task: str, y: np.ndarray, scores: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Test metrics: ranking and calibration for classification, errors for regression.

    With a ``threshold`` (the served decision threshold), classification adds the
    precision, recall and F1 of the decisions it makes.
    """
    from sklearn import metrics

    if task == "classification":
        clipped = np.clip(scores, 1e-7, 1 - 1e-7)
        result = {
            "roc_auc": float(metrics.roc_auc_score(y, scores)),
            "pr_auc": float(metrics.average_precision_score(y, scores)),
            "log_loss": float(metrics.log_loss(y, clipped, labels=[0, 1])),
            "brier": float(metrics.brier_score_loss(y, scores)),
            "positive_rate": float(np.mean(y)),
        }
        if threshold is not None:
            decided = scores >= threshold
            result.update({
                "threshold": float(threshold),
                "precision": float(metrics.precision_score(y, decided, zero_division=0)),
                "recall": float(metrics.recall_score(y, decided, zero_division=0)),
                "f1": float(metrics.f1_score(y, decided, zero_division=0)),
            })
        return result
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y, scores))),
        "mae": float(metrics.mean_absolute_error(y, scores)),
        "r2": float(metrics.r2_score(y, scores)),
    }


def evaluate_multilabel(Y: np.ndarray, proba: np.ndarray, labels: list[str],
                        thresholds: np.ndarray | None = None) -> dict[str, float]:
    """Multilabel (6) test metrics: macro ROC-AUC; with thresholds, F1s, Hamming loss, subset accuracy."""
    from sklearn.metrics import roc_auc_score

    from mlpatterns.problem.multilabel import multilabel_report

    aucs = [roc_auc_score(Y[:, j], proba[:, j]) for j in range(Y.shape[1]) if len(np.unique(Y[:, j])) == 2]
    result = {"macro_roc_auc": float(np.mean(aucs)) if aucs else float("nan")}
    if thresholds is not None:
        report = multilabel_report(Y.astype(int), (proba >= thresholds).astype(int), labels=labels)
        result.update({k: report[k] for k in ("macro_f1", "micro_f1", "hamming_loss", "subset_accuracy")})
        result.update({f"f1_{name}": values["f1"] for name, values in report["labels"].items()})
    return result


def evaluate_multiclass(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Multiclass test metrics: accuracy, macro F1, log loss, and each class's precision, recall and F1."""
    from sklearn import metrics

    y = y.astype(np.int64)
    labels = np.arange(len(classes))
    decided = np.argmax(proba, axis=1)
    clipped = np.clip(proba, 1e-7, 1)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    result = {
        "accuracy": float(metrics.accuracy_score(y, decided)),
        "macro_f1": float(metrics.f1_score(y, decided, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(metrics.log_loss(y, clipped, labels=labels)),
    }
    present = np.unique(y)
    if len(present) > 1:  # one-vs-rest ROC-AUC over the classes the test rows hold
        with contextlib.suppress(ValueError):  # a class whose test rows are all of one kind
            result["macro_roc_auc"] = float(metrics.roc_auc_score(
                y, clipped[:, present] / clipped[:, present].sum(axis=1, keepdims=True), multi_class="ovr",
                labels=present))
    precision, recall, f1, support = metrics.precision_recall_fscore_support(
        y, decided, labels=labels, zero_division=0)
    for j, name in enumerate(classes):
        result.update({f"precision_{name}": float(precision[j]), f"recall_{name}": float(recall[j]),
                       f"f1_{name}": float(f1[j]), f"share_{name}": float(support[j] / max(len(y), 1))})
    return result


def evaluate_neutral(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Neutral Class (9) test metrics on the binary truth: decisive precision and the undecided share.

    ``proba`` holds P(negative), P(neutral), P(positive); the ranking metrics use
    P(positive | decisive) = P(positive) / (P(negative) + P(positive)).
    """
    from sklearn import metrics

    from mlpatterns.problem.neutral_class import decisive_report

    decided = np.array([-1, 0, 1])[np.argmax(proba, axis=1)]
    report = decisive_report(np.where(y > 0.5, 1, -1), decided)
    score = proba[:, 2] / np.maximum(proba[:, 0] + proba[:, 2], 1e-12)
    return {
        "roc_auc": float(metrics.roc_auc_score(y, score)),
        "pr_auc": float(metrics.average_precision_score(y, score)),
        "decisive_accuracy": report["accuracy"],
        "precision_positive": report["precision"].get(1, float("nan")),
        "precision_negative": report["precision"].get(-1, float("nan")),
        "undecided_share": report["undecided_share"],
        "positive_rate": float(np.mean(y)),
    }


def _signature(spec: Spec, frame: pd.DataFrame, transform: FeatureTransform,
               reading: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inputs with the kind of value each was trained on; keys; outputs."""
    from mlpatterns.tables import input_description

    reading = reading or {}
    inputs = [input_description(column, frame[column], date=column in transform.date_parts,
                                boolean_texts=reading.get("boolean_texts")) for column in transform.input_columns]
    if served_task(spec) == "multiclass":  # Neutral Class (9): three classes; or the target's classes
        classes = classes_of(spec)
        outputs = [{"name": f"probability_{c}", "type": "number"} for c in classes]
        outputs.append({"name": "prediction", "type": "text", "values": classes})
    elif spec.task == "multilabel":  # Multilabel (6): a probability and a decision per label
        outputs = [{"name": f"probability_{c}", "type": "number"} for c in spec.target["columns"]]
        outputs += [{"name": f"prediction_{c}", "type": "integer"} for c in spec.target["columns"]]
    elif spec.task == "classification":
        outputs = [{"name": "probability", "type": "number"}, {"name": "prediction", "type": "integer"}]
    else:
        outputs = [{"name": "prediction", "type": "number"}]
    for q in spec.target.get("reframe", {}).get("quantiles", []):
        outputs.append({"name": f"q{round(q * 100):02d}", "type": "number"})
    taken = {o["name"] for o in outputs} | {"row"}  # 'row' numbers the predictions of a bundle without keys
    for i, key in enumerate(spec.keys):
        if key in taken:
            raise SpecError(f"keys[{i}]: the key column {key!r} has the name of a prediction column "
                            f"({sorted(taken)}); rename it in the data, or pass another column through")
    names = [o["name"] for o in outputs]
    if len(set(names)) != len(names):
        raise SpecError(f"target: two outputs would share a name among {names}; rename the classes or labels")
    signature = {"inputs": inputs, "keys": list(spec.keys), "outputs": outputs}
    if reading.get("null_values"):  # the file's null markers apply when scoring files too
        signature["null_values"] = list(reading["null_values"])
    return signature


def _split_masks(spec: Spec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each split's rows: by a hash of the split key (Repeatable Splitting, 22), or, with ``split: none``
    (Useful Overfitting, 11), every row in every split."""
    from mlpatterns.reproducibility.repeatable_splitting import hash_split

    if spec.split.get("none"):
        if len(frame) == 0:
            raise SpecError("split: none: the data set has no row with a target")
        return {s: np.ones(len(frame), dtype=bool) for s in SPLITS}
    nulls = spec.split.get("nulls", "raise")
    if spec.split.get("by") == "time":  # sequential: train on the past, test on the future
        from mlpatterns.reproducibility import time_split

        try:
            split = time_split(frame, spec.split["column"], cutoffs=spec.split.get("cutoffs"),
                               fractions=spec.split.get("fractions"), nulls=nulls)
        except (TypeError, ValueError) as error:
            raise SpecError(f"split: {_with_spec_option(str(error))}") from None
        spec.split["cutoffs_used"] = split.attrs.get("cutoffs")  # recorded in each bundle's lineage
        split = split.astype(object).to_numpy()
        return {s: split == s for s in SPLITS}
    try:
        split = hash_split(frame, key=spec.split["key"], fractions=spec.split["fractions"],
                           num_buckets=spec.split.get("num_buckets", 100),
                           separator=spec.split.get("separator", ""), nulls=nulls).astype(object).to_numpy()
    except ValueError as error:
        raise SpecError(f"split.key: {_with_spec_option(str(error))}") from None
    for s in SPLITS:
        if not (split == s).any():
            raise SpecError(f"split: the {s} split is empty; the key {spec.split['key']} has too few values")
    return {s: split == s for s in SPLITS}


def _with_spec_option(message: str) -> str:
    """A component's advice in the spec's words: ``nulls='exclude'`` is ``split: {nulls: exclude}``."""
    return message.replace("pass nulls='exclude'", "set split: {nulls: exclude}").replace(
        "nulls='exclude'", "split: {nulls: exclude}")


def _data_parallel_ranks() -> Any:
    """This process's ``DistributedContext`` in a ``torchrun`` job of several ranks, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from mlpatterns.training.distribution_strategy import DistributedContext

    context = DistributedContext.current()
    return context if context.distributed else None


def _training_order(spec: Spec, ranks: Any) -> list[str]:
    """The spec's models in order; in a data-parallel job, the networks first (every rank trains them
    together), then the other models, which rank 0 trains alone while the other ranks are done."""
    if ranks is None:
        return list(spec.models)
    networks = [name for name, model in spec.models.items() if model["type"] == "wide_and_deep"]
    return networks + ([name for name in spec.models if name not in networks] if ranks.is_main else [])


def run_spec(spec: Spec, *, progress: Any = None, seed: int = 0, log: Any = print, resume: bool = False) -> RunResult:
    """Run the whole lifecycle of a spec and write one bundle per model.

    ``resume=True`` continues each network from the newest good checkpoint of an
    interrupted run of the same spec (Checkpoints, 12); otherwise the networks start
    afresh. Run as every rank of a ``torchrun`` job (``mlpatterns run --processes N``,
    Distribution Strategy, 14), the networks train data-parallel and rank 0 alone trains
    the other models and writes the bundles and the report.
    """
    from mlpatterns.serving.bundle import write_bundle
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    with _step(progress, f"loading {spec.data.get('path', spec.data.get('dataset'))}"):
        raw, reading = read_data(spec)
        explain_text_columns(spec, raw)
        spec.check_columns(raw.dtypes.to_dict())
        frame, target, dropped = make_target(spec, raw, reading)
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    with _step(progress, "splitting and fitting the transform on the train split"):
        masks, transform, parts, data, context = _split_and_transform(spec, frame, target)
    rows = {s: int(masks[s].sum()) for s in SPLITS}
    signature = _signature(spec, frame, transform, reading)  # checks the keys against the outputs before any writing
    timings["split_and_transform"] = time.perf_counter() - clock
    excluded = len(frame) - sum(rows.values())
    if spec.split.get("none"):
        how = "no split (split: none): train, valid and test are all of them"
    elif spec.split.get("by") == "time":
        how = f"split in time order by {spec.split['column']!r}: " + ", ".join(f"{s} {rows[s]:,}" for s in SPLITS)
    else:
        how = f"split by hash of {spec.split['key']}: " + ", ".join(f"{s} {rows[s]:,}" for s in SPLITS)
    log(f"{spec.name}: {len(frame):,} rows with a target ({dropped:,} dropped without one); {how}"
        + (f"; {excluded:,} row(s) with a null split value left out (split.nulls: exclude)" if excluded else ""))
    _log_target(spec, target, log)
    encodings = _encoding_report(transform)
    for warning in encodings.get("warnings", []):
        log(f"features.categorical: {warning}")

    metrics: dict[str, dict[str, float]] = {}
    clock = time.perf_counter()
    metrics["heuristic_benchmark"] = _heuristic_benchmark(spec, transform, parts, data)
    timings["heuristic_benchmark"] = time.perf_counter() - clock

    output_dir = spec.output_dir
    ranks = _data_parallel_ranks()  # Distribution Strategy (14): this process is one rank of a torchrun job
    main = ranks is None or ranks.is_main  # the process that writes files
    test_path = output_dir / "test.parquet"
    if main:
        output_dir.mkdir(parents=True, exist_ok=True)
        temporary = test_path.with_name(f".{test_path.name}.tmp")
        parts["test"].to_parquet(temporary, index=False)
        os.replace(temporary, test_path)
    bundles, skew, plots = {}, {}, {}
    tuned = None
    if spec.tuning and ranks is not None:
        raise SpecError("tuning: a spec with a tuning: section runs its trials in worker processes; "
                        "it cannot run as a data-parallel torchrun job")
    if spec.tuning:  # Hyperparameter Tuning (15): the study scores trials on the validation split first
        from mlpatterns.training.tuning_spec import tune_spec_model

        clock = time.perf_counter()
        tuned = tune_spec_model(spec, data, context, seed, output_dir, progress=progress, log=log)
        timings["tuning"] = time.perf_counter() - clock
    # Checkpoints (12): each network saves under OUTPUT/checkpoints/<model>; a fresh run starts afresh
    context["training"] = {"checkpoint_root": output_dir / "checkpoints", "resume": resume}
    for name in _training_order(spec, ranks):
        model_spec = spec.models[name]
        if tuned is not None and name == tuned.model:
            model_spec = tuned.model_spec  # the best trial's values
        if main and not resume and model_spec["type"] == "wide_and_deep":
            _clear_checkpoints(output_dir / "checkpoints" / name, model_spec.get("checkpoints", {}))
        clock = time.perf_counter()
        trained = train_model(name, model_spec, spec, data, context, progress, seed)
        timings[name] = time.perf_counter() - clock
        if not main:
            continue
        metrics[name] = _evaluate_model(spec, data["test"][1], trained)
        manifest = {
            "name": f"{spec.name}/{name}", "task": served_task(spec), "model": trained.model,
            "transform": "transform.json", "signature": signature, **trained.serving,
            "target": spec.target,
            "metrics": {"test": metrics[name], "heuristic_benchmark": metrics["heuristic_benchmark"]},
            "lineage": {"spec": str(spec.source) if spec.source else None, "data": spec.data,
                        "split": spec.split, "rows": rows, "seed": seed},
        }
        if tuned is not None and name == tuned.model:
            manifest["tuning"] = tuned.manifest
        curves = _plot_learning_curves(trained.model, output_dir / "plots" / f"{name}_learning_curves.png",
                                       f"{spec.name}/{name}")
        if curves is not None:
            plots[name] = curves
        files = {**trained.files, "transform.json": transform.to_json().encode(), **transform.text_files()}
        with _step(progress, f"{name}: bundling and checking the served features and scores"):
            bundles[name] = write_bundle(output_dir / "bundles" / name, files, manifest, overwrite=True)
            serving = ServingFunction.load(bundles[name])
            skew[name] = check_skew(serving, test_path, data["test"][0], trained.test_output, trained.score_scale)
        if "reframe" in spec.target:  # how often the served outer quantiles hold the truth
            quantiles = sorted(spec.target["reframe"]["quantiles"])
            bounds = serving.predict_quantiles(data["test"][0], [quantiles[0], quantiles[-1]])
            y_test = data["test"][1]
            metrics[name][f"coverage_q{round(quantiles[0] * 100):02d}_q{round(quantiles[-1] * 100):02d}"] = float(
                np.mean((y_test >= bounds[:, 0]) & (y_test <= bounds[:, 1]))
            )
    metrics = {k: metrics[k] for k in ("heuristic_benchmark", *spec.models) if k in metrics}  # the spec's order
    result = RunResult(spec=spec, rows=rows, metrics=metrics, bundles=bundles, output_dir=output_dir,
                       dropped_target_rows=dropped, timings=timings, skew=skew,
                       tuning=None if tuned is None else tuned.manifest,
                       rank=0 if ranks is None else ranks.rank, world_size=1 if ranks is None else ranks.world_size,
                       plots=plots)
    if not main:  # only rank 0 writes the report
        return result
    for stale in _remove_stale_bundles(output_dir / "bundles", bundles):
        log(f"removed the bundle of model {stale!r}, which the spec no longer declares")
    report = _report(result)
    if encodings:
        report["categorical_encodings"] = encodings
    _write_text_atomically(output_dir / "report.json", json.dumps(report, indent=2) + "\n")
    return result


def _write_text_atomically(path: Path, text: str) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _split_and_transform(spec: Spec, frame: pd.DataFrame, target: np.ndarray) -> tuple[Any, ...]:
    """Split the rows (22), fit the transform on the train split only (21) and apply it to every split."""
    from mlpatterns.reproducibility.repeatable_splitting import key_text

    masks = _split_masks(spec, frame)  # each split's rows
    _check_classes(spec, target, masks)
    # Trees split category codes as numbers: ordered by a 1-D target's mean they separate like categories
    ordering = target[masks["train"]] if spec.task in ("classification", "regression") else None
    with warnings.catch_warnings():  # the run logs them once, from the transform's encoding report
        warnings.simplefilter("ignore", MergedCategoriesWarning)
        transform = spec.feature_transform().fit(frame.loc[masks["train"]], y=ordering)
    parts = {s: frame.loc[masks[s]].reset_index(drop=True) for s in SPLITS}
    data = {s: (transform.transform(parts[s]), target[masks[s]]) for s in SPLITS}
    neutral = neutral_mask(spec, frame)
    group_columns = spec.split["key"] or ([spec.split["column"]] if spec.split.get("by") == "time" else [])
    context = {  # the split key of each row, for keyed out-of-fold folds (Ensembles, Cascade)
        "groups": {s: key_text(parts[s], group_columns, separator=spec.split.get("separator", ""))
                   if group_columns else np.arange(len(parts[s])).astype(str) for s in SPLITS},  # split: none
        "neutral": None if neutral is None else {s: neutral[masks[s]] for s in SPLITS},
        "transform": transform,  # the fitted scales (an emulator's periods, Useful Overfitting)
    }
    return masks, transform, parts, data, context


@contextlib.contextmanager
def _step(progress: Any, description: str) -> Iterator[None]:
    """One step of the run on the progress display (a bar that fills when the step is done)."""
    task = progress.add_task(description, total=1) if progress is not None else None
    yield
    if progress is not None:
        progress.update(task, completed=1)


def _check_classes(spec: Spec, target: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    """Every class of a multiclass target must have training rows, or the model cannot predict it."""
    if spec.task != "multiclass":
        return
    classes = spec.target["classes"]
    seen = np.unique(target[masks["train"]]).astype(np.int64)
    missing = [classes[j] for j in range(len(classes)) if j not in seen]
    if missing:
        counts = {classes[j]: int((target == j).sum()) for j in range(len(classes)) if classes[j] in missing}
        raise SpecError(f"target.column: class(es) {missing} have no row in the train split ({counts} rows in "
                        "all); drop such rare classes from the data or split otherwise")


def _log_target(spec: Spec, target: np.ndarray, log: Any) -> None:
    """Say which label is the positive one (and how it was chosen), or which classes there are."""
    column = spec.target.get("column")
    if spec.task == "classification" and "positive_label" in spec.target:
        how = ("the second of the labels in sorted order; set target.positive_label to choose another"
               if spec.target.get("positive_label_chosen") else "target.positive_label")
        log(f"target {column!r}: positive label {spec.target['positive_label']!r} ({how}); labels "
            f"{spec.target['labels']}; {np.mean(target):.1%} of rows positive")
    elif spec.task == "multiclass":
        shares = ", ".join(f"{c} {np.mean(target == j):.1%}" for j, c in enumerate(spec.target["classes"]))
        log(f"target {column!r}: {len(spec.target['classes'])} classes ({shares})")


def _encoding_report(transform: FeatureTransform) -> dict[str, Any]:
    """How each categorical column is encoded (vocabulary or hashing, with the collisions it causes)."""
    return {"columns": transform.encoding_report(), "warnings": transform.encoding_warnings()}


def _remove_stale_bundles(folder: Path, keep: dict[str, Path]) -> list[str]:
    """Remove the bundles of models that this spec no longer declares from a reused output folder.

    Only directories that hold an mlpatterns bundle manifest are removed: they are this
    program's own output; anything else in the folder is left alone.
    """
    from mlpatterns.serving.bundle import BUNDLE_FORMAT, MANIFEST

    removed = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if entry.name in keep or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("format") == BUNDLE_FORMAT:
            shutil.rmtree(entry)
            removed.append(entry.name)
    return removed


def _clear_checkpoints(folder: Path, checkpoints: dict[str, Any]) -> None:
    """A fresh run empties the run's own checkpoint folder of a network (Checkpoints, 12), never a
    folder the spec names (``dir``) nor the one it fine-tunes from (``init_from``)."""
    if "dir" in checkpoints or not folder.is_dir():
        return
    source = checkpoints.get("init_from")
    if source is not None and folder.resolve() in (Path(source).resolve(), *Path(source).resolve().parents):
        return
    shutil.rmtree(folder)


def _plot_learning_curves(model: dict[str, Any], path: Path, title: str) -> Path | None:
    """A network's learning curves from its per-epoch history, as a PNG (None without matplotlib)."""
    history = model.get("history")
    if model.get("framework") != "torch" or not history or not isinstance(history[0], dict) \
            or "train_loss" not in history[0]:
        return None
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # the plot extra is not installed: the history stays in the manifest
        return None
    from mlpatterns.training.trainer_history import plot_learning_curves

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = plot_learning_curves(history, path, title=title)
    plt.close(figure)
    return path


def _heuristic_benchmark(spec: Spec, transform: FeatureTransform, parts: dict[str, pd.DataFrame],
                         data: dict[str, Any]) -> dict[str, float]:
    """Heuristic Benchmark (28): historical rates or means by the declared levels."""
    from mlpatterns.responsible.heuristic_benchmark import HeuristicBenchmark

    levels = spec.baseline.get("levels") or [[c] for c in list(spec.features["categorical"])[:1]] or None
    columns = sorted({c for level in (levels or []) for c in level}) or transform.input_columns
    (_, y_train), (_, y_test) = data["train"], data["test"]

    def predict(y: np.ndarray) -> np.ndarray:
        # a class's share is a mean of 0/1; a median of 0/1 would be no probability
        statistic = spec.baseline.get("statistic", "mean") if spec.task == "regression" else "mean"
        baseline = HeuristicBenchmark(levels=levels, min_count=spec.baseline.get("min_count", 20),
                                      statistic=statistic)
        return baseline.fit(parts["train"][columns], y).predict(parts["test"][columns])

    if spec.task == "multilabel":
        proba = np.column_stack([predict(y_train[:, j]) for j in range(y_train.shape[1])])
        return evaluate_multilabel(y_test, proba, spec.target["columns"])
    if spec.task == "multiclass":  # each class's historical share by segment
        classes = spec.target["classes"]
        proba = np.column_stack([predict((y_train == j).astype(np.float64)) for j in range(len(classes))])
        proba = np.clip(proba, 0, None)
        proba = proba / np.maximum(proba.sum(axis=1, keepdims=True), 1e-12)
        return evaluate_multiclass(y_test, proba, classes)
    return evaluate(spec.task, y_test, predict(y_train))


def _evaluate_model(spec: Spec, y_test: np.ndarray, trained: Any) -> dict[str, float]:
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


UNKNOWN_SCALE_ROOM = 16.0  # x the outputs' size, when the size of the numbers inside the model is not known


def check_skew(serving: Any, served_file: Path, training_features: TransformedFeatures,
               training_scores: np.ndarray, scale: np.ndarray | None = None) -> dict[str, float]:
    """Score the written test file as batch serving reads it; compare with training.

    The rows go through the file (Parquet), the reader of :mod:`mlpatterns.tables`, the
    serving function's type conversion and the bundle's transform and ONNX model, so
    any difference between the training path and the serving path shows up here.
    """
    from mlpatterns.tables import iter_frames

    _, frames = iter_frames(served_file, chunk_rows=1 << 30)
    rows = pd.concat(list(frames), ignore_index=True)
    rows, problems = serving.conform(rows)
    if problems:
        raise RuntimeError(f"training-serving skew: the bundle '{serving.name}' rejects {len(problems)} "
                           f"test value(s), e.g. {problems[0]}")
    served = serving.features(rows)
    identical = bool(np.array_equal(served.numeric, training_features.numeric)
                     and np.array_equal(served.categorical, training_features.categorical))
    if not identical:
        raise RuntimeError(f"training-serving skew: the bundle '{serving.name}' computes different features")
    served_scores = serving.predict_features(served)
    from mlpatterns.serving.onnx_export import ExportMismatchError, compare_outputs

    if scale is None:
        # a composite graph or a network: the export check verified it at the scale of the numbers inside it;
        # here the outputs' own size with room for the rounding carried through the graph
        scale = UNKNOWN_SCALE_ROOM * np.abs(np.asarray(training_scores, dtype=np.float64)).reshape(
            len(training_scores), -1).max(axis=0, keepdims=True)
    try:  # float32 rounding at the scale of the numbers each score is computed from, no more
        compare_outputs(served_scores, training_scores, scale, what=f"the bundle '{serving.name}', on the test file,")
    except ExportMismatchError as error:
        raise RuntimeError(f"training-serving skew: {error}") from None
    return {"features_identical": 1.0, "max_score_difference": float(np.max(np.abs(served_scores - training_scores)))}


def _report(result: RunResult) -> dict[str, Any]:
    return {
        "name": result.spec.name, "task": result.spec.task, "rows": result.rows,
        "dropped_target_rows": result.dropped_target_rows, "metrics": result.metrics,
        "bundles": {k: str(v) for k, v in result.bundles.items()}, "skew": result.skew,
        "timings_seconds": {k: round(v, 2) for k, v in result.timings.items()},
        **({"tuning": result.tuning} if result.tuning is not None else {}),
        **({"plots": {k: str(v) for k, v in result.plots.items()}} if result.plots else {}),
    }
