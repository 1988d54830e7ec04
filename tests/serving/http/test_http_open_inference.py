"""Stateless Serving Function (16) over the Open Inference Protocol v2: TestClient and the real tritonclient."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
import uvicorn
from fastapi.testclient import TestClient

from mlpatterns.serving import ServingFunction
from mlpatterns.serving.http import create_app

INPUTS = {"Price": "INT64", "Income": "INT64", "Advertising": "INT64", "ShelveLoc": "BYTES", "Urban": "BOOL"}


@pytest.fixture(scope="module")
def app(carseats):
    return create_app(carseats[1])


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


def _tensors(rows):
    tensors = [{"name": n, "datatype": t, "shape": [len(rows)], "data": rows[n].tolist()} for n, t in INPUTS.items()]
    return [*tensors, {"name": "row_id", "datatype": "INT64", "shape": [len(rows)], "data": rows["row_id"].tolist()}]


def _frame(frame):
    rows = frame.sample(9, random_state=3).copy()
    rows["Urban"] = rows["Urban"] == "Yes"
    return rows


def test_health_metadata_and_readiness(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/us/ready").status_code == 200
    metadata = client.get("/v2/models/us").json()
    assert metadata["name"] == "us" and metadata["versions"] == ["1"] and metadata["platform"] == "mlpatterns-onnx"
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {**INPUTS, "row_id": "INT64"}
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {
        "probability": "FP64", "prediction": "INT64", "row_id": "INT64"}
    assert client.get("/v2/models/us/versions/1").json() == metadata
    assert client.get("/v2/models/us/versions/2").status_code == 404


def test_not_ready_until_every_model_is_loaded(carseats):
    app = create_app(carseats[1])
    app.state.ready = False
    client = TestClient(app)
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200


@pytest.mark.parametrize("name", ["sales", "us"])
def test_infer_gives_the_bundles_predictions_and_echoes_keys_and_id(client, carseats, name):
    frame, bundles = carseats
    rows = _frame(frame)
    expected = ServingFunction.load(bundles[name]).predict(frame.loc[rows.index])
    body = json.dumps({"id": "req-42", "inputs": _tensors(rows)}).encode()
    answer = client.post(f"/v2/models/{name}/versions/1/infer", content=body)  # no Content-Type, as tritonclient
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["id"] == "req-42" and result["model_name"] == name and result["model_version"] == "1"
    outputs = {o["name"]: o for o in result["outputs"]}
    assert outputs["row_id"]["data"] == rows["row_id"].tolist()
    for column in expected.columns.drop("row_id"):
        np.testing.assert_allclose(outputs[column]["data"], expected[column].to_numpy(), rtol=1e-6)
        assert outputs[column]["shape"] == [9]


def test_requested_outputs_and_text_keys(client, carseats):
    rows = _frame(carseats[0])
    tensors = _tensors(rows)
    tensors[-1] = {"name": "row_id", "datatype": "BYTES", "shape": [9], "data": [f"k{i}" for i in range(9)]}
    answer = client.post("/v2/models/us/infer", json={"inputs": tensors, "outputs": [{"name": "probability"}]})
    outputs = answer.json()["outputs"]
    assert [o["name"] for o in outputs] == ["probability", "row_id"]
    assert outputs[1] == {"name": "row_id", "datatype": "BYTES", "shape": [9], "data": [f"k{i}" for i in range(9)]}


@pytest.mark.parametrize(("change", "words"), [
    (lambda t: t.pop(0), "missing input(s) ['Price']"),
    (lambda t: t.append({"name": "Colour", "datatype": "BYTES", "shape": [1], "data": ["red"]}), "unknown input"),
    (lambda t: t[3]["data"].__setitem__(2, 7), "row 2, input 'ShelveLoc'"),
    (lambda t: t[0].__setitem__("datatype", "FP128"), "unknown datatype"),
    (lambda t: t[0].__setitem__("shape", [4]), "does not match"),
    # found by the slow schemathesis run: these were 500s
    (lambda t: t[0].__setitem__("parameters", {"binary_data_size": ""}), "binary_data_size must be a whole number"),
    (lambda t: t[0].__setitem__("parameters", {"binary_data_size": [4]}), "binary_data_size must be a whole number"),
    (lambda t: t[0].__setitem__("parameters", {"binary_data_size": -1}), "binary_data_size must be a whole number"),
    (lambda t: t[0].__setitem__("parameters", [1]), "'parameters' must be an object"),
])
def test_bad_infer_requests_get_a_400(client, carseats, change, words):
    tensors = _tensors(_frame(carseats[0]))
    change(tensors)
    answer = client.post("/v2/models/us/infer", json={"inputs": tensors})
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text
    assert client.post("/v2/models/us/infer", content=b"{nope").status_code == 400
    assert client.post("/v2/models/nope/infer", json={"inputs": []}).status_code == 404


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(app):
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.parametrize("binary", [False, True])
def test_the_real_tritonclient_works_unchanged(server, carseats, binary):
    import tritonclient.http as triton

    frame, bundles = carseats
    rows = _frame(frame)
    client = triton.InferenceServerClient(server, connection_timeout=10, network_timeout=10)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("us")
    metadata = client.get_model_metadata("us")
    assert metadata["platform"] == "mlpatterns-onnx" and "row_id" in [o["name"] for o in metadata["outputs"]]
    inputs = []
    for name, datatype in [*INPUTS.items(), ("row_id", "INT64")]:
        values = rows[name].to_numpy()
        array = values.astype(object) if datatype == "BYTES" else values.astype(
            {"INT64": np.int64, "BOOL": np.bool_}[datatype])
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("probability", "prediction", "row_id")]
    result = client.infer("us", inputs, outputs=outputs, request_id="triton-1")
    expected = ServingFunction.load(bundles["us"]).predict(frame.loc[rows.index])
    np.testing.assert_allclose(result.as_numpy("probability"), expected["probability"].to_numpy(), rtol=1e-6)
    np.testing.assert_array_equal(result.as_numpy("prediction"), expected["prediction"].to_numpy())
    np.testing.assert_array_equal(result.as_numpy("row_id"), rows["row_id"].to_numpy())
    assert result.get_response()["id"] == "triton-1"
    client.close()
