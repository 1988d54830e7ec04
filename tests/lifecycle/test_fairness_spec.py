"""The spec's ``fairness:`` section (Fairness Lens, 30): its checks, and the steps of a run on an Adult sample."""

from __future__ import annotations

import copy
import re

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
    ({"sensitive": "sex", "mitigation": ["calibrated_equalized_odds"]}, CLASSIFICATION,
     r"fairness.mitigation.methods\[0\]: expected one of"),
    ({"sensitive": "sex", "mitigation": {"methods": ["reweighting"], "metric": "accuracy"}}, CLASSIFICATION,
     "fairness.mitigation.metric: expected one of"),
    ({"sensitive": "sex", "mitigation": {"sensitive": "race"}}, CLASSIFICATION,
     "fairness.mitigation.sensitive: expected one of fairness.sensitive"),
    ({"sensitive": "mother_race", "mitigation": ["reweighting"]}, REGRESSION,
     "fairness.mitigation: mitigations apply to a classification target"),
    ({"sensitive": "sex", "intended_use": ""}, CLASSIFICATION, "fairness.intended_use: expected a sentence"),
    ({"sensitive": "sex"}, {"columns": ["a", "b"], "task": "multilabel"}, "fairness: the Fairness Lens measures"),
    ({"sensitive": "sex"}, {"column": "income", "task": "classification", "neutral": {"column": "agreement"}},
     r"fairness: the Fairness Lens measures binary decisions; a target with a neutral class \(target.neutral\)"),
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


# -- the steps, on the artifacts of a real run of an Adult sample --------------------------------------------------

def _artifacts(output_dir):
    """Each artifact of the run's cache by name (the Workflow Pipeline's record of the latest run of each step)."""
    import json

    cache = output_dir / "cache"
    found = {}
    for record in (cache / "latest").glob("*.json"):
        for output in json.loads(record.read_text())["outputs"].values():
            found[output["artifact"]] = cache / output["path"]
    return found


@pytest.fixture(scope="module")
def adult_run(tmp_path_factory):
    import yaml

    from mlpatterns.cli import main
    from mlpatterns.datasets import load_adult

    folder = tmp_path_factory.mktemp("adult-fairness")
    load_adult().sample(6000, random_state=0).to_parquet(folder / "adult.parquet", index=False)
    spec = copy.deepcopy(SPEC)
    spec["data"]["path"] = str(folder / "adult.parquet")
    spec["output"] = {"dir": str(folder / "run")}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(folder / "spec.yaml")]) == 0
    return folder, spec


def _state(spec, **fairness):
    from mlpatterns.lifecycle.pipeline import spec_state

    spec = copy.deepcopy(spec)
    spec["fairness"].update(fairness)
    return spec_state(parse_spec(spec))


def test_the_steps_measure_the_served_decisions_and_fail_on_a_crossed_threshold(adult_run, tmp_path):
    import json

    from mlpatterns.lifecycle.fairness_step import fairness, fairness_data
    from mlpatterns.responsible.fairness_lens import FairnessThresholdError

    folder, spec = adult_run
    artifacts = _artifacts(folder / "run")
    report = json.loads((folder / "run" / "report.json").read_text())
    inputs = {"table": artifacts["table"], "prepared": artifacts["prepared"], "bundle": artifacts["bundle.gbm"]}
    logged = []
    runtime = {"log": logged.append}
    fairness_data(inputs, {"fairness_data": tmp_path / "data"}, {"spec": _state(spec)}, runtime)
    balance = json.loads((tmp_path / "data" / "result.json").read_text())
    assert balance["split"] == "train" and balance["rows"] == report["rows"]["train"]
    assert {s["slice"] for s in balance["columns"]["sex"]["slices"]} == {"Female", "Male"}
    assert (tmp_path / "data" / "balance.png").stat().st_size > 1000

    fairness(inputs, {"fairness": tmp_path / "model"}, {"spec": _state(spec), "model": "gbm"}, runtime)
    result = json.loads((tmp_path / "model" / "result.json").read_text())
    # the decisions are the bundle's own served output: its recall and ROC AUC are the run's test metrics
    assert result["rows"] == report["rows"]["test"]
    assert 1 - result["overall"]["false_negative_rate"] == pytest.approx(report["metrics"]["gbm"]["recall"], abs=1e-9)
    assert result["overall"]["roc_auc"] == pytest.approx(report["metrics"]["gbm"]["roc_auc"], abs=1e-6)
    assert result["threshold"] == 0.5 and result["crossings"] == []
    methods = [row["method"] for row in result["mitigation"]["rows"]]
    assert methods == ["served_model", "slice_thresholds", "unweighted_reference", "reweighting"]
    assert result["mitigation"]["valid_scores"].startswith("the served model's")  # no trained model given
    assert sorted(p.name for p in (tmp_path / "model").glob("*.png")) == ["mitigation.png", "slices.png"]

    gap = result["columns"]["sex"]["gaps"]["selection_rate"]
    strict = _state(spec, thresholds={"data": {}, "model": {"selection_rate_difference": gap["difference"] / 2}})
    fairness(inputs, {"fairness": tmp_path / "strict"}, {"spec": strict, "model": "gbm"}, runtime)
    crossed = json.loads((tmp_path / "strict" / "result.json").read_text())["crossings"]  # the run fails on it
    (sex,) = [c for c in crossed if c["column"] == "sex"]
    assert sex["threshold"] == "selection_rate_difference"
    assert re.search(r"selection_rate_difference across 'sex' is .*'Female'.*'Male'.*the spec allows at most",
                     sex["message"])
    share = min(s["share"] for s in balance["columns"]["race"]["slices"] if not s["tiny"])
    data_limit = _state(spec, thresholds={"data": {"min_share": share * 1.5}, "model": {}})
    with pytest.raises(FairnessThresholdError, match=r"the train split crosses .* min_share across 'race'"):
        fairness_data(inputs, {"fairness_data": tmp_path / "data2"}, {"spec": data_limit}, runtime)


def test_a_run_whose_model_crosses_a_threshold_fails_after_writing_its_report(adult_run, tmp_path):
    """The slices, plots and mitigations are kept (the report is written) and nothing is registered."""
    import json

    import yaml

    from mlpatterns.cli import main
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.responsible.fairness_lens import FairnessThresholdError
    from mlpatterns.spec import load_spec

    folder, spec = adult_run
    strict = copy.deepcopy(spec)
    strict["fairness"]["thresholds"] = {"model": {"selection_rate_ratio": 0.99}}
    strict["register"] = {"name": "adult-fairness", "registry": f"sqlite:///{tmp_path / 'registry.db'}"}
    (tmp_path / "strict.yaml").write_text(yaml.safe_dump(strict))
    said = []
    with pytest.raises(FairnessThresholdError, match=r"the model 'gbm' on the test split crosses .* "
                                                     r"selection_rate_ratio across 'sex' is .*nothing was registered"):
        run_spec(load_spec(tmp_path / "strict.yaml"), log=lambda *a, **k: said.append(" ".join(map(str, a))))
    report = json.loads((folder / "run" / "report.json").read_text())
    assert report["fairness"]["models"]["gbm"]["crossings"] and "registered" not in report
    assert (folder / "run" / "report.html").is_file()
    assert "not registered: a fairness threshold is crossed (below)" in said
    assert main(["run", str(tmp_path / "strict.yaml")]) != 0  # again from the cache: still refused


def test_a_missing_sensitive_column_is_named(adult_run, tmp_path):
    from mlpatterns.lifecycle.fairness_step import fairness_data

    folder, spec = adult_run
    artifacts = _artifacts(folder / "run")
    state = _state(spec, sensitive=["sex", "religion"])
    with pytest.raises(SpecError, match=r"fairness.sensitive\[1\]: column 'religion' is not in the data"):
        fairness_data({"table": artifacts["table"], "prepared": artifacts["prepared"]},
                      {"fairness_data": tmp_path / "data"}, {"spec": state}, {"log": print})


# -- end to end: `mlpatterns run` on the example spec, a 10 % sample of Adult ---------------------------------------

@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    from pathlib import Path

    import yaml

    from mlpatterns.cli import main

    folder = tmp_path_factory.mktemp("adult-example")
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "examples" / "adult_fairness.yaml").read_text())
    spec["data"]["sample_fraction"] = 0.1  # whole rows by hash of row_id, the time split's column
    spec["models"]["gradient_boosting"]["params"]["max_iter"] = 60
    spec["fairness"]["mitigation"]["methods"] = ["slice_thresholds", "reweighting"]
    spec["fairness"]["thresholds"]["model"] = {"accuracy_difference": 0.3}  # a sample's gaps are wider
    spec["output"] = {"dir": str(folder / "run")}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(folder / "spec.yaml")]) == 0
    return folder, spec


def test_mlpatterns_run_publishes_the_lens_and_the_model_card(example_run):
    import json
    from pathlib import Path

    folder, _ = example_run
    report = json.loads((folder / "run" / "report.json").read_text())
    rows = report["rows"]
    assert rows["test"] / sum(rows.values()) == pytest.approx(16_281 / 48_842, abs=0.02)  # adult.test is the test
    assert report["metrics"]["gradient_boosting"]["positive_rate"] == pytest.approx(0.236, abs=0.03)
    data = report["fairness"]["data"]
    assert data["rows"] == rows["train"] and data["crossings"] == []
    model = report["fairness"]["models"]["gradient_boosting"]
    assert model["rows"] == rows["test"] and model["threshold"] == 0.5
    assert 1 - model["overall"]["false_negative_rate"] == pytest.approx(
        report["metrics"]["gradient_boosting"]["recall"], abs=1e-9)
    sex = {s["slice"]: s for s in model["columns"]["sex"]["slices"]}
    assert sex["Female"]["selection_rate"] < sex["Male"]["selection_rate"]
    assert [r["method"] for r in model["mitigation"]["rows"]][:2] == ["served_model", "slice_thresholds"]
    # the model was refit on train + valid: the slices' thresholds are chosen on its scores from before
    assert model["mitigation"]["valid_scores"] == ("the trained model's before any refit on train + valid "
                                                   "(out of sample)")
    for plots in (data["plots"], model["plots"]):
        for path in plots.values():
            assert Path(path).read_bytes()[:4] == b"\x89PNG"
    card = report["model_cards"]["gradient_boosting"]
    assert card["intended_use"].startswith("Teaching and auditing")
    assert {r["sensitive"] for r in card["metrics_by_slice"]} == {"sex", "race"}
    assert any("false negative rate differs" in line for line in card["limitations"])


def test_a_crossed_threshold_fails_the_run_with_its_message(example_run, capsys):
    import yaml

    from mlpatterns.cli import main

    folder, spec = example_run
    spec = copy.deepcopy(spec)
    spec["fairness"]["thresholds"]["model"]["selection_rate_ratio"] = 0.8  # the four-fifths rule
    (folder / "strict.yaml").write_text(yaml.safe_dump(spec))
    capsys.readouterr()
    assert main(["run", str(folder / "strict.yaml")]) == 2
    error = capsys.readouterr().err
    assert "mlpatterns run: error: Fairness Lens: the model 'gradient_boosting' on the test split crosses" in error
    assert "selection_rate_ratio across 'sex'" in error and "'Female'" in error and "at least 0.8" in error
