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
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.metrics import evaluate, evaluate_multiclass, evaluate_multilabel, evaluate_neutral
from mlpatterns.reproducibility.categorical_encoding import MergedCategoriesWarning
from mlpatterns.reproducibility.transform import FeatureTransform, TransformedFeatures
from mlpatterns.spec import Spec, SpecError
from mlpatterns.spec.data import (
    data_path,
    explain_text_columns,
    label_text,
    label_texts,
    load_data,
    make_target,
    neutral_mask,
    read_data,
    with_spec_option,
)
from mlpatterns.spec.models import classes_of, evaluate_model, served_task, train_model

__all__ = ["RunResult", "check_skew", "data_path", "evaluate", "evaluate_model", "evaluate_multiclass",
           "evaluate_multilabel", "evaluate_neutral", "explain_text_columns", "label_text", "label_texts", "load_data",
           "make_target", "neutral_mask", "read_data", "run_spec", "with_spec_option", "check_output_folder"]

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


def _signature(spec: Spec, frame: pd.DataFrame, transform: FeatureTransform,
               reading: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inputs with the kind of value each was trained on; keys; outputs."""
    from mlpatterns.input_types import input_description

    reading = reading or {}
    numeric_uses = {*transform.numeric, *transform.bucketize}
    inputs = [input_description(column, frame[column], date=column in transform.date_parts,
                                boolean_texts=reading.get("boolean_texts"),
                                categorical=column not in numeric_uses and column not in transform.date_parts)
              for column in transform.input_columns]
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
            raise SpecError(f"split: {with_spec_option(str(error))}") from None
        spec.split["cutoffs_used"] = split.attrs.get("cutoffs")  # recorded in each bundle's lineage
        split = split.astype(object).to_numpy()
        return {s: split == s for s in SPLITS}
    try:
        split = hash_split(frame, key=spec.split["key"], fractions=spec.split["fractions"],
                           num_buckets=spec.split.get("num_buckets", 100),
                           separator=spec.split.get("separator", ""), nulls=nulls).astype(object).to_numpy()
    except ValueError as error:
        raise SpecError(f"split.key: {with_spec_option(str(error))}") from None
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
    from mlpatterns.serving.bundle import write_bundle
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    check_output_folder(spec)
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
    for name, info in encodings["columns"].items():  # Hashed Feature (1): the collisions hashing causes
        collisions = info.get("collisions")
        if collisions and collisions["values_sharing_a_bucket"]:
            log(f"{name}: {collisions['distinct_values']:,} training values hashed into {info['buckets']:,} "
                f"buckets; {collisions['values_sharing_a_bucket']:,} share a bucket with another value "
                f"({collisions['share_of_rows_in_shared_buckets']:.1%} of training rows)")
    for warning in encodings["warnings"]:
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
        _replace_atomically(test_path, lambda temporary: parts["test"].to_parquet(temporary, index=False))
    bundles, skew, plots = {}, {}, {}
    tuned = None
    if spec.tuning and ranks is not None:
        raise SpecError("tuning: a spec with a tuning: section runs its trials in worker processes; "
                        "it cannot run as a data-parallel torchrun job")
    if spec.tuning:  # Hyperparameter Tuning (15): the study scores trials on the validation split first
        from mlpatterns.spec.tuning import tune_spec_model

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
        metrics[name] = evaluate_model(spec, data["test"][1], trained)
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
    for stale in _remove_stale_bundles(output_dir / "bundles", bundles, spec.name):
        log(f"removed the bundle of model {stale!r}, which the spec no longer declares")
    report = _report(result)
    if encodings:
        report["categorical_encodings"] = encodings
    _write_text_atomically(output_dir / "report.json", json.dumps(report, indent=2) + "\n")
    return result


def _replace_atomically(path: Path, write: Any) -> None:
    """``write(temporary)`` a file beside ``path``, then rename it into place: a reader never sees half a file,
    and a failure leaves the old one. The file gets the usual permissions (``mkstemp`` makes it private)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _write_text_atomically(path: Path, text: str) -> None:
    """Write text to ``path`` through a temporary file (see :func:`_replace_atomically`)."""
    _replace_atomically(path, lambda temporary: Path(temporary).write_text(text))


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


def check_output_folder(spec: Spec) -> None:
    """Refuse, before any work, an output folder that is a file or that would overwrite the spec's own data.

    A run writes ``test.parquet``, ``report.json``, ``bundles/``, ``plots/`` and
    ``checkpoints/`` into its folder; none of them may be the data file it reads.
    """
    output = spec.output_dir
    if output.exists() and not output.is_dir():
        raise SpecError(f"output.dir: {output} is a file, not a folder")
    path = data_path(spec)
    if path is None:
        return
    data, output = path.resolve(), output.resolve()
    owned = [output / "test.parquet", output / "report.json", output / "bundles", output / "plots",
             output / "checkpoints"]
    if any(data == place or place in data.parents for place in owned):
        raise SpecError(f"data.path: {path} is where the run writes its own output in {spec.output_dir}; "
                        "move the data or choose another output.dir")


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


def _remove_stale_bundles(folder: Path, keep: dict[str, Path], spec_name: str) -> list[str]:
    """Remove the bundles of models that this spec no longer declares from a reused output folder.

    Only directories that hold a bundle this spec wrote (its manifest's name is
    ``<spec name>/<model>``) are removed; another spec's bundles and anything else in the
    folder are left alone.
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
        if isinstance(manifest, dict) and manifest.get("format") == BUNDLE_FORMAT \
                and str(manifest.get("name", "")).startswith(f"{spec_name}/"):  # this spec's, not another's
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
    from mlpatterns.training.trainer.history import plot_learning_curves

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
    from mlpatterns.tolerance import ExportMismatchError, compare_outputs

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
