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

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.models.spec_models import NEUTRAL_CLASSES, served_task, train_model
from mlpatterns.reproducibility.transform import FeatureTransform, TransformedFeatures
from mlpatterns.spec import _COMPARISONS, Spec, SpecError
from mlpatterns.tables import read_frame, to_boolean

__all__ = ["RunResult", "evaluate", "evaluate_multilabel", "evaluate_neutral", "load_data", "make_target",
           "neutral_mask", "run_spec"]

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
    from mlpatterns import datasets

    if "dataset" in spec.data:
        frame = getattr(datasets, f"load_{spec.data['dataset']}")()
    else:
        path = Path(spec.data["path"])
        if not path.is_absolute() and spec.source is not None and not path.exists():
            path = spec.source.parent / path
        if not path.is_file():
            raise SpecError(f"data.path: no such file {str(path)!r}")
        frame = read_frame(path)
    fraction = spec.data.get("sample_fraction")
    if fraction is not None:
        from mlpatterns.reproducibility.repeatable_splitting import repeatable_sample

        # Sample on a finer bucketing than the split's (a multiple of it), so the sampled
        # keys still spread evenly over the split's buckets.
        buckets = spec.split.get("num_buckets", 100) * 100
        frame = repeatable_sample(frame, spec.split["key"], fraction, num_buckets=buckets)
        frame = frame.reset_index(drop=True)
    return frame


def make_target(spec: Spec, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Rows with a known target, and the target as numbers (0/1 for classification).

    A multilabel target is a matrix, one 0/1 column per label (Multilabel, 6).
    """
    if spec.task == "multilabel":
        return _multilabel_target(spec, frame)
    column = frame[spec.target["column"]]
    known = column.notna().to_numpy()
    frame, column = frame.loc[known].reset_index(drop=True), column[known].reset_index(drop=True)
    if spec.task == "regression":
        return frame, column.to_numpy(dtype=np.float64), int((~known).sum())
    if "positive_when" in spec.target:
        (rule, threshold), = spec.target["positive_when"].items()
        values = column.to_numpy(dtype=np.float64)
        target = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
                  "==": np.equal}[_COMPARISONS[rule]](values, threshold)
    elif "positive_label" in spec.target:
        label = spec.target["positive_label"]
        if not (column == label).any():
            raise SpecError(
                f"target.positive_label: {label!r} never occurs in {spec.target['column']!r}; "
                f"values are e.g. {sorted(map(str, column.unique()[:10]))}"
            )
        target = (column == label).to_numpy()
    else:
        labels = sorted(column.unique().tolist())
        if len(labels) != 2:
            raise SpecError(
                f"target.column: a classification target needs exactly two classes or a "
                f"'positive_when'/'positive_label' rule; {spec.target['column']!r} has {len(labels)} values"
            )
        spec.target["positive_label"] = labels[1]  # recorded in the manifest
        target = (column == labels[1]).to_numpy()
    return frame, target.astype(np.float64), int((~known).sum())


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


def _signature(spec: Spec, frame: pd.DataFrame, transform: FeatureTransform) -> dict[str, Any]:
    """Inputs with the kind of value each was trained on; keys; outputs."""
    inputs = []
    for column in transform.input_columns:
        dtype = frame[column].dtype
        if column in transform.date_parts:
            kind = "date"
        elif pd.api.types.is_bool_dtype(dtype):
            kind = "boolean"
        elif pd.api.types.is_numeric_dtype(dtype):
            kind = "number"
        else:
            kind = "text"
        inputs.append({"name": column, "type": kind, "dtype": str(dtype)})
    if "neutral" in spec.target:  # Neutral Class (9): three classes
        outputs = [{"name": f"probability_{c}", "type": "number"} for c in NEUTRAL_CLASSES]
        outputs.append({"name": "prediction", "type": "text", "values": list(NEUTRAL_CLASSES)})
    elif spec.task == "multilabel":  # Multilabel (6): a probability and a decision per label
        outputs = [{"name": f"probability_{c}", "type": "number"} for c in spec.target["columns"]]
        outputs += [{"name": f"prediction_{c}", "type": "integer"} for c in spec.target["columns"]]
    elif spec.task == "classification":
        outputs = [{"name": "probability", "type": "number"}, {"name": "prediction", "type": "integer"}]
    else:
        outputs = [{"name": "prediction", "type": "number"}]
    for q in spec.target.get("reframe", {}).get("quantiles", []):
        outputs.append({"name": f"q{round(q * 100):02d}", "type": "number"})
    return {"inputs": inputs, "keys": list(spec.keys), "outputs": outputs}


def _split_masks(spec: Spec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each split's rows: by a hash of the split key (Repeatable Splitting, 22), or, with ``split: none``
    (Useful Overfitting, 11), every row in every split."""
    from mlpatterns.reproducibility.repeatable_splitting import hash_split

    if spec.split.get("none"):
        if len(frame) == 0:
            raise SpecError("split: none: the data set has no row with a target")
        return {s: np.ones(len(frame), dtype=bool) for s in SPLITS}
    split = hash_split(frame, key=spec.split["key"], fractions=spec.split["fractions"],
                       num_buckets=spec.split.get("num_buckets", 100),
                       separator=spec.split.get("separator", "")).to_numpy()
    for s in SPLITS:
        if not (split == s).any():
            raise SpecError(f"split: the {s} split is empty; the key {spec.split['key']} has too few values")
    return {s: split == s for s in SPLITS}


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
    from mlpatterns.reproducibility.repeatable_splitting import key_text
    from mlpatterns.serving.bundle import write_bundle
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    raw = load_data(spec)
    spec.check_columns(raw.dtypes.to_dict())
    frame, target, dropped = make_target(spec, raw)
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    masks = _split_masks(spec, frame)  # each split's rows
    rows = {s: int(masks[s].sum()) for s in SPLITS}
    transform = spec.feature_transform().fit(frame.loc[masks["train"]])
    parts = {s: frame.loc[masks[s]].reset_index(drop=True) for s in SPLITS}
    data = {s: (transform.transform(parts[s]), target[masks[s]]) for s in SPLITS}
    neutral = neutral_mask(spec, frame)
    context = {  # the split key of each row, for keyed out-of-fold folds (Ensembles, Cascade)
        "groups": {s: key_text(parts[s], spec.split["key"], separator=spec.split.get("separator", ""))
                   if spec.split["key"] else np.arange(len(parts[s])).astype(str) for s in SPLITS},  # split: none
        "neutral": None if neutral is None else {s: neutral[masks[s]] for s in SPLITS},
        "transform": transform,  # the fitted scales (an emulator's periods, Useful Overfitting)
    }
    timings["split_and_transform"] = time.perf_counter() - clock
    log(f"{spec.name}: {len(frame):,} rows with a target ({dropped:,} dropped without one); "
        + (f"split by hash of {spec.split['key']}: " + ", ".join(f"{s} {rows[s]:,}" for s in SPLITS)
           if spec.split["key"] else "no split (split: none): train, valid and test are all of them"))

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
        parts["test"].to_parquet(test_path, index=False)
    bundles, skew, plots = {}, {}, {}
    signature = _signature(spec, frame, transform)
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
        bundles[name] = write_bundle(output_dir / "bundles" / name, files, manifest, overwrite=True)
        serving = ServingFunction.load(bundles[name])
        skew[name] = check_skew(serving, test_path, data["test"][0], trained.test_output)
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
    (output_dir / "report.json").write_text(json.dumps(_report(result), indent=2) + "\n")
    return result


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
        baseline = HeuristicBenchmark(levels=levels, min_count=spec.baseline.get("min_count", 20),
                                      statistic=spec.baseline.get("statistic", "mean"))
        return baseline.fit(parts["train"][columns], y).predict(parts["test"][columns])

    if spec.task == "multilabel":
        proba = np.column_stack([predict(y_train[:, j]) for j in range(y_train.shape[1])])
        return evaluate_multilabel(y_test, proba, spec.target["columns"])
    return evaluate(spec.task, y_test, predict(y_train))


def _evaluate_model(spec: Spec, y_test: np.ndarray, trained: Any) -> dict[str, float]:
    task = served_task(spec)
    if task == "multilabel":
        result = evaluate_multilabel(y_test, trained.test_output, trained.serving["labels"],
                                     np.asarray(trained.serving["thresholds"]))
    elif task == "multiclass":
        result = evaluate_neutral(y_test, trained.test_output)
    else:
        result = evaluate(task, y_test, trained.test_output, trained.serving.get("threshold"))
    return {**result, **trained.test_metrics}


def check_skew(serving: Any, served_file: Path, training_features: TransformedFeatures,
               training_scores: np.ndarray) -> dict[str, float]:
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
    if not np.allclose(served_scores, training_scores, rtol=1e-5, atol=1e-4):
        raise RuntimeError(f"training-serving skew: the bundle '{serving.name}' scores differ from training")
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
