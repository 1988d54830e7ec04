"""Stateless Serving Function (16) over TF Serving's REST API, with payloads as its documentation writes them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlpatterns.serving import ServingFunction
from mlpatterns.serving.http import Limits, ModelLoadError, create_app

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


@pytest.fixture(scope="module")
def client(carseats):
    _, bundles = carseats
    return TestClient(create_app(bundles, limits=Limits(max_body_bytes=200_000, max_rows=50)))


def _rows(frame, n=5):
    rows = frame[["row_id", *INPUTS]].head(n).to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


def test_status_and_metadata(client):
    assert client.get("/v1/models/us").json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    signature = client.get("/v1/models/us/metadata").json()["metadata"]["signature_def"]["signature_def"]
    serving = signature["serving_default"]
    assert [i["name"] for i in serving["inputs"]] == INPUTS and serving["keys"] == ["row_id"]
    assert [o["name"] for o in serving["outputs"]] == ["probability", "prediction"]


@pytest.mark.parametrize("name", ["sales", "us"])
def test_row_format_gives_the_bundles_predictions_with_keys(client, carseats, name):
    frame, bundles = carseats
    rows = _rows(frame.sample(7, random_state=1))
    expected = ServingFunction.load(bundles[name]).predict(frame.loc[[r["row_id"] for r in rows]])
    answer = client.post(f"/v1/models/{name}:predict", json={"instances": rows})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["row_id"] for p in predictions] == [r["row_id"] for r in rows]
    for column in expected.columns.drop("row_id"):
        np.testing.assert_allclose([p[column] for p in predictions], expected[column].to_numpy(), rtol=1e-6)
    versioned = client.post(f"/v1/models/{name}/versions/1:predict", json={"instances": rows})
    assert versioned.json() == answer.json()


def test_curl_payloads_from_the_tf_serving_docs(client):
    # as `curl -d '{"instances": [...]}' -X POST http://localhost:8501/v1/models/us:predict` sends them
    row = ('{"signature_name": "serving_default", "instances": [{"Price": 120, "Income": 73, '
           '"Advertising": 11, "ShelveLoc": "Bad", "Urban": "Yes", "row_id": "shop-1"}]}')
    answer = client.post("/v1/models/us:predict", content=row,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # curl -d's default
    assert answer.status_code == 200, answer.text
    [prediction] = answer.json()["predictions"]
    assert prediction["row_id"] == "shop-1" and prediction["prediction"] in (0, 1)
    columnar = ('{"inputs": {"Price": [120, 83], "Income": [73, 48], "Advertising": [11, 16], '
                '"ShelveLoc": ["Bad", "Good"], "Urban": [true, false], "row_id": [10, 11]}}')
    outputs = client.post("/v1/models/sales:predict", content=columnar).json()["outputs"]
    assert outputs["row_id"] == [10, 11] and len(outputs["prediction"]) == 2


@pytest.mark.parametrize(("body", "words"), [
    (b'{"instances": [', "not valid JSON"),
    (b'[1, 2]', "JSON object"),
    (b'{"instances": {}}', "must be a list"),
    (b'{"rows": []}', "exactly one of"),
    (b'{"instances": [{"Price": 1}]}', "row 0: missing field(s)"),
    (b'{"instances": [{"Price": 1, "Income": 2, "Advertising": 3, "ShelveLoc": "Bad", "Urban": true, '
     b'"row_id": 1, "Colour": "red"}]}', "unknown field(s) ['Colour']"),
    (b'{"inputs": {"Price": [1], "Income": [2, 3], "Advertising": [3], "ShelveLoc": ["Bad"], '
     b'"Urban": [true], "row_id": [1]}}', "differ in length"),
])
def test_malformed_requests_get_a_400_in_tf_servings_shape(client, body, words):
    answer = client.post("/v1/models/us:predict", content=body)
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text


def test_a_wrong_type_names_the_row_and_the_field(client, carseats):
    rows = _rows(carseats[0], 3)
    rows[2]["Price"] = "cheap"
    rows[1]["Urban"] = {"nested": 1}
    error = client.post("/v1/models/sales:predict", json={"instances": rows}).json()["error"]
    assert "row 1, field 'Urban'" in error
    rows[1]["Urban"] = "maybe"
    answer = client.post("/v1/models/sales:predict", json={"instances": rows})
    assert answer.status_code == 400
    assert "row 1, field 'Urban'" in answer.json()["error"] and "row 2, field 'Price'" in answer.json()["error"]


def test_unknown_model_or_version_is_a_404(client):
    assert client.get("/v1/models/nope").status_code == 404
    answer = client.post("/v1/models/nope:predict", json={"instances": []})
    assert answer.status_code == 404 and "nope" in answer.json()["error"]
    assert client.post("/v1/models/us/versions/7:predict", json={"instances": []}).status_code == 404


def test_requests_beyond_the_limits_get_a_413(client, carseats):
    rows = _rows(carseats[0], 51)
    assert client.post("/v1/models/us:predict", json={"instances": rows}).status_code == 413
    big = json.dumps({"instances": _rows(carseats[0], 1) * 2000})
    answer = client.post("/v1/models/us:predict", content=big)
    assert answer.status_code == 413 and "limit" in answer.json()["error"]


def test_a_tampered_bundle_refuses_to_start(carseats, tmp_path):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(carseats[1]["us"], copy)
    (copy / "transform.json").write_text((copy / "transform.json").read_text() + " ")
    with pytest.raises(ModelLoadError, match="model 'us'"):
        create_app({"us": copy})
