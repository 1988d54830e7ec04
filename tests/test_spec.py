"""A wrong spec gets a message that names the field and what was expected."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest

from mlpatterns.spec import SpecError, load_spec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

VALID = {
    "name": "t",
    "data": {"dataset": "flights"},
    "target": {"column": "arr_delay", "positive_when": {"greater_than": 30}},
    "keys": ["flight"],
    "split": {"key": "date"},
    "features": {"numeric": ["distance"], "categorical": {"carrier": 16}},
    "models": {"gbm": {"type": "gradient_boosting"}},
}


def with_change(path: str, value):
    spec = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = spec
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return spec


def test_valid_spec_parses_with_defaults():
    spec = parse_spec(VALID)
    assert spec.task == "classification"
    assert spec.split["key"] == ["date"]
    assert spec.split["fractions"] == {"train": 0.8, "valid": 0.1, "test": 0.1}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("target.column", KeyError, "target: missing field 'column'"),
        ("target.task", "clustering", "target.task: expected one of"),
        ("split.fractions", {"train": 0.8, "valid": 0.1, "test": 0.2}, "split.fractions: the fractions must add up to 1"),
        ("split.fractions", {"train": 0.8, "test": 0.2}, "split.fractions: expected train, valid and test"),
        ("features.categorical", {"carrier": 0}, "features.categorical.carrier: expected a positive bucket count"),
        ("features.crosses", [{"columns": ["a"], "buckets": 4}], r"features.crosses\[0\].columns: expected 2 to 4"),
        ("models.gbm.type", "svm", "models.gbm.type: expected one of"),
        ("data", {"dataset": "nope"}, "data.dataset: expected one of"),
        ("data", {"dataset": "flights", "path": "x.csv"}, "data: expected exactly one of"),
        ("features.colour", ["x"], r"features: unknown field\(s\) \['colour'\]"),
        ("name", "", "name: expected a non-empty string"),
        ("target.reframe", {"buckets": 10}, "target.reframe: reframes a regression target"),
    ],
)
def test_errors_name_the_field(path, value, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(with_change(path, value))


def test_unknown_top_level_field():
    with pytest.raises(SpecError, match=r"spec: unknown field\(s\) \['modles'\]"):
        parse_spec({**VALID, "modles": {}})


def test_columns_are_checked_against_the_data():
    spec = parse_spec(with_change("features.categorical", {"carrer": 16}))
    dtypes = pd.DataFrame({"arr_delay": [1.0], "flight": [1], "date": ["d"], "distance": [1.0], "carrier": ["x"]}).dtypes
    with pytest.raises(SpecError, match="features.categorical.carrer: unknown column 'carrer'"):
        spec.check_columns(dtypes.to_dict())


def test_numeric_feature_must_be_numeric():
    spec = parse_spec(VALID)
    dtypes = pd.DataFrame({"arr_delay": [1.0], "flight": [1], "date": ["d"], "distance": ["far"], "carrier": ["x"]}).dtypes
    with pytest.raises(SpecError, match="features.numeric.distance: expected a numeric column"):
        spec.check_columns(dtypes.to_dict())


def test_bad_yaml_is_reported_with_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="bad.yaml: not valid YAML"):
        load_spec(path)


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="no such spec file"):
        load_spec(tmp_path / "none.yaml")


def test_example_specs_are_valid():
    specs = sorted(EXAMPLES.glob("*.yaml"))
    assert len(specs) >= 6
    for path in specs:
        assert load_spec(path).models


def test_baseline_columns_are_checked_against_the_data():
    spec = parse_spec({**VALID, "baseline": {"levels": [["carrier", "orign"]]}})
    dtypes = pd.DataFrame({"arr_delay": [1.0], "flight": [1], "date": ["d"], "distance": [1.0], "carrier": ["x"]}).dtypes
    with pytest.raises(SpecError, match=r"baseline.levels\[0\]: unknown column 'orign'"):
        spec.check_columns(dtypes.to_dict())


def test_reframe_fields_are_checked():
    spec = {**VALID, "target": {"column": "arr_delay", "task": "regression", "reframe": {"buckets": 1}}}
    with pytest.raises(SpecError, match="target.reframe.buckets: expected a whole number"):
        parse_spec(spec)
    spec["target"]["reframe"] = {"quantiles": [0.1, 1.5]}
    with pytest.raises(SpecError, match="target.reframe.quantiles: expected numbers between 0 and 1"):
        parse_spec(spec)
    spec["target"]["reframe"] = {}
    assert parse_spec(spec).target["reframe"] == {"buckets": 20, "strategy": "quantile", "quantiles": [0.1, 0.5, 0.9]}


REGRESSION = {**VALID, "target": {"column": "arr_delay", "task": "regression"}}
MULTILABEL = {**VALID, "target": {"columns": ["Action", "Comedy"]}}
NEUTRAL = {**VALID, "target": {"column": "arr_delay", "positive_when": {"greater_than": 30},
                               "neutral": {"band": [20, 40]}}}


def _with_model(base: dict, model: dict) -> dict:
    return {**copy.deepcopy(base), "models": {"m": model}}


def test_multilabel_target_parses_and_checks_its_columns():
    spec = parse_spec(MULTILABEL)
    assert spec.task == "multilabel" and spec.label_columns == ["Action", "Comedy"]
    dtypes = pd.DataFrame({"Action": [1], "Comedy": ["no"], "flight": [1], "date": ["d"], "distance": [1.0],
                           "carrier": ["x"]}).dtypes
    with pytest.raises(SpecError, match=r"target.columns\[1\]: expected a numeric column"):
        spec.check_columns(dtypes.to_dict())


def test_neutral_band_parses():
    spec = parse_spec(NEUTRAL)
    assert spec.target["neutral"] == {"band": [20, 40]}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**VALID, "target": {"columns": ["a"]}}, "target.columns: expected at least two distinct label columns"),
        ({**VALID, "target": {"columns": ["a", "a"]}}, "target.columns: expected at least two distinct"),
        ({**VALID, "target": {"columns": ["a", "b"], "column": "c"}}, "target: expected 'column'"),
        ({**VALID, "target": {"columns": ["a", "b"], "task": "regression"}}, "target.task: label 'columns' make"),
        ({**VALID, "target": {"columns": ["a", "b"], "positive_when": {"greater_than": 1}}},
         "target.positive_when: does not apply to a multilabel target"),
        ({**VALID, "target": {"column": "a", "task": "multilabel"}}, "target.task: a multilabel task takes"),
        ({**VALID, "target": {"column": "a", "task": "regression", "neutral": {"band": [1, 2]}}},
         "target.neutral: applies to a classification target"),
        ({**VALID, "target": {**NEUTRAL["target"], "neutral": {"band": [40, 20]}}},
         "target.neutral.band: expected \\[low, high\\]"),
        ({**VALID, "target": {**NEUTRAL["target"], "neutral": {"band": [35, 40]}}},
         "target.neutral.band: expected a band around the positive_when cut 30"),
        ({**VALID, "target": {**NEUTRAL["target"], "neutral": {"band": [20, 40], "column": "x"}}},
         "target.neutral: expected 'band"),
        ({**VALID, "target": {"column": "a", "task": "classification", "positive_label": "x",
                               "neutral": {"band": [1, 2]}}},
         "target.neutral.band: a band of the target column needs 'positive_when'"),
    ],
)
def test_target_errors_name_the_field(spec, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(spec)


@pytest.mark.parametrize(
    ("base", "model", "message"),
    [
        (REGRESSION, {"type": "stacking", "members": {"a": {"type": "linear"}}},
         "models.m.members: expected at least two members"),
        (REGRESSION, {"type": "stacking", "members": {"a": {"type": "linear"}, "b": {"type": "svm"}}},
         "models.m.members.b.type: expected one of"),
        (REGRESSION, {"type": "stacking", "members": {"a__x": {"type": "linear"}, "b": {"type": "linear"}}},
         "models.m.members.a__x: a member name cannot contain"),
        (REGRESSION, {"type": "stacking", "members": {"a": {"type": "linear"}, "b": {"type": "linear"}},
                      "n_splits": 1}, "models.m.n_splits: expected a whole number of at least 2"),
        (VALID, {"type": "cascade"}, "models.m: a cascade routes a regression target"),
        (REGRESSION, {"type": "cascade", "extreme_above": "high"}, "models.m.extreme_above: expected the target"),
        (REGRESSION, {"type": "cascade", "router": {"type": "cascade"}}, "models.m.router.type: expected one of"),
        (REGRESSION, {"type": "gradient_boosting", "members": {}}, "models.m.members: only applies to a stacking"),
        (REGRESSION, {"type": "anomaly_detector"}, "models.m: an anomaly detector scores a rare class"),
        (MULTILABEL, {"type": "stacking", "members": {"a": {"type": "linear"}, "b": {"type": "linear"}}},
         "models.m: a stack predicts a binary class or a value"),
        (MULTILABEL, {"type": "anomaly_detector"}, "models.m: an anomaly detector scores a rare class"),
        (MULTILABEL, {"type": "cascade"}, "models.m: a cascade routes a regression target"),
        (REGRESSION, {"type": "gradient_boosting", "rebalance": {"method": "downsample"}},
         "models.m.rebalance: applies to a binary classification target"),
        (VALID, {"type": "gradient_boosting", "rebalance": {"method": "output_bias"}},
         "models.m.rebalance.method: expected one of .* for a gradient_boosting model"),
        (VALID, {"type": "wide_and_deep", "rebalance": {"method": "smote"}},
         "models.m.rebalance.method: expected one of .* for a wide_and_deep model"),
        (VALID, {"type": "gradient_boosting", "rebalance": {"method": "downsample", "sampling_strategy": 2}},
         "models.m.rebalance.sampling_strategy: expected the minority/majority ratio"),
        (VALID, {"type": "gradient_boosting", "rebalance": {"method": "downsampled_ensemble", "n_estimators": 0}},
         "models.m.rebalance.n_estimators: expected a whole number of at least 1"),
        (VALID, {"type": "gradient_boosting", "rebalance": {"method": "downsample", "ratio": 1}},
         r"models.m.rebalance: unknown field\(s\) \['ratio'\]"),
        (VALID, {"type": "gradient_boosting", "threshold": 1.5}, r"models.m.threshold: expected a number in \(0, 1\)"),
        (VALID, {"type": "gradient_boosting", "threshold": {"strategy": "youden"}},
         "models.m.threshold: expected a number, 'strategy: f1' or 'min_precision: P'"),
        (VALID, {"type": "gradient_boosting", "threshold": {"min_precision": 0}},
         r"models.m.threshold.min_precision: expected a number in \(0, 1\)"),
        (MULTILABEL, {"type": "gradient_boosting", "threshold": {"min_precision": 0.5}},
         "models.m.threshold.min_precision: applies to a binary target"),
        (REGRESSION, {"type": "gradient_boosting", "threshold": 0.3},
         "models.m.threshold: applies to a binary or multilabel classification target"),
        (NEUTRAL, {"type": "gradient_boosting", "threshold": 0.3},
         "models.m.threshold: applies to a binary or multilabel"),
        ({**REGRESSION, "target": {**REGRESSION["target"], "reframe": {}}}, {"type": "random_forest"},
         "models.m.type: a reframed target takes a gradient_boosting or wide_and_deep model"),
    ],
)
def test_model_errors_name_the_field(base, model, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(_with_model(base, model))


def test_problem_models_parse_with_defaults():
    stack = parse_spec(_with_model(REGRESSION, {"type": "stacking", "members": {
        "a": {"type": "linear"}, "b": {"type": "wide_and_deep", "params": {"epochs": 2}}}}))
    assert stack.models["m"]["n_splits"] == 5 and stack.models["m"]["members"]["a"]["params"] == {}
    cascade = parse_spec(_with_model(REGRESSION, {"type": "cascade", "extreme_above": 60}))
    assert cascade.models["m"]["n_splits"] == 5
    moved = parse_spec(_with_model(VALID, {"type": "wide_and_deep", "threshold": {"min_precision": 0.4},
                                           "rebalance": {"method": "output_bias"}}))
    assert moved.models["m"]["threshold"] == {"min_precision": 0.4}
