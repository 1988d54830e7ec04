"""Two-Phase Predictions (19) from the spec: ``two_phase:`` is checked at load, ``mlpatterns run`` writes
``<output.dir>/two_phase`` and :meth:`TwoPhaseModel.from_run` routes over HTTP as the components do by hand.

Two small natality runs (5 % of the births, 30 boosting rounds, 6 phase-1 epochs): a regression
whose coarse question is ``weight_pounds < 5.5``, and a binary target (the same cut) whose coarse
question is its positive class.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import yaml

from mlpatterns.bundles import read_bundle
from mlpatterns.lifecycle import run_spec
from mlpatterns.serving import ServingFunction
from mlpatterns.serving.http import create_app
from mlpatterns.serving.two_phase_predictions import HttpPhaseTwo, TwoPhaseModel, read_two_phase
from mlpatterns.spec import SpecError, load_spec, parse_spec
from mlpatterns.spec.two_phase import DEFAULTS
from mlpatterns.testing.load_generator import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "spec.md"
EXAMPLE = ROOT / "examples" / "natality_two_phase.yaml"


def _spec(target=None, models=None, **two_phase):
    raw = {"name": "t", "data": {"path": "t.csv"}, "target": target or {"column": "y"}, "split": {"key": "k"},
           "features": {"numeric": ["a"]}, "models": models or {"m": {"type": "gradient_boosting"}},
           "two_phase": two_phase}
    return parse_spec(raw, check_params=False)


# -- the section, at load ---------------------------------------------------------------------------
def test_a_section_gets_its_defaults():
    section = _spec(features=["a", "b"], coarse={"less_than": 5.5}).two_phase
    assert section == {"model": "m", "features": ["a", "b"], "coarse": {"column": "y", "less_than": 5.5},
                       **DEFAULTS}
    binary = _spec(target={"column": "y", "positive_when": {"less_than": 5.5}}, features="a").two_phase
    assert binary["coarse"] is None and binary["features"] == ["a"]  # the target's positive class
    classes = _spec(target={"column": "c", "task": "multiclass"}, features=["a"], quantize="static", negative="n",
                    coarse={"in": ["low", "very_low"]}, hidden_units=[], models={"x": {"type": "linear"},
                                                                                  "y": {"type": "linear"}},
                    model="y").two_phase
    assert classes["coarse"] == {"column": "c", "in": ["low", "very_low"]} and classes["model"] == "y"
    assert _spec(features=["a"], coarse={"column": "y", "less_than": 5}).two_phase  # no two_phase: none
    assert parse_spec({**yaml.safe_load(EXAMPLE.read_text())}, check_params=False).two_phase["recall"] == 0.95


@pytest.mark.parametrize("changes, message", [
    ({"features": ["a"], "coarse": {"less_than": 1}, "colour": 1}, r"two_phase: unknown field\(s\) \['colour'\]"),
    ({"coarse": {"less_than": 1}}, "two_phase: missing field 'features'"),
    ({"features": 3, "coarse": {"less_than": 1}}, "two_phase.features: expected a column name or a list"),
    ({"features": ["a", "a"], "coarse": {"less_than": 1}}, "two_phase.features: expected at least one column, each once"),
    ({"features": ["a"]}, "two_phase.coarse: required for a regression target"),
    ({"features": ["a"], "coarse": {"less_than": 1, "at_most": 2}}, "two_phase.coarse: expected exactly one of"),
    ({"features": ["a"], "coarse": {"column": "y"}}, "two_phase.coarse: expected exactly one of"),
    ({"features": ["a"], "coarse": {"less_than": "x"}}, "two_phase.coarse.less_than: expected a number"),
    ({"features": ["a"], "coarse": {"in": []}}, "two_phase.coarse.in: expected a list of the values"),
    ({"features": ["a"], "coarse": {"below": 1}}, r"two_phase.coarse: unknown field\(s\) \['below'\]"),
    ({"features": ["a"], "coarse": {"column": 4, "less_than": 1}}, "two_phase.coarse.column: expected a column name"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "model": "z"}, r"two_phase.model: expected one of the spec's"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "recall": 0}, r"two_phase.recall: expected .* \(0, 1\]"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "recall": True}, "two_phase.recall"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "hidden_units": [0]}, "two_phase.hidden_units"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "hidden_units": 16}, "two_phase.hidden_units"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "epochs": 0}, "two_phase.epochs: expected a whole number"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "quantize": "yes"}, "two_phase.quantize: expected true"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "quantize": 1}, "two_phase.quantize"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "negative": "light"}, "two_phase.negative: a regression"),
    ({"features": ["a"], "coarse": {"less_than": 1}, "negative": [1]}, "two_phase.negative: expected the answer"),
])
def test_a_bad_field_is_named_with_what_was_expected(changes, message):
    with pytest.raises(SpecError, match=message):
        _spec(**changes)


def test_targets_without_one_prediction_per_row_are_refused():
    with pytest.raises(SpecError, match="two_phase: applies to .* not to a multilabel one"):
        _spec(target={"columns": ["p", "q"]}, features=["a"], coarse={"column": "a", "less_than": 1})
    neutral = {"column": "y", "positive_when": {"less_than": 5.5}, "neutral": {"band": [5, 6]}}
    with pytest.raises(SpecError, match="not to a neutral-class one"):
        _spec(target=neutral, features=["a"])
    with pytest.raises(SpecError, match="two_phase.negative: a binary model predicts 0 or 1"):
        _spec(target={"column": "y", "positive_when": {"less_than": 5.5}}, features=["a"], negative=2)
    with pytest.raises(SpecError, match="two_phase.negative: a binary model predicts 0 or 1"):
        _spec(target={"column": "y", "positive_when": {"less_than": 5.5}}, features=["a"], negative=True)
    with pytest.raises(SpecError, match="two_phase: expected a mapping"):
        parse_spec({"name": "t", "data": {"path": "t.csv"}, "target": {"column": "y"}, "split": {"key": "k"},
                    "features": {"numeric": ["a"]}, "models": {"m": {"type": "linear"}}, "two_phase": [1]},
                   check_params=False)


def test_every_field_and_default_is_documented():
    doc = DOC.read_text()
    start = doc.index("## `two_phase`")
    section = doc[start:doc.index("\n## ", start + 1)]
    fields = ("model", "features", "coarse", "recall", "negative", "hidden_units", "epochs", "quantize", "column",
              "in", "greater_than", "at_least", "less_than", "at_most", "equals")
    assert [f for f in fields if f"`{f}`" not in section] == []
    for field, value in DEFAULTS.items():
        shown = {True: "true", False: "false"}.get(value, value) if not isinstance(value, list) else \
            "[" + ", ".join(map(str, value)) + "]"
        row = next(line for line in section.splitlines() if line.startswith(f"| `{field}` |"))
        assert f"`{shown}`" in row, (field, row)
    assert "TwoPhaseModel.from_run" in section and "two_phase.json" in section


def test_the_coarse_question_of_classes_numbers_and_a_binary_target():
    from mlpatterns.lifecycle.two_phase_step import coarse_truth

    frame = pd.DataFrame({"c": ["low", "normal", "very_low", "normal"], "n": [1, 2, 3, 4], "w": [5.0, None, 6, 4],
                          "b": [True, False, True, False]})
    classes = _spec(target={"column": "c", "task": "multiclass"}, features=["n"], coarse={"in": ["low", "very_low"]})
    assert coarse_truth(classes, frame, None).tolist() == [True, False, True, False]
    cases = [({"column": "n", "in": [1, 4]}, [True, False, False, True]),  # compared as text: 1 is "1"
             ({"column": "w", "less_than": 5.5}, [True, False, False, True]),  # a missing value: not worth a look
             ({"column": "w", "at_least": 5}, [True, False, True, False]),
             ({"column": "b", "equals": True}, [True, False, True, False]),
             ({"column": "c", "equals": "normal"}, [False, True, False, True])]
    for coarse, expected in cases:
        assert coarse_truth(_spec(features=["n"], coarse=coarse), frame, None).tolist() == expected, coarse
    binary = _spec(target={"column": "y", "positive_when": {"less_than": 1}}, features=["n"])
    assert coarse_truth(binary, frame, np.array([1.0, 0, 0, 1])).tolist() == [True, False, False, True]
    for coarse, message in (({"column": "z", "less_than": 1}, "two_phase.coarse.column: unknown column 'z'"),
                            ({"column": "c", "less_than": 1}, "two_phase.coarse.column: a comparison needs a numeric"),
                            ({"column": "c", "in": ["high"]}, r"two_phase.coarse: none of \['high'\] occurs in 'c'")):
        with pytest.raises(SpecError, match=message):
            coarse_truth(_spec(features=["n"], coarse=coarse), frame, None)


# -- mlpatterns run -------------------------------------------------------------------------------
def _write(folder: Path, **changes) -> Path:
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["data"]["sample_fraction"] = 0.05
    raw["models"]["gradient_boosting"]["params"] = {"max_iter": 30, "learning_rate": 0.1}
    raw["two_phase"].update(hidden_units=[8], epochs=6)
    raw["output"]["dir"] = str(folder / "run")
    for key, value in changes.items():
        raw[key] = value
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run(path: Path, log=None):
    return run_spec(load_spec(path), log=log or (lambda *a, **k: None))


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_phase_regression")
    path = _write(folder)
    said = []
    return path, _run(path, log=said.append), said


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_phase_binary")
    raw = yaml.safe_load(_write(folder).read_text())
    raw["target"] = {"column": "weight_pounds", "positive_when": {"less_than": 5.5}}
    raw["two_phase"].pop("coarse")  # the target's positive class
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, _run(path)


def test_the_run_writes_the_two_phase_folder_and_reports_it(regression):
    path, run, said = regression
    folder = run.output_dir / "two_phase"
    assert sorted(p.name for p in folder.iterdir()) == ["phase_one.onnx", "tradeoff.png", "two_phase.json"]
    assert (folder / "tradeoff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    described, model = read_two_phase(folder)
    assert described["columns"] == ["is_male", "mother_age", "gestation_weeks"]
    assert described["coarse"] == {"column": "weight_pounds", "less_than": 5.5} and described["keys"] == ["row_id"]
    assert described["phase_two"]["model"] == "gradient_boosting"
    assert described["phase_two"]["manifest_sha256"] == read_bundle(run.bundles["gradient_boosting"]).manifest[
        "manifest_sha256"]
    assert 0 < described["threshold"] < 1 and described["recall_target"] == 0.95
    assert described["test"]["valid_recall"] >= 0.95  # met where it was chosen
    assert model.startswith(b"\x08\x08\x12\ronnx.quantize")  # int8 (an 8-unit layer: no smaller than float32)
    assert described["sizes"]["phase_one_kb"] == round(len(model) / 1024, 2)
    test = described["test"]
    assert test["rows"] == run.rows["test"] and 0 <= test["calls_spared"] < 1
    assert test["phase_two_calls"] == round((1 - test["calls_spared"]) * test["rows"])
    # rows answered without a call get the mean weight of the births not at risk: a little worse than phase 2
    assert test["phase_two_alone"]["mae"] <= test["combined"]["mae"] < test["phase_two_alone"]["mae"] + 0.1
    assert 7 < described["negative"] < 8
    assert set(described["latency"]) >= {"phase_one_us_per_row", "phase_two_in_process_ms_per_row"}
    report = json.loads((run.output_dir / "report.json").read_text())
    assert report["two_phase"]["threshold"] == described["threshold"] == run.two_phase["threshold"]
    assert report["steps"]["two_phase"] == "ran"
    assert any(line.startswith("two-phase: phase 1") and "gradient_boosting" in line for line in said)


def test_an_unchanged_spec_takes_the_step_from_the_cache(regression):
    path, run, _ = regression
    folder = run.output_dir / "two_phase"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    again = _run(path)
    assert again.steps["two_phase"] == "cached" and again.steps["train.gradient_boosting"] == "cached"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_bad_column_is_refused_by_name_and_leaves_the_folder(regression):
    path, run, _ = regression
    folder = run.output_dir / "two_phase"
    before = (folder / "two_phase.json").read_bytes()
    raw = yaml.safe_load(path.read_text())
    for features, message in ((["mother_age", "plurality"], r"two_phase.features\[1\]: phase 1 reads numbers"),
                              (["mother_race"], r"two_phase.features\[0\]: 'mother_race' has .* missing"),
                              (["nope"], r"two_phase.features\[0\]: unknown column 'nope'")):
        changed = copy.deepcopy(raw)
        changed["two_phase"]["features"] = features
        path.with_name("bad.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
        with pytest.raises(SpecError, match=message):
            _run(path.with_name("bad.yaml"))
    changed = copy.deepcopy(raw)
    changed["two_phase"]["coarse"] = {"column": "weight_pounds", "greater_than": 100}
    path.with_name("bad.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    with pytest.raises(SpecError, match=r"two_phase.coarse: 0 of the .* train rows are worth a closer look"):
        _run(path.with_name("bad.yaml"))
    assert (folder / "two_phase.json").read_bytes() == before


# -- TwoPhaseModel.from_run -------------------------------------------------------------------------
class CountingServing(ServingFunction):
    """The served bundle, recording on the server side the keys of every request it scores."""

    def __init__(self, bundle):
        super().__init__(bundle)
        self.requests: list[list] = []

    def predict_conformed(self, raw, conformed, **kwargs):
        self.requests.append(raw["row_id"].tolist())
        return super().predict_conformed(raw, conformed, **kwargs)


@pytest.fixture()
def served(binary):
    """The binary run's bundle behind ``create_app`` under uvicorn on a free loopback port."""
    _, run = binary
    serving = CountingServing(read_bundle(run.bundles["gradient_boosting"]))
    app = create_app({"low_weight": serving}, access_log=False, metrics=False)
    with serve_in_thread(app) as base:
        yield serving, base


def _by_hand(folder: Path, rows: pd.DataFrame, bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """Phase 1 through ONNX Runtime on the recorded columns, phase 2 through the bundle for the flagged rows."""
    described = json.loads((folder / "two_phase.json").read_text())
    session = ort.InferenceSession((folder / "phase_one.onnx").read_bytes(), providers=["CPUExecutionProvider"])
    scores = session.run(None, {"features": rows[described["columns"]].to_numpy(np.float32)})[0][:, 0]
    flagged = scores >= described["threshold"]
    answers = np.asarray([described["negative"]] * len(rows), dtype=object)
    answers[flagged] = ServingFunction.load(bundle).predict(rows[flagged])["prediction"].to_numpy(dtype=object)
    return flagged, answers


@pytest.mark.parametrize("protocol", ["rest", "v2"])
def test_from_run_routes_over_http_as_the_components_do_by_hand(binary, served, protocol):
    _, run = binary
    serving, url = served
    folder = run.output_dir / "two_phase"
    rows = pd.read_parquet(run.output_dir / "test.parquet")
    with HttpPhaseTwo(url, "low_weight", protocol=protocol, timeout=30) as client:
        model = TwoPhaseModel.from_run(folder, phase_two=client)
        result = model.predict(rows)
    flagged, answers = _by_hand(folder, rows, run.bundles["gradient_boosting"])
    assert 0 < flagged.sum() < len(rows)
    assert client.requests == 1 and serving.requests == [rows["row_id"][flagged].tolist()]
    assert result["row_id"].tolist() == rows["row_id"].tolist()
    assert result["phase_two_called"].tolist() == flagged.tolist()
    assert result["prediction"].tolist() == answers.tolist()
    assert (result["prediction"][~flagged] == 0).all()  # the negative class, without a call
    described = json.loads((folder / "two_phase.json").read_text())
    assert model.threshold == described["threshold"]
    assert described["coarse"] == {"column": "weight_pounds", "less_than": 5.5}  # the target's positive class
    sent = float(flagged.mean())
    assert sent == pytest.approx(1 - described["test"]["calls_spared"])  # the run measured these very rows
    offline = TwoPhaseModel.from_run(folder).predict(rows)  # phase 2: the run's own bundle, in process
    assert offline["prediction"].tolist() == result["prediction"].tolist()


def test_from_run_refuses_a_changed_model_or_bundle(regression, tmp_path):
    _, run, _ = regression
    copied = tmp_path / "run"
    shutil.copytree(run.output_dir / "two_phase", copied / "two_phase")
    shutil.copytree(run.output_dir / "bundles", copied / "bundles")
    assert TwoPhaseModel.from_run(copied / "two_phase", threshold=0.5).threshold == 0.5
    described = json.loads((copied / "two_phase" / "two_phase.json").read_text())
    described["phase_two"]["manifest_sha256"] = "0" * 64
    (copied / "two_phase" / "two_phase.json").write_text(json.dumps(described))
    with pytest.raises(ValueError, match="not the bundle the threshold was chosen with"):
        TwoPhaseModel.from_run(copied / "two_phase")
    model = copied / "two_phase" / "phase_one.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    with pytest.raises(ValueError, match=re.escape("its SHA-256 does not match")):
        TwoPhaseModel.from_run(copied / "two_phase")
    with pytest.raises(FileNotFoundError, match="no two_phase.json"):
        TwoPhaseModel.from_run(tmp_path)


def test_a_spec_without_the_section_removes_its_folder_and_a_rerun_restores_it(regression):
    path, run, _ = regression
    folder = run.output_dir / "two_phase"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    raw = yaml.safe_load(path.read_text())
    raw.pop("two_phase")
    path.with_name("without.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    said = []
    without = _run(path.with_name("without.yaml"), log=said.append)
    assert not folder.exists() and "two_phase" not in without.steps and without.two_phase == {}
    assert "removed the two_phase folder, which the spec no longer declares" in said
    again = _run(path)  # every step from the cache: the same folder, byte for byte
    assert again.steps["two_phase"] == "cached" and {p.name: p.read_bytes() for p in folder.iterdir()} == before
