"""Model cards (Fairness Lens, 30): what a model is for, what it was trained on, how well it does overall and for
each slice, and where it should not be trusted.

A metric table tells an engineer whether a model improved; the person deciding whether to use
it needs more: what the model is meant for, what the data covered, who it serves worse and
what it was never tested on. :func:`model_card` gathers these from what a run measured (rows
per split, test metrics, the heuristic benchmark, the fairness slices) into a JSON-able dict of
simple sections (text, lists and flat tables) that a report renders as headings and tables.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["model_card"]

_SLICE_METRICS = {"classification": ("selection_rate", "accuracy", "false_positive_rate", "false_negative_rate",
                                     "roc_auc"),
                  "regression": ("mae", "rmse", "mean_prediction", "mean_target", "mean_error")}


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return value if math.isfinite(value) else None


def _flat(mapping: dict[str, Any] | None) -> dict[str, Any]:
    """The scalar entries of a mapping (nested parts left out), for a two-column table."""
    return {k: _number(v) for k, v in (mapping or {}).items() if v is None or isinstance(v, (str, int, float, bool))}


def _slice_rows(fairness: dict[str, Any], task: str) -> list[dict[str, Any]]:
    """One table row per (sensitive column, slice): its rows and metrics, tiny slices marked."""
    table = []
    for column, part in fairness.get("columns", {}).items():
        for item in part["slices"]:
            row = {"sensitive": column, "slice": item["slice"], "rows": item["rows"], "tiny": item["tiny"]}
            row.update({m: _number(item.get(m)) for m in _SLICE_METRICS.get(task, ()) if m in item})
            table.append(row)
    return table


def _limitations(task: str, rows: dict[str, int], fairness_data: dict[str, Any] | None,
                 fairness: dict[str, Any] | None, heuristic: dict[str, Any] | None,
                 declared: list[str]) -> list[str]:
    found = list(declared)
    if heuristic and heuristic.get("beats_margin") is False:
        found.append(f"Does not beat the heuristic benchmark by the stated margin: {heuristic.get('message', '')}")
    for stage, result in (("data", fairness_data), ("model", fairness)):
        if not result:
            continue
        for crossing in result.get("crossings", []):
            found.append(f"Fairness threshold crossed ({stage}): {crossing['message']}")
        for column, part in result.get("columns", {}).items():
            if part.get("tiny_slices"):
                found.append(f"{column}: slice(s) {part['tiny_slices']} have fewer than {result.get('min_rows')} "
                             f"rows in the {result.get('split', stage)} split; their numbers are too uncertain to "
                             "judge the model on them")
    if fairness:
        for column, part in fairness.get("columns", {}).items():
            gaps = part.get("gaps", {})
            key = "false_negative_rate" if task == "classification" else "mae"
            if key in gaps and gaps[key]["difference"] is not None:
                gap = gaps[key]
                found.append(f"{column}: the {key.replace('_', ' ')} differs by {gap['difference']:.3g} between "
                             f"{gap['highest']!r} (highest) and {gap['lowest']!r} (lowest) on the test split")
    else:
        found.append("No fairness slices were measured (add a fairness: section to the spec to measure them)")
    if rows.get("test", 0) < 1000:
        found.append(f"Tested on {rows.get('test', 0):,} rows only: overall metrics have wide intervals")
    found.append("Evaluated only on data like its training data (the test split of the same source); "
                 "populations, periods or inputs outside it are not covered")
    return found


def model_card(*, name: str, task: str, rows: dict[str, int], metrics: dict[str, Any],
               description: str | None = None, intended_use: str | None = None, data: Any = None,
               heuristic: dict[str, Any] | None = None, fairness_data: dict[str, Any] | None = None,
               fairness: dict[str, Any] | None = None, registered: str | dict[str, Any] | None = None,
               limitations: list[str] | None = None, time_range: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model card: intended use, data, metrics overall and by slice, limitations.

    Parameters
    ----------
    name : str
        The model's name (e.g. ``"adult-income/gradient_boosting"``).
    task : str
        ``classification``, ``regression``, ``multiclass`` or ``multilabel``.
    rows : dict
        Rows per split (``{"train": ..., "valid": ..., "test": ...}``).
    metrics : dict
        The model's test metrics (scalars are kept).
    description : str, optional
        The spec's description: the intended use when none is given.
    intended_use : str, optional
        What the model is for and not for (``fairness.intended_use``).
    data : str or dict, optional
        Where the data comes from (a data set's name, a path, or a dict of facts).
    heuristic : dict, optional
        The comparison with the heuristic benchmark (its ``message``, ``beats_margin``, ...).
    fairness_data, fairness : dict, optional
        The Fairness Lens results before training (data balance) and for this model
        (:func:`~mlpatterns.responsible.fairness_lens.model_slices` plus ``crossings``).
    registered : str or dict, optional
        What the registry did with the model (a sentence such as "registered as version 1 of
        'carseats-sales'", or the entry's fields), when the run registered it.
    limitations : list of str, optional
        Limitations the user declares (``fairness.limitations``); measured ones are added.
    time_range : dict, optional
        The first and last time of the data, when it has a time column.

    Returns
    -------
    dict
        ``model``, ``intended_use`` (text), ``data`` (a table), ``metrics`` (overall test
        metrics), ``heuristic_benchmark`` (a table, when given), ``metrics_by_slice`` (rows, when
        fairness ran), ``data_by_slice`` (rows, when the data was measured), ``limitations``
        (sentences) and ``registered`` (when given): JSON-able.
    """
    declared = list(limitations or [])
    source = data if isinstance(data, dict) else ({"source": data} if data is not None else {})
    data_section = {**_flat(source), **{f"rows_{split}": count for split, count in rows.items()}}
    if time_range:
        data_section.update({f"time_{k}": str(v) for k, v in time_range.items()})
    card: dict[str, Any] = {
        "model": name,
        "task": task,
        "intended_use": intended_use or description or "Not stated: add fairness.intended_use or a description",
        "data": data_section,
        "metrics": _flat(metrics),
    }
    if heuristic:
        card["heuristic_benchmark"] = _flat(heuristic)
    if fairness:
        card["metrics_by_slice"] = _slice_rows(fairness, task)
    if fairness_data:
        rate = "label_rate" if task == "classification" else "target_mean"
        card["data_by_slice"] = [{"sensitive": column, "slice": s["slice"], "rows": s["rows"],
                                  "share": _number(s["share"]), rate: _number(s.get(rate)), "tiny": s["tiny"]}
                                 for column, part in fairness_data.get("columns", {}).items()
                                 for s in part["slices"]]
    card["limitations"] = _limitations(task, rows, fairness_data, fairness, heuristic, declared)
    if registered:
        card["registered"] = registered if isinstance(registered, str) else _flat(registered)
    return card
