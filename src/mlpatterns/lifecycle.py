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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.transform import FeatureTransform, TransformedFeatures
from mlpatterns.spec import _COMPARISONS, Spec, SpecError
from mlpatterns.tables import read_frame

__all__ = ["RunResult", "evaluate", "load_data", "make_target", "run_spec"]

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
    """Rows with a known target, and the target as numbers (0/1 for classification)."""
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


def evaluate(task: str, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Test metrics: ranking and calibration for classification, errors for regression."""
    from sklearn import metrics

    if task == "classification":
        clipped = np.clip(scores, 1e-7, 1 - 1e-7)
        return {
            "roc_auc": float(metrics.roc_auc_score(y, scores)),
            "pr_auc": float(metrics.average_precision_score(y, scores)),
            "log_loss": float(metrics.log_loss(y, clipped, labels=[0, 1])),
            "brier": float(metrics.brier_score_loss(y, scores)),
            "positive_rate": float(np.mean(y)),
        }
    return {
        "rmse": float(np.sqrt(metrics.mean_squared_error(y, scores))),
        "mae": float(metrics.mean_absolute_error(y, scores)),
        "r2": float(metrics.r2_score(y, scores)),
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
    outputs = ([{"name": "probability", "type": "number"}, {"name": "prediction", "type": "integer"}]
               if spec.task == "classification" else [{"name": "prediction", "type": "number"}])
    for q in spec.target.get("reframe", {}).get("quantiles", []):
        outputs.append({"name": f"q{round(q * 100):02d}", "type": "number"})
    return {"inputs": inputs, "keys": list(spec.keys), "outputs": outputs}


def _train_model(name: str, model_spec: dict[str, Any], task: str, data: dict[str, Any],
                 progress: Any, seed: int) -> tuple[Any, np.ndarray, bytes, dict[str, Any]]:
    """Train one model; return it, its test scores, its verified ONNX bytes and manifest info."""
    from mlpatterns.serving.onnx_export import sklearn_to_onnx, torch_to_onnx

    train, valid, test = (data[s][0] for s in SPLITS)
    y_train, y_valid = data["train"][1], data["valid"][1]
    params = dict(model_spec["params"])
    if model_spec["type"] == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        reframe = model_spec.get("reframe")
        if reframe is not None:
            return _train_reframed(name, params, reframe, data, progress, seed)
        estimator_cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
        params.setdefault("random_state", seed)
        # Early stopping watches the hash-split validation rows (whole days), not a
        # random slice of the training rows, which would leak same-day information.
        params.setdefault("early_stopping", True)
        task_id = progress.add_task(f"{name}: gradient boosting", total=None) if progress else None
        try:
            model = estimator_cls(**params)
        except TypeError as error:
            raise SpecError(f"models.{name}.params: {error}") from error
        if model.early_stopping:
            model.fit(train.matrix(), y_train, X_val=valid.matrix(), y_val=y_valid)
        else:
            model.fit(train.matrix(), y_train)
        if progress is not None:
            progress.update(task_id, total=1, completed=1)
        scores = model.predict_proba(test.matrix())[:, 1] if task == "classification" else model.predict(test.matrix())
        onnx_bytes = sklearn_to_onnx(model, test.matrix()[:2000], task)
        info = {"type": "gradient_boosting", "framework": "scikit-learn", "estimator": type(model).__name__,
                "params": {k: v for k, v in model.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))},
                "iterations": int(model.n_iter_),
                "output": "probabilities" if task == "classification" else "value"}
        return model, scores, onnx_bytes, info
    import torch

    from mlpatterns.models.training_loop import predict_network, train_network
    from mlpatterns.models.wide_and_deep import WideAndDeep

    architecture = {k: params.pop(k) for k in ("hidden", "dropout") if k in params}
    reframe, head = model_spec.get("reframe"), {}
    if reframe is not None:  # Reframing (5): a softmax head over target buckets
        from mlpatterns.problem.reframing import target_buckets

        edges, bucket_ids, centers, y_train = target_buckets(y_train, reframe["buckets"], reframe["strategy"])
        y_valid = np.clip(np.searchsorted(bucket_ids, np.searchsorted(edges[1:-1], y_valid, side="right")),
                          0, len(bucket_ids) - 1)
        task, architecture["n_outputs"] = "multiclass", len(bucket_ids)
        head = {"output": "bucket_probabilities", "centers": centers.tolist(), "edges": edges.tolist(),
                "bucket_ids": bucket_ids.tolist(), "quantiles_out": list(reframe["quantiles"])}
    torch.manual_seed(seed)  # the initial weights depend on the seed alone
    try:
        network = WideAndDeep(n_numeric=train.numeric.shape[1], cardinalities=train.cardinalities, **architecture)
        result = train_network(network, train, y_train, valid, y_valid, task=task, seed=seed,
                               progress=progress, **params)
    except TypeError as error:
        raise SpecError(f"models.{name}.params: {error}") from error
    scores = predict_network(result.model, test, task)
    if reframe is not None:
        scores = scores @ np.asarray(head["centers"])
    onnx_bytes = torch_to_onnx(result.model, test.numeric[:2000], test.categorical[:2000], task)
    info = {"type": "wide_and_deep", "framework": "torch", "architecture": result.model.config,
            "history": result.history, "best_epoch": result.best_epoch, "output": "value", **head}
    return result.model, scores, onnx_bytes, info


def _train_reframed(name: str, params: dict[str, Any], reframe: dict[str, Any], data: dict[str, Any],
                    progress: Any, seed: int) -> tuple[Any, np.ndarray, bytes, dict[str, Any]]:
    """Reframing (5): a gradient-boosted classifier over target buckets."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlpatterns.problem.reframing import ReframedRegressor
    from mlpatterns.serving.onnx_export import sklearn_to_onnx

    train, test = data["train"][0], data["test"][0]
    params.setdefault("random_state", seed)
    task_id = progress.add_task(f"{name}: reframed gradient boosting", total=None) if progress else None
    try:
        model = ReframedRegressor(HistGradientBoostingClassifier(**params), n_buckets=reframe["buckets"],
                                  strategy=reframe["strategy"])
    except TypeError as error:
        raise SpecError(f"models.{name}.params: {error}") from error
    model.fit(train.matrix(), data["train"][1])
    if progress is not None:
        progress.update(task_id, total=1, completed=1)
    if model.estimator_ is None:
        raise SpecError("target.reframe: the training target is constant; there is nothing to reframe")
    onnx_bytes = sklearn_to_onnx(model.estimator_, test.matrix()[:2000], "classification")
    info = {"type": "gradient_boosting", "framework": "scikit-learn", "estimator": "ReframedRegressor",
            "output": "bucket_probabilities", "centers": model.centers_.tolist(),
            "edges": model.edges_.tolist(), "bucket_ids": model.bucket_ids_.tolist(),
            "quantiles_out": list(reframe["quantiles"])}
    return model, model.predict(test.matrix()), onnx_bytes, info


def run_spec(spec: Spec, *, progress: Any = None, seed: int = 0, log: Any = print) -> RunResult:
    """Run the whole lifecycle of a spec and write one bundle per model."""
    from mlpatterns.reproducibility.repeatable_splitting import hash_split
    from mlpatterns.responsible.heuristic_benchmark import HeuristicBenchmark
    from mlpatterns.serving.bundle import write_bundle
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    timings: dict[str, float] = {}
    clock = time.perf_counter()
    raw = load_data(spec)
    spec.check_columns(raw.dtypes.to_dict())
    frame, target, dropped = make_target(spec, raw)
    timings["load"] = time.perf_counter() - clock

    clock = time.perf_counter()
    split = hash_split(frame, key=spec.split["key"], fractions=spec.split["fractions"],
                       num_buckets=spec.split.get("num_buckets", 100),
                       separator=spec.split.get("separator", "")).to_numpy()
    rows = {s: int((split == s).sum()) for s in SPLITS}
    for s in SPLITS:
        if rows[s] == 0:
            raise SpecError(f"split: the {s} split is empty; the key {spec.split['key']} has too few values")
    transform = FeatureTransform(
        numeric=spec.features["numeric"], categorical=spec.features["categorical"],
        bucketize=spec.features["bucketize"], crosses=spec.features["crosses"],
        date_parts=spec.features["date_parts"],
    ).fit(frame.loc[split == "train"])
    parts = {s: frame.loc[split == s].reset_index(drop=True) for s in SPLITS}
    data = {s: (transform.transform(parts[s]), target[split == s]) for s in SPLITS}
    timings["split_and_transform"] = time.perf_counter() - clock
    log(f"{spec.name}: {len(frame):,} rows with a target ({dropped:,} dropped without one); "
        f"split by hash of {spec.split['key']}: " + ", ".join(f"{s} {rows[s]:,}" for s in SPLITS))

    metrics: dict[str, dict[str, float]] = {}
    clock = time.perf_counter()
    levels = spec.baseline.get("levels") or [[c] for c in list(spec.features["categorical"])[:1]] or None
    baseline = HeuristicBenchmark(levels=levels, min_count=spec.baseline.get("min_count", 20),
                                  statistic=spec.baseline.get("statistic", "mean"))
    baseline_columns = sorted({c for level in (levels or []) for c in level}) or transform.input_columns
    baseline.fit(parts["train"][baseline_columns], data["train"][1])
    metrics["heuristic_benchmark"] = evaluate(spec.task, data["test"][1], baseline.predict(parts["test"][baseline_columns]))
    timings["heuristic_benchmark"] = time.perf_counter() - clock

    output_dir = spec.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    test_path = output_dir / "test.parquet"
    parts["test"].to_parquet(test_path, index=False)
    bundles, skew = {}, {}
    signature = _signature(spec, frame, transform)
    for name, model_spec in spec.models.items():
        clock = time.perf_counter()
        if "reframe" in spec.target:
            model_spec = {**model_spec, "reframe": spec.target["reframe"]}
        _, scores, onnx_bytes, info = _train_model(name, model_spec, spec.task, data, progress, seed)
        timings[name] = time.perf_counter() - clock
        metrics[name] = evaluate(spec.task, data["test"][1], scores)
        manifest = {
            "name": f"{spec.name}/{name}", "task": spec.task, "model": {"file": "model.onnx", **info},
            "transform": "transform.json", "signature": signature, "threshold": 0.5,
            "target": spec.target,
            "metrics": {"test": metrics[name], "heuristic_benchmark": metrics["heuristic_benchmark"]},
            "lineage": {"spec": str(spec.source) if spec.source else None, "data": spec.data,
                        "split": spec.split, "rows": rows, "seed": seed},
        }
        files = {"model.onnx": onnx_bytes, "transform.json": transform.to_json().encode()}
        bundles[name] = write_bundle(output_dir / "bundles" / name, files, manifest, overwrite=True)
        serving = ServingFunction.load(bundles[name])
        skew[name] = check_skew(serving, test_path, data["test"][0], scores)
        if "reframe" in model_spec:  # how often the served outer quantiles hold the truth
            quantiles = sorted(spec.target["reframe"]["quantiles"])
            bounds = serving.predict_quantiles(data["test"][0], [quantiles[0], quantiles[-1]])
            y_test = data["test"][1]
            metrics[name][f"coverage_q{round(quantiles[0] * 100):02d}_q{round(quantiles[-1] * 100):02d}"] = float(
                np.mean((y_test >= bounds[:, 0]) & (y_test <= bounds[:, 1]))
            )
    result = RunResult(spec=spec, rows=rows, metrics=metrics, bundles=bundles, output_dir=output_dir,
                       dropped_target_rows=dropped, timings=timings, skew=skew)
    (output_dir / "report.json").write_text(json.dumps(_report(result), indent=2) + "\n")
    return result


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
    }
