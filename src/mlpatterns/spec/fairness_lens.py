"""The spec's ``fairness:`` section: the Fairness Lens (30) a run measures and the limits it must keep.

.. code-block:: yaml

    fairness:
      sensitive: [sex, race]        # columns of the data; need not be model features
      intersections: false          # also the slices of all columns combined ("Female & Black")
      min_rows: 30                  # smaller slices are flagged tiny and left out of the gaps
      confidence: 0.95              # level of the intervals
      thresholds:
        data: {label_rate_ratio: 0.3}                  # before training; fails the run when crossed
        model: {false_negative_rate_difference: 0.1,   # after training, per model
                selection_rate_ratio: 0.8}
      mitigation:                   # compared in one table (classification); or a plain list of methods
        methods: [slice_thresholds, threshold_optimizer, reweighting, exponentiated_gradient]
        metric: false_negative_rate # the gap to close: false_negative_rate, false_positive_rate, selection_rate
        sensitive: sex              # the column it is closed for (default: the first)
      intended_use: "..."           # the model card's intended use (default: the spec's description)
      limitations: ["..."]          # added to the model card's limitations

Every mistake names its field, e.g. ``fairness.sensitive[1]``.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.spec._checks import expect, mapping, positive_int

__all__ = ["parse_fairness"]

_FIELDS = ("sensitive", "intersections", "min_rows", "confidence", "thresholds", "mitigation", "intended_use",
           "limitations")


def _number(value: Any, where: str) -> float:
    expect(isinstance(value, (int, float)) and not isinstance(value, bool) and value == value, where,
           f"expected a number, got {value!r}")
    return float(value)


def _thresholds(raw: Any, task: str) -> dict[str, dict[str, float]]:
    from mlpatterns.responsible.fairness_lens.thresholds import (
        DATA_THRESHOLDS,
        model_threshold_names,
    )

    section = mapping(raw, "fairness.thresholds", ("data", "model"))
    allowed = {"data": DATA_THRESHOLDS[task], "model": model_threshold_names(task)}
    parsed = {}
    for stage in ("data", "model"):
        where = f"fairness.thresholds.{stage}"
        limits = mapping(section.get(stage) or {}, where)
        for name, value in limits.items():
            expect(name in allowed[stage], f"{where}.{name}",
                   f"unknown threshold for a {task} target; expected one of {list(allowed[stage])}")
            limits[name] = _number(value, f"{where}.{name}")
            if name.endswith(("_ratio", "min_share")):
                expect(0 <= limits[name] <= 1, f"{where}.{name}", f"expected a ratio between 0 and 1, got {value!r}")
            else:
                expect(limits[name] >= 0, f"{where}.{name}", f"expected a difference of at least 0, got {value!r}")
        parsed[stage] = limits
    return parsed


def _mitigation(raw: Any, task: str, sensitive: list[str]) -> dict[str, Any]:
    from mlpatterns.responsible.fairness_lens.mitigation import EQUALIZED_METRICS, MITIGATIONS

    where = "fairness.mitigation"
    expect(task == "classification", where, f"mitigations apply to a classification target, not to a {task} one")
    section = {"methods": raw} if isinstance(raw, (list, str)) else mapping(raw, where, ("methods", "metric",
                                                                                          "sensitive"))
    methods = section.get("methods", list(MITIGATIONS))
    if isinstance(methods, str):
        methods = [methods]
    expect(isinstance(methods, list) and methods, f"{where}.methods", f"expected a list of methods, got {methods!r}")
    for i, method in enumerate(methods):
        expect(method in MITIGATIONS, f"{where}.methods[{i}]", f"expected one of {list(MITIGATIONS)}, got {method!r}")
    expect(len(set(methods)) == len(methods), f"{where}.methods", f"a method is named twice in {methods}")
    metric = section.get("metric", "false_negative_rate")
    expect(metric in EQUALIZED_METRICS, f"{where}.metric", f"expected one of {list(EQUALIZED_METRICS)}, got {metric!r}")
    column = section.get("sensitive", sensitive[0])
    expect(column in sensitive, f"{where}.sensitive", f"expected one of fairness.sensitive {sensitive}, got {column!r}")
    return {"methods": list(methods), "metric": metric, "sensitive": column}


def parse_fairness(raw: Any, target: dict[str, Any], features: dict[str, Any]) -> dict[str, Any]:
    """Check the ``fairness:`` section against the parsed target; every mistake names its field.

    Parameters
    ----------
    raw : Any
        The section as read from YAML.
    target : dict
        The parsed ``target:`` section (its ``task`` and ``column``).
    features : dict
        The parsed ``features:`` section (sensitive columns need not be among them).

    Returns
    -------
    dict
        The section with its defaults: ``sensitive``, ``intersections``, ``min_rows``,
        ``confidence``, ``thresholds`` (``data`` and ``model``), ``mitigation`` (or None),
        ``intended_use`` (or None), ``limitations``.
    """
    section = mapping(raw, "fairness", _FIELDS)
    task = target.get("task")
    expect(task in ("classification", "regression"), "fairness",
           f"the Fairness Lens measures a classification or regression target, not a {task} one")
    expect(not target.get("neutral"), "fairness",
           "the Fairness Lens measures binary decisions; a target with a neutral class (target.neutral) is served "
           "as three classes: leave out one of the two sections")
    expect("sensitive" in section, "fairness.sensitive", "missing: the sensitive column(s) to slice by, e.g. [sex]")
    sensitive = section["sensitive"]
    if isinstance(sensitive, str):
        sensitive = [sensitive]
    expect(isinstance(sensitive, list) and sensitive, "fairness.sensitive",
           f"expected a column name or a list of column names, got {sensitive!r}")
    for i, column in enumerate(sensitive):
        expect(isinstance(column, str) and column.strip() != "", f"fairness.sensitive[{i}]",
               f"expected a column name, got {column!r}")
        expect(column not in target.get("columns", [target.get("column")]), f"fairness.sensitive[{i}]",
               f"{column!r} is the target; a sensitive column slices the rows, it is not what is predicted")
        expect(column not in sensitive[:i], f"fairness.sensitive[{i}]", f"{column!r} is named twice")
    intersections = section.get("intersections", False)
    expect(isinstance(intersections, bool), "fairness.intersections", f"expected true or false, got {intersections!r}")
    min_rows = section.get("min_rows", 30)
    positive_int(min_rows, "fairness.min_rows")
    confidence = _number(section.get("confidence", 0.95), "fairness.confidence")
    expect(0.5 <= confidence < 1, "fairness.confidence", f"expected a level between 0.5 and 1, got {confidence!r}")
    intended_use = section.get("intended_use")
    expect(intended_use is None or (isinstance(intended_use, str) and intended_use.strip() != ""),
           "fairness.intended_use", f"expected a sentence, got {intended_use!r}")
    limitations = section.get("limitations", [])
    if isinstance(limitations, str):
        limitations = [limitations]
    expect(isinstance(limitations, list) and all(isinstance(x, str) for x in limitations), "fairness.limitations",
           f"expected a list of sentences, got {limitations!r}")
    return {"sensitive": list(sensitive), "intersections": intersections, "min_rows": min_rows,
            "confidence": confidence, "thresholds": _thresholds(section.get("thresholds") or {}, task),
            "mitigation": _mitigation(section["mitigation"], task, sensitive) if section.get("mitigation") else None,
            "intended_use": intended_use, "limitations": list(limitations)}
