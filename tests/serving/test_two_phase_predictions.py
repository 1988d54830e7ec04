"""Two-Phase Predictions (19) on natality: an int8 phase 1 in process, a bundle served over HTTP as phase 2.

Phase 1 flags births at risk of a low weight (< 5.5 lb); phase 2, gradient-boosted trees
behind ``create_app``, answers the weight class (normal, low, very low) of the flagged ones.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from mlpatterns.bundles import read_bundle, write_bundle
from mlpatterns.datasets import load_natality
from mlpatterns.export import sklearn_to_onnx
from mlpatterns.reproducibility import hash_split
from mlpatterns.reproducibility.transform import FeatureTransform
from mlpatterns.serving import ServingFunction
from mlpatterns.serving.http import create_app
from mlpatterns.serving.two_phase_predictions import (
    HttpPhaseTwo,
    PhaseTwoError,
    TwoPhaseModel,
    choose_threshold,
    fit_phase_one,
    phase_one_columns,
    plot_tradeoff,
    quantize_phase_one,
    tradeoff_curve,
)
from mlpatterns.testing.load_generator import serve_in_thread

CLASSES = ["normal", "low", "very_low"]
PHASE_ONE = ["male", "mother_age", "plurality_count", "gestation_weeks"]


@pytest.fixture(scope="module")
def births():
    """8,000 births: train, valid and test by a hash of row_id, with the coarse and fine targets."""
    frame = load_natality().iloc[:8000].copy()
    frame["male"] = frame["is_male"].astype(float)
    frame["plurality_count"] = frame["plurality"].str.extract(r"\((\d)\)", expand=False).astype(float)
    weight = frame["weight_pounds"]
    frame["weight_class"] = np.select([weight < 3.3, weight < 5.5], ["very_low", "low"], "normal")
    frame["at_risk"] = (weight < 5.5).astype(int)
    split = hash_split(frame, "row_id", {"train": 0.6, "valid": 0.2, "test": 0.2}).to_numpy()
    return {s: frame[split == s].reset_index(drop=True) for s in ("train", "valid", "test")}


@pytest.fixture(scope="module")
def phase_one(births):
    """The phase-1 MLP, float32 and int8 (dynamic)."""
    train = births["train"]
    model = fit_phase_one(train[PHASE_ONE], train["at_risk"], hidden_units=(64, 64), epochs=8)
    return {"float": model, "int8": quantize_phase_one(model)}


class CountingServing(ServingFunction):
    """The served bundle, recording on the server side the keys of every request it scores."""

    def __init__(self, bundle):
        super().__init__(bundle)
        self.requests: list[list] = []

    def predict_conformed(self, raw, conformed):
        self.requests.append(raw["row_id"].tolist())
        return super().predict_conformed(raw, conformed)


@pytest.fixture(scope="module")
def bundle(births, tmp_path_factory):
    """Phase 2: the weight class from the visit's fields and mother_race, as a bundle keyed by row_id."""
    train = births["train"]
    transform = FeatureTransform(numeric=["mother_age", "gestation_weeks"],
                                 categorical=["is_male", "plurality", "mother_race"]).fit(train)
    X = transform.transform(train).matrix()
    y = train["weight_class"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    model = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)
    kinds = {"is_male": "boolean", "plurality": "text", "mother_age": "number", "gestation_weeks": "number",
             "mother_race": "number"}
    manifest = {"name": "natality/weight_class", "task": "multiclass", "classes": CLASSES,
                "model": {"file": "model.onnx", "output": "probabilities"}, "transform": "transform.json",
                "signature": {"inputs": [{"name": c, "type": kinds[c]} for c in transform.input_columns],
                              "keys": ["row_id"], "outputs": [*[{"name": f"probability_{c}", "type": "number"}
                                                                for c in CLASSES], {"name": "prediction", "type": "text"}]}}
    files = {"model.onnx": sklearn_to_onnx(model, X[:300], "classification"),
             "transform.json": transform.to_json().encode()}
    return write_bundle(tmp_path_factory.mktemp("two_phase") / "weight_class", files, manifest)


@pytest.fixture()
def served(bundle):
    """A fresh counting serving function and the app serving it."""
    serving = CountingServing(read_bundle(bundle))
    return serving, create_app({"weight_class": serving}, access_log=False, metrics=False)


@pytest.fixture(scope="module")
def threshold(births, phase_one, bundle):
    scores = TwoPhaseModel(phase_one["int8"], 0.5, ServingFunction.load(bundle)).phase_one_scores(births["valid"])
    return choose_threshold(scores, births["valid"]["at_risk"], min_recall=0.9)


# -- phase 1 ---------------------------------------------------------------------------------------
def test_quantization_shrinks_phase_one_and_keeps_its_accuracy(births, phase_one):
    test = births["test"]
    assert len(phase_one["int8"]) < 0.5 * len(phase_one["float"])
    static = quantize_phase_one(phase_one["float"], calibration=births["train"][PHASE_ONE].iloc[:500])
    assert len(static) < len(phase_one["float"])
    auc = {}
    for name, model in {**phase_one, "static": static}.items():
        scores = TwoPhaseModel(model, 0.5, ServingFunction).phase_one_scores(test)
        auc[name] = roc_auc_score(test["at_risk"], scores)
        if name != "float":
            reference = TwoPhaseModel(phase_one["float"], 0.5, ServingFunction).phase_one_scores(test)
            difference = np.abs(scores - reference)
            assert np.quantile(difference, 0.99) < 0.05 and difference.mean() < 0.01, name
    assert auc["float"] > 0.8
    assert abs(auc["int8"] - auc["float"]) < 0.01 and abs(auc["static"] - auc["float"]) < 0.01
    assert {n.op_type for n in onnx.load_model_from_string(phase_one["int8"]).graph.node} >= {"MatMulInteger"}
    assert phase_one_columns(phase_one["int8"]) == PHASE_ONE  # the device needs only the file


def test_phase_one_bytes_are_reproducible_and_a_logistic_regression_has_no_hidden_layer(births, tmp_path):
    train = births["train"].iloc[:1500]
    first = fit_phase_one(train[PHASE_ONE], train["at_risk"], hidden_units=(), epochs=3, seed=4)
    assert first == fit_phase_one(train[PHASE_ONE], train["at_risk"], hidden_units=(), epochs=3, seed=4)
    assert quantize_phase_one(first) == quantize_phase_one(first)
    ops = [n.op_type for n in onnx.load_model_from_string(first).graph.node]
    assert ops == ["Sub", "Mul", "MatMul", "Add", "Sigmoid"]
    unnamed = fit_phase_one(train[PHASE_ONE].to_numpy(), train["at_risk"].to_numpy(), hidden_units=(), epochs=1)
    assert phase_one_columns(unnamed) == ["x0", "x1", "x2", "x3"]
    (tmp_path / "phase_one.onnx").write_bytes(first)  # the device reads a file
    from_file = TwoPhaseModel(tmp_path / "phase_one.onnx", 0.5, ServingFunction)
    assert from_file.columns == PHASE_ONE and from_file.size_bytes == len(first)
    assert np.array_equal(from_file.phase_one_scores(train), from_file.phase_one_scores(train[PHASE_ONE].to_numpy()))


# -- the threshold and the curve -------------------------------------------------------------------
def test_choose_threshold_keeps_the_recall_and_spares_the_most_calls():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    flagged = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 0])
    assert choose_threshold(scores, flagged, min_recall=0.8) == 0.4  # 4 of the 5 at or above 0.4
    assert choose_threshold(scores, flagged, min_recall=1.0) == 0.1
    assert choose_threshold(scores, flagged, min_recall=0.2) == 0.9


def test_threshold_chosen_on_validation_rows_and_the_curve(births, phase_one, bundle, threshold, tmp_path):
    valid = births["valid"]
    local = ServingFunction.load(bundle)
    scores = TwoPhaseModel(phase_one["int8"], threshold, local).phase_one_scores(valid)
    at_risk = valid["at_risk"].to_numpy() == 1
    assert (scores[at_risk] >= threshold).mean() >= 0.9
    assert (scores[at_risk] >= np.nextafter(threshold, 1)).mean() < 0.9  # the highest such threshold
    answers = local.predict(valid)["prediction"].to_numpy()
    curve = tradeoff_curve(scores, valid["at_risk"], valid["weight_class"], answers, negative="normal")
    assert list(curve.columns) == ["threshold", "calls_spared", "phase_one_recall", "accuracy", "balanced_accuracy",
                                   "agreement", "phase_two_accuracy", "phase_two_balanced_accuracy"]
    assert curve["calls_spared"].is_monotonic_increasing and curve["phase_one_recall"].is_monotonic_decreasing
    first, last = curve.iloc[0], curve.iloc[-1]
    assert first["calls_spared"] == 0 and first["accuracy"] == first["phase_two_accuracy"] and first["agreement"] == 1
    assert last["calls_spared"] == 1 and last["accuracy"] == (valid["weight_class"] == "normal").mean()
    picture = plot_tradeoff(curve, tmp_path / "img" / "curve.png", chosen=threshold)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- routing over HTTP -----------------------------------------------------------------------------
@pytest.fixture()
def uvicorn_url(served):
    """``create_app`` run by uvicorn on a free loopback port, stopped in the end whatever happens."""
    serving, app = served
    with serve_in_thread(app) as base:
        yield serving, base


@pytest.mark.parametrize("protocol", ["rest", "v2"])
def test_only_flagged_rows_reach_phase_two_over_http(births, phase_one, bundle, threshold, uvicorn_url, protocol):
    serving, url = uvicorn_url
    test = births["test"]
    with HttpPhaseTwo(url, "weight_class", protocol=protocol, timeout=20) as client:
        model = TwoPhaseModel(phase_one["int8"], threshold, client, negative="normal", keys=["row_id"])
        result = model.predict(test)
    scores = model.phase_one_scores(test)
    flagged = scores >= threshold
    assert 0.05 < flagged.mean() < 0.95
    assert client.requests == 1 and len(serving.requests) == 1  # the flagged rows in one request
    assert serving.requests[0] == test["row_id"][flagged].tolist()  # and nothing below the threshold
    assert result["row_id"].tolist() == test["row_id"].tolist()
    assert np.array_equal(result["phase_one_score"].to_numpy(), scores)
    assert result["phase_two_called"].tolist() == flagged.tolist()
    assert (result["prediction"][~flagged] == "normal").all()
    local = ServingFunction.load(bundle).predict(test[flagged])
    assert result["prediction"][flagged].tolist() == local["prediction"].tolist()
    assert np.allclose(result.loc[flagged, "probability_low"].to_numpy(dtype=float), local["probability_low"])
    assert result.loc[~flagged, "probability_low"].isna().all()


def test_a_batch_without_flagged_rows_sends_no_request(births, phase_one, served):
    serving, app = served
    with HttpPhaseTwo("http://testserver", "weight_class", client=TestClient(app)) as client:
        result = TwoPhaseModel(phase_one["int8"], 1.01, client, negative="normal", keys=["row_id"]).predict(
            births["test"].iloc[:50])
    assert client.requests == 0 and serving.requests == []
    assert not result["phase_two_called"].any() and (result["prediction"] == "normal").all()


# -- keys (Keyed Predictions, 20) ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["int", "text"])
def test_keys_pass_through_shuffled_and_duplicated(births, phase_one, bundle, threshold, served, kind):
    serving, app = served
    test = births["test"].iloc[:400]
    rows = pd.concat([test, test.iloc[:30]]).sample(frac=1.0, random_state=3).reset_index(drop=True)
    if kind == "text":
        rows["row_id"] = "birth-" + rows["row_id"].astype(str)
    rows["clinic"] = [f"clinic {i % 7}" for i in range(len(rows))]  # a second key, unknown to phase 2
    with HttpPhaseTwo("http://testserver", "weight_class", client=TestClient(app)) as client:
        result = TwoPhaseModel(phase_one["int8"], threshold, client, negative="normal",
                               keys=["row_id", "clinic"]).predict(rows)
    assert result["row_id"].tolist() == rows["row_id"].tolist() and result["clinic"].tolist() == rows["clinic"].tolist()
    assert result["row_id"].duplicated().sum() == 30
    # each row's answer is its own: the same as for the unshuffled rows, key by key
    local = TwoPhaseModel(phase_one["int8"], threshold, ServingFunction.load(bundle), negative="normal",
                          keys=["row_id"]).predict(test)
    expected = dict(zip(local["row_id"].astype(str).str.removeprefix("birth-"), local["prediction"], strict=True))
    assert [expected[str(k).removeprefix("birth-")] for k in result["row_id"]] == result["prediction"].tolist()
    sent = [k for request in serving.requests for k in request]
    assert sent == rows["row_id"][result["phase_two_called"]].tolist()


def test_offline_phase_two_gives_the_http_answers(births, phase_one, bundle, threshold, served):
    _, app = served
    test = births["test"].iloc[:300]
    local = TwoPhaseModel(phase_one["int8"], threshold, ServingFunction.load(bundle), negative="normal",
                          keys=["row_id"]).predict(test)
    with HttpPhaseTwo("http://testserver", "weight_class", client=TestClient(app)) as client:
        remote = TwoPhaseModel(phase_one["int8"], threshold, client, negative="normal", keys=["row_id"]).predict(test)
    pd.testing.assert_frame_equal(local, remote, check_dtype=False)


# -- bad input -------------------------------------------------------------------------------------
def test_bad_rows_get_an_error_naming_the_field(births, phase_one, threshold, served):
    serving, app = served
    rows = births["test"].iloc[:20].copy()
    local = TwoPhaseModel(phase_one["int8"], threshold, ServingFunction, keys=["row_id"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['gestation_weeks'\]"):
        local.predict(rows.drop(columns="gestation_weeks"))
    text = rows.astype({"mother_age": object})
    text.loc[3, "mother_age"] = "twenty"
    with pytest.raises(ValueError, match=r"row 3, column 'mother_age': expected a finite number, got 'twenty'"):
        local.predict(text)
    with pytest.raises(ValueError, match=r"row 0, column 'plurality_count'"):
        local.phase_one_scores(rows.assign(plurality_count=np.nan))
    with pytest.raises(ValueError, match=r"row 2, key 'row_id': key is null"):
        local.predict(rows.astype({"row_id": object}).assign(row_id=lambda f: f["row_id"].where(f.index != 2)))
    with pytest.raises(ValueError, match=r"shape \(rows, 4\)"):
        local.phase_one_scores(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="threshold"):
        TwoPhaseModel(phase_one["int8"], float("nan"), ServingFunction)
    with pytest.raises(TypeError, match="phase_two"):
        TwoPhaseModel(phase_one["int8"], 0.5, object())
    # phase 2 refuses a bad row over HTTP: the server's message names the field
    bad = rows.astype({"is_male": object})
    bad["is_male"] = "maybe"
    with HttpPhaseTwo("http://testserver", "weight_class", client=TestClient(app)) as client:
        model = TwoPhaseModel(phase_one["int8"], 0.0, client, keys=["row_id"])
        with pytest.raises(PhaseTwoError, match=r"answered 400: .*is_male"):
            model.predict(bad)
        with pytest.raises(ValueError, match=r"missing column\(s\) \['mother_race'\]"):
            client.predict(rows.drop(columns="mother_race"))
    with pytest.raises(PhaseTwoError, match="answered 404"):
        HttpPhaseTwo("http://testserver", "no_such_model", client=TestClient(app)).predict(rows)


def test_fit_phase_one_names_the_bad_argument(births):
    train = births["train"].iloc[:200]
    with pytest.raises(ValueError, match=r"X: row 1, column 'mother_age'"):
        fit_phase_one(train[PHASE_ONE].assign(mother_age=[30.0, np.nan] * 100), train["at_risk"])
    with pytest.raises(ValueError, match="y: expected both 0 and 1"):
        fit_phase_one(train[PHASE_ONE], np.zeros(200))
    with pytest.raises(ValueError, match="hidden_units"):
        fit_phase_one(train[PHASE_ONE], train["at_risk"], hidden_units=(0,))
    with pytest.raises(ValueError, match="min_recall"):
        choose_threshold([0.1, 0.2], [0, 1], min_recall=0)


def test_importing_the_pattern_imports_no_heavy_library():
    script = ("import json, sys\nimport mlpatterns.serving, mlpatterns.serving.two_phase_predictions as t\n"
              "t.__all__\nprint(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
              "('torch', 'httpx', 'onnxruntime', 'onnx', 'matplotlib', 'fastapi'))))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
