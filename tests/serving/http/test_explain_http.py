"""``explain: true`` in a prediction request (Explainable Predictions, 29): attributions next to each prediction."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mlpatterns.responsible.explainable_predictions.explained_predictions import (
    explainer_for_serving,
)
from mlpatterns.serving.http import Limits, create_app

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
EXPLAINED = [f"explain_{c}" for c in INPUTS] + ["explain_baseline_score", "explain_check_error"]


@pytest.fixture(scope="module")
def client(carseats):
    _, bundles = carseats
    return TestClient(create_app(bundles, limits=Limits(max_body_bytes=200_000, max_rows=50),
                                 explainer=explainer_for_serving))


def _rows(frame, n=5):
    rows = frame[["row_id", *INPUTS]].head(n).to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


def _score(name, prediction):
    if name == "us":
        return np.log(prediction["probability"] / (1 - prediction["probability"]))
    return prediction["prediction"]


@pytest.mark.parametrize("name", ["us", "sales"])
def test_explain_true_adds_attributions_that_add_up_to_the_prediction(client, carseats, name):
    frame, _ = carseats
    rows = _rows(frame.sample(9, random_state=3))
    plain = client.post(f"/v1/models/{name}:predict", json={"instances": rows}).json()["predictions"]
    assert not any(k.startswith("explain_") for k in plain[0])  # the default answer is unchanged
    answer = client.post(f"/v1/models/{name}:predict", json={"instances": rows, "explain": True})
    assert answer.status_code == 200, answer.text
    explained = answer.json()["predictions"]
    for before, after in zip(plain, explained, strict=True):
        assert {k: after[k] for k in before} == before and set(after) == set(before) | set(EXPLAINED)
        total = after["explain_baseline_score"] + sum(after[f"explain_{c}"] for c in INPUTS)
        assert total == pytest.approx(_score(name, after), abs=1e-6)
        assert after["explain_check_error"] < 1e-6
    # the same explanation in the columnar format
    columnar = client.post(f"/v1/models/{name}:predict", json={
        "inputs": {f: [r[f] for r in rows] for f in rows[0]}, "explain": True}).json()["outputs"]
    np.testing.assert_allclose(columnar["explain_Price"], [p["explain_Price"] for p in explained])
    assert client.post(f"/v1/models/{name}:predict", json={"instances": rows, "explain": False}).json() == \
        {"predictions": plain}


def test_open_inference_explain_parameter(client, carseats):
    frame, _ = carseats
    rows = _rows(frame, 4)
    tensors = [{"name": f, "datatype": "BYTES" if isinstance(rows[0][f], (str, bool)) else "FP64",
                "shape": [len(rows)], "data": [r[f] for r in rows]} for f in rows[0]]
    plain = client.post("/v2/models/sales/infer", json={"inputs": tensors}).json()
    assert [o["name"] for o in plain["outputs"]] == ["prediction", "row_id"]
    answer = client.post("/v2/models/sales/infer", json={"inputs": tensors, "parameters": {"explain": True}})
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert set(outputs) == {"prediction", "row_id", *EXPLAINED} and outputs["explain_Income"]["datatype"] == "FP64"
    total = np.sum([outputs[f"explain_{c}"]["data"] for c in INPUTS], axis=0) + outputs["explain_baseline_score"]["data"]
    np.testing.assert_allclose(total, outputs["prediction"]["data"], atol=1e-6)


def test_a_bad_explain_field_is_refused(client, carseats):
    frame, _ = carseats
    rows = _rows(frame, 2)
    answer = client.post("/v1/models/us:predict", json={"instances": rows, "explain": "yes"})
    assert answer.status_code == 400 and answer.json() == {"error": "'explain' must be true or false, got \"yes\""}
    tensors = [{"name": f, "datatype": "BYTES", "shape": [2], "data": [str(r[f]) for r in rows]} for f in rows[0]]
    answer = client.post("/v2/models/us/infer", json={"inputs": tensors, "parameters": {"explain": 1}})
    assert answer.status_code == 400 and "'parameters.explain' must be true or false" in answer.json()["error"]
    rows[1]["Price"] = "cheap"
    answer = client.post("/v1/models/us:predict", json={"instances": rows, "explain": True})
    assert answer.status_code == 400 and "row 1, field 'Price'" in answer.json()["error"]


def test_a_server_without_an_explainer_says_so(carseats):
    frame, bundles = carseats
    plain = TestClient(create_app({"us": bundles["us"]}))
    rows = _rows(frame, 2)
    assert plain.post("/v1/models/us:predict", json={"instances": rows}).status_code == 200
    answer = plain.post("/v1/models/us:predict", json={"instances": rows, "explain": True})
    assert answer.status_code == 400 and "does not answer 'explain'" in answer.json()["error"]


def test_a_server_configuration_names_its_explainer(carseats):
    from mlpatterns.cli.serve import EXPLAINER
    from mlpatterns.serving.http.served_models import ModelLoadError
    from mlpatterns.serving.http.workers import ServerConfig

    frame, bundles = carseats
    reference = "mlpatterns.responsible.explainable_predictions.explained_predictions:explainer_for_serving"
    assert reference == EXPLAINER  # what `mlpatterns serve` gives its workers
    config = ServerConfig.from_json(ServerConfig(models=(("sales", str(bundles["sales"]), None),),
                                                 explainer=reference).to_json())
    answer = TestClient(config.app()).post("/v1/models/sales:predict",
                                           json={"instances": _rows(frame, 3), "explain": True})
    assert answer.status_code == 200 and "explain_Price" in answer.json()["predictions"][0]
    with pytest.raises(ModelLoadError, match="explainer: 'mlpatterns.nothing:here' names no function"):
        ServerConfig(models=(("sales", str(bundles["sales"]), None),), explainer="mlpatterns.nothing:here").app()


def test_an_explanation_that_does_not_add_up_is_the_servers_error_and_a_bad_row_the_clients(carseats):
    from mlpatterns.responsible.explainable_predictions.attribution_checks import CompletenessError

    frame, bundles = carseats

    def broken(serving):
        def explain(rows):
            raise CompletenessError("the tree explanation does not give the served output")
        return explain

    app = create_app({"sales": bundles["sales"]}, explainer=broken)
    with TestClient(app, raise_server_exceptions=False) as failing:
        answer = failing.post("/v1/models/sales:predict", json={"instances": _rows(frame, 2), "explain": True})
    assert answer.status_code == 500  # not a 400 "bad request": the client did nothing wrong
    with TestClient(create_app({"sales": bundles["sales"]}, explainer=explainer_for_serving)) as good:
        bad = _rows(frame, 2)
        bad[1]["Price"] = "cheap"
        answer = good.post("/v1/models/sales:predict", json={"instances": bad, "explain": True})
    assert answer.status_code == 400 and "Price" in answer.text
