"""The spec section of Two-Phase Predictions (19): ``two_phase:``.

::

    two_phase:                   # phase 2 is one of the spec's models; phase 1 is fitted here
      model: gradient_boosting   # which of the spec's models is phase 2; default: the first
      features: [is_male, mother_age, gestation_weeks]   # phase 1's numeric columns (required)
      coarse: {column: weight_pounds, less_than: 5.5}    # the rows worth a closer look; or
                                 # {column: C, in: [a, b]}; default (binary target): the positive class
      recall: 0.95               # phase 1's recall of those rows on the valid split picks the threshold
      negative: 7.5              # the answer of the rows phase 1 does not send; default: from train
      hidden_units: [16]         # phase 1's hidden layers ([] is a logistic regression)
      epochs: 30
      quantize: true             # int8 weights (true), also activations (static), or float32 (false)

Loading a spec checks these fields only; the columns are checked against the data when
the run's ``two_phase`` step reads it (:mod:`mlpatterns.lifecycle.two_phase_step`).
"""

from __future__ import annotations

from typing import Any

from mlpatterns.spec._checks import expect, mapping, positive_int, string_list

__all__ = ["COARSE_COMPARISONS", "DEFAULTS", "parse_two_phase"]

# as mlpatterns.spec.schema.COMPARISONS (target.positive_when), named here to keep this module's imports light
COARSE_COMPARISONS = ("greater_than", "at_least", "less_than", "at_most", "equals")
DEFAULTS = {"recall": 0.95, "hidden_units": [16], "epochs": 30, "quantize": True}


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_two_phase(raw: Any, models: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """``two_phase:``: phase 2's model, phase 1's features and network, the coarse question, the recall target."""
    section = mapping(raw, "two_phase", ("model", "features", "coarse", "recall", "negative", "hidden_units",
                                         "epochs", "quantize"))
    task = target["task"]
    expect(task in ("classification", "multiclass", "regression") and "neutral" not in target, "two_phase",
           f"applies to a binary classification, multiclass or regression target (one prediction per row), "
           f"not to a {'neutral-class' if 'neutral' in target else task} one")
    section.setdefault("model", next(iter(models)))
    expect(section["model"] in models, "two_phase.model",
           f"expected one of the spec's models {list(models)} (phase 2), got {section['model']!r}")
    expect("features" in section, "two_phase",
           "missing field 'features' (the numeric columns phase 1 reads on the device)")
    features = string_list(section["features"], "two_phase.features")
    expect(bool(features) and len(set(features)) == len(features), "two_phase.features",
           f"expected at least one column, each once, got {features!r}")
    section["features"] = features
    section["coarse"] = _parse_coarse(section.get("coarse"), target)
    recall = section.setdefault("recall", DEFAULTS["recall"])
    expect(_number(recall) and 0 < recall <= 1, "two_phase.recall",
           f"expected phase 1's recall of the rows worth a closer look, a number in (0, 1], got {recall!r}")
    if "negative" in section:
        negative = section["negative"]
        expect(_scalar(negative), "two_phase.negative",
               f"expected the answer of the rows phase 1 does not send (a class or a number), got {negative!r}")
        if task == "classification":
            expect(negative in (0, 1) and not isinstance(negative, (bool, float)), "two_phase.negative",
                   f"a binary model predicts 0 or 1; expected 0 or 1, got {negative!r}")
        if task == "regression":
            expect(_number(negative), "two_phase.negative", f"a regression predicts a number, got {negative!r}")
    hidden = section.setdefault("hidden_units", list(DEFAULTS["hidden_units"]))
    expect(isinstance(hidden, list) and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1
                                            for w in hidden), "two_phase.hidden_units",
           f"expected a list of layer widths (whole numbers of at least 1; [] for a logistic regression), "
           f"got {hidden!r}")
    positive_int(section.setdefault("epochs", DEFAULTS["epochs"]), "two_phase.epochs")
    quantize = section.setdefault("quantize", DEFAULTS["quantize"])
    expect(isinstance(quantize, bool) or quantize == "static", "two_phase.quantize",
           "expected true (int8 weights), 'static' (int8 weights and activations, "
           f"calibrated on training rows) or false (float32), got {quantize!r}")
    return section


def _parse_coarse(raw: Any, target: dict[str, Any]) -> dict[str, Any] | None:
    """The coarse question, as ``{column, <comparison>: value}`` or ``{column, in: [...]}``; None is the
    positive class of a binary target."""
    where = "two_phase.coarse"
    if raw is None:
        expect(target["task"] == "classification", where,
               f"required for a {target['task']} target: which rows are worth a closer look, e.g. "
               "{column: weight_pounds, less_than: 5.5} or {column: weight_class, in: [low, very_low]}")
        return None
    coarse = mapping(raw, where, ("column", "in", "greater_than", "at_least", "less_than", "at_most", "equals"))
    coarse.setdefault("column", target["column"])
    expect(isinstance(coarse["column"], str) and coarse["column"] != "", f"{where}.column",
           f"expected a column name, got {coarse['column']!r}")
    rules = [name for name in ("in", *COARSE_COMPARISONS) if name in coarse]
    expect(len(rules) == 1, where, f"expected exactly one of {['in', *COARSE_COMPARISONS]}, got {rules}")
    rule = rules[0]
    value = coarse[rule]
    if rule == "in":
        expect(isinstance(value, list) and bool(value) and all(_scalar(v) for v in value), f"{where}.in",
               f"expected a list of the values (classes) worth a closer look, got {value!r}")
    elif rule == "equals":
        expect(_scalar(value), f"{where}.equals", f"expected a value, got {value!r}")
    else:
        expect(_number(value), f"{where}.{rule}", f"expected a number, got {value!r}")
    return coarse
