"""What each column of a table holds, judged by its content alone: the advisor's profile.

Problem: a starting spec needs each column's role (a key, a time, a number, a category
with few or many values, free text, an image path, nothing useful) and the target's
problem (binary with how much imbalance, several classes, a value and its skew). Column
names are unreliable (``c0``, ``var_17``, ``timestamp`` that holds counts), so every
decision here reads values only: a table whose columns are renamed gets the same profile.

The rules and their thresholds are module constants, listed in ``docs/advisor.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CODE_MAX_DISTINCT", "HIGH_CARDINALITY", "ID_DISTINCT_SHARE", "IMAGE_SUFFIXES", "TEXT_MIN_WORDS",
    "ColumnProfile", "TableProfile", "TargetProfile", "UNSEEN_LATER_SHARE", "apply_positive_when",
    "mark_unseen_later", "profile_column", "profile_table",
    "profile_target",
]

CODE_MAX_DISTINCT = 20  # whole numbers with at most this many scattered values are codes (categories)
HIGH_CARDINALITY = 1000  # more distinct values: hashing (the transform's vocabulary cut-off)
ID_DISTINCT_SHARE = 0.99  # whole numbers unique in >= 99 % of rows: a row id (sequential or not)
TEXT_ID_DISTINCT_SHARE = 0.95  # short texts unique in >= 95 % of rows: an id
TEXT_MIN_WORDS = 4.0  # texts averaging at least this many words: free text
TIME_PARSED_SHARE = 0.95  # texts of which >= 95 % parse as ISO dates/times: a time column
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff")
MULTICLASS_MAX = 50  # a text or code target with 3..50 labels: multiclass
SKEWED = 1.0  # |skewness| above this: a skewed regression target


@dataclass
class ColumnProfile:
    """One column: its kind, counts and the facts that decided the kind.

    ``kind`` is one of ``numeric``, ``categorical``, ``boolean``, ``id``, ``time``,
    ``text``, ``image``, ``constant``, ``duplicate``.
    """

    name: str
    dtype: str
    kind: str
    distinct: int
    missing_share: float
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def high_cardinality(self) -> bool:
        return self.kind == "categorical" and self.distinct > HIGH_CARDINALITY


@dataclass
class TargetProfile:
    """The target: its task and the figures that chose it."""

    name: str
    task: str  # classification, multiclass or regression
    rows: int  # rows with a target value
    missing: int
    classes: list[str] = field(default_factory=list)
    minority_share: float | None = None
    skewness: float | None = None
    positive_when: dict[str, float] | None = None


@dataclass
class TableProfile:
    """Every column's profile and the target's, for ``rows`` rows read."""

    rows: int
    columns: dict[str, ColumnProfile]
    target: TargetProfile

    def of_kind(self, *kinds: str) -> list[ColumnProfile]:
        return [c for c in self.columns.values() if c.kind in kinds]


def _is_whole(values: pd.Series) -> bool:
    numbers = values.to_numpy(dtype=float)
    return bool(np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)))


def _as_time(values: pd.Series) -> pd.Series | None:
    """The values as UTC times when the column holds dates or times (typed, objects or ISO text)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        sample = values.head(2000)
        if all(isinstance(v, (dt.date, pd.Timestamp)) for v in sample):
            return pd.to_datetime(values, utc=True, errors="coerce")
        texts = sample.astype(str)
        # ISO dates start with four digits and a dash: a plain number never parses as a time here
        if not texts.str.match(r"^\d{4}-\d{2}-\d{2}").mean() >= TIME_PARSED_SHARE:
            return None
        parsed = pd.to_datetime(values.astype(str), utc=True, errors="coerce", format="ISO8601")
        return parsed if parsed.notna().mean() >= TIME_PARSED_SHARE else None
    return None


def _image_facts(values: pd.Series, folder: Path | None) -> dict[str, Any] | None:
    texts = values.astype(str).str.lower()
    if not texts.str.endswith(IMAGE_SUFFIXES).mean() >= 0.9:
        return None
    checked = list(values.astype(str).head(20))
    found = sum((Path(folder or ".") / text).is_file() for text in checked)
    if found < max(1, len(checked) // 2):
        return None
    return {"image_files_found": f"{found} of the first {len(checked)}"}


def _profile_text_column(name: str, values: pd.Series, present: pd.Series, folder: Path | None,
                         base: dict[str, Any]) -> ColumnProfile:
    texts = present.astype(str)
    distinct = base["distinct"]
    image = _image_facts(present, folder)
    if image is not None:
        return ColumnProfile(kind="image", facts=image, **base)
    words = float(texts.str.split().str.len().mean())
    if words >= TEXT_MIN_WORDS:
        return ColumnProfile(kind="text", facts={"mean_words": round(words, 1)}, **base)
    share = distinct / max(len(present), 1)
    if share >= TEXT_ID_DISTINCT_SHARE and len(present) >= 100:
        return ColumnProfile(kind="id", facts={"distinct_share": round(share, 4)}, **base)
    if distinct == 2:
        return ColumnProfile(kind="boolean", facts={}, **base)
    return ColumnProfile(kind="categorical", facts={"top_share": round(float(texts.value_counts(normalize=True)
                                                                             .iloc[0]), 3)}, **base)


def profile_column(name: str, values: pd.Series, folder: Path | None = None) -> ColumnProfile:
    """The kind of one column, read from its values (never its name).

    Parameters
    ----------
    name : str
        Only reported, never used to decide.
    values : pandas.Series
        The column as read.
    folder : pathlib.Path, optional
        The data file's folder, where image paths are looked for.
    """
    present = values.dropna()
    distinct = int(present.nunique())
    base = {"name": name, "dtype": str(values.dtype), "distinct": distinct,
            "missing_share": round(float(values.isna().mean()), 4) if len(values) else 0.0}
    if distinct <= 1:
        return ColumnProfile(kind="constant", facts={}, **base)
    times = _as_time(present)
    if times is not None:
        resolution = "time" if (times.dt.hour.ne(0) | times.dt.minute.ne(0)).any() else "date"
        return ColumnProfile(kind="time", facts={"first": str(times.min()), "last": str(times.max()),
                                                 "resolution": resolution}, **base)
    if pd.api.types.is_bool_dtype(values) or distinct == 2:
        return ColumnProfile(kind="boolean", facts={}, **base)
    if pd.api.types.is_numeric_dtype(values):
        whole = _is_whole(present)
        share = distinct / len(present)
        if whole and share >= ID_DISTINCT_SHARE and len(present) >= 100:
            ordered = np.sort(present.to_numpy(dtype=float))
            sequential = bool(np.all(np.diff(ordered) == 1))
            return ColumnProfile(kind="id", facts={"distinct_share": round(share, 4), "sequential": sequential},
                                 **base)
        if whole and distinct <= CODE_MAX_DISTINCT:
            low, high = float(present.min()), float(present.max())
            if high - low + 1 > 2 * distinct:  # scattered values (1, 2, 9, 18, 28): codes, not amounts
                return ColumnProfile(kind="categorical", facts={"codes": True}, **base)
        skew = float(pd.Series(present.to_numpy(dtype=float)).skew())
        return ColumnProfile(kind="numeric", facts={"skewness": round(skew, 2), "whole": whole}, **base)
    return _profile_text_column(name, values, present, folder, base)


UNSEEN_LATER_SHARE = 0.5  # categories of the latest 20 % of times unseen before in more than half of those rows


def mark_unseen_later(frame: pd.DataFrame, profile: TableProfile, time_column: str) -> None:
    """Record, per category column (or whole numbers with few values), the share of the latest 20 % of rows
    (by ``time_column``) whose value never occurs in the earlier rows (``facts["unseen_later_share"]``).

    A split in time order trains on the past: a column such as a month or a season code,
    whose recent values never occurred before, gives the model nothing it learned.
    """
    times = _as_time(frame[time_column].dropna())
    if times is None:
        return
    order = times.sort_values(kind="stable")
    cut = order.iloc[int(len(order) * 0.8)] if len(order) else None
    if cut is None:
        return
    later = frame.index.isin(order.index[order >= cut])
    earlier = frame.index.isin(order.index[order < cut])
    for column in profile.columns.values():
        few_numbers = column.kind == "numeric" and column.facts.get("whole") and column.distinct <= CODE_MAX_DISTINCT
        if column.kind not in ("categorical", "boolean") and not few_numbers:
            continue
        values = frame[column.name].astype(str)
        seen = set(values[earlier])
        recent = values[later]
        if len(recent):
            column.facts["unseen_later_share"] = round(float((~recent.isin(seen)).mean()), 3)


def _duplicates(frame: pd.DataFrame, names: list[str]) -> dict[str, str]:
    """Columns equal, value for value, to an earlier column: name -> the earlier one."""
    seen: dict[int, str] = {}
    copies = {}
    for name in names:
        digest = int(pd.util.hash_pandas_object(frame[name].astype(str), index=False).sum())
        earlier = seen.get(digest)
        if earlier is not None and frame[name].astype(str).equals(frame[earlier].astype(str)):
            copies[name] = earlier
        else:
            seen.setdefault(digest, name)
    return copies


_CONDITIONS = {"greater_than": np.greater, "at_least": np.greater_equal, "less_than": np.less,
               "at_most": np.less_equal, "equals": np.equal}


def apply_positive_when(values: pd.Series, positive_when: Mapping[str, float]) -> np.ndarray:
    """The 0/1 labels ``target.positive_when`` makes of a numeric column (one condition, as the spec takes)."""
    (condition, number), = positive_when.items()
    if condition not in _CONDITIONS:
        raise ValueError(f"positive_when: expected one of {list(_CONDITIONS)}, got {condition!r}")
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise ValueError(f"positive_when needs a numeric target; {values.name!r} holds {values.dtype}")
    return _CONDITIONS[condition](values.to_numpy(dtype=float), float(number)).astype(np.int64)


def profile_target(name: str, values: pd.Series, positive_when: Mapping[str, float] | None = None) -> TargetProfile:
    """The target's task (classification, multiclass, regression) and its figures.

    Raises
    ------
    ValueError
        When the target has a single value (nothing to learn) or no values.
    """
    present = values.dropna()
    missing = int(len(values) - len(present))
    if present.empty:
        raise ValueError(f"target {name!r}: every value is missing")
    if positive_when is not None:
        labels = apply_positive_when(present, positive_when)
        share = float(labels.mean())
        if share in (0.0, 1.0):
            raise ValueError(f"target {name!r}: positive_when {dict(positive_when)} makes every row "
                             f"{'positive' if share else 'negative'}; nothing to learn")
        return TargetProfile(name, "classification", len(present), missing, ["false", "true"],
                             round(min(share, 1 - share), 4), positive_when=dict(positive_when))
    distinct = int(present.nunique())
    if distinct < 2:
        raise ValueError(f"target {name!r} has a single value ({present.iloc[0]!r}): nothing to learn")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    counts = present.astype(str).value_counts(normalize=True)
    classes = sorted(counts.index)
    if distinct == 2:
        return TargetProfile(name, "classification", len(present), missing, classes, round(float(counts.min()), 4))
    if not numeric or (_is_whole(present) and distinct <= 10):
        if distinct > MULTICLASS_MAX:
            raise ValueError(f"target {name!r}: {distinct} distinct labels; the advisor handles at most "
                             f"{MULTICLASS_MAX} classes")
        return TargetProfile(name, "multiclass", len(present), missing, classes, round(float(counts.min()), 4))
    skew = float(pd.Series(present.to_numpy(dtype=float)).skew())
    return TargetProfile(name, "regression", len(present), missing, skewness=round(skew, 2))


def profile_table(frame: pd.DataFrame, target: str, *, folder: Path | None = None,
                  positive_when: Mapping[str, float] | None = None) -> TableProfile:
    """Profile every column of ``frame`` and the ``target`` column.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table as read (all rows, or a sample).
    target : str
        The column to predict.
    folder : pathlib.Path, optional
        The data file's folder, where image paths are looked for.
    positive_when : mapping, optional
        ``{"greater_than": 30}`` and the like: a numeric target read as a binary class.

    Returns
    -------
    TableProfile
    """
    if target not in frame.columns:
        raise ValueError(f"unknown target column {target!r}; the data has {list(frame.columns)}")
    target_profile = profile_target(target, frame[target], positive_when)
    others = [c for c in frame.columns if c != target]
    columns = {name: profile_column(name, frame[name], folder) for name in others}
    useful = [n for n in others if columns[n].kind not in ("constant",)]
    for copy, earlier in _duplicates(frame, useful).items():
        columns[copy].kind = "duplicate"
        columns[copy].facts = {"same_as": earlier}
    return TableProfile(rows=len(frame), columns=columns, target=target_profile)
