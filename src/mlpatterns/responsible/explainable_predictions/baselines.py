"""Explainable Predictions (29): the baseline an attribution is relative to, made explicit.

Problem: a feature attribution answers "how much did this input move the prediction away
from a reference?", and the answer changes with the reference. An explanation that does not
say what it is relative to cannot be read.

Solution: every explanation here is relative to one baseline row of raw input columns,
chosen in one of three documented ways:

* ``"mean"``: the training rows' mean of each numeric column (rounded for an integer
  column, since the serving function accepts whole numbers there), the most frequent value
  of each boolean, text or categorical column, the median of a date column;
* ``{"row": i}``: the ``i``-th of the given reference rows (the run's test rows), as it is;
* ``{"values": {column: value}}``: per-column choices; a column not named keeps its
  ``"mean"`` value.

Where the training rows are not at hand (``mlpatterns predict --explain``, the HTTP
explanation), ``"mean"`` comes from the bundle's own data statistics
(:func:`statistics_mean_row`): the mean of each numeric column and the most frequent value of
each other column over the rows the run read, and the middle of a date column's range.

The baseline goes through the serving function's own input checks, so a value it would
refuse is refused here, naming the column.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BaselineError", "build_baseline", "statistics_mean_row", "training_mean_row"]


class BaselineError(ValueError):
    """A baseline that cannot be built: the message names the field or column and what was expected."""


def _mode(series: pd.Series) -> Any:
    counts = series.dropna().value_counts(sort=True)
    return None if counts.empty else counts.index[0]


def training_mean_row(train: pd.DataFrame, inputs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row: the mean, mode or median of each input column of ``train`` (see the module's description).

    ``inputs`` are the serving signature's input entries (``name``, ``type``, ``dtype``,
    ``categorical``).
    """
    row: dict[str, Any] = {}
    for item in inputs:
        name = item["name"]
        if name not in train.columns:
            raise BaselineError(f"baseline: the training rows have no column {name!r}")
        series = train[name]
        if item.get("type") == "number" and not item.get("categorical"):
            values = pd.to_numeric(series, errors="coerce").dropna()
            mean = float(values.mean()) if len(values) else None
            if mean is not None and str(item.get("dtype", "")).startswith(("int", "uint", "Int", "UInt")):
                mean = int(round(mean))
            row[name] = mean
        elif item.get("type") == "date":
            stamps = pd.to_datetime(series, errors="coerce").dropna()
            row[name] = None if stamps.empty else stamps.sort_values().iloc[len(stamps) // 2]
        else:
            row[name] = _mode(series)
    return pd.DataFrame([row], columns=[item["name"] for item in inputs])


def statistics_mean_row(serving: Any) -> pd.DataFrame:
    """One row from the bundle's ``statistics.json`` (the run's data statistics); see the module's description."""
    name = serving.bundle.manifest.get("statistics")
    if not name:
        raise BaselineError(f"baseline: the bundle '{serving.name}' carries no data statistics; give the baseline's "
                            "values instead")
    columns = serving.bundle.json(name)["columns"]
    row: dict[str, Any] = {}
    for item in serving.signature["inputs"]:
        stats = columns.get(item["name"], {})
        value: Any = None
        if item.get("type") == "number" and not item.get("categorical") and "numeric" in stats:
            value = float(stats["numeric"]["mean"])
            if str(item.get("dtype", "")).startswith(("int", "uint", "Int", "UInt")):
                value = int(round(value))
        elif item.get("type") == "date" and "datetime" in stats:
            low, high = (pd.Timestamp(stats["datetime"][k]) for k in ("min", "max"))
            value = (low + (high - low) / 2).normalize()
        elif stats.get("categories", {}).get("values"):
            value = stats["categories"]["values"][0][0]
        elif "numeric" in stats:  # a categorical number
            value = stats["numeric"]["quantiles"][len(stats["numeric"]["quantiles"]) // 2][1]
        if value is None:
            raise BaselineError(f"baseline: the bundle's statistics give no typical value of {item['name']!r}; "
                                "give the baseline's values instead")
        row[item["name"]] = value
    return pd.DataFrame([row], columns=[item["name"] for item in serving.signature["inputs"]])


def build_baseline(serving: Any, how: Any, train: pd.DataFrame | None, reference: pd.DataFrame | None = None,
                   *, where: str = "explain.baseline") -> tuple[pd.DataFrame, dict[str, Any]]:
    """The baseline row (raw input columns, conformed by ``serving``) and a JSON description of it.

    Parameters
    ----------
    serving : ServingFunction
        The bundle whose signature names the input columns and checks the values.
    how : "mean" or dict
        ``"mean"``, ``{"row": i}`` or ``{"values": {column: value}}`` (see the module's description).
    train : DataFrame or None
        The training rows (raw columns) the ``"mean"`` baseline is computed from; None: the
        bundle's data statistics (:func:`statistics_mean_row`).
    reference : DataFrame, optional
        The rows ``{"row": i}`` picks from (a run's test rows).
    where : str
        The field named in errors.
    """
    inputs = serving.signature["inputs"]
    columns = [item["name"] for item in inputs]
    if train is None:
        mean_row, mean_kind = statistics_mean_row(serving), "the bundle's data statistics: mean (numbers), most " \
            "frequent value (categories), middle of the range (dates)"
    else:
        mean_row, mean_kind = training_mean_row(train, inputs), "training mean (numbers), mode (categories), " \
            "median (dates)"
    if how == "mean":
        row, kind = mean_row, mean_kind
    elif isinstance(how, Mapping) and set(how) == {"row"}:
        index = how["row"]
        if reference is None or not isinstance(index, int) or isinstance(index, bool) \
                or not 0 <= index < len(reference):
            size = 0 if reference is None else len(reference)
            raise BaselineError(f"{where}.row: expected a row index in [0, {size}) of the test rows, got {index!r}")
        missing = [c for c in columns if c not in reference.columns]
        if missing:
            raise BaselineError(f"{where}.row: the reference rows have no column(s) {missing}")
        row, kind = reference[columns].iloc[[index]].reset_index(drop=True), f"test row {index}"
    elif isinstance(how, Mapping) and set(how) == {"values"} and isinstance(how["values"], Mapping):
        unknown = sorted(set(how["values"]) - set(columns))
        if unknown:
            raise BaselineError(f"{where}.values: unknown column(s) {unknown}; the inputs are {columns}")
        row = mean_row.astype(object)
        for name, value in how["values"].items():
            row[name] = pd.Series([value], dtype=object)
        kind = f"chosen values for {sorted(how['values'])}; the others: {mean_kind}"
    else:
        raise BaselineError(f"{where}: expected 'mean', {{row: <index in test>}} or {{values: {{column: value}}}}, "
                            f"got {how!r}")
    for key in serving.key_columns:  # the serving function wants the keys; a baseline has none of its own
        if key not in row.columns:
            row[key] = 0
    conformed, problems = serving.conform(row)
    if problems:
        raise BaselineError(f"{where}: the baseline row is refused by the serving function: "
                            + "; ".join(f"{p.column}: {p.problem}" for p in problems))
    described = {name: _json_value(conformed[name].iloc[0]) for name in columns}
    return conformed[columns].reset_index(drop=True), {"kind": kind, "values": described}


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        return value.item()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value if isinstance(value, (bool, int, float, str)) else str(value)
