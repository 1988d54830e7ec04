"""``mlpatterns advise DATA --target COLUMN``: profile a data file and write a starting spec.

Prints the profile (a table of columns: kind, type, distinct values, missing share, the
one-column held-out score, and what the advisor did with it), the columns left out as
leaks with their reasons, and the recommended patterns; writes the spec (default
``<data stem>.advised.yaml`` next to the data) after checking it with the spec loader,
atomically, never over an existing file without ``--force``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["add_advise_command", "parse_positive_when"]

_EPILOG = """\
examples:
  mlpatterns advise flights.parquet --target arr_delay --positive-when '>30' --output flights.yaml
  mlpatterns advise births.csv --target weight_pounds --null-values NA ""
  mlpatterns run flights.yaml
The rules and thresholds: docs/advisor.md
"""

_OPERATORS = {">=": "at_least", "<=": "at_most", ">": "greater_than", "<": "less_than", "==": "equals"}


def parse_positive_when(text: str) -> dict[str, float]:
    """``'>30'`` -> ``{"greater_than": 30.0}`` (also ``>=``, ``<``, ``<=``, ``==``)."""
    for operator, condition in _OPERATORS.items():  # two-character operators first
        if text.strip().startswith(operator):
            number = text.strip()[len(operator):].strip()
            try:
                return {condition: float(number)}
            except ValueError:
                break
    raise ValueError(f"--positive-when: expected an operator and a number such as '>30' or '<=5.5', got {text!r}")


def _describe(column: Any, leaks: Any, plan: Any) -> str:
    leaked = {leak.column: leak for leak in leaks.leaks}
    if column.name in leaked:
        return f"left out: leak ({leaked[column.name].rule})"
    for entry in plan.left_out:
        if entry.name == column.name:
            return f"left out: {entry.value}"
    for group, entries in (("numeric", plan.numeric), ("categorical", plan.categorical),
                           ("date parts", plan.date_parts), ("text", plan.text)):
        for entry in entries:
            if entry.name == column.name:
                if group == "categorical":
                    return "hashed" if entry.value.get("encoding") == "hash" else "vocabulary"
                return group
    return ""


def _print_advice(advice: Any, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    profile, leaks, plan = advice.profile, advice.leaks, advice.plan
    target = profile.target
    table = Table(title=f"{advice.rows:,} rows; profiled {profile.rows:,}, leak tests on {leaks.rows:,}")
    for heading in ("column", "kind", "type", "distinct", "missing", f"alone ({leaks.metric})", "in the spec"):
        table.add_column(heading, justify="right" if heading in ("distinct", "missing") else "left")
    for column in profile.columns.values():
        score = leaks.scores.get(column.name)
        table.add_row(escape(column.name), column.kind, column.dtype, f"{column.distinct:,}",  # names: not markup
                      f"{column.missing_share:.1%}", "" if score is None else f"{score:.3f}",
                      escape(_describe(column, leaks, plan)))
    console.print(table)
    extra = f", minority {target.minority_share:.1%}" if target.minority_share is not None else ""
    skew = f", skewness {target.skewness:+.2f}" if target.skewness is not None else ""
    console.print(f"target [bold]{escape(target.name)}[/bold]: {target.task}{extra}{skew}", highlight=False)
    for entry in plan.left_out:
        console.print(f"left out [bold]{escape(entry.name)}[/bold] ({escape(str(entry.value))}): "
                      f"{escape(entry.comment)}", highlight=False)
    console.print("recommended patterns:")
    for recommendation in plan.recommendations:
        console.print(f"  {escape(recommendation.label)}: {escape(recommendation.why)} "
                      f"[dim]({escape(recommendation.where)})[/dim]", highlight=False)


def _advise(args: argparse.Namespace) -> int:
    from rich.console import Console

    from mlpatterns.catalog.advisor import advise, write_spec
    from mlpatterns.spec import load_spec

    output = args.output or args.data.with_name(f"{args.data.name.split('.')[0]}.advised.yaml")
    if output.exists() and not args.force:
        raise FileExistsError(f"{output} exists; pass --force to replace it")
    positive_when = parse_positive_when(args.positive_when) if args.positive_when else None
    advice = advise(args.data, args.target, positive_when=positive_when, spec_path=output, name=args.name,
                    sample_rows=args.sample_rows, null_values=args.null_values, seed=args.seed)
    console = Console(stderr=True)
    _print_advice(advice, console)
    with tempfile.TemporaryDirectory() as folder:  # check the spec with the loader before it replaces anything
        check = Path(folder) / output.name
        check.write_text(advice.spec_text, encoding="utf-8")
        load_spec(check)
    write_spec(advice.spec_text, output, force=args.force)
    console.print(f"wrote {output}; run it with: mlpatterns run {output}", highlight=False)
    return 0


def add_advise_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``advise`` to the ``mlpatterns`` parser."""
    advise = subparsers.add_parser("advise", help="profile a data file (column kinds, imbalance, times, text, "
                                   "keys, leaks) and write a starting spec with the patterns it needs",
                                   epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    advise.add_argument("data", type=Path, help="a .csv, .csv.gz, .tsv or .parquet file")
    advise.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    advise.add_argument("--positive-when", metavar="CONDITION", help="read a numeric target as a binary class, "
                        "e.g. '>30' (target.positive_when)")
    advise.add_argument("--output", type=Path, help="the spec to write (default: <data>.advised.yaml next to the "
                        "data); data.path is written relative to its folder")
    advise.add_argument("--name", help="the spec's name (default: from the data file's name)")
    advise.add_argument("--sample-rows", type=int, default=100_000, metavar="N", help="rows profiled, a random "
                        "sample when the file has more (default 100,000; the leak tests use 10,000 of them)")
    advise.add_argument("--null-values", nargs="+", metavar="TEXT", help="the texts of a CSV file that mean "
                        "'no value' (data.null_values), e.g. NA ''")
    advise.add_argument("--seed", type=int, default=0, help="the seed of the samples and the leak tests' models")
    advise.add_argument("--force", action="store_true", help="replace an existing output file")
    advise.set_defaults(handler=_advise)
    return advise

