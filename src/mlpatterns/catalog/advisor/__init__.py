"""The pattern advisor (chapter 8, connected patterns): from a data file to a starting spec.

Problem: a new table raises the same questions every time (which column is a key, which
is a time, which categories are too many for a vocabulary, is the class rare, which
columns leak the outcome) and the answers decide which patterns apply. Solution:
:func:`advise` reads the file, profiles each column by its content
(:mod:`~mlpatterns.catalog.advisor.profiling`), tests columns for leaking the target
(:mod:`~mlpatterns.catalog.advisor.leakage`), chooses the patterns
(:mod:`~mlpatterns.catalog.advisor.recommendations`) and writes a spec for
``mlpatterns run`` with a comment per choice (:mod:`~mlpatterns.catalog.advisor.spec_writer`).

>>> from mlpatterns.catalog.advisor import advise   # doctest: +SKIP
>>> advice = advise("flights.parquet", "arr_delay", positive_when={"greater_than": 30})  # doctest: +SKIP
>>> sorted(advice.leaks.leaked)   # doctest: +SKIP
['arr_time', 'dep_delay', 'dep_time']
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlpatterns.catalog.advisor.leakage import Leak, LeakReport, find_leaks
from mlpatterns.catalog.advisor.profiling import (
    ColumnProfile,
    TableProfile,
    TargetProfile,
    mark_unseen_later,
    profile_table,
)
from mlpatterns.catalog.advisor.recommendations import (
    Plan,
    Recommendation,
    plan_spec,
    split_time_column,
)
from mlpatterns.catalog.advisor.spec_writer import render_spec, write_spec

__all__ = ["Advice", "ColumnProfile", "Leak", "LeakReport", "Plan", "Recommendation", "TableProfile",
           "TargetProfile", "advise", "find_leaks", "plan_spec", "profile_table", "render_spec", "write_spec"]

DEFAULT_SAMPLE_ROWS = 100_000  # rows profiled (distinct counts, kinds); the leak tests use 10,000 of them
LEAK_SAMPLE_ROWS = 10_000


@dataclass
class Advice:
    """What :func:`advise` found and wrote: the profile, the leak tests, the plan and the spec's text."""

    profile: TableProfile
    leaks: LeakReport
    plan: Plan
    spec_text: str
    rows: int


def _spec_name(path: Path) -> str:
    stem = path.name.split(".")[0]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "advised"
    return name[:100]


def advise(data: str | os.PathLike[str], target: str, *, positive_when: Mapping[str, float] | None = None,
           spec_path: str | os.PathLike[str] | None = None, name: str | None = None,
           sample_rows: int = DEFAULT_SAMPLE_ROWS, null_values: list[str] | None = None, seed: int = 0) -> Advice:
    """Profile ``data``, find leaks and write the text of a starting spec predicting ``target``.

    Parameters
    ----------
    data : path
        A ``.csv``, ``.csv.gz``, ``.tsv`` or ``.parquet`` file, read as ``mlpatterns run`` reads it.
    target : str
        The column to predict.
    positive_when : mapping, optional
        A numeric target read as a binary class, as ``target.positive_when`` (``{"greater_than": 30}``).
    spec_path : path, optional
        Where the spec will be written: ``data.path`` is made relative to its folder.
        Default: the data file's folder.
    name : str, optional
        The spec's name (default: from the file's name).
    sample_rows : int
        Rows profiled, drawn with ``seed`` when the file has more.
    null_values : list of str, optional
        The texts of a CSV that mean "no value" (``data.null_values``).

    Returns
    -------
    Advice
    """
    from mlpatterns.tables import read_frame

    data = Path(data)
    if not data.is_file():
        raise FileNotFoundError(f"{data}: no such file")
    if sample_rows < 100:
        raise ValueError(f"sample_rows: expected at least 100 rows, got {sample_rows}")
    frame = read_frame(data, null_values=null_values)
    rows = len(frame)
    if target not in frame.columns:
        raise ValueError(f"unknown target column {target!r}; {data} has the columns {list(frame.columns)}")
    sample = frame.sample(sample_rows, random_state=seed) if rows > sample_rows else frame
    profile = profile_table(sample, target, folder=data.parent, positive_when=positive_when)
    time_column = split_time_column(profile)
    if time_column is not None:
        mark_unseen_later(sample, profile, time_column.name)
    keys = [c.name for c in profile.of_kind("id")]
    leaks = find_leaks(sample, profile, sample_rows=LEAK_SAMPLE_ROWS, seed=seed, exclude=keys)
    plan = plan_spec(profile, leaks)
    spec_folder = Path(spec_path).resolve().parent if spec_path is not None else data.resolve().parent
    relative = os.path.relpath(data.resolve(), spec_folder)
    text = render_spec(plan, name=name or _spec_name(data), data_path=relative, source=str(data), rows=rows,
                       sample_rows=len(sample), null_values=null_values)
    return Advice(profile=profile, leaks=leaks, plan=plan, spec_text=text, rows=rows)
