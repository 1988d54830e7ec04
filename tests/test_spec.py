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
        ("features.categorical", {"carrier": 0}, "features.categorical.carrier: expected a positive number"),
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
    for name in ("flights", "natality"):
        assert load_spec(EXAMPLES / f"{name}.yaml").models


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
