"""The steps of ``mlpatterns run`` (Workflow Pipeline, 25), each a function from input artifacts to output artifacts.

========================  ==============================  ====================================================
step                      reads                           writes
========================  ==============================  ====================================================
``load``                  the data file                   ``table``: the rows as read (Parquet) and how
``validate``              ``table``                       ``statistics``: schema and statistics per column
``split``                 ``table``                       ``prepared``: target, split of each row, test rows
``transform``             ``table``, ``prepared``         ``transform`` (fitted on train), ``features``,
                                                          ``signature``
``benchmark``             ``table``, ``prepared``,        ``benchmark_metrics``: the heuristic benchmark (28);
                          ``features``                    ``benchmark_report``: the heuristics tried
``tune``                  ``features``, ``transform``     ``tuned``: the best trial's model section (15)
``train.<model>``         ``features``, ``transform``     ``trained.<model>``: its ONNX files and test outputs
``evaluate.<model>``      ``trained.<model>``,            ``metrics.<model>`` on the test split;
                          ``benchmark_report``            ``comparison.<model>``: the gain over the heuristic
``export.<model>``        trained, transform, metrics     ``bundle.<model>``: the stateless serving function
``verify.<model>``        bundle, test rows, features     ``verified.<model>``: served features and scores
                                                          equal training's (no skew)
``diagnostics.<model>``   ``trained.<model>``, features   the report's calibration, confusion or residual
                                                          plots and their numbers
========================  ==============================  ====================================================

A step sees only the spec sections its cache key covers (:func:`step_spec` builds that
partial spec): a step that read another section would fail in tests, never run stale
from the cache. Runtime options that do not change a result (where checkpoints go,
whether to resume, the progress display) come in ``runtime`` and are not in the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["STEP_SECTIONS", "benchmark", "evaluate", "export", "load", "split", "step_spec", "train",
           "transform", "tune", "validate", "verify"]

#: the spec sections each step's key covers (and the only ones it sees)
STEP_SECTIONS = {
    "load": ("data", "split"),  # the split key draws data.sample_fraction's sample (only then in the key)
    "validate": (),
    "split": ("data", "target", "split", "keys"),
    "transform": ("data", "target", "split", "keys", "features"),
    "benchmark": ("target", "baseline", "features", "split"),  # split: a time split's previous-period heuristic
    "tune": ("name", "target", "split", "features", "models", "tuning"),
    "train": ("target", "split", "features"),  # + the model's own section
    "evaluate": ("target",),
    "export": ("name", "target", "split", "data", "keys"),
    "verify": ("target",),
    "two_phase": ("name", "target", "keys", "two_phase"),  # Two-Phase Predictions (19): lifecycle.two_phase_step
    "diagnostics": ("target",),  # the report's calibration, confusion and residual plots: lifecycle.report_plots
    "explain": ("target", "features", "explain"),  # Explainable Predictions (29): lifecycle.explanation_step
    "fairness_data": ("target", "fairness"),  # Fairness Lens (30), before training: fairness_step
    "fairness": ("name", "target", "fairness"),  # Fairness Lens (30), each model: fairness_step
}


def step_spec(state: dict[str, Any], sections: tuple[str, ...]) -> Any:
    """A :class:`~mlpatterns.spec.Spec` holding only ``sections`` of ``state`` (the others empty)."""
    import copy

    from mlpatterns.spec import Spec

    fields = {"name": "", "data": {}, "target": {}, "split": {"key": []}, "features": {}, "models": {}}
    fields.update({name: copy.deepcopy(state[name]) for name in sections if name in state})
    if "target_declared" in state:
        fields["target_declared"] = tuple(state["target_declared"])
    return Spec(**fields)


def load(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
         runtime: dict[str, Any]) -> dict[str, Any]:
    """Read the data as serving will read it; keep every column (a feature change re-runs from ``transform``)."""
    from mlpatterns.lifecycle.artifacts import write_json
    from mlpatterns.spec.data import read_data

    spec = step_spec(params["spec"], STEP_SECTIONS["load"])
    if "dataset" not in spec.data:  # the file's path is not in the key: the step reads its input
        spec.data["path"] = str(inputs["data"])
    if "feature_store" in spec.data:  # Feature Store (26): joined as of each row's event time
        spec.data["feature_store"]["repository"] = str(inputs["feature_repository"])
    frame, reading = read_data(spec)
    folder = outputs["table"]
    folder.mkdir(parents=True)
    frame.to_parquet(folder / "table.parquet", index=False)
    write_json(folder / "reading.json", reading)
    if "feature_store" in spec.data:  # what the bundle records: serving reads the same features by key
        from mlpatterns.spec.feature_store import feature_service

        write_json(folder / "feature_store.json", feature_service(spec).with_key_types(frame).to_manifest())
    if "windows" in spec.data:  # Windowed Inference (24): the declaration serving computes again
        write_json(folder / "windows.json", spec.data["windows"])
    return {"rows": len(frame), "columns": len(frame.columns)}


def validate(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
             runtime: dict[str, Any]) -> dict[str, Any]:
    """Schema and statistics of every raw column (types, ranges, missing shares, category frequencies)."""
    from mlpatterns.lifecycle.artifacts import read_table
    from mlpatterns.reproducibility.data_statistics import DataStatistics

    frame, _ = read_table(inputs["table"])
    statistics = DataStatistics.from_frame(frame)
    outputs["statistics"].write_text(statistics.to_json())
    return {"columns": len(frame.columns)}


def split(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
          runtime: dict[str, Any]) -> dict[str, Any]:
    """The target as numbers and the split of every row with one (Repeatable Splitting, 22)."""
    import numpy as np

    from mlpatterns.lifecycle.artifacts import SPLITS, read_table, write_json
    from mlpatterns.lifecycle.splits import check_classes, split_masks
    from mlpatterns.spec.data import make_target

    spec = step_spec(params["spec"], STEP_SECTIONS["split"])
    frame, reading = read_table(inputs["table"])
    spec.check_columns(frame.dtypes.to_dict())
    before, table_rows = dict(spec.target), len(frame)
    frame["__row__"] = np.arange(table_rows)  # which table rows have a target (the other steps take them)
    frame, target, dropped = make_target(spec, frame, reading)
    kept = frame.pop("__row__").to_numpy()
    masks = split_masks(spec, frame)
    bridged = None
    if "bridge" in spec.data:  # Bridged Schema (23): old-schema rows train only, bridged in the transform step
        from mlpatterns.lifecycle.bridging import bridge_masks

        masks, bridged = bridge_masks(spec, frame, masks)
    check_classes(spec, target, masks)
    folder = outputs["prepared"]
    folder.mkdir(parents=True)
    with open(folder / "rows.npz", "wb") as handle:
        np.savez(handle, kept=kept, target=target, **{name: mask for name, mask in masks.items()})
    frame.loc[masks["test"]].reset_index(drop=True).to_parquet(folder / "test.parquet", index=False)
    rows = {s: int(masks[s].sum()) for s in SPLITS}
    learned = {k: v for k, v in spec.target.items() if before.get(k) != v}
    write_json(folder / "prepared.json", {"target": learned, "cutoffs_used": spec.split.get("cutoffs_used"),
                                          "rows": rows, "dropped": dropped, "with_target": len(frame),
                                          "table_rows": table_rows,
                                          "messages": _target_messages(spec, target) + ([bridged] if bridged else [])})
    return {"rows": rows, "dropped_target_rows": dropped}


def _target_messages(spec: Any, target: Any) -> list[str]:
    """Which label is the positive one (and how it was chosen), or which classes there are."""
    import numpy as np

    column = spec.target.get("column")
    if spec.task == "classification" and "positive_label" in spec.target:
        how = ("the second of the labels in sorted order; set target.positive_label to choose another"
               if spec.target.get("positive_label_chosen") else "target.positive_label")
        return [f"target {column!r}: positive label {spec.target['positive_label']!r} ({how}); labels "
                f"{spec.target['labels']}; {np.mean(target):.1%} of rows positive"]
    if spec.task == "multiclass":
        shares = ", ".join(f"{c} {np.mean(target == j):.1%}" for j, c in enumerate(spec.target["classes"]))
        return [f"target {column!r}: {len(spec.target['classes'])} classes ({shares})"]
    return []


def transform(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
              runtime: dict[str, Any]) -> dict[str, Any]:
    """Fit the transform on the train split only (Transform, 21) and apply it to every split."""
    from mlpatterns.lifecycle.artifacts import read_prepared, read_table, write_features, write_json
    from mlpatterns.lifecycle.splits import fit_transform, signature
    from mlpatterns.spec.data import explain_text_columns

    spec = step_spec(params["spec"], STEP_SECTIONS["transform"])
    if "dataset" not in spec.data:  # the file's path is not in the key: the step reads its input
        spec.data["path"] = str(inputs["data"])
    table, reading = read_table(inputs["table"])
    explain_text_columns(spec, table)
    spec.check_columns(table.dtypes.to_dict())
    frame, target, masks, _ = read_prepared(inputs["prepared"], spec, table)
    shares = None
    if "bridge" in spec.data:  # Bridged Schema (23): old train rows drawn into the new schema
        from mlpatterns.lifecycle.bridging import bridge_rows

        frame, shares = bridge_rows(spec, frame, masks)
    fitted, data, context = fit_transform(spec, frame, target, masks)
    folder = outputs["transform"]
    folder.mkdir(parents=True)
    (folder / "transform.json").write_text(fitted.to_json())
    for name, content in fitted.text_files().items():
        (folder / name).write_bytes(content)
    write_features(outputs["features"], data, context)
    write_json(outputs["signature"], signature(spec, frame, fitted, reading))
    result = {"encodings": {"columns": fitted.encoding_report(), "warnings": fitted.encoding_warnings()}}
    if shares is not None:
        result["bridge_shares"] = shares
    return result


def _training_inputs(inputs: dict[str, Path], spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The split data and context of the training functions, from the ``features`` and ``transform`` artifacts."""
    from mlpatterns.lifecycle.artifacts import read_features, read_json
    from mlpatterns.reproducibility.transform import FeatureTransform

    facts = read_json(inputs["prepared"] / "prepared.json")
    spec.target.update(facts["target"])
    data, context = read_features(inputs["features"])
    context["transform"] = FeatureTransform.from_json((inputs["transform"] / "transform.json").read_text())
    return data, context


def benchmark(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
              runtime: dict[str, Any]) -> dict[str, Any]:
    """Heuristic Benchmark (28): historical rates or means by the declared levels, on the test split."""
    from mlpatterns.lifecycle.artifacts import read_features, read_prepared, read_table, write_json
    from mlpatterns.lifecycle.evaluation import heuristic_benchmark
    from mlpatterns.reproducibility.transform import FeatureTransform

    spec = step_spec(params["spec"], STEP_SECTIONS["benchmark"])
    table, _ = read_table(inputs["table"])
    frame, target, masks, _ = read_prepared(inputs["prepared"], spec, table)
    data, _ = read_features(inputs["features"])
    parts = {s: frame.loc[masks[s]].reset_index(drop=True) for s in masks}
    transform = FeatureTransform.from_json((inputs["transform"] / "transform.json").read_text())
    metrics, report = heuristic_benchmark(spec, parts, data, transform.input_columns)
    write_json(outputs["benchmark_metrics"], metrics)  # the chosen heuristic's test metrics (the bundle records them)
    write_json(outputs["benchmark_report"], report)  # every heuristic tried, the one chosen on valid, and why
    return {"metrics": metrics}


def tune(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
         runtime: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameter Tuning (15): the study over one model's parameters, scored on the valid split."""
    from mlpatterns.lifecycle.artifacts import write_json
    from mlpatterns.spec.tuning import tune_spec_model, tuning_from_json

    spec = step_spec(params["spec"], STEP_SECTIONS["tune"])
    spec.tuning = tuning_from_json({**spec.tuning, "storage": runtime.get("tuning_storage")})
    data, context = _training_inputs(inputs, spec)
    tuned = tune_spec_model(spec, data, context, params["seed"], Path(runtime["output_dir"]),
                            progress=runtime.get("progress"), log=runtime.get("log", print))
    write_json(outputs["tuned"], {"model": tuned.model, "model_spec": tuned.model_spec, "manifest": tuned.manifest})
    return {"best": tuned.manifest.get("best_value")}


def train(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
          runtime: dict[str, Any]) -> dict[str, Any]:
    """Train one model on the train split (valid split for early stopping), export it to ONNX and check the export."""
    from mlpatterns.lifecycle.artifacts import read_json, write_trained
    from mlpatterns.lifecycle.outputs import clear_checkpoints, plot_learning_curves
    from mlpatterns.spec.models import train_model

    spec = step_spec(params["spec"], STEP_SECTIONS["train"])
    name, model_spec = params["model"], params["model_spec"]
    if "tuned" in inputs:  # the best trial's values
        model_spec = read_json(inputs["tuned"])["model_spec"]
    spec.models = {name: model_spec}
    data, context = _training_inputs(inputs, spec)
    checkpoints = Path(runtime["output_dir"]) / "checkpoints"
    resume = bool(runtime.get("resume"))
    if not resume and model_spec["type"] == "wide_and_deep":
        clear_checkpoints(checkpoints / name, model_spec.get("checkpoints", {}))
    context["training"] = {"checkpoint_root": checkpoints, "resume": resume}
    trained = train_model(name, model_spec, spec, data, context, runtime.get("progress"), params["seed"])
    write_trained(outputs["trained"], trained)
    plot_learning_curves(trained.model, outputs["trained"] / "learning_curves.png", f"{runtime.get('spec_name', '')}/{name}")
    return {}


def evaluate(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
             runtime: dict[str, Any]) -> dict[str, Any]:
    """The model's metrics on the test split (the metrics of :mod:`mlpatterns.metrics`), and its gain over the
    heuristic chosen on the valid split in the problem's own units (Heuristic Benchmark, 28)."""
    import numpy as np

    from mlpatterns.lifecycle.artifacts import read_json, read_trained, write_json
    from mlpatterns.lifecycle.evaluation import compare_with_benchmark
    from mlpatterns.spec.models import evaluate_model

    spec = step_spec(params["spec"], STEP_SECTIONS["evaluate"])
    spec.target.update(read_json(inputs["prepared"] / "prepared.json")["target"])
    with np.load(inputs["features"] / "test.npz", allow_pickle=False) as arrays:
        y_test = arrays["target"]
    trained = read_trained(inputs["trained"])
    metrics = evaluate_model(spec, y_test, trained)
    write_json(outputs["metrics"], metrics)
    comparison = compare_with_benchmark(spec, metrics, read_json(inputs["benchmark_report"]),
                                        test_output=trained.test_output, y_test=y_test, name=params["model"])
    write_json(outputs["comparison"], comparison)
    return {"metrics": metrics}


def export(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
           runtime: dict[str, Any]) -> dict[str, Any]:
    """Write the bundle: transform + model + signature + metrics + lineage (Stateless Serving Function, 16)."""
    from mlpatterns.lifecycle.artifacts import read_json, read_trained
    from mlpatterns.serving.bundle import write_bundle
    from mlpatterns.serving.continued_evaluation.reference_statistics import prediction_statistics
    from mlpatterns.spec.models import served_task

    spec = step_spec(params["spec"], STEP_SECTIONS["export"])
    facts = read_json(inputs["prepared"] / "prepared.json")
    spec.target.update(facts["target"])
    if facts.get("cutoffs_used") is not None:
        spec.split["cutoffs_used"] = facts["cutoffs_used"]
    name = params["model"]
    trained = read_trained(inputs["trained"])
    metrics = read_json(inputs["metrics"])
    manifest = {
        "name": f"{spec.name}/{name}", "task": served_task(spec), "model": trained.model,
        "transform": "transform.json", "signature": read_json(inputs["signature"]), **trained.serving,
        "target": spec.target,
        "metrics": {"test": metrics, "heuristic_benchmark": read_json(inputs["benchmark_metrics"])},
        "lineage": {**params["lineage"], **runtime.get("lineage", {}), "split": spec.split,
                    "rows": facts["rows"], "data_rows": facts["table_rows"], "seed": params["seed"]},
        "statistics": "statistics.json",
    }
    if "tuned" in inputs:
        manifest["tuning"] = read_json(inputs["tuned"])["manifest"]
    if "table" in inputs:  # the stored features (Feature Store, 26) and windows (Windowed Inference, 24)
        for name in ("feature_store", "windows"):
            if (inputs["table"] / f"{name}.json").is_file():
                manifest[name] = read_json(inputs["table"] / f"{name}.json")
    transform_files = {path.name: path.read_bytes() for path in sorted(inputs["transform"].iterdir())}
    files = {**trained.files, **transform_files, "statistics.json": inputs["statistics"].read_bytes()}
    # what the bundle serves on the test split: the reference of prediction drift (Continued Model Evaluation, 18)
    predicted = prediction_statistics(manifest["task"], trained.test_output, classes=trained.serving.get("classes"),
                                      threshold=trained.serving.get("threshold"))
    if predicted is not None:
        manifest["prediction_statistics"] = "prediction_statistics.json"
        files["prediction_statistics.json"] = predicted.to_json().encode()
    write_bundle(outputs["bundle"], files, manifest)
    return {}


def verify(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
           runtime: dict[str, Any]) -> dict[str, Any]:
    """Reload the bundle and score the test rows as batch serving reads them: the features must be equal bit for
    bit and the scores equal within float32 rounding (no training-serving skew)."""
    import numpy as np

    from mlpatterns.lifecycle.artifacts import read_features, read_json, read_trained, write_json
    from mlpatterns.lifecycle.evaluation import check_skew
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    spec = step_spec(params["spec"], STEP_SECTIONS["verify"])
    spec.target.update(read_json(inputs["prepared"] / "prepared.json")["target"])
    trained = read_trained(inputs["trained"])
    data, _ = read_features(inputs["features"])
    serving = ServingFunction.load(inputs["bundle"])
    skew = check_skew(serving, inputs["prepared"] / "test.parquet", data["test"][0], trained.test_output,
                      trained.score_scale)
    extra = {}
    if "reframe" in spec.target:  # how often the served outer quantiles hold the truth
        quantiles = sorted(spec.target["reframe"]["quantiles"])
        bounds = serving.predict_quantiles(data["test"][0], [quantiles[0], quantiles[-1]])
        y_test = data["test"][1]
        name = f"coverage_q{round(quantiles[0] * 100):02d}_q{round(quantiles[-1] * 100):02d}"
        extra[name] = float(np.mean((y_test >= bounds[:, 0]) & (y_test <= bounds[:, 1])))
    write_json(outputs["verified"], {"skew": skew, "metrics": extra})
    return {"skew": skew}
