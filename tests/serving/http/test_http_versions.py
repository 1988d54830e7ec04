"""Several versions of one model side by side (Stateless Serving Function, 16): TF Serving's
``/versions/N`` and ``/labels/LABEL``, OIP v2's ``/versions/V``, registry aliases as labels,
and metrics labelled with the version that answered; through FastAPI's TestClient."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.reproducibility.model_versioning import open_registry
from mlpatterns.serving import ServingFunction
from mlpatterns.serving.http import (
    ModelLoadError,
    ModelSource,
    ServedModels,
    create_app,
    model_sources,
)

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


def _rows(frame, n=3):
    rows = frame[["row_id", *INPUTS]].head(n).to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]


def _requests(client) -> dict[tuple[str, str, str], float]:
    text = client.get("/metrics").text
    return {(s.labels["model"], s.labels["version"], s.labels["code"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples
            if s.name == "mlpatterns_http_requests_total"}


@pytest.fixture(scope="module")
def client(carseats):
    _, bundles = carseats
    return TestClient(create_app({"sales": {3: bundles["sales"], 4: bundles["sales"]}, "us": bundles["us"]},
                                 labels={"sales": {"stable": 3}}))


def test_status_lists_every_version(client):
    status = client.get("/v1/models/sales").json()["model_version_status"]
    assert [s["version"] for s in status] == ["4", "3"] and {s["state"] for s in status} == {"AVAILABLE"}
    assert [s["version"] for s in client.get("/v1/models/sales/versions/3").json()["model_version_status"]] == ["3"]
    assert [s["version"] for s in client.get("/v1/models/sales/labels/stable").json()["model_version_status"]] == ["3"]
    assert client.get("/v1/models/us").json()["model_version_status"][0]["version"] == "1"
    assert client.get("/v1/models/sales/metadata").json()["model_spec"]["version"] == "4"
    assert client.get("/v1/models/sales/labels/stable/metadata").json()["model_spec"]["version"] == "3"


def test_predict_by_version_label_or_latest_and_404s_in_tf_servings_shape(client, carseats):
    frame, bundles = carseats
    expected = ServingFunction.load(bundles["sales"]).predict(frame.head(3))["prediction"].tolist()
    for path in ["sales", "sales/versions/3", "sales/versions/4", "sales/labels/stable"]:
        answer = client.post(f"/v1/models/{path}:predict", json={"instances": _rows(frame)})
        assert answer.status_code == 200, (path, answer.text)
        assert [p["prediction"] for p in answer.json()["predictions"]] == pytest.approx(expected)
        assert "model_version" not in answer.json()["predictions"][0]  # only a split adds it
    for path, error in [("sales/versions/5", "Servable not found for request: Specific(sales, 5)"),
                        ("sales/versions/x", "Servable not found for request: Specific(sales, x)"),
                        ("sales/labels/canary", "Unrecognized servable version label: canary"),
                        ("nope/versions/3", "Servable not found for request: Latest(nope)")]:
        answer = client.post(f"/v1/models/{path}:predict", json={"instances": _rows(frame)})
        assert (answer.status_code, answer.json()) == (404, {"error": error})
    assert client.get("/v1/models/sales/labels/canary").status_code == 404


def test_open_inference_versions(client, carseats):
    frame, _ = carseats
    metadata = client.get("/v2/models/sales").json()
    assert metadata["versions"] == ["3", "4"]
    assert client.get("/v2/models/sales/versions/3").json()["versions"] == ["3", "4"]
    assert client.get("/v2/models/sales/versions/3/ready").json() == {"name": "sales", "ready": True}
    assert client.get("/v2/models/sales/versions/9/ready").status_code == 404
    rows = frame.head(2)
    tensors = [{"name": c, "datatype": "BYTES" if rows[c].dtype == object else "FP64", "shape": [2],
                "data": rows[c].tolist()} for c in INPUTS]
    tensors.append({"name": "row_id", "datatype": "INT64", "shape": [2], "data": rows["row_id"].tolist()})
    for path, version in [("sales", "4"), ("sales/versions/3", "3")]:
        answer = client.post(f"/v2/models/{path}/infer", json={"inputs": tensors})
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == version
        assert "model_version" not in [o["name"] for o in answer.json()["outputs"]]


def test_metrics_carry_the_version_that_answered(carseats):
    frame, bundles = carseats
    client = TestClient(create_app({"sales": {3: bundles["sales"], 4: bundles["sales"]}}, labels={"sales": {"old": 3}}))
    client.post("/v1/models/sales:predict", json={"instances": _rows(frame)})
    client.post("/v1/models/sales/labels/old:predict", json={"instances": _rows(frame)})
    client.post("/v1/models/sales/versions/3:predict", json={"instances": _rows(frame)})
    client.post("/v1/models/sales/versions/9:predict", json={"instances": _rows(frame)})
    assert _requests(client) == {("sales", "4", "200"): 1, ("sales", "3", "200"): 2, ("sales", "", "404"): 1}


def test_registry_aliases_are_labels(tmp_path, carseats):
    frame, bundles = carseats
    url = f"sqlite:///{tmp_path}/registry.db"
    with open_registry(url) as registry:
        registry.register(bundles["sales"], "sales", alias="champion")
        registry.register(bundles["sales"], "sales", alias="challenger")
        registry.register(bundles["sales"], "sales")
        registry.set_alias("sales", "stable", 1)
    app = create_app({"sales": ["models:/sales@champion", "models:/sales/2"], "best": "models:/sales/3"},
                     registry=url, labels={"sales": {"pinned": 2}})
    served = app.state.models
    assert list(served.versions("sales")) == [1, 2] and list(served.versions("best")) == [3]
    assert served.labels("sales") == {"champion": 1, "stable": 1, "challenger": 2, "pinned": 2}
    assert served.labels("best") == {}
    client = TestClient(app)
    for label, version in [("champion", "1"), ("stable", "1"), ("challenger", "2"), ("pinned", "2")]:
        assert client.get(f"/v1/models/sales/labels/{label}").json()["model_version_status"][0]["version"] == version
        assert client.post(f"/v1/models/sales/labels/{label}:predict",
                           json={"instances": _rows(frame)}).status_code == 200
    served.close()


def test_sources_in_every_form():
    assert model_sources({"a": "x", "b": {2: "y", "3": "z"}, "c": ["models:/c/4", "models:/c@prod"]}) == [
        ModelSource("a", "x"), ModelSource("b", "y", 2), ModelSource("b", "z", 3),
        ModelSource("c", "models:/c/4"), ModelSource("c", "models:/c@prod")]
    assert str(ModelSource("b", "y", 2)) == "b/2=y"
    with pytest.raises(ModelLoadError, match="has its version from the registry"):
        ModelSource("c", "models:/c/4", 5)
    with pytest.raises(ModelLoadError, match="positive whole number"):
        model_sources({"b": {0: "y"}})
    with pytest.raises(ModelLoadError, match="no '/' or ':'"):
        ModelSource("a/b", "x")


def test_bad_configurations_are_refused_naming_them(carseats, tmp_path):
    _, bundles = carseats
    sales = ServingFunction.load(bundles["sales"])
    with pytest.raises(ModelLoadError, match=r"'sales' version 1 is given twice: sales=<ServingFunction> and "):
        ServedModels([ModelSource("sales", sales), ModelSource("sales", bundles["sales"])])
    with pytest.raises(ModelLoadError, match=r"label 'sales/old': version 2 of 'sales' is not served; served: \[1\]"):
        ServedModels({"sales": sales}, labels={"sales": {"old": 2}})
    with pytest.raises(ModelLoadError, match="label of 'nope': no model 'nope' is served"):
        ServedModels({"sales": sales}, labels={"nope": {"old": 1}})
    with pytest.raises(ModelLoadError, match="needs a registry"):
        ServedModels({"sales": "models:/sales/1"})
    with pytest.raises(ModelLoadError, match=f"the bundle {tmp_path / 'missing'} cannot be served"):
        ServedModels({"sales": tmp_path / "missing"})
    url = f"sqlite:///{tmp_path}/registry.db"
    with open_registry(url) as registry:
        registry.register(bundles["sales"], "sales", alias="champion")
    with pytest.raises(ModelLoadError, match="sales has no alias 'prod'"):
        ServedModels({"sales": "models:/sales@prod"}, registry=url)
    with pytest.raises(ModelLoadError, match=r"'sales' version 1 is given twice: sales=models:/sales/1 and sales/1="):
        ServedModels({"sales": ["models:/sales/1", ModelSource("sales", sales, 1)]}, registry=url)
    # the same registered version by number and by alias is one bundle, served once
    served = ServedModels({"sales": ["models:/sales/1", "models:/sales@champion"]}, registry=url)
    assert list(served.versions("sales")) == [1] and served.labels("sales") == {"champion": 1}
    served.close()
