"""``run_spec``: plan the spec's pipeline, run what the cache lacks, publish the outputs, register."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlpatterns.lifecycle.outputs import (
    check_output_folder,
    copy_file,
    remove_stale_bundles,
    replace_folder,
    write_text_atomically,
)
from mlpatterns.lifecycle.result import RunResult

__all__ = ["CACHE_FOLDER", "open_cache", "plan_spec", "run_spec"]

CACHE_FOLDER = "cache"


def open_cache(spec: Any) -> Any:
    """The pipeline store of a spec's runs: ``<output.dir>/cache``."""
    from mlpatterns.reproducibility.workflow_pipeline import Store

    return Store(spec.output_dir / CACHE_FOLDER)


def _data_parallel_ranks() -> Any:
    """This process's ``DistributedContext`` in a ``torchrun`` job of several ranks, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    from mlpatterns.training.distribution_strategy import DistributedContext

    context = DistributedContext.current()
    return context if context.distributed else None


def _lineage(spec: Any, sources: dict[str, Path]) -> dict[str, Any]:
    """What each bundle records of what produced it beyond its key: the spec's and the data's place, the
    project's git commit (not part of any key: a cached bundle keeps those of the run that made it)."""
    from mlpatterns.reproducibility.workflow_pipeline.records import git_commit

    folder = spec.source.parent if spec.source else None
    return {"spec": str(spec.source.resolve()) if spec.source else None,
            "data_path": str(sources["data"].resolve()) if "data" in sources else None,
            "git_commit": git_commit(str(folder) if folder else None),
            "pipeline_store": str((spec.output_dir / CACHE_FOLDER).resolve())}


def plan_spec(spec: Any, *, seed: int = 0, force: tuple[str, ...] = ()) -> list[Any]:
    """Which steps a run would take from the cache and which it would run, and why (``--dry-run``)."""
    from mlpatterns.lifecycle.pipeline import build_pipeline

    check_output_folder(spec)
    return build_pipeline(spec, seed=seed).plan(spec.output_dir / CACHE_FOLDER, force=force)  # creates nothing


def run_spec(spec: Any, *, progress: Any = None, seed: int = 0, log: Any = print, resume: bool = False,
             engine: str = "local", force: Any = (), register: bool = True,
             register_anyway: str | None = None) -> RunResult:
    """Run the whole lifecycle of a spec and write one bundle per model.

    Steps whose key (code, spec sections, input bytes) is in the cache are not run again:
    re-running an unchanged spec only publishes. ``force`` names steps to run anyway.
    ``resume=True`` continues each network from the newest good checkpoint of an
    interrupted run (Checkpoints, 12). Run as every rank of a ``torchrun`` job
    (Distribution Strategy, 14), the networks train data-parallel and rank 0 alone runs
    the other steps and writes the outputs. ``engine="ray"`` runs independent steps (the
    models) in parallel on Ray. With a ``register:`` section (and ``register``), the
    model is registered if it passes the gate, or with ``register_anyway`` (a message for
    the audit trail) if it does not (Model Versioning, 27).
    """
    from mlpatterns.lifecycle.pipeline import build_pipeline, data_sources
    from mlpatterns.reproducibility.workflow_pipeline import StepError

    check_output_folder(spec)
    ranks = _data_parallel_ranks()  # Distribution Strategy (14): this process is one rank of a torchrun job
    main = ranks is None or ranks.is_main  # the process that writes the outputs
    if spec.tuning and ranks is not None:
        from mlpatterns.spec import SpecError

        raise SpecError("tuning: a spec with a tuning: section runs its trials in worker processes; "
                        "it cannot run as a data-parallel torchrun job")
    output_dir = spec.output_dir
    runtime: dict[str, Any] = {"output_dir": str(output_dir), "resume": resume,
                               "lineage": _lineage(spec, data_sources(spec)),
                               "tuning_storage": spec.tuning.get("storage") if spec.tuning else None}
    if engine == "local":  # a Ray worker gets no display; its steps log to the driver's progress
        runtime.update(progress=progress, log=log)
    networks = [name for name, model in spec.models.items() if model["type"] == "wide_and_deep"]
    # every rank trains the networks together, first; rank 0 alone trains the rest and writes
    order = None if ranks is None else networks + ([n for n in spec.models if n not in networks] if main else [])
    pipeline = build_pipeline(spec, seed=seed, runtime=runtime, models=order, train_only=not main,
                              world_size=1 if ranks is None else ranks.world_size)
    codes = pipeline.code()  # the steps' source files, read once for the plan and both phases
    _check_params_to_train(spec, pipeline, force, codes)  # a wrong parameter costs no data loading, writes nothing
    created = not output_dir.exists()
    output_dir.mkdir(parents=True, exist_ok=True)
    store, show, anomalies, ran_first = open_cache(spec), _progress_hook(progress), [], {}
    try:
        if main:  # Workflow Pipeline (25): validate the data against the previous run's before training
            first = pipeline.upto(["statistics"]).run(store, force=_forced(force, ("load", "validate")),
                                                      progress=show, codes=codes)
            anomalies = _check_statistics(spec, first.artifacts["statistics"], log)
            ran_first = {step: status for step, status in first.statuses.items() if status == "ran"}
        result = pipeline.run(store, engine=engine, force=force, progress=show, codes=codes)
    except StepError as error:  # the step's own error (a wrong spec, bad data) says what to fix
        if created and error.step in _DATA_STEPS:  # refused before any training: leave no folder behind
            _remove_created(output_dir)
        said = error.original or error.__cause__  # what the step raised, also from a Ray worker
        if isinstance(said, Exception) and not type(said).__module__.startswith("ray"):
            raise said from None
        raise
    except Exception:
        if created and not any(store.records()):
            _remove_created(output_dir)
        raise
    if not main:  # only rank 0 writes the outputs
        return RunResult(spec=spec, rows={}, metrics={}, bundles={}, output_dir=output_dir,
                         rank=ranks.rank, world_size=ranks.world_size)
    run, report = _publish(spec, result, anomalies, log)
    run.steps.update(ran_first)  # what the validation phase ran is "cached" in the second
    crossed = _fairness_crossings(report)  # Fairness Lens (30): fail the run, after the report is written
    if spec.register and register and crossed:
        log("not registered: a fairness threshold is crossed (below)")
    elif spec.register and register:
        from mlpatterns.lifecycle.registration import register_run

        run.registered = register_run(spec, run, result.artifacts["features"] / "test.npz",
                                      override=register_anyway, log=log)
        run.steps["register"] = "ran"  # never cached: registering has an effect outside the run (idempotent)
        report["registered"] = run.registered
    if ranks is not None:
        run.rank, run.world_size = ranks.rank, ranks.world_size
    report["steps"] = run.steps
    from mlpatterns.lifecycle.report_sections import model_cards

    report["model_cards"] = model_cards(spec, report, run.registered)  # Fairness Lens (30): one per model
    write_text_atomically(output_dir / "report.json", json.dumps(report, indent=2) + "\n")
    from mlpatterns.lifecycle.report_html import write_report_html

    try:  # the same report, for a browser
        write_report_html(report, output_dir)
    except ImportError as error:  # without the report extra (jinja2): report.json holds it all
        (output_dir / "report.html").unlink(missing_ok=True)  # an earlier run's page would describe that run
        log(f"report.html not written: {error}")
    if crossed:
        from mlpatterns.responsible.fairness_lens.thresholds import FairnessThresholdError

        models = [name for name, part in report["fairness"]["models"].items() if part.get("crossings")]
        what = f"the model {models[0]!r}" if len(models) == 1 else f"the models {', '.join(map(repr, models))}"
        raise FairnessThresholdError(
            f"Fairness Lens: {what} on the test split crosses {len(crossed)} threshold(s): "
            + "; ".join(c.message() for c in crossed)
            + f" (the report, with every slice, is in {output_dir}; nothing was registered)", crossed)
    return run


def _fairness_crossings(report: dict[str, Any]) -> list[Any]:
    """The fairness thresholds the models cross on the test split (``report["fairness"]["models"]``); the
    column names its model when several models cross."""
    models = {name: part["crossings"] for name, part in ((report.get("fairness") or {}).get("models") or {}).items()
              if part.get("crossings")}
    if not models:
        return []
    from mlpatterns.responsible.fairness_lens.thresholds import ThresholdCrossing

    return [ThresholdCrossing(c["threshold"], c["column"] if len(models) == 1 else f"{name}: {c['column']}",
                              c["value"], c["limit"], c["slices"])
            for name, crossings in models.items() for c in crossings]


def _check_params_to_train(spec: Any, pipeline: Any, force: Any, codes: Any) -> None:
    """Check the ``params`` of each model the run will train (scikit-learn's checks), before any step runs.

    A model whose training step is in the cache had these very params checked when it ran.
    """
    from mlpatterns.spec import check_spec_params

    plan = pipeline.plan(spec.output_dir / CACHE_FOLDER, force=force, codes=codes)  # reads, creates nothing
    planned = {entry.step: entry.status for entry in plan}
    check_spec_params(spec, [name for name in spec.models if planned.get(f"train.{name}") == "run"])


_DATA_STEPS = ("load", "validate", "split", "transform")  # a failure there is the spec's or the data's


def _remove_created(folder: Path) -> None:
    """Remove the output folder this run created (it holds only this run's cache) after a refusal."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _forced(force: Any, steps: tuple[str, ...]) -> Any:
    """The forced steps among ``steps`` (``force`` may be True: all)."""
    if force is True:
        return True
    return tuple(name for name in force if name in steps)


def _progress_hook(progress: Any) -> Any:
    """A pipeline progress callback that shows each step once on the rich display."""
    if progress is None:
        return None
    tasks: dict[str, Any] = {}

    def hook(step: str, status: str) -> None:
        if status == "start":
            tasks[step] = progress.add_task(step, total=1)
        elif status == "cached" and step not in tasks:
            tasks[step] = progress.add_task(f"{step} (cached)", total=1, completed=1)
        elif status == "done" and step in tasks:
            progress.update(tasks[step], completed=1)

    return hook


def _read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def _publish(spec: Any, result: Any, anomalies: list[dict[str, Any]], log: Any) -> tuple[RunResult, dict[str, Any]]:
    """Copy the run's artifacts into the output folder; the result and the report to write."""
    output_dir = spec.output_dir
    artifacts, records = result.artifacts, result.records
    prepared = _read_json(artifacts["prepared"] / "prepared.json")
    spec.target.update(prepared["target"])
    if prepared.get("cutoffs_used") is not None:
        spec.split["cutoffs_used"] = prepared["cutoffs_used"]
    rows = prepared["rows"]
    _log_split(spec, prepared, log)
    encodings = records["transform"].facts.get("encodings", {"columns": {}, "warnings": []})
    _log_encodings(encodings, log)
    copy_file(artifacts["prepared"] / "test.parquet", output_dir / "test.parquet")
    copy_file(artifacts["statistics"], output_dir / "statistics.json")  # what the next run compares with
    metrics = {"heuristic_benchmark": _read_json(artifacts["benchmark_metrics"])}
    bundles, skew, plots = {}, {}, {}
    (output_dir / "bundles").mkdir(exist_ok=True)
    for name in spec.models:
        verified = _read_json(artifacts[f"verified.{name}"])
        metrics[name] = {**_read_json(artifacts[f"metrics.{name}"]), **verified["metrics"]}
        skew[name] = verified["skew"]
        bundles[name] = output_dir / "bundles" / name
        replace_folder(artifacts[f"bundle.{name}"], bundles[name])
        curves = artifacts[f"trained.{name}"] / "learning_curves.png"
        if curves.is_file():
            (output_dir / "plots").mkdir(exist_ok=True)
            plots[name] = output_dir / "plots" / f"{name}_learning_curves.png"
            copy_file(curves, plots[name])
    timings = {step: record.duration_s for step, record in records.items()}
    tuning = _read_json(artifacts["tuned"])["manifest"] if "tuned" in artifacts else None
    run = RunResult(spec=spec, rows=rows, metrics=metrics, bundles=bundles, output_dir=output_dir,
                    dropped_target_rows=prepared["dropped"], timings=timings, skew=skew, tuning=tuning,
                    plots=plots, steps=dict(result.statuses), anomalies=anomalies)
    for stale in remove_stale_bundles(output_dir / "bundles", bundles, spec.name):
        log(f"removed the bundle of model {stale!r}, which the spec no longer declares")
    from mlpatterns.lifecycle.two_phase_step import publish_two_phase, remove_stale_two_phase

    if "two_phase" in artifacts:  # Two-Phase Predictions (19): phase 1, its threshold and figures
        run.two_phase = publish_two_phase(artifacts["two_phase"], output_dir / "two_phase", log)
    elif remove_stale_two_phase(output_dir / "two_phase", spec.name):
        log("removed the two_phase folder, which the spec no longer declares")
    report = {
        "name": spec.name, "task": spec.task, "rows": rows, "dropped_target_rows": run.dropped_target_rows,
        "metrics": metrics, "bundles": {k: str(v) for k, v in bundles.items()}, "skew": skew,
        "timings_seconds": {k: round(v, 2) for k, v in timings.items()}, "steps": run.steps,
        "categorical_encodings": encodings, "data_anomalies": anomalies,
        **({"tuning": tuning} if tuning is not None else {}),
        **({"plots": {k: str(v) for k, v in plots.items()}} if plots else {}),
        **({"two_phase": run.two_phase} if run.two_phase else {}),
    }
    from mlpatterns.lifecycle.report_sections import benchmark_section, model_step_sections

    benchmark = benchmark_section(spec, artifacts, log, output_dir)  # Heuristic Benchmark (28)
    if benchmark is not None:
        report["heuristic_benchmark"] = benchmark
    report.update(model_step_sections(artifacts, output_dir, list(spec.models)))  # plots, 29, 30
    shares = records["transform"].facts.get("bridge_shares")
    if shares is not None:  # Bridged Schema (23): what each old value was bridged to, learned on train
        report["bridge"] = {"shares": shares, "message": next(
            (m for m in prepared.get("messages", []) if m.startswith("data.bridge:")), "")}
    return run, report


def _log_split(spec: Any, prepared: dict[str, Any], log: Any) -> None:
    rows = prepared["rows"]
    splits = ", ".join(f"{s} {rows[s]:,}" for s in ("train", "valid", "test"))
    if spec.split.get("none"):
        how = "no split (split: none): train, valid and test are all of them"
    elif spec.split.get("by") == "time":
        how = f"split in time order by {spec.split['column']!r}: {splits}"
    else:
        how = f"split by hash of {spec.split['key']}: {splits}"
    excluded = prepared["with_target"] - sum(rows.values()) if not spec.split.get("none") else 0
    log(f"{spec.name}: {prepared['with_target']:,} rows with a target ({prepared['dropped']:,} dropped without "
        f"one); {how}" + (f"; {excluded:,} row(s) with a null split value left out (split.nulls: exclude)"
                         if excluded else ""))
    for line in prepared.get("messages", []):
        log(line)


def _log_encodings(encodings: dict[str, Any], log: Any) -> None:
    for name, info in encodings["columns"].items():  # Hashed Feature (1): the collisions hashing causes
        collisions = info.get("collisions")
        if collisions and collisions["values_sharing_a_bucket"]:
            log(f"{name}: {collisions['distinct_values']:,} training values hashed into {info['buckets']:,} "
                f"buckets; {collisions['values_sharing_a_bucket']:,} share a bucket with another value "
                f"({collisions['share_of_rows_in_shared_buckets']:.1%} of training rows)")
    for warning in encodings["warnings"]:
        log(f"features.categorical: {warning}")


def _check_statistics(spec: Any, statistics: Path, log: Any) -> list[dict[str, Any]]:
    """Compare the data's statistics with the last successful run's (``statistics.json``, written when a run
    publishes); report the anomalies, and fail on those the spec's ``validation.fail_on`` names."""
    previous_path = spec.output_dir / "statistics.json"
    anomalies: list[dict[str, Any]] = []
    if previous_path.is_file() and previous_path.read_bytes() != statistics.read_bytes():
        from mlpatterns.reproducibility.data_validation import (
            DataStatistics,
            check,
            validate,
            validation_report,
        )

        validation = spec.validation
        found = validate(DataStatistics.from_json(statistics.read_text()),
                         DataStatistics.from_json(previous_path.read_text()),
                         thresholds=validation.get("thresholds") or None,
                         column_thresholds=validation.get("columns") or None)
        anomalies = [anomaly.to_dict() for anomaly in found]
        check(found, fail_on=tuple(validation.get("fail_on", ())))  # its error holds the report
        if found:
            log(validation_report(found))
    return anomalies
