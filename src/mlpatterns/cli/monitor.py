"""``mlpatterns monitor``: Continued Model Evaluation (18) from the command line.

``label`` joins a truth file to the logged predictions, ``evaluate`` prints the metrics per
model version and time window, ``drift`` the drift of the served inputs against a bundle's
training statistics, ``check`` applies a spec's ``monitoring:`` thresholds (exit 1 when an
alert fires; webhook; retraining), ``report`` writes plots, ``retrain`` retrains on demand.

Exit codes: 0 done (``check``: no alert), 1 ``check`` found alerts, 2 a wrong spec, file,
log or argument (the message says which).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["RETRAINING_ALERTS", "add_monitor_command"]

RETRAINING_ALERTS = ("metric", "drift")  # what retrain.on_alert retrains on: the model or its inputs changed

_EPILOG = """Log URLs: a folder (Parquet files, the default), sqlite:///PATH.db, postgresql+psycopg://USER:PW@HOST/DB.
Durations: 30m, 12h, 1d, 7d, 2w. Exit codes: 0 done (check: no alert), 1 check found alerts, 2 a wrong spec,
file, log or argument. Docs: docs/patterns/continued_model_evaluation.md"""


def _spec(path: Any) -> Any:
    from mlpatterns.spec import load_spec

    return load_spec(path, check_params=False)


def _monitoring(spec: Any) -> dict[str, Any]:
    from mlpatterns.spec import SpecError

    if not spec.monitoring:
        raise SpecError(f"{spec.source}: monitoring: the spec has no 'monitoring:' section (the log, the windows "
                        "and the thresholds; see docs/patterns/continued_model_evaluation.md)")
    return spec.monitoring


def _log_url(args: argparse.Namespace, spec: Any) -> str:
    if getattr(args, "log", None):
        return args.log
    if spec is not None and spec.monitoring.get("log"):
        return spec.monitoring["log"]
    raise ValueError("--log: name the prediction log (a folder, sqlite:///PATH.db or postgresql://...), or give "
                     "--spec with a monitoring.log")


def _target_rule(spec: Any) -> dict[str, Any]:
    """How the spec turns its raw target column into the label: the arguments of add_ground_truth."""
    from mlpatterns.spec import SpecError

    target = spec.target
    if spec.task == "multilabel":
        raise SpecError(f"{spec.source}: target: a multilabel target has no single label column to monitor")
    if "positive_when" in target:
        return {"target": target["column"], "rule": dict(target["positive_when"])}
    if "positive_label" in target:
        return {"target": target["column"], "rule": {"positive_label": target["positive_label"]}}
    if spec.task == "classification":  # the run chose the positive label (the second in sorted order)
        for manifest in sorted((spec.output_dir / "bundles").glob("*/manifest.json")):
            chosen = (json.loads(manifest.read_text()).get("target") or {}).get("positive_label")
            if chosen is not None:
                return {"target": target["column"], "rule": {"positive_label": chosen}}
        raise SpecError(f"{spec.source}: target.positive_label: the spec does not say which label is positive and "
                        f"no bundle in {spec.output_dir / 'bundles'} records the one its run chose; set "
                        "target.positive_label, or give --label with a 0/1 column")
    return {"label": target["column"]}  # a value (regression) or a class (multiclass)


def _label(args: argparse.Namespace) -> int:
    from mlpatterns.serving.continued_evaluation.ground_truth import add_ground_truth
    from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

    spec = _spec(args.spec) if args.spec else None
    if args.label is None and spec is None:
        raise ValueError("monitor label: give --label COLUMN (the truth), or --spec SPEC (its target and rule)")
    keys = args.key or (spec.keys if spec is not None else [])
    if not keys:
        raise ValueError("--key: name the key column(s) the predictions were logged with"
                         + (" (the spec declares no keys:)" if spec is not None else ""))
    if args.positive is not None and args.label is None:
        raise ValueError("--positive: give it with --label COLUMN (with --spec, the spec's target rule decides)")
    how = _target_rule(spec) if args.label is None else {"label": args.label} if args.positive is None else \
        {"target": args.label, "rule": {"positive_label": args.positive}}
    null_values = spec.data.get("null_values") if spec is not None else None
    with open_prediction_log(_log_url(args, spec)) as log:
        result = add_ground_truth(log, args.truth, keys, null_values=null_values, **how)
    counts = result.counts
    done = "nothing new" if counts is None or counts.added + counts.changed == 0 else \
        f"{counts.added:,} added, {counts.changed:,} changed"
    print(f"{result.path}: {result.rows:,} row(s), {result.labels:,} label(s) (source sha256 {result.source[:12]}): "
          f"{done}" + ("" if counts is None else f", {counts.unchanged:,} unchanged")
          + (f"; {result.no_label:,} row(s) without a label" if result.no_label else "")
          + (f"; {result.repeated_keys:,} row(s) repeat a later row's key (the last wins)"
             if result.repeated_keys else ""))
    return 0


def _connect(url: str) -> tuple[Any, Any]:
    import duckdb

    from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

    log = open_prediction_log(url)
    con = duckdb.connect()
    log.register(con)
    return log, con


def _logged_models(con: Any, name: str | None) -> list[str] | None:
    """The logged model names that ``name`` watches: itself, and the bundles of a spec of that name
    (``NAME/MODEL``, as a bundle served or scored from its folder is logged); None watches every model.

    A name that matches nothing in a log that holds predictions is a mistake to say, not an empty
    (and so alert-free) evaluation."""
    if name is None:
        return None
    logged = [row[0] for row in con.sql("SELECT DISTINCT model FROM predictions ORDER BY model").fetchall()]
    watched = [m for m in logged if m == name or m.startswith(f"{name}/")]
    if logged and not watched:
        raise ValueError(f"model {name!r}: the log holds no prediction of it (nor of {name}/...); it holds "
                         f"{', '.join(map(repr, logged[:10]))}{' ...' if len(logged) > 10 else ''}: set "
                         "monitoring.model or --model")
    return watched


def _drift_model(con: Any, name: str | None) -> str | None:
    """The one logged model whose inputs drift is measured on: ``name`` itself if logged, else its one bundle."""
    models = _logged_models(con, name)
    if models is None or name in models or not models:
        return name
    if len(models) > 1:
        raise ValueError(f"model {name!r}: the log holds several of its bundles ({', '.join(map(repr, models))}); "
                         "set monitoring.model or --model to the one to compare")
    return models[0]


def _logged_task(con: Any) -> str:
    """The task the logged predictions are of: a probability and a class (classification), a value
    (regression) or a class alone (multiclass)."""
    probabilities, labels = con.sql("SELECT count(prediction), count(predicted_label) FROM predictions").fetchall()[0]
    return "regression" if probabilities and not labels else "multiclass" if labels and not probabilities \
        else "classification"


def _evaluation(con: Any, spec: Any, args: argparse.Namespace, *, since: Any = None, until: Any = None,
                sliced: bool = True) -> Any:
    from mlpatterns.serving.continued_evaluation.evaluation_windows import evaluate_windows

    monitoring = spec.monitoring if spec is not None else {}
    if not sliced:
        monitoring = {k: v for k, v in monitoring.items() if k != "slices"}
    args.task = args.task or (spec.task if spec is not None else _logged_task(con))
    models = _logged_models(con, getattr(args, "model", None) or monitoring.get("model"))
    frame = evaluate_windows(con, task=args.task, window=args.window or monitoring.get("window", "1d"),
                             step=args.step or monitoring.get("step"), slices=monitoring.get("slices") or None,
                             confidence=monitoring.get("confidence", 0.95),
                             min_labelled=monitoring.get("min_labelled", 30), since=since, until=until)
    return frame if models is None or len(frame) == 0 else frame[frame["model"].isin(models)].reset_index(drop=True)


def _headline(frame: Any, task: str) -> list[str]:
    from mlpatterns.serving.continued_evaluation.evaluation_windows import WINDOW_METRICS

    return [m for m in WINDOW_METRICS.get(task, ()) if m in frame.columns]


def _print_frame(frame: Any, title: str, metrics: list[str], slices: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("window", "model", "version", *slices, "predictions", "labelled", *metrics):
        table.add_column(column, justify="left" if column in ("window", "model", "version", *slices) else "right")
    for row in frame.to_dict("records"):
        cells = [f"{row['window_start']:%Y-%m-%d %H:%M}", str(row.get("model", "")), str(row.get("version", "")),
                 *(str(row.get(s, "")) for s in slices), f"{row['n_predictions']:,}", f"{row['n_labelled']:,}"]
        for metric in metrics:
            value, low, high = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
            cells.append("" if value is None or value != value else
                         f"{value:.3f} [{low:.3f}, {high:.3f}]" + (" *" if row.get("too_small") else ""))
        table.add_row(*cells)
    Console(width=200).print(table)


def _evaluate(args: argparse.Namespace) -> int:
    spec = _spec(args.spec) if args.spec else None
    log, con = _connect(_log_url(args, spec))
    try:
        frame = _evaluation(con, spec, args)
    finally:
        con.close()
        log.close()
    if args.json:
        print(frame.to_json(orient="records", date_format="iso", indent=1))
        return 0
    if len(frame) == 0:
        print("no logged predictions" + (f" of model {args.model!r}" if args.model else ""))
        return 0
    task = args.task
    metrics = _headline(frame, task)[:3] if not args.all_metrics else _headline(frame, task)
    slices = (spec.monitoring.get("slices") or []) if spec is not None else []
    _print_frame(frame, f"metrics per window ({task}; [95% interval]; * fewer labelled rows than min_labelled)",
                 metrics, slices)
    return 0


def _reference(bundle_ref: str, registry: str | None) -> tuple[Path, Any, Any]:
    """The bundle folder a reference names, its training statistics and its predictions' (or None)."""
    from mlpatterns.cli.registry import resolve_bundle
    from mlpatterns.serving.continued_evaluation.reference_statistics import training_statistics

    path = resolve_bundle(bundle_ref, registry)
    return (path, *training_statistics(path))


def _watched(bundle: Path, reference: Any, monitoring: dict[str, Any]) -> list[str]:
    """The columns whose drift counts: ``monitoring.features``, else the bundle's served inputs (not its key
    columns, whose values are new by design), less ``monitoring.ignore``; only those with training statistics."""
    features = list(monitoring.get("features") or ())
    if not features:
        signature = json.loads((Path(bundle) / "manifest.json").read_text()).get("signature", {})
        keys = set(signature.get("keys") or ())
        features = [item["name"] for item in signature.get("inputs", []) if item["name"] not in keys]
    ignore = set(monitoring.get("ignore") or ())
    return [c for c in features if c not in ignore and c in reference.columns]


def _drift_frame(con: Any, bundle_ref: str, registry: str | None, *, window: str, step: str | None,
                 model: str | None, version: str | None = None, monitoring: dict[str, Any] | None = None,
                 since: Any = None, until: Any = None) -> Any:
    from mlpatterns.serving.continued_evaluation.drift import drift_windows

    path, reference, predictions = _reference(bundle_ref, registry)
    return drift_windows(con, reference, prediction_reference=predictions, window=window, step=step,
                         columns=_watched(path, reference, monitoring or {}), model=model, version=version,
                         since=since, until=until)


def _logged_version(bundle_ref: str, registry: str | None) -> str:
    """The version a bundle's predictions are logged under: its registry version when served from the registry
    (models:/...), else the first 12 hex digits of its manifest digest (mlpatterns serve or predict of a folder)."""
    if str(bundle_ref).startswith("models:/"):
        from mlpatterns.lifecycle.registration import registry_url
        from mlpatterns.reproducibility.model_versioning import open_registry

        with open_registry(registry_url(registry)) as opened:
            return str(opened.lookup(bundle_ref).version)
    from mlpatterns.serving.keyed_predictions import bundle_identity
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    return bundle_identity(ServingFunction.load(bundle_ref))[1]


def _drift(args: argparse.Namespace) -> int:
    from mlpatterns.serving.continued_evaluation.drift import explain_drift

    log, con = _connect(args.log)
    try:
        frame = _drift_frame(con, args.bundle, args.registry, window=args.window, step=args.step,
                             model=_drift_model(con, args.model), monitoring={"ignore": args.ignore or ()})
    finally:
        con.close()
        log.close()
    if args.json:
        print(frame.drop(columns=["new_categories"], errors="ignore").to_json(orient="records", date_format="iso",
                                                                              indent=1))
        return 0
    if len(frame) == 0:
        print("no logged predictions to compare")
        return 0
    from rich.console import Console
    from rich.table import Table

    pivot = frame.pivot_table(index="column", columns="window_start", values=args.statistic, aggfunc="first")
    table = Table(title=f"{args.statistic} per column and window (vs the bundle's training statistics)")
    table.add_column("column")
    for start in pivot.columns:
        table.add_column(f"{start:%m-%d %H:%M}", justify="right")
    for column, values in pivot.iterrows():
        table.add_row(str(column), *("" if v != v else f"{v:.3f}" for v in values))
    Console(width=200).print(table)
    for sentence in explain_drift(frame, statistic=args.statistic)["sentence"]:
        print(f"  {sentence}")
    return 0


def _monitored_bundle(spec: Any, args: argparse.Namespace) -> str | None:
    """The bundle whose training statistics drift is measured against: --bundle, else the registered champion,
    else the spec's own bundle; None when there is none."""
    if getattr(args, "bundle", None):
        return args.bundle
    name = spec.monitoring["model"]
    if spec.register:
        from mlpatterns.lifecycle.registration import registry_url
        from mlpatterns.reproducibility.model_versioning import RegistryError, open_registry

        try:
            with open_registry(registry_url(args.registry or spec.register.get("registry"))) as registry:
                registry.lookup(f"models:/{name}@champion")
            return f"models:/{name}@champion"
        except (RegistryError, LookupError, OSError):
            pass
    bundles = spec.output_dir / "bundles"
    model = spec.register.get("model") or next(iter(spec.models))
    return str(bundles / model) if (bundles / model / "manifest.json").is_file() else None


def _at(text: str | None) -> Any:
    import pandas as pd

    if text is None:
        return None
    try:
        stamp = pd.Timestamp(text)
    except (TypeError, ValueError):
        raise ValueError(f"--at: expected a date or time (2013-07-02, 2013-07-02T06:00), got {text!r}") from None
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def _newest_window_end(now: Any, monitoring: dict[str, Any]) -> Any:
    """The end of the newest window that ended by ``now``: windows start at ``WINDOW_ORIGIN + k * step``."""
    import pandas as pd

    from mlpatterns.serving.continued_evaluation.evaluation_windows import WINDOW_ORIGIN
    from mlpatterns.spec.monitoring import duration_seconds

    window = pd.Timedelta(seconds=duration_seconds(monitoring["window"]))
    step = pd.Timedelta(seconds=duration_seconds(monitoring["step"]))
    origin = pd.Timestamp(WINDOW_ORIGIN)
    return origin + ((now - window - origin) // step) * step + window


def _no_predictions_alert(spec: Any, monitoring: dict[str, Any], end: Any) -> Any:
    """The alert for a newest window without one logged prediction: a server down, or its logging broken."""
    import pandas as pd

    from mlpatterns.backends import redact_url
    from mlpatterns.serving.continued_evaluation.alerts import Alert
    from mlpatterns.spec.monitoring import duration_seconds

    start = end - pd.Timedelta(seconds=duration_seconds(monitoring["window"]))
    return Alert(kind="no_predictions", what="predictions", window=f"{start.isoformat(sep=' ')}/{end.isoformat(sep=' ')}",
                 value=0.0, limit=1.0, message=f"no prediction of {monitoring['model']!r} was logged in the window "
                 f"{start} to {end}: is the model served, and its server started with --log "
                 f"{redact_url(str(monitoring['log']))}?")


def _check(args: argparse.Namespace) -> int:
    import pandas as pd

    from mlpatterns.serving.continued_evaluation.alerts import check_alerts, send_webhook
    from mlpatterns.spec.monitoring import duration_seconds

    spec = _spec(args.spec)
    monitoring = _monitoring(spec)
    at = _at(args.at)
    now = at if at is not None else pd.Timestamp.now(tz="UTC").tz_localize(None)
    args.window, args.step, args.task, args.model = None, None, None, None
    registry = args.registry or spec.register.get("registry")
    # only the newest window that ended by now counts: it starts after now - window - step
    span = pd.Timedelta(seconds=duration_seconds(monitoring["window"]) + duration_seconds(monitoring["step"]))
    log, con = _connect(_log_url(args, spec))
    notes: list[str] = []
    try:
        frame = _evaluation(con, spec, args, since=now - span, until=now, sliced=False)
        slices = monitoring.get("slices") or []  # each slice's metrics too, beside the whole window's
        sliced = _evaluation(con, spec, args, since=now - span, until=now) if slices else None
        ends = [t for t in frame["window_end"] if t <= now] if len(frame) else []
        newest = max(ends) if ends else None
        expected = _newest_window_end(now, monitoring)
        silent = _no_predictions_alert(spec, monitoring, expected) if newest != expected else None
        drift_model = _drift_model(con, monitoring["model"])
        drift = None
        watch_drift = any(k != "columns" for k in monitoring["drift"]) or any(monitoring["drift"]["columns"].values())
        bundle = _monitored_bundle(spec, args) if watch_drift and newest is not None else None
        if watch_drift and newest is not None and bundle is None:
            notes.append("drift not checked: no bundle to compare with (give --bundle, register the model, or run "
                         "the spec)")
        elif bundle is not None:
            window = pd.Timedelta(seconds=duration_seconds(monitoring["window"]))
            version = _logged_version(bundle, registry)  # after a promotion the window holds older versions too
            drift = _drift_frame(con, bundle, registry, window=monitoring["window"], step=monitoring["step"],
                                 model=drift_model, version=version, monitoring=monitoring, since=newest - window,
                                 until=newest)
            if len(drift) == 0:
                notes.append(f"drift not checked: no prediction of {bundle} (logged as version {version}) in the "
                             "newest window")
                drift = None
    finally:
        con.close()
        log.close()
    alerts = check_alerts(frame, drift, monitoring, min_labelled=monitoring["min_labelled"], at=now)
    if sliced is not None:
        alerts += check_alerts(sliced, None, {"metrics": monitoring["metrics"]}, min_labelled=monitoring["min_labelled"],
                               at=now, slice_columns=slices)
    if silent is not None:
        alerts.insert(0, silent)
    for note in notes:
        print(note, file=sys.stderr)
    if args.json:
        print(json.dumps({"alerts": [a.to_dict() for a in alerts], "window_end": str(newest) if newest else None},
                         indent=1))
    else:
        print(f"{spec.name}: {len(alerts)} alert(s) in the newest window, ending {expected}"
              + (f" (the newest with predictions ended {newest})" if newest is not None and newest != expected else ""))
        for alert in alerts:
            print(f"ALERT {alert.kind}: {alert.message}")
        if drift is not None and any(a.kind == "drift" for a in alerts):
            from mlpatterns.serving.continued_evaluation.drift import explain_drift

            for sentence in explain_drift(drift, top=3)["sentence"]:  # what drifted most, and how
                print(f"  drifted most: {sentence}")
    if alerts and monitoring.get("webhook"):
        error = send_webhook(monitoring["webhook"], alerts, context={"model": monitoring["model"], "spec": spec.name})
        print(error if error else f"webhook: {len(alerts)} alert(s) posted", file=sys.stderr if error else sys.stdout)
    decayed = [a for a in alerts if a.kind in RETRAINING_ALERTS]  # not a stopped server nor late labels
    if decayed and monitoring["retrain"].get("on_alert") and not args.no_retrain:
        from mlpatterns.lifecycle.retraining import retrain

        first = decayed[0]
        result = retrain(spec, end=at if at is not None else newest, log_url=args.log, registry=args.registry,
                         trigger=f"alert: {first.message}"[:200], log=lambda *a, **k: None)
        print(result.message())
    return 1 if alerts else 0


def _report(args: argparse.Namespace) -> int:
    """The plots of monitor_plots into --out (each PNG written under a temporary name and renamed), and an index."""
    spec = _spec(args.spec) if args.spec else None
    monitoring = spec.monitoring if spec is not None and spec.monitoring else {}
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out: {out} is a file; name a folder for the report")
    window = args.window or monitoring.get("window", "1d")
    args.step = None
    args.model = args.model or monitoring.get("model")
    registry = args.registry or (spec.register.get("registry") if spec is not None else None)
    log, con = _connect(_log_url(args, spec))
    try:
        args.window = window
        frame = _evaluation(con, spec, args)
        task, model = args.task, _drift_model(con, args.model)
        bundle = args.bundle or (_monitored_bundle(spec, args) if monitoring else None)
        drift = stats = reference = predictions = None
        if bundle is not None:
            from mlpatterns.serving.continued_evaluation.drift import (
                drift_windows,
                window_statistics,
            )

            bundle, reference, predictions = _reference(bundle, registry)
            drift = drift_windows(con, reference, prediction_reference=predictions, window=window,
                                  model=model, columns=_watched(bundle, reference, monitoring))
            if predictions is not None:
                stats = window_statistics(con, reference, prediction_reference=predictions, window=window,
                                          model=model, columns=[])
    finally:
        con.close()
        log.close()
    written = _plots(out, frame, drift, stats, predictions, monitoring, task, bundle, args)
    _write_index(out, written)
    print(f"report: {len(written)} plot(s) in {out} (index.md, index.json)")
    return 0


def _plots(out: Path, frame: Any, drift: Any, stats: Any, predictions: Any, monitoring: dict[str, Any], task: str,
           bundle: Any, args: argparse.Namespace) -> list[Path]:
    from mlpatterns.serving.continued_evaluation import monitor_plots

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if len(frame):
        rules = monitoring.get("metrics") or {}
        metrics = list(rules) or _headline(frame, task)[:1]
        for metric in [m for m in metrics if m in frame.columns]:
            levels = {side: limit for side, limit in rules.get(metric, {}).items() if side in ("min", "max")}
            written.append(monitor_plots.plot_metric_over_time(frame, out / f"metric_{metric}.png", metric=metric,
                                                               thresholds=levels or None))
    if drift is not None and len(drift):
        threshold = (monitoring.get("drift") or {}).get("psi", 0.2)
        written.append(monitor_plots.plot_drift_heatmap(drift, out / "drift_psi.png", statistic="psi",
                                                        threshold=threshold))
    if stats and predictions is not None and "prediction" in predictions.columns:
        written.append(monitor_plots.plot_prediction_distribution(stats, predictions, out / "predictions.png"))
    interval = _retraining_interval(frame, task, bundle, args)
    if interval is not None:
        written.append(monitor_plots.plot_retraining_interval(interval, out / "retraining_interval.png"))
    return written


def _retraining_interval(frame: Any, task: str, bundle: Any, args: argparse.Namespace) -> Any:
    """The decay fit of the headline metric since the bundle's training data ended (--trained-at, else the time
    split's test cut-off recorded in the bundle); None when neither is known or too few windows."""
    from mlpatterns.serving.continued_evaluation.retraining_interval import (
        estimate_retraining_interval,
    )

    metric = (_headline(frame, task) or [None])[0] if len(frame) else None
    manifest: dict[str, Any] = {}
    if bundle is not None and (Path(bundle) / "manifest.json").is_file():
        manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    trained_at = args.trained_at or ((manifest.get("lineage") or {}).get("split") or {}).get(
        "cutoffs_used", {}).get("test")
    if metric is None or trained_at is None or frame["version"].nunique() > 1:
        return None
    trained = (manifest.get("metrics") or {}).get("test", {}).get(metric)
    try:
        return estimate_retraining_interval(frame, trained_at=trained_at, metric=metric, training_metric=trained)
    except (ValueError, KeyError):  # too few windows to fit
        return None


def _write_index(out: Path, written: list[Path]) -> None:
    from mlpatterns.lifecycle.outputs import write_text_atomically

    names = [Path(p).name for p in written]
    write_text_atomically(out / "index.json", json.dumps({"plots": names}, indent=1) + "\n")
    lines = ["# Monitoring report", ""] + [f"## {n.removesuffix('.png').replace('_', ' ')}\n\n![{n}]({n})\n"
                                           for n in names]
    write_text_atomically(out / "index.md", "\n".join(lines))


def _retrain(args: argparse.Namespace) -> int:
    from mlpatterns.lifecycle.retraining import retrain

    spec = _spec(args.spec)
    _monitoring(spec)
    result = retrain(spec, end=_at(args.at), log_url=args.log, registry=args.registry, output_dir=args.output,
                     trigger="on demand (mlpatterns monitor retrain)", log=print)
    print(result.message())
    return 0


def _compact(args: argparse.Namespace) -> int:
    from mlpatterns.backends import redact_url
    from mlpatterns.serving.continued_evaluation.evaluation_windows import parse_window
    from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

    older_than = parse_window(args.older_than, name="--older-than")
    with open_prediction_log(args.log) as log:
        result = log.compact(older_than=older_than)
    print(f"{redact_url(log.url)}: {result}")
    return 0


def add_monitor_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``monitor`` and its subcommands to the ``mlpatterns`` parser."""
    monitor = subparsers.add_parser("monitor", help="continued evaluation: join ground truth, metrics per window, "
                                    "drift, alerts, reports, retraining", epilog=_EPILOG,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = monitor.add_subparsers(dest="monitor_command", required=True)

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(handler=handler)
        return parser

    label = command("label", _label, "add a truth file's labels to the log (idempotent: the same file twice "
                    "changes nothing)")
    label.add_argument("truth", type=Path, help="a .csv or .parquet file with the key column(s) and the truth")
    label.add_argument("--log", help="the prediction log (default: the spec's monitoring.log)")
    label.add_argument("--key", action="append", metavar="COLUMN", help="a key column (repeatable, in the model's "
                       "key order; default: the spec's keys)")
    which = label.add_mutually_exclusive_group()
    which.add_argument("--label", metavar="COLUMN", help="the column holding the label (a binary model's: 1/0 or "
                       "true/false, else give --positive)")
    which.add_argument("--spec", type=Path, help="a spec: its keys, and its target column and rule "
                       "(positive_when, positive_label) make the label")
    label.add_argument("--positive", metavar="VALUE", help="with --label: the value that is the positive class of a "
                       "binary model (e.g. Yes); the others are negative")
    evaluate = command("evaluate", _evaluate, "metrics per model version and time window, with intervals")
    evaluate.add_argument("--log", help="the prediction log (default: the spec's monitoring.log)")
    evaluate.add_argument("--spec", type=Path, help="a spec with a monitoring: section (task, windows, slices)")
    evaluate.add_argument("--window", help="window length (default: monitoring.window, else 1d)")
    evaluate.add_argument("--step", help="distance between window starts (default: the window)")
    evaluate.add_argument("--task", choices=("classification", "regression", "multiclass"),
                          help="default: the spec's, else what the log holds (a probability: classification; "
                          "a value: regression)")
    evaluate.add_argument("--model", help="only this logged model name")
    evaluate.add_argument("--all-metrics", action="store_true", help="every metric, not the first three")
    evaluate.add_argument("--json", action="store_true", help="every column as JSON records")
    drift = command("drift", _drift, "drift of the served inputs and predictions per window vs a bundle's training "
                    "statistics")
    drift.add_argument("--log", required=True, help="the prediction log")
    drift.add_argument("--bundle", required=True, help="a bundle folder, or models:/NAME/VERSION, models:/NAME@ALIAS")
    drift.add_argument("--registry", help="the registry of a models:/ reference")
    drift.add_argument("--window", default="1d", help="window length (default 1d)")
    drift.add_argument("--step", help="distance between window starts (default: the window)")
    drift.add_argument("--model", help="only this logged model name")
    drift.add_argument("--statistic", default="psi", choices=("psi", "js", "ks", "chi_square", "missing_share",
                                                              "out_of_range_share", "unseen_share"))
    drift.add_argument("--ignore", action="append", metavar="COLUMN", help="leave this input out (repeatable)")
    drift.add_argument("--json", action="store_true", help="every column as JSON records")
    check = command("check", _check, "apply the spec's monitoring: thresholds to the newest complete window; "
                    "exit 1 on alerts")
    check.add_argument("spec", type=Path, help="the spec, with a monitoring: section")
    check.add_argument("--log", help="the prediction log (default: monitoring.log)")
    check.add_argument("--at", help="check as of this time (UTC): the newest window that ended by then")
    check.add_argument("--bundle", help="compare drift with this bundle (default: the registered champion, else "
                       "the spec's bundle)")
    check.add_argument("--registry", help="the model registry (default: register.registry, $MLPATTERNS_REGISTRY)")
    check.add_argument("--no-retrain", action="store_true", help="do not retrain, even with retrain.on_alert")
    check.add_argument("--json", action="store_true", help="the alerts as JSON")
    report = command("report", _report, "plots a person would rather look at: metrics over time with the thresholds, "
                     "drift heat map, prediction distribution")
    report.add_argument("--log", help="the prediction log (default: the spec's monitoring.log)")
    report.add_argument("--out", required=True, help="the folder to write the PNGs, index.md and index.json into")
    report.add_argument("--spec", type=Path, help="a spec with a monitoring: section (thresholds, windows)")
    report.add_argument("--bundle", help="drift against this bundle (default: the spec's champion)")
    report.add_argument("--registry", help="the registry of a models:/ reference")
    report.add_argument("--window", help="window length (default: monitoring.window, else 1d)")
    report.add_argument("--task", choices=("classification", "regression", "multiclass"))
    report.add_argument("--model", help="only this logged model name")
    report.add_argument("--trained-at", help="when the model's training data ended, for the retraining interval "
                        "(default: the time split's test cut-off recorded in the bundle)")
    retrain = command("retrain", _retrain, "retrain on the newest window now, register a challenger, promote it "
                      "if it beats the champion")
    retrain.add_argument("spec", type=Path, help="the spec, with monitoring.retrain")
    retrain.add_argument("--at", help="the end of the data to use (default: the newest time in the data)")
    retrain.add_argument("--log", help="the prediction log (default: monitoring.log)")
    retrain.add_argument("--registry", help="the model registry (default: register.registry, $MLPATTERNS_REGISTRY)")
    retrain.add_argument("--output", help="where the window's data and the run go (default: "
                         "<output.dir>/retraining/<end>)")
    compact = command("compact", _compact, "merge the Parquet log's small files into one per day (run from one "
                      "process, e.g. cron; safe while servers log and readers read)")
    compact.add_argument("--log", required=True, help="the prediction log (SQLite and PostgreSQL: nothing to do)")
    compact.add_argument("--older-than", default="10m", help="merge files not modified for this long; replaced "
                         "files stay as long for readers that started before (default 10m)")
    return monitor
