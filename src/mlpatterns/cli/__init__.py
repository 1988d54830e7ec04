"""The ``mlpatterns`` command: ``validate`` a spec, ``run`` it, ``tune`` it, ``predict`` a file with a bundle;
``cache`` and ``lineage`` for the Workflow Pipeline's steps, ``registry`` for model versions, ``serve`` over HTTP.

Every spec field is described in docs/spec.md; annotated example specs are in examples/.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_EPILOG = """Every spec field, with its default: docs/spec.md. Annotated example specs: examples/*.yaml
(examples/flights.yaml: classification; examples/natality.yaml: regression). Exit codes: 0 done,
1 predict scored the good rows and listed the bad ones, 2 a wrong spec, file or bundle (nothing written)."""


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=False)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from mlpatterns.lifecycle import run_spec
    from mlpatterns.spec import SpecError, load_spec

    console = Console()
    spec = load_spec(args.spec, check_params=False)  # the run checks the params of the models it trains
    if args.output:
        spec.output["dir"] = args.output
    if args.command == "tune" and not spec.tuning:
        raise SpecError(f"{args.spec}: tuning: the spec has no 'tuning:' section (see examples/tuning_flights.yaml)")
    if spec.tuning:
        _tuning_overrides(spec, args)
    if getattr(args, "dry_run", False):  # the plan only: no ranks, no training
        return _dry_run(spec, args, _force(args), console)
    distribution = _distribution(spec, args)
    in_job = int(os.environ.get("WORLD_SIZE", "1")) > 1  # this process is one rank of a torchrun job
    if distribution["processes"] * distribution["nodes"] > 1 and not in_job:
        if not any(model["type"] == "wide_and_deep" for model in spec.models.values()):
            console.print("distribution: the spec has no wide_and_deep network to train data-parallel; "
                          "running in one process")
        else:
            return _launch_ranks(args, distribution, console, spec.name)
    if in_job:
        from mlpatterns.training.distribution_strategy import init_distributed, shutdown_distributed

        try:
            ranks = init_distributed("gloo")  # the spec's networks train on CPUs
            if not ranks.is_main:  # the other ranks train the networks with rank 0 and write nothing
                run_spec(spec, seed=args.seed, log=lambda *a, **k: None, resume=args.resume, force=_force(args))
                if ranks.local_rank == 0:  # the first rank of another node says where the results are
                    console.print(f"rank {ranks.rank} of {ranks.world_size}: networks trained; rank 0 writes "
                                  f"the bundles and the report to {spec.output_dir} on its node")
                return 0
            console.print(f"data-parallel: {ranks.world_size} ranks ({ranks.backend}); rank 0 writes")
            return _run_and_report(spec, args, console, run_spec)
        finally:
            shutdown_distributed()
    return _run_and_report(spec, args, console, run_spec)


# -- Distribution Strategy (14) --------------------------------------------------------------------
def _distribution(spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The spec's ``distribution:`` section with the ``run`` flags over it, validated."""
    from mlpatterns.spec import SpecError, parse_distribution

    distribution = dict(spec.distribution)
    for key in ("processes", "nodes", "rendezvous"):
        value = getattr(args, key, None)
        if value is not None:
            distribution[key] = value
    if getattr(args, "nodes", None) == 1 and getattr(args, "rendezvous", None) is None:
        distribution.pop("rendezvous", None)  # --nodes 1 over a several-node spec
    try:
        distribution = parse_distribution(distribution)
    except SpecError as error:
        raise SpecError(f"{args.spec}: {error} (from the spec's distribution: section and the flags)") from None
    if spec.tuning and distribution["processes"] * distribution["nodes"] > 1:
        raise SpecError(f"{args.spec}: distribution: a spec with a tuning: section runs its trials in worker "
                        "processes (--workers); it cannot run data-parallel")
    return distribution


def _job_id(name: str) -> str:
    """The c10d rendezvous id of a spec's job: the same on every node that runs the same spec."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name) or "mlpatterns"


def _launch_ranks(args: argparse.Namespace, distribution: dict[str, Any], console: Any, spec_name: str) -> int:
    """Start this same ``run`` as ``torchrun`` ranks of this node and wait for them."""
    import subprocess

    from mlpatterns.training.distribution_strategy import torchrun_command

    forwarded = [args.command, str(args.spec), "--seed", str(args.seed)]
    if args.output:
        forwarded += ["--output", args.output]
    if args.resume:
        forwarded.append("--resume")
    for step in getattr(args, "force", None) or []:
        forwarded += ["--force", step]
    if getattr(args, "no_register", False):
        forwarded.append("--no-register")
    if getattr(args, "register_anyway", None) is not None:
        forwarded += ["--register-anyway", args.register_anyway]
    if getattr(args, "engine", "local") != "local":
        console.print("--engine ray: a data-parallel job runs its steps on its ranks; the engine is local there")
    command = torchrun_command("mlpatterns.cli", forwarded, nproc=distribution["processes"], module=True,
                               nnodes=distribution["nodes"], rendezvous=distribution.get("rendezvous"),
                               job_id=_job_id(spec_name))
    console.print(f"Distribution Strategy: {distribution['processes']} process(es) on each of "
                  f"{distribution['nodes']} node(s): {' '.join(command[2:])}")
    return subprocess.run(command, check=False).returncode


def _run_and_report(spec: Any, args: argparse.Namespace, console: Any, run_spec: Any) -> int:
    force = _force(args)
    with _progress() as progress:
        result = run_spec(spec, progress=progress, seed=args.seed, log=progress.console.print, resume=args.resume,
                          engine=getattr(args, "engine", "local"), force=force,
                          register=not getattr(args, "no_register", False),
                          register_anyway=getattr(args, "register_anyway", None))
    names = list(result.metrics)
    where = "every row, no held-out split" if spec.split.get("none") else "test split"
    _print_metrics(console, f"{spec.name}: {where} ({result.rows['test']:,} rows)", result.metrics)
    baseline = result.metrics["heuristic_benchmark"]
    from mlpatterns.metrics import HEADLINE_METRICS, higher_is_better

    key = HEADLINE_METRICS["neutral" if "neutral" in spec.target else spec.task]
    for name in names[1:]:
        gain = result.metrics[name][key] - baseline[key]
        better = gain > 0 if higher_is_better(key) else gain < 0
        console.print(f"{name}: {key} {result.metrics[name][key]:.4f} vs heuristic {baseline[key]:.4f} "
                      f"({'better' if better else 'not better'} by {abs(gain):.4f}); "
                      f"bundle {result.bundles[name]} (served features identical to training: "
                      f"{bool(result.skew[name]['features_identical'])})")
    _print_threshold_hints(console, spec, result.metrics)
    if result.tuning is not None:
        _print_tuning(console, result.tuning)
    for name, path in result.plots.items():
        console.print(f"{name}: learning curves {path}")
    cached = [step for step, status in result.steps.items() if status == "cached"]
    if cached:
        console.print(f"from the cache: {len(cached)} of {len(result.steps)} steps "
                      f"({'all' if len(cached) == len(result.steps) else ', '.join(cached)})")
    for name, outcome in result.registered.items():
        console.print(f"register {name}: {outcome}")
    page = result.output_dir / "report.html"
    console.print(f"report: {result.output_dir / 'report.json'}" + (f" and {page} (open it in a browser)"
                  if page.is_file() else "") + f"; test rows for batch scoring: {result.output_dir / 'test.parquet'}")
    return 0


# -- Workflow Pipeline (25) ------------------------------------------------------------------------
def _force(args: argparse.Namespace) -> Any:
    """``--force STEP`` (repeatable; ``all`` for every step)."""
    chosen = list(getattr(args, "force", None) or [])
    return True if "all" in chosen else tuple(chosen)


def _dry_run(spec: Any, args: argparse.Namespace, force: Any, console: Any) -> int:
    """Print the plan: which steps would run and which come from the cache, and why."""
    from mlpatterns.lifecycle import plan_spec
    from mlpatterns.reproducibility.workflow_pipeline import format_plan

    plan = plan_spec(spec, seed=args.seed, force=force)
    console.print(format_plan(plan), highlight=False, soft_wrap=True)
    runs = sum(entry.status == "run" for entry in plan)
    console.print(f"{spec.name}: {runs} of {len(plan)} steps would run, {len(plan) - runs} from the cache "
                  f"({spec.output_dir / 'cache'})")
    return 0


def _cache(args: argparse.Namespace) -> int:
    """``mlpatterns cache list|clear SPEC``: the steps a spec's runs keep, and removing them."""
    from mlpatterns.lifecycle import open_cache
    from mlpatterns.spec import load_spec

    spec = load_spec(args.spec, check_params=False)
    if args.output:
        spec.output["dir"] = args.output
    root = spec.output_dir / "cache"
    if not root.is_dir():
        print(f"{spec.name}: no cache yet ({root})")
        return 0
    store = open_cache(spec)
    if args.action == "clear":
        report = store.clear(step=args.step)
        print(f"{spec.name}: removed {report.records} record(s) and {report.artifacts} artifact(s), "
              f"{report.bytes / 1e6:.1f} MB, from {root}")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{spec.name}: cached steps in {root}")
    for column in ("step", "key", "finished", "size", "latest"):
        table.add_column(column, justify="right" if column == "size" else "left")
    entries = [e for e in store.list() if args.step is None or e.step == args.step]
    for entry in entries:
        table.add_row(entry.step, entry.key[:12], entry.finished, f"{entry.size / 1e6:.2f} MB",
                      "yes" if entry.latest else "")
    Console().print(table)
    return 0


def _lineage(args: argparse.Namespace) -> int:
    """``mlpatterns lineage REF``: from a bundle (folder or registered version) back to the data."""
    from mlpatterns.lifecycle.lineage import bundle_lineage

    print(bundle_lineage(args.ref, registry=args.registry, as_json=args.json))
    return 0


def _print_threshold_hints(console: Any, spec: Any, metrics: dict[str, dict[str, float]]) -> None:
    """Precision, recall and F1 that collapse to 0 at the 0.5 cut-off usually mean a rare positive class."""
    for name, values in metrics.items():
        if name == "heuristic_benchmark" or values.get("threshold") != 0.5 or values.get("f1", 1) > 0:
            continue
        console.print(f"{name}: precision, recall and F1 are 0 at the 0.5 threshold: the model never gives "
                      f"P(positive) >= 0.5 ({values.get('positive_rate', float('nan')):.1%} of test rows are "
                      f"positive). Set models.{name}.threshold: {{strategy: f1}} (or {{min_precision: P}}) to move "
                      "the served cut-off on the validation split; ranking metrics (roc_auc, pr_auc) are unaffected.")


def _validate(args: argparse.Namespace) -> int:
    """Check a spec without touching data: fields, types, model parameters."""
    from mlpatterns.spec import load_spec

    spec = load_spec(args.spec)
    if "feature_store" in spec.data:  # Feature Store (26): the repository and the references, read now
        from mlpatterns.spec.feature_store import feature_service

        feature_service(spec)
    models = ", ".join(f"{name} ({model['type']})" for name, model in spec.models.items())
    print(f"{args.spec}: valid spec {spec.name!r}: {spec.task} target, models {models}; "
          f"output to {spec.output_dir}. Column names and types are checked when `mlpatterns run` loads the data.")
    return 0


# -- Hyperparameter Tuning (15) --------------------------------------------------------------------
def _tuning_overrides(spec: Any, args: argparse.Namespace) -> None:
    """``mlpatterns tune`` flags over the spec's ``tuning:`` section; quieter Optuna logs under the bar."""
    import optuna

    from mlpatterns.spec import SpecError
    from mlpatterns.training.hyperparameter_tuning.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for flag, key in (("workers", "n_workers"), ("trials", "n_trials")):
        value = getattr(args, flag, None)
        if value is not None:
            if value < 1:
                raise SpecError(f"--{flag}: expected a whole number of at least 1, got {value}")
            spec.tuning[key] = value
    if getattr(args, "storage", None) is not None:
        try:
            open_storage(args.storage)
        except ValueError as error:
            raise SpecError(f"--{error}") from None
        spec.tuning["storage"] = args.storage
    if getattr(args, "study_name", None):
        spec.tuning["study_name"] = args.study_name


def _print_tuning(console: Any, tuning: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"tuning {tuning['model']}: study {tuning['study_name']!r} in {tuning['storage_url']}")
    table.add_column("parameter")
    table.add_column("best", justify="right")
    for name, value in tuning["best_params"].items():
        table.add_row(name.removeprefix(f"models.{tuning['model']}."),
                      f"{value:.5g}" if isinstance(value, float) else str(value))
    console.print(table)
    start = tuning.get("start_value")
    console.print(f"tuning: best validation {tuning['metric']} {tuning['best_value']:.5g} (trial "
                  f"{tuning['best_trial']})" + ("" if start is None else f" vs {start:.5g} with the spec's values")
                  + f"; {tuning['complete']} complete, {tuning['pruned']} pruned, {tuning['failed']} failed trials "
                  f"({tuning['new_trials']} run now, {tuning['n_workers']} worker(s), {tuning['seconds']:.0f} s)")


def _print_metrics(console: Any, title: str, metrics: dict[str, dict[str, float]]) -> None:
    """Metrics as rows and models as columns; with many models, models as rows, a few metrics a table."""
    from rich.table import Table

    names = list(metrics)
    metric_names = list(dict.fromkeys(m for name in names for m in metrics[name]))

    def cell(name: str, metric: str) -> str:
        return f"{metrics[name][metric]:.4f}" if metric in metrics[name] else ""

    if len(names) <= 4:
        table = Table(title=title)
        table.add_column("metric")
        for name in names:
            table.add_column(name.replace("_", " "), justify="right")
        for metric in metric_names:
            table.add_row(metric, *(cell(n, metric) for n in names))
        console.print(table)
        return
    per_table = 5
    for start in range(0, len(metric_names), per_table):
        chunk = metric_names[start:start + per_table]
        table = Table(title=title if start == 0 else None)
        table.add_column("model")
        for metric in chunk:
            table.add_column(metric, justify="right")
        for name in names:
            table.add_row(name, *(cell(name, metric) for metric in chunk))
        console.print(table)


def _keygen(args: argparse.Namespace) -> int:
    from mlpatterns.serving.bundle_signing import generate_signing_key

    private, public = generate_signing_key(args.private_key, args.public_key)
    print(f"signing key {private} (keep it secret, mode 0600); public key {public} (give it to the servers)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from mlpatterns.serving.bundle_signing import sign_bundle

    print(f"signed {args.bundle}: {sign_bundle(args.bundle, args.key)}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from mlpatterns.cli.registry import resolve_bundle
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    if args.log_time_column is not None and args.log is None:
        raise ValueError("--log-time-column needs --log URL (the prediction log to write)")
    registered = _registered_version(args.bundle, args.registry) if args.log is not None else None
    bundle = resolve_bundle(registered[2] if registered else args.bundle, args.registry)  # a folder or models:/...
    serving = ServingFunction.load(bundle, public_key=args.public_key)  # refused before any reading
    if args.explain:  # Explainable Predictions (29): attributions next to each prediction
        serving = _predict_explaining(serving, args)
    if "feature_store" in serving.bundle.manifest or "windows" in serving.bundle.manifest:
        import tempfile

        if Path(args.output).resolve() == Path(args.input).resolve():
            raise ValueError(f"the output {args.output} is the input file; write the predictions elsewhere")
        with tempfile.TemporaryDirectory(prefix="mlpatterns-predict-") as folder:
            completed = _completed_input(serving, Path(args.input), Path(folder))
            return _predict_loaded(argparse.Namespace(**{**vars(args), "input": completed}), serving, registered)
    return _predict_loaded(args, serving, registered)


def _predict_explaining(serving: Any, args: argparse.Namespace) -> Any:
    """``serving`` whose predictions carry attributions (``predict --explain``), in chunks of EXPLAIN_CHUNK_ROWS."""
    import json

    from mlpatterns.responsible.explainable_predictions.explained_predictions import (
        ExplainingServingFunction,
    )

    if args.engine != "local":
        raise ValueError("--explain runs with --engine local")
    text = args.explain_baseline.strip()
    reference = None
    if text == "mean":
        baseline: Any = "mean"
    elif text.startswith("row="):
        from mlpatterns.tables import read_frame

        if not text[4:].isdigit():
            raise ValueError(f"--explain-baseline: expected row=N (a row of the input), got {text!r}")
        baseline, reference = {"row": int(text[4:])}, read_frame(Path(args.input), null_values=serving.null_values)
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            values = None
        if not isinstance(values, dict):
            raise ValueError(f"--explain-baseline: expected 'mean', row=N or a JSON object of column values, "
                             f"got {text!r}")
        baseline = {"values": values}
    args.chunk_rows = _or(args.chunk_rows, EXPLAIN_CHUNK_ROWS)
    explaining = ExplainingServingFunction(serving, baseline, reference, method=args.explain_method)
    unit = "log-odds" if explaining.explainer.space == "log_odds" else "the target's units"
    print(f"explaining with {explaining.explainer.method} attributions in {unit}, relative to "
          f"{explaining.baseline_description['kind']}: {json.dumps(explaining.baseline_description['values'])}",
          file=sys.stderr)
    return explaining


def _completed_input(serving: Any, path: Path, folder: Path) -> Path:
    """A bundle's window features (24) over the input's rows and its stored features (26) joined from the
    offline store, as in training, written to ``folder``: the whole input at once (not chunk by chunk)."""
    from mlpatterns.serving.feature_store_serving import with_stored_features
    from mlpatterns.serving.windowed_serving import with_window_features
    from mlpatterns.tables import read_frame

    frame = read_frame(path, null_values=serving.null_values)
    computed = [c for c in [*(serving.bundle.manifest.get("windows") or {}).get("features", {}),
                            *(f for v in (serving.bundle.manifest.get("feature_store") or {}).get("views", [])
                              for f in v["features"])] if c in frame.columns]
    if computed:  # e.g. the run's own test.parquet: computed again, as serving does, never taken from the file
        print(f"{path.name}: the column(s) {computed} are computed by the bundle (window and stored features); "
              "the file's values are replaced", file=sys.stderr)
        frame = frame.drop(columns=computed)
    frame = with_stored_features(serving.bundle, with_window_features(serving.bundle, frame))
    completed = folder / f"{path.name.split('.')[0]}.parquet"
    frame.to_parquet(completed, index=False)
    return completed


def _predict_loaded(args: argparse.Namespace, serving: Any, registered: tuple[str, str, str] | None) -> int:
    if args.log is not None and args.engine == "ray":  # each actor opens its own logger on the URL
        from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

        _opened_log(open_prediction_log, args.log).close()
        return _predict_with(args, serving, None, registered[:2] if registered else None)
    if args.log is not None:
        from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
        from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger

        log = _opened_log(open_prediction_log, args.log)  # a bad URL is refused before any reading
        logger = PredictionLogger(log)
        try:
            return _predict_with(args, serving, logger, registered[:2] if registered else None)
        finally:
            logger.close()
            log.close()
    return _predict_with(args, serving, None, None)


def _opened_log(open_log: Any, url: str) -> Any:
    """The prediction log ``url`` names, or a ValueError that names it (its password hidden) and why not."""
    from mlpatterns.backends import redact_url

    try:
        return open_log(url)
    except Exception as error:  # a database that cannot be reached, a driver missing: a bad --log
        raise ValueError(f"--log {redact_url(url)}: the prediction log cannot be opened: {error}") from error


def _registered_version(ref: str, registry: str | None) -> tuple[str, str, str] | None:
    """A ``models:/`` reference as (registered name, version, ``models:/NAME/VERSION``), its alias resolved
    once (so that the version logged is the version scored); None for a folder."""
    from mlpatterns.cli.registry import URI_PREFIX, registry_url

    if not ref.startswith(URI_PREFIX):
        return None
    from mlpatterns.reproducibility.model_versioning import ModelURI, open_registry

    uri = ModelURI.parse(ref)
    version = uri.version
    if version is None:
        with open_registry(registry_url(registry)) as opened:
            version = opened.get_model(uri.name).aliases.get(uri.alias)
        if version is None:
            raise ValueError(f"{ref}: {uri.name} has no alias {uri.alias!r}")
    return uri.name, str(version), f"{URI_PREFIX}{uri.name}/{version}"


def _predict_with(args: argparse.Namespace, serving: Any, logger: Any, model: tuple[str, str] | None) -> int:
    from mlpatterns.serving.keyed_predictions import predict_file

    log_options = {"prediction_log": logger if args.engine == "local" else args.log,
                   "log_time_column": args.log_time_column, "log_model": model} if args.log is not None else {}
    with _progress() as progress:
        if args.engine == "ray":  # actors on $RAY_ADDRESS's cluster, else on a local Ray of this machine's CPUs
            from mlpatterns.serving.ray_batch_serving import predict_file_ray

            _quiet_ray_data()
            summary = predict_file_ray(serving, args.input, args.output, batch_size=_or(args.chunk_rows, RAY_BLOCK_ROWS),
                                       concurrency=args.actors, public_key=args.public_key, progress=progress,
                                       overwrite=args.overwrite, **log_options)
        else:
            summary = predict_file(serving, args.input, args.output, chunk_rows=_or(args.chunk_rows, CHUNK_ROWS),
                                   progress=progress, overwrite=args.overwrite, **log_options)
    print(f"scored {summary.predicted:,} of {summary.rows:,} rows into {summary.output}")
    if summary.duplicate_keys:
        keys = ", ".join(serving.key_columns) or "row"
        print(f"{summary.duplicate_keys:,} row(s) repeat an earlier row's key ({keys}): their predictions share "
              "a key in the output", file=sys.stderr)
    for column, count in summary.unseen_categories.items():
        if count:
            print(f"{column}: {count:,} scored row(s) hold a category the model never saw in training (scored "
                  "with the out-of-vocabulary code)", file=sys.stderr)
    if summary.errors is not None:
        print(f"{summary.bad_rows:,} bad row(s) not scored; see {summary.errors}", file=sys.stderr)
        return 1
    return 0


def _quiet_ray_data() -> None:
    """Only Ray Data's errors on the terminal (its log file keeps everything): the progress bar says the rest."""
    import logging

    try:
        import ray.data  # noqa: F401 - configures the 'ray.data' logger
    except ImportError:
        return  # predict_file_ray names the extra to install
    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ != "SessionFileHandler":  # the console's
            handler.setLevel(logging.ERROR)


CHUNK_ROWS = 100_000  # rows `predict` reads, scores and writes at a time
EXPLAIN_CHUNK_ROWS = 5_000  # with --explain (attributions cost far more than scoring): progress per chunk
RAY_BLOCK_ROWS = 10_000  # rows per block one Ray actor scores with --engine ray


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpatterns", description=" ".join(__doc__.split("\n\n")[0].split()),
                                     epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a spec (fields, types, model parameters) without "
                                   "loading any data", epilog="Every spec field: docs/spec.md")
    validate.add_argument("spec", type=Path, help="the YAML spec")
    validate.set_defaults(handler=_validate)
    run = commands.add_parser("run", help="split, transform, train, evaluate and bundle a spec")
    run.add_argument("spec", type=Path, help="the YAML spec")
    run.add_argument("--output", help="output directory (overrides the spec's output.dir)")
    run.add_argument("--seed", type=int, default=0, help="random seed for training (default 0)")
    run.add_argument("--resume", action="store_true",
                     help="continue each network from the checkpoints of an interrupted run of this spec")
    run.add_argument("--processes", type=int, help="data-parallel training processes on this node, started "
                     "with torchrun (overrides distribution.processes)")
    run.add_argument("--nodes", type=int, help="nodes of the data-parallel job (overrides distribution.nodes)")
    run.add_argument("--rendezvous", help="HOST:PORT where several nodes meet: one of them, the same "
                     "on every node (distribution.rendezvous)")
    run.add_argument("--dry-run", action="store_true", help="print which steps would run and which come from "
                     "the cache, and why; run nothing")
    run.add_argument("--force", action="append", metavar="STEP", help="run STEP even if it is in the cache "
                     "(repeatable; 'all' for every step; e.g. --force train.gradient_boosting)")
    run.add_argument("--engine", choices=("local", "ray"), default="local", help="local: one step at a time; "
                     "ray: independent steps (the models) in parallel on Ray (mlpatterns[pipeline])")
    run.add_argument("--no-register", action="store_true", help="do not register, even if the spec says so")
    run.add_argument("--register-anyway", metavar="MESSAGE", help="register even if the model does not pass the "
                     "spec's gate; the message goes into the registry's audit trail")
    run.set_defaults(handler=_run)
    cache = commands.add_parser("cache", help="list or clear the Workflow Pipeline steps a spec's runs keep")
    cache.add_argument("action", choices=("list", "clear"))
    cache.add_argument("spec", type=Path, help="the YAML spec (its output folder holds the cache)")
    cache.add_argument("--step", help="only this step (e.g. train.gradient_boosting)")
    cache.add_argument("--output", help="output directory (overrides the spec's output.dir)")
    cache.set_defaults(handler=_cache)
    lineage = commands.add_parser("lineage", help="what produced a bundle: steps, parameters and data, back to "
                                  "the data file")
    lineage.add_argument("ref", help="a bundle folder, or models:/NAME/VERSION or models:/NAME@ALIAS")
    lineage.add_argument("--registry", help="the registry of a models:/ reference (default: $MLPATTERNS_REGISTRY, "
                         "else sqlite:///registry/registry.db)")
    lineage.add_argument("--json", action="store_true", help="print the lineage as JSON")
    lineage.set_defaults(handler=_lineage)
    tune = commands.add_parser("tune", help="run a spec's hyperparameter study (its tuning: section), then "
                               "train, evaluate and bundle every model, the tuned one with the best trial's values")
    tune.add_argument("spec", type=Path, help="the YAML spec, with a tuning: section")
    tune.add_argument("--output", help="output directory (overrides the spec's output.dir)")
    tune.add_argument("--seed", type=int, default=0, help="random seed for training and the sampler (default 0)")
    tune.add_argument("--workers", type=int, help="worker processes sharing the study (overrides tuning.n_workers)")
    tune.add_argument("--trials", type=int, help="trials the study ends with (overrides tuning.n_trials)")
    tune.add_argument("--storage", help="sqlite:///PATH.db, journal:///PATH.log or postgresql+psycopg://... "
                      "(overrides tuning.storage); a study already there resumes")
    tune.add_argument("--study-name", help="the study's name (overrides tuning.study_name)")
    tune.add_argument("--force", action="append", metavar="STEP", help="run STEP even if it is in the cache "
                      "(e.g. --force tune to run the study again)")
    tune.set_defaults(handler=_run, resume=False)
    predict = commands.add_parser("predict", help="score a CSV or Parquet file with a bundle, keys passed through")
    predict.add_argument("bundle", help="a bundle directory written by 'mlpatterns run', or a registered version: "
                         "models:/NAME/VERSION or models:/NAME@ALIAS")
    predict.add_argument("input", type=Path, help="input .csv or .parquet")
    predict.add_argument("output", type=Path, help="output .csv or .parquet, or .sqlite/.db: a table of "
                         "precomputed predictions keyed on the bundle's key columns")
    predict.add_argument("--chunk-rows", type=int, help=f"rows per chunk (default {CHUNK_ROWS}; with --engine ray, "
                         f"rows per block an actor scores: default {RAY_BLOCK_ROWS})")
    predict.add_argument("--engine", choices=("local", "ray"), default="local", help="local: this process; "
                         "ray: a pool of Ray Data actors, on the cluster of $RAY_ADDRESS (ray://HOST:10001, auto) "
                         "or on a local Ray of this machine's CPUs; the same files, in input order "
                         "(mlpatterns[pipeline])")
    predict.add_argument("--actors", type=int, help="with --engine ray: actors scoring blocks (default: the "
                         "cluster's CPUs)")
    predict.add_argument("--overwrite", action="store_true", help="replace the output file if it exists "
                         "(without it, an existing output is refused)")
    predict.add_argument("--public-key", type=Path, help="a trusted Ed25519 public key (PEM): refuse a bundle "
                         "that it did not sign")
    predict.add_argument("--registry", help="the registry of a models:/ reference (default: $MLPATTERNS_REGISTRY, "
                         "else sqlite:///registry/registry.db)")
    predict.add_argument("--log", metavar="URL", help="log every scored row (source 'batch') to this prediction "
                         "log (a folder of Parquet files, sqlite:///PATH.db or postgresql://...), for "
                         "`mlpatterns monitor`")
    predict.add_argument("--log-time-column", metavar="COLUMN", help="with --log: the input column whose value is "
                         "each prediction's event time (a replay or backfill; default: the time scored)")
    predict.add_argument("--explain", action="store_true", help="add each row's attributions to the raw input "
                         "columns: explain_<column> (log-odds for a classifier, the target's units for a regression), "
                         "explain_baseline_score (row score = baseline + sum) and explain_check_error")
    predict.add_argument("--explain-baseline", default="mean", metavar="BASELINE", help="with --explain: what "
                         "attributions are relative to: 'mean' (the bundle's data statistics; default), row=N (row N "
                         "of the input) or a JSON object of column values (the others: mean)")
    predict.add_argument("--explain-method", choices=("auto", "tree", "permutation"), default="auto",
                         help="with --explain: TreeSHAP from the bundle's ONNX trees, SHAP's permutation explainer "
                         "over the serving function, or auto (tree where the bundle is one tree ensemble)")
    predict.set_defaults(handler=_predict)
    keygen = commands.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    keygen.add_argument("private_key", type=Path, help="where to write the signing key (PEM, mode 0600)")
    keygen.add_argument("public_key", type=Path, help="where to write the public key (PEM)")
    keygen.set_defaults(handler=_keygen)
    sign = commands.add_parser("sign", help="sign a bundle's manifest (which holds every file's sha256)")
    sign.add_argument("bundle", type=Path, help="a bundle directory")
    sign.add_argument("--key", type=Path, required=True, help="the signing key written by 'mlpatterns keygen'")
    sign.set_defaults(handler=_sign)
    from mlpatterns.cli.advise import add_advise_command
    from mlpatterns.cli.explain import add_explain_command
    from mlpatterns.cli.features import add_features_command
    from mlpatterns.cli.monitor import add_monitor_command
    from mlpatterns.cli.patterns import add_patterns_command
    from mlpatterns.cli.registry import add_registry_commands
    from mlpatterns.cli.serve import add_serve_command

    add_registry_commands(commands)
    add_serve_command(commands)
    add_monitor_command(commands)
    add_features_command(commands)
    add_explain_command(commands)  # Explainable Predictions (29): counterfactuals and nearest examples
    add_patterns_command(commands)  # chapter 8: the catalogue of the 30 patterns and their graph
    add_advise_command(commands)  # chapter 8: a starting spec from the data's profile, with the patterns and why
    return parser


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (importlib.metadata and the email
    package it reads with cost the light commands, ``--help`` and ``validate``, tens of milliseconds)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str = "show program's version number and exit") -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog} {_version()}")
        parser.exit()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlpatterns")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean a wrong spec, file, bundle or key (exit 2 with the message), not a bug.

    Imported only once such an error happened, so that ``validate`` and ``--help`` stay light.
    """
    from mlpatterns.serving.bundle import BundleError
    from mlpatterns.serving.stateless_serving_function import InputError
    from mlpatterns.spec import SpecError
    from mlpatterns.tolerance import ExportMismatchError

    return (SpecError, BundleError, InputError, ExportMismatchError, OSError, KeyError, ValueError, ImportError)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except Exception as error:
        if not isinstance(error, _user_errors()):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mlpatterns {args.command}: error: {message}", file=sys.stderr)
        return 2

