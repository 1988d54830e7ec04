"""The ``mlpatterns`` command: ``run`` a spec, ``predict`` a file with a bundle."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_HIGHER_IS_BETTER = {"roc_auc", "pr_auc", "r2", "macro_roc_auc"}


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
    from mlpatterns.spec import load_spec

    console = Console()
    spec = load_spec(args.spec)
    if args.output:
        spec.output["dir"] = args.output
    with _progress() as progress:
        result = run_spec(spec, progress=progress, seed=args.seed, log=progress.console.print)
    names = list(result.metrics)
    _print_metrics(console, f"{spec.name}: test split ({result.rows['test']:,} rows)", result.metrics)
    baseline = result.metrics["heuristic_benchmark"]
    key = {"classification": "roc_auc", "multilabel": "macro_roc_auc"}.get(spec.task, "rmse")
    for name in names[1:]:
        gain = result.metrics[name][key] - baseline[key]
        better = gain > 0 if key in _HIGHER_IS_BETTER else gain < 0
        console.print(f"{name}: {key} {result.metrics[name][key]:.4f} vs heuristic {baseline[key]:.4f} "
                      f"({'better' if better else 'not better'} by {abs(gain):.4f}); "
                      f"bundle {result.bundles[name]} (served features identical to training: "
                      f"{bool(result.skew[name]['features_identical'])})")
    console.print(f"report: {result.output_dir / 'report.json'}; test rows for batch scoring: "
                  f"{result.output_dir / 'test.parquet'}")
    return 0


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


def _predict(args: argparse.Namespace) -> int:
    from mlpatterns.serving.keyed_predictions import predict_file

    with _progress() as progress:
        summary = predict_file(args.bundle, args.input, args.output, chunk_rows=args.chunk_rows, progress=progress)
    print(f"scored {summary.predicted:,} of {summary.rows:,} rows into {summary.output}")
    if summary.errors is not None:
        print(f"{summary.bad_rows:,} bad row(s) not scored; see {summary.errors}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpatterns", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="split, transform, train, evaluate and bundle a spec")
    run.add_argument("spec", type=Path, help="the YAML spec")
    run.add_argument("--output", help="output directory (overrides the spec's output.dir)")
    run.add_argument("--seed", type=int, default=0, help="random seed for training (default 0)")
    run.set_defaults(handler=_run)
    predict = commands.add_parser("predict", help="score a CSV or Parquet file with a bundle, keys passed through")
    predict.add_argument("bundle", type=Path, help="a bundle directory written by 'mlpatterns run'")
    predict.add_argument("input", type=Path, help="input .csv or .parquet")
    predict.add_argument("output", type=Path, help="output .csv or .parquet")
    predict.add_argument("--chunk-rows", type=int, default=100_000, help="rows per chunk (default 100000)")
    predict.set_defaults(handler=_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from mlpatterns.serving.bundle import BundleError
    from mlpatterns.serving.stateless_serving_function import InputError
    from mlpatterns.spec import SpecError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (SpecError, BundleError, InputError, FileNotFoundError, KeyError, ValueError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mlpatterns {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
