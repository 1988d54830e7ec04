"""The spec's ``fairness:`` section (Fairness Lens, 30): its checks, and the steps of a run on an Adult sample."""

from __future__ import annotations

import copy

import pytest

from mlpatterns.spec import SpecError, parse_spec
from mlpatterns.spec.fairness_lens import parse_fairness

CLASSIFICATION = {"column": "income", "positive_label": ">50K", "task": "classification"}
REGRESSION = {"column": "weight_pounds", "task": "regression"}
FEATURES = {"numeric": ["age"], "categorical": ["relationship"]}


def test_defaults_are_filled_in():
    parsed = parse_fairness({"sensitive": "sex"}, CLASSIFICATION, FEATURES)
    assert parsed == {"sensitive": ["sex"], "intersections": False, "min_rows": 30, "confidence": 0.95,
                      "thresholds": {"data": {}, "model": {}}, "mitigation": None, "intended_use": None,
                      "limitations": []}
    full = parse_fairness({"sensitive": ["sex", "race"], "mitigation": ["reweighting"],
                           "thresholds": {"model": {"false_negative_rate_difference": 0.1,
                                                    "selection_rate_ratio": 0.8}}}, CLASSIFICATION, FEATURES)
    assert full["mitigation"] == {"methods": ["reweighting"], "metric": "false_negative_rate", "sensitive": "sex"}
    assert full["thresholds"]["model"] == {"false_negative_rate_difference": 0.1, "selection_rate_ratio": 0.8}


@pytest.mark.parametrize(("section", "target", "message"), [
    ({"sensitive": ["sex", 3]}, CLASSIFICATION, r"fairness.sensitive\[1\]: expected a column name, got 3"),
    ({"sensitive": ["sex", "sex"]}, CLASSIFICATION, r"fairness.sensitive\[1\]: 'sex' is named twice"),
    ({"sensitive": ["income"]}, CLASSIFICATION, r"fairness.sensitive\[0\]: 'income' is the target"),
    ({"sensitive": []}, CLASSIFICATION, "fairness.sensitive: expected a column name or a list"),
    ({"min_rows": 30}, CLASSIFICATION, "fairness.sensitive: missing"),
    ({"sensitive": "sex", "colour": 1}, CLASSIFICATION, r"fairness: unknown field\(s\) \['colour'\]"),
    ({"sensitive": "sex", "min_rows": 0}, CLASSIFICATION, "fairness.min_rows: expected a whole number of at least 1"),
    ({"sensitive": "sex", "confidence": 1.5}, CLASSIFICATION, "fairness.confidence: expected a level"),
    ({"sensitive": "sex", "thresholds": {"model": {"fnr_gap": 0.1}}}, CLASSIFICATION,
     "fairness.thresholds.model.fnr_gap: unknown threshold for a classification target"),
    ({"sensitive": "sex", "thresholds": {"model": {"mae_difference": 0.1}}}, CLASSIFICATION,
     "fairness.thresholds.model.mae_difference: unknown threshold"),
    ({"sensitive": "sex", "thresholds": {"model": {"selection_rate_ratio": 1.2}}}, CLASSIFICATION,
     "fairness.thresholds.model.selection_rate_ratio: expected a ratio between 0 and 1"),
    ({"sensitive": "sex", "thresholds": {"data": {"label_rate_difference": "big"}}}, CLASSIFICATION,
     "fairness.thresholds.data.label_rate_difference: expected a number, got 'big'"),
    ({"sensitive": "sex", "thresholds": {"later": {}}}, CLASSIFICATION, r"fairness.thresholds: unknown field"),
    ({"sensitive": "sex", "mitigation": ["threshold_optimizer"]}, CLASSIFICATION,
     r"fairness.mitigation.methods\[0\]: expected one of"),
    ({"sensitive": "sex", "mitigation": {"methods": ["reweighting"], "metric": "accuracy"}}, CLASSIFICATION,
     "fairness.mitigation.metric: expected one of"),
    ({"sensitive": "sex", "mitigation": {"sensitive": "race"}}, CLASSIFICATION,
     "fairness.mitigation.sensitive: expected one of fairness.sensitive"),
    ({"sensitive": "mother_race", "mitigation": ["reweighting"]}, REGRESSION,
     "fairness.mitigation: mitigations apply to a classification target"),
    ({"sensitive": "sex", "intended_use": ""}, CLASSIFICATION, "fairness.intended_use: expected a sentence"),
    ({"sensitive": "sex"}, {"columns": ["a", "b"], "task": "multilabel"}, "fairness: the Fairness Lens measures"),
])
def test_every_mistake_names_its_field(section, target, message):
    with pytest.raises(SpecError, match=message):
        parse_fairness(section, target, FEATURES)


def test_regression_thresholds_are_the_regression_metrics():
    parsed = parse_fairness({"sensitive": "mother_race", "thresholds": {"model": {"mae_difference": 0.2},
                                                                       "data": {"target_mean_difference": 1}}},
                            REGRESSION, FEATURES)
    assert parsed["thresholds"] == {"data": {"target_mean_difference": 1.0}, "model": {"mae_difference": 0.2}}


SPEC = {
    "name": "adult-fairness-test",
    "data": {"path": None},
    "target": {"column": "income", "positive_label": ">50K"},
    "keys": ["row_id"],
    "split": {"key": "row_id", "fractions": {"train": 0.7, "valid": 0.1, "test": 0.2}},
    "features": {"numeric": ["age", "education_num", "hours_per_week", "capital_gain"],
                 "categorical": ["relationship", "occupation"]},
    "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 40}}},
    "fairness": {"sensitive": ["sex", "race"], "min_rows": 30, "mitigation": ["slice_thresholds", "reweighting"],
                 "intended_use": "a test"},
}


def test_the_spec_carries_the_section_to_the_steps(tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["data"]["path"] = str(tmp_path / "adult.parquet")
    parsed = parse_spec(spec)
    assert parsed.fairness["sensitive"] == ["sex", "race"]
    assert parsed.fairness["mitigation"]["methods"] == ["slice_thresholds", "reweighting"]
    spec["fairness"]["thresholds"] = {"model": {"roc_auc_gap": 0.1}}
    with pytest.raises(SpecError, match="fairness.thresholds.model.roc_auc_gap"):
        parse_spec(spec)
