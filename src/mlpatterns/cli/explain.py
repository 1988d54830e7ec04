"""``mlpatterns explain``: counterfactual and example-based explanations of one served prediction (29).

``mlpatterns explain BUNDLE INPUT --row N`` scores row ``N`` (0-based) of the CSV or
Parquet file ``INPUT`` with the bundle and explains it:

* ``--counterfactual`` (the default when nothing else is asked): the smallest changes to
  one, then two, raw inputs that flip the served decision (a regression's prediction
  past ``--target-value``), from candidate values of the training rows (``--training
  FILE``, else the ``--examples`` file, else the bundle's recorded training statistics);
  ``--immutable COL ...`` never changes those columns; ``--linked a,b ...`` changes each
  group together, to combinations seen in training; ``--max-changes 1`` searches single
  changes only.
* ``--examples TRAINING_FILE``: the ``--k`` nearest training rows whose label (by the
  bundle's target rule) is the other outcome (``--same``: the same one), in the model's
  feature space or by Gower's distance over raw columns (``--space gower``).
* ``--integrated-gradients``: for a ``wide_and_deep`` bundle, Captum integrated gradients
  of the served output by raw column, from the training mean (needs ``--training`` or
  ``--examples``; else the zero baseline), with the completeness and ONNX checks.

Rich tables on the terminal, or one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_explain_command"]

_EPILOG = """\
examples:
  mlpatterns explain runs/flights/bundles/gradient_boosting runs/flights/test.parquet --row 12
  mlpatterns explain BUNDLE test.parquet --row 12 --counterfactual --immutable origin --max-changes 2 \\
      --training train.parquet
  mlpatterns explain BUNDLE test.parquet --row 12 --examples train.parquet --k 5 --space gower --json
"""


def _read(path: Path, serving: Any, what: str) -> Any:
    from mlpatterns.tables import read_frame

    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    return read_frame(path, null_values=serving.null_values)


def _explain(args: argparse.Namespace) -> int:
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    if not Path(args.bundle).is_dir():
        raise FileNotFoundError(f"bundle {args.bundle} does not exist (expected the folder of a serving bundle)")
    serving = ServingFunction.load(args.bundle)
    frame = _read(Path(args.input), serving, "INPUT")
    if not 0 <= args.row < len(frame):
        raise ValueError(f"--row {args.row}: {args.input} has {len(frame)} row(s), numbered 0 to {len(frame) - 1}")
    missing = [c for c in serving.input_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{args.input} lacks the input column(s) {missing} of the model '{serving.name}' "
                         f"(its inputs: {serving.input_columns})")
    counterfactual = args.counterfactual or not (args.examples or args.integrated_gradients)
    if serving.task == "regression" and args.target_value is None and (counterfactual or args.examples):
        raise ValueError(f"the model '{serving.name}' is a regression: give --target-value, the value a "
                         "counterfactual must move the prediction past and that splits the examples' outcomes")
    row = frame.iloc[[args.row]].reset_index(drop=True)
    for key in serving.key_columns:
        if key not in row.columns:
            row[key] = 0  # keys only pass through
    served = serving.predict(row)
    score_column = "probability" if serving.task == "classification" else "prediction"
    examples = _read(Path(args.examples), serving, "examples file") if args.examples else None
    training = _read(Path(args.training), serving, "training file") if args.training else examples
    prediction = served["prediction"].iloc[0]
    result: dict[str, Any] = {"model": serving.name, "bundle": str(args.bundle), "row": args.row,
                              "score": float(served[score_column].iloc[0]),
                              "prediction": prediction.item() if hasattr(prediction, "item") else prediction}
    if serving.task == "classification":
        result["threshold"] = serving.threshold
    if counterfactual:
        result["counterfactual"] = _counterfactual(args, serving, row, training)
    if args.examples:
        from mlpatterns.responsible.explainable_predictions.example_based import nearest_examples

        target = (serving.bundle.manifest.get("target") or {}).get("column")
        if target is not None and target not in examples.columns:
            raise ValueError(f"the training file {args.examples} lacks the target column {target!r} that the "
                             f"model '{serving.name}' was trained on (needed for the examples' outcomes)")
        found = nearest_examples(serving, row, examples, k=args.k, outcome="same" if args.same else "other",
                                 space=args.space, target_value=args.target_value)
        result["examples"] = found.to_dict()
    if args.integrated_gradients:
        from mlpatterns.responsible.explainable_predictions.integrated_gradients import (
            bundle_integrated_gradients,
        )

        explained = bundle_integrated_gradients(serving, row, training,
                                                baseline="mean" if training is not None else "zeros")
        result["integrated_gradients"] = {
            "baseline": "training mean" if training is not None else "zeros",
            "output": float(explained.output[0]), "baseline_output": float(explained.baseline_output[0]),
            "steps": explained.steps, "check": explained.check,
            "attributions": {name: float(v) for name, v in zip(explained.raw_names, explained.raw_attributions[0],
                                                                strict=True)}}
    inputs = _json_row(row[serving.input_columns])
    result["inputs"] = inputs
    if args.json:
        print(json.dumps(result, indent=1, default=str))
    else:
        _print(result)
    return 0


def _json_row(frame: Any) -> dict[str, Any]:
    from mlpatterns.responsible.explainable_predictions.example_based import json_records

    return json_records(frame)[0]


def _counterfactual(args: argparse.Namespace, serving: Any, row: Any, training: Any) -> dict[str, Any]:
    from mlpatterns.responsible.explainable_predictions.counterfactuals import (
        candidate_values,
        candidate_values_from_statistics,
        counterfactuals,
    )

    linked = [tuple(c.strip() for c in group.split(",") if c.strip()) for group in args.linked or []]
    if training is not None:
        candidates, source = candidate_values(serving, training, linked=linked), "training rows"
    elif linked:
        raise ValueError("--linked needs training rows (--training FILE or --examples FILE): the combinations "
                         "its columns take are read from them")
    else:
        statistics = serving.bundle.manifest.get("statistics")
        if statistics is None:
            raise ValueError(f"the bundle of '{serving.name}' records no training statistics; give --training FILE "
                             "(training rows) for the candidate values")
        candidates = candidate_values_from_statistics(serving, serving.bundle.json(statistics))
        source = "the bundle's training statistics"
    found = counterfactuals(serving, row, candidates, immutable=args.immutable or (), max_changes=args.max_changes,
                            target_value=args.target_value, limit=args.limit)
    return {**found.to_dict(), "candidates_from": source, "immutable": list(args.immutable or []),
            "linked": [list(group) for group in linked],
            "max_changes": args.max_changes}


def _text(value: Any) -> str:
    if isinstance(value, list):  # linked columns' values
        return "(" + ", ".join(_text(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:.4g}"
    return "(missing)" if value is None else str(value)


def _print(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    decision = f" (threshold {result['threshold']:.4g}: prediction {result['prediction']})" \
        if "threshold" in result else ""
    console.print(f"[bold]{result['model']}[/bold], row {result['row']}: served {_text(result['score'])}{decision}")
    if "examples" not in result:
        inputs = Table(title="the row's inputs")
        inputs.add_column("column")
        inputs.add_column("value")
        for name, value in result["inputs"].items():
            inputs.add_row(name, _text(value))
        console.print(inputs)
    if "counterfactual" in result:
        found = result["counterfactual"]
        table = Table(title=f"counterfactuals: {found['goal']} ({found['searched']:,} changed rows scored; "
                            f"candidates from {found['candidates_from']})")
        for column in ("#", "change", "from", "to", "served", "distance"):
            table.add_column(column, justify="right" if column in ("#", "served", "distance") else "left")
        for i, item in enumerate(found["counterfactuals"], 1):
            table.add_row(str(i), " + ".join(item["columns"]), ", ".join(_text(v) for v in item["from"]),
                          ", ".join(_text(v) for v in item["to"]), _text(item["score"]), f"{item['distance']:.3f}")
        console.print(table)
        if not found["counterfactuals"]:
            console.print(f"no change of at most {found.get('max_changes', 2)} column(s) among "
                          f"{found['columns_changed']} flips it")
            closest = found.get("closest")
            if closest:
                console.print(f"closest: {' + '.join(closest['columns'])} "
                              f"{', '.join(_text(v) for v in closest['from'])} -> "
                              f"{', '.join(_text(v) for v in closest['to'])} gives {_text(closest['score'])}")
    if "examples" in result:
        found = result["examples"]
        wanted = {"other": "the other outcome", "same": "the same outcome"}.get(found["wanted"], "any outcome")
        table = Table(title=f"nearest training examples with {wanted} (row's outcome {found['outcome']}; "
                            f"{found['space']} distance; {found['candidates']:,} candidates)")
        table.add_column("column")
        table.add_column("this row")
        for i, item in enumerate(found["examples"], 1):
            table.add_column(f"#{i}: row {item['training_row']}")
        table.add_row("[italic](outcome: served / label)[/italic]", str(found["outcome"]), *[str(e["outcome"]) for e in found["examples"]])
        table.add_row("[italic](distance to the row)[/italic]", "0", *[f"{e['distance']:.4g}" for e in found["examples"]])
        for name, value in result["inputs"].items():
            table.add_row(name, _text(value), *[_text(e["inputs"].get(name)) for e in found["examples"]])
        console.print(table)
    if "integrated_gradients" in result:
        explained = result["integrated_gradients"]
        table = Table(title=f"integrated gradients from the {explained['baseline']} baseline "
                            f"(f(baseline) {explained['baseline_output']:.4g} -> f(x) {explained['output']:.4g}; "
                            f"{explained['steps']} steps)")
        table.add_column("column")
        table.add_column("attribution", justify="right")
        ranked = sorted(explained["attributions"].items(), key=lambda item: -abs(item[1]))
        for name, value in ranked:
            table.add_row(name, f"{value:+.4f}")
        console.print(table)
        checks = explained["check"]
        console.print(f"completeness: max |delta| {checks['completeness']['max_abs_delta']:.2e} "
                      f"({'ok' if checks['completeness']['passed'] else 'NOT within'} {checks['completeness']['tolerance']}); "
                      f"torch vs ONNX: {checks['onnx']['max_abs_difference']:.2e} "
                      f"({'ok' if checks['onnx']['passed'] else 'NOT within'} {checks['onnx']['tolerance']})")


def _changes(text: str) -> int:
    if text not in ("1", "2"):
        raise argparse.ArgumentTypeError(f"expected 1 or 2, got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def add_explain_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``explain`` to the ``mlpatterns`` parser."""
    parser = subparsers.add_parser("explain", help="explain one prediction of a bundle: counterfactuals, nearest "
                                   "training examples, integrated gradients",
                                   description="Explain one served prediction (Explainable Predictions, 29): the "
                                   "smallest changes that flip it, the nearest training rows with the other outcome, "
                                   "integrated gradients of a network.",
                                   epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="the serving bundle's folder")
    parser.add_argument("input", type=Path, help="a .csv or .parquet file holding the row to explain")
    parser.add_argument("--row", type=int, required=True, metavar="N", help="the row of INPUT to explain (0-based)")
    parser.add_argument("--counterfactual", action="store_true", help="the smallest changes that flip the decision "
                        "(the default when nothing else is asked)")
    parser.add_argument("--immutable", nargs="+", metavar="COL", help="input columns a counterfactual must not change")
    parser.add_argument("--linked", nargs="+", metavar="COL,COL", help="columns that only change together, "
                        "to combinations seen in the training rows (e.g. sched_dep_time,dep_hour dest,distance)")
    parser.add_argument("--max-changes", type=_changes, default=2, metavar="1|2",
                        help="change at most this many columns (default 2; pairs only when no single change flips)")
    parser.add_argument("--limit", type=_positive, default=5, metavar="N", help="counterfactuals shown (default 5)")
    parser.add_argument("--training", metavar="FILE", help="training rows for the candidate values and the mean "
                        "baseline (default: the --examples file, else the bundle's training statistics)")
    parser.add_argument("--target-value", type=float, metavar="V", help="regression: the value a counterfactual "
                        "must move the prediction past, and that splits the examples' outcomes")
    parser.add_argument("--examples", metavar="TRAINING_FILE", help="show the nearest training rows with the other "
                        "outcome (the file needs the bundle's target column)")
    parser.add_argument("--k", type=_positive, default=5, help="how many examples (default 5)")
    parser.add_argument("--same", action="store_true", help="examples with the same outcome instead")
    parser.add_argument("--space", choices=("features", "gower"), default="features",
                        help="examples' distance: the model's features (default) or Gower over raw columns")
    parser.add_argument("--integrated-gradients", action="store_true", help="Captum integrated gradients by raw "
                        "column (wide_and_deep bundles)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.set_defaults(handler=_explain)
    return parser
