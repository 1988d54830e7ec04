"""The advisor's starting spec as YAML, with a comment above each choice saying why.

Problem: a spec generated without its reasons teaches nothing and is hard to trust or
change. Solution: every field the advisor chose is written with the pattern (number and
name) and the profile's figures that chose it, as YAML comments above it; columns that
were left out are listed at the end with their reasons, so that a user who disagrees
can add one back. Values go through PyYAML, so any column name is quoted correctly; the
text is read back with :func:`yaml.safe_load` before it is returned.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlpatterns.atomic_files import replace_atomically
from mlpatterns.catalog.advisor.recommendations import Entry, Plan

__all__ = ["render_spec", "write_spec"]


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style), quoted where YAML needs it."""
    import yaml

    text = yaml.safe_dump([value], default_flow_style=True, width=1 << 16, sort_keys=False).strip()
    return text[1:-1]  # [value] -> value


def _comment(text: str, indent: int) -> list[str]:
    return [" " * indent + "# " + line for line in text.splitlines()]


def _entries(entries: list[Entry], indent: int, *, as_list: bool = False) -> list[str]:
    lines = []
    for entry in entries:
        lines += _comment(f"{entry.name}: {entry.comment}", indent)
        lines.append(" " * indent + (f"- {_flow(entry.value)}" if as_list else
                                     f"{_flow(entry.name)}: {_flow(entry.value)}"))
    return lines


def render_spec(plan: Plan, *, name: str, data_path: str, source: str, rows: int, sample_rows: int | None,
                null_values: list[str] | None = None) -> str:
    """The plan as a commented YAML spec for ``mlpatterns run``.

    Parameters
    ----------
    plan : Plan
        From :func:`~mlpatterns.catalog.advisor.recommendations.plan_spec`.
    name : str
        The spec's ``name``.
    data_path : str
        ``data.path`` as written (relative to the spec's folder).
    source : str
        The data file as the user named it, for the header.
    rows, sample_rows : int
        The rows read, and the rows the profile used (None: all).
    null_values : list of str, optional
        ``data.null_values``: the texts of the CSV file that mean "no value".
    """
    import yaml

    sampled = f", profiled on {sample_rows:,} sampled rows" if sample_rows and sample_rows < rows else ""
    lines = [*_comment(f"Written by `mlpatterns advise` from {source} ({rows:,} rows{sampled}).", 0),
             "# Each choice says which pattern it applies and why; edit freely, then `mlpatterns run` this file.",
             f"name: {_flow(name)}", "data:", f"  path: {_flow(data_path)}",
             *([f"  null_values: {_flow(null_values)}"] if null_values is not None else []),
             *_comment(plan.target_comment, 0), "target:"]
    lines += [f"  {key}: {_flow(value)}" for key, value in plan.target.items()]
    lines += _comment(plan.keys_comment, 0) + [f"keys: {_flow(plan.keys)}"]
    lines += _comment(plan.split_comment, 0) + ["split:"]
    lines += [f"  {key}: {_flow(value)}" for key, value in plan.split.items()]
    lines += ["# Transform (21): every learned parameter (medians, vocabularies) is fitted on the train split",
              "features:"]
    if plan.numeric:
        lines += ["  # numbers: median-filled, standardised", "  numeric:"] + _entries(plan.numeric, 4, as_list=True)
    if plan.categorical:
        lines += ["  categorical:"] + _entries(plan.categorical, 4)
    if plan.date_parts:
        lines += ["  date_parts:"] + _entries(plan.date_parts, 4)
    if plan.text:
        lines += ["  text:"] + _entries(plan.text, 4)
    lines += ["models:"]
    for entry in plan.models:
        lines += _comment(entry.comment, 2) + [f"  {_flow(entry.name)}:"]
        lines += [f"    {key}: {_flow(value)}" for key, value in entry.value.items()]
    if plan.baseline is not None:
        lines += _comment(plan.baseline.comment, 0) + ["baseline:"]
        lines += [f"  {key}: {_flow(value)}" for key, value in plan.baseline.value.items()]
    if plan.left_out:
        lines += ["", "# Left out:"]
        for entry in plan.left_out:  # every line through _comment: a column name may hold a line break
            lines += _comment(f"- {entry.name} ({entry.value}): {entry.comment}", 0)
    text = "\n".join(lines) + "\n"
    parsed = yaml.safe_load(text)  # a bug here must not reach the user's file
    if parsed.get("name") != name:
        raise AssertionError(f"the written spec's name is {parsed.get('name')!r}, not {name!r}")
    return text


def write_spec(text: str, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (a temporary file renamed into place).

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``force`` is false.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))
    return path
