"""The spec section of Explainable Predictions (29): ``explain:``.

::

    explain:                     # every model of a run is explained unless `explain: false`
      method: auto               # auto (TreeSHAP where the bundle is one tree ensemble, else
                                 # permutation), tree, or permutation
      baseline: mean             # mean: training mean (numbers), mode (categories), median (dates);
                                 # {row: 12}: the 13th test row; {values: {carrier: UA, dep_hour: 9}}:
                                 # chosen values, the training mean for the other columns
      rows: 200                  # test rows explained for the global importance
      background_rows: 100       # training rows: the integrated gradients' mean baseline (networks) and the
                                 # trees' covers (which interventional TreeSHAP does not read)
      permutations: 4            # permutation explainer: forward-and-backward permutations per row
      seed: 0                    # the permutations' seed
      tolerance: 1.0e-4          # completeness check: |served - (baseline + sum)| <= tolerance x max(1, |served|)

``explain: false`` turns the step off; ``explain: true`` or no section takes the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlpatterns.spec._checks import expect, mapping, positive_int

__all__ = ["DEFAULTS", "METHODS", "parse_explain"]

METHODS = ("auto", "tree", "permutation")  # as mlpatterns.responsible.explainable_predictions.bundle_explainer
DEFAULTS: dict[str, Any] = {"method": "auto", "baseline": "mean", "rows": 200, "background_rows": 100,
                            "permutations": 4, "seed": 0, "tolerance": 1e-4}
_FIELDS = tuple(DEFAULTS)


def _raw_columns(features: dict[str, Any]) -> list[str]:
    from mlpatterns.reproducibility.transform import FeatureTransform

    transform = FeatureTransform(numeric=features.get("numeric", []), categorical=features.get("categorical"),
                                 bucketize=features.get("bucketize"), crosses=features.get("crosses", []),
                                 date_parts=features.get("date_parts"), text=features.get("text"))
    return transform.input_columns


def _parse_baseline(raw: Any, columns: list[str]) -> Any:
    where = "explain.baseline"
    if raw == "mean":
        return "mean"
    expect(isinstance(raw, Mapping) and len(raw) == 1 and set(raw) <= {"row", "values"}, where,
           f"expected 'mean', {{row: <index in the test rows>}} or {{values: {{column: value}}}}, got {raw!r}")
    if "row" in raw:
        expect(isinstance(raw["row"], int) and not isinstance(raw["row"], bool) and raw["row"] >= 0,
               f"{where}.row", f"expected the index of a test row (0 or more), got {raw['row']!r}")
        return {"row": raw["row"]}
    values = mapping(raw["values"], f"{where}.values")
    expect(bool(values), f"{where}.values", "expected at least one column: value")
    for column, value in values.items():
        expect(column in columns, f"{where}.values.{column}",
               f"expected one of the model's raw input columns {columns}")
        expect(value is None or isinstance(value, (str, int, float, bool)), f"{where}.values.{column}",
               f"expected a number, text, boolean or null, got {type(value).__name__}")
    return {"values": values}


def parse_explain(raw: Any, target: dict[str, Any], features: dict[str, Any]) -> dict[str, Any]:
    """``explain:`` as a dict with every field filled in; ``{"enabled": False}`` for ``explain: false``."""
    if raw is False:
        return {"enabled": False}
    section = {} if raw is True else mapping(raw, "explain", _FIELDS)
    task = target.get("task")
    expect(task in ("classification", "regression"), "explain",
           f"attributions are given for binary classification and regression targets, not {task}; "
           "write `explain: false` or leave the section out")
    parsed = {**DEFAULTS, **section}
    expect(parsed["method"] in METHODS, "explain.method", f"expected one of {list(METHODS)}, got {parsed['method']!r}")
    parsed["baseline"] = _parse_baseline(parsed["baseline"], _raw_columns(features))
    for name in ("rows", "background_rows", "permutations"):
        positive_int(parsed[name], f"explain.{name}")
    expect(parsed["rows"] <= 100_000, "explain.rows", f"expected at most 100000 rows, got {parsed['rows']}")
    expect(parsed["permutations"] <= 1000, "explain.permutations",
           f"expected at most 1000 permutations, got {parsed['permutations']}")
    positive_int(parsed["seed"], "explain.seed", least=0)
    tolerance = parsed["tolerance"]
    expect(isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool) and 0 < tolerance < 1,
           "explain.tolerance", f"expected a number between 0 and 1 (relative to max(1, |served|)), got {tolerance!r}")
    parsed["tolerance"] = float(tolerance)
    return {"enabled": True, **parsed}
