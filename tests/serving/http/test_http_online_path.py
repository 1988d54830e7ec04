"""The HTTP server's online path (Stateless Serving Function, 16) gives the batch path's JSON, byte for byte.

Two apps serve the same bundles: one answers requests of few rows with each bundle's
``OnlinePredictor`` (``online_rows=256``, the default), the other always with its
``ServingFunction`` (``online_rows=0``). The same requests (good rows, bad rows, keys of
integer, text and composite kinds, empty requests, every wire format) go to both: the
status and the body must be the same bytes.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlpatterns.serving.http import ServedModels, create_app
from mlpatterns.serving.http import _common as common

CARSEATS_INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


@pytest.fixture(scope="module")
def bundles(carseats, tmp_path_factory, spec_bundles):
    """sales (regression) and us (classification) keyed by row_id; shelf (multiclass, a date
    input) keyed by (store, row_id); sales_q (reframed regression with quantiles) keyed by store."""
    frame, found = carseats
    folder = tmp_path_factory.mktemp("online_http")
    table = frame.copy()
    table["store"] = [f"store-{i % 13}-é" for i in range(len(table))]
    table["opened"] = (pd.Timestamp("2011-01-01") + pd.to_timedelta(table["row_id"] * 5, unit="D")).dt.strftime(
        "%Y-%m-%d")
    made = spec_bundles(folder, table, "shelf", {
        "keys": ["store", "row_id"], "split": {"key": "row_id"},
        "target": {"column": "ShelveLoc", "task": "multiclass"},
        "features": {"numeric": ["Sales", "Price"], "categorical": ["Urban", "US"],
                     "date_parts": {"opened": ["month", "dayofweek"]}},
        "models": {"linear": {"type": "linear"}}})
    quantiles = spec_bundles(folder, table, "sales_q", {
        "keys": ["store"], "split": {"key": "row_id"},
        "target": {"column": "Sales", "reframe": {"buckets": 5, "quantiles": [0.1, 0.9]}},
        "features": {"numeric": ["Price", "Income"], "categorical": ["ShelveLoc"]},
        "models": {"gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 5}}}})
    return table, {**found, "shelf": made["linear"], "sales_q": quantiles["gradient_boosting"]}


@pytest.fixture(scope="module")
def clients(bundles):
    """(online, batch): the same bundles answered by the online path and by the batch path."""
    _, paths = bundles
    online = ServedModels(paths)
    batch = ServedModels(paths, online_rows=0)
    assert all(online.find(n).online is not None for n in paths)
    return TestClient(create_app(online)), TestClient(create_app(batch)), online


def _json(value):
    return value.item() if isinstance(value, np.generic) else value


def _rows(table, fields, n=6, seed=0):
    sample = table.sample(n, random_state=seed)
    return [{f: _json(row[f]) for f in fields} for row in sample.to_dict("records")]


def _fields(online, name):
    return list(dict.fromkeys(online.find(name).fields))


def _odd_rows(rows, name):
    """Rows with keys of every kind and inputs as clients send them (text numbers, booleans as text)."""
    base = rows[0]
    odd = [{**base}, {**rows[1]}]
    key = {"sales": "row_id", "us": "row_id", "shelf": "row_id", "sales_q": "store"}[name]
    odd += [{**base, key: value} for value in ("shop-1", 7, 3.5, True, "")]
    if "Price" in base:
        odd += [{**base, "Price": value} for value in (" 120 ", "1e2", 120.0, True)]
    if "Urban" in base:
        odd += [{**base, "Urban": value} for value in ("yes", "NO", 1, False, None)]
    if "ShelveLoc" in base:
        odd += [{**base, "ShelveLoc": value} for value in ("never-seen", 7, None, "")]
    if "opened" in base:
        odd += [{**base, "opened": value} for value in ("2012-02-29", "2012-02-29T23:30:00-05:00", None)]
    return odd


def _bad_rows(rows, name):
    base = rows[0]
    key = {"sales": "row_id", "us": "row_id", "shelf": "row_id", "sales_q": "store"}[name]
    bad = [{**base, key: None}, {**rows[1]}]
    if "Price" in base:
        bad += [{**base, "Price": "abc"}, {**base, "Price": ""}]
    if "Urban" in base:
        bad += [{**base, "Urban": "maybe"}]
    if "opened" in base:
        bad += [{**base, "opened": "2013-02-30"}, {**base, "opened": "soon"}]
    return bad


def _v2(rows, fields, datatypes):
    """An infer request; a BOOL tensor gets the table's Yes/No as booleans."""
    def value(datatype, v):
        return v == "Yes" if datatype == "BOOL" and isinstance(v, str) else v

    return {"id": "req-1", "inputs": [{"name": f, "datatype": datatypes.get(f, "BYTES"), "shape": [len(rows)],
                                       "data": [value(datatypes.get(f), r[f]) for r in rows]} for f in fields]}


def _same(clients, url, **request):
    online, batch, _ = clients
    a, b = online.post(url, **request), batch.post(url, **request)
    assert (a.status_code, a.content) == (b.status_code, b.content), url
    return a


def _bodies(rows, fields):
    columns = {f: [r[f] for r in rows] for f in fields}
    return [{"instances": rows}, {"inputs": columns}]


NAMES = ["sales", "us", "shelf", "sales_q"]


@pytest.mark.parametrize("name", NAMES)
def test_good_rows_give_the_same_json_on_both_paths(clients, bundles, name):
    table, _ = bundles
    fields = _fields(clients[2], name)
    rows = _rows(table, fields)
    for chosen in (rows[:1], rows, _odd_rows(rows, name), []):
        for body in _bodies(chosen, fields):
            answer = _same(clients, f"/v1/models/{name}:predict", json=body)
            assert answer.status_code == 200, answer.text
    metadata = clients[0].get(f"/v2/models/{name}").json()
    datatypes = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    for chosen in (rows[:1], rows, []):
        answer = _same(clients, f"/v2/models/{name}/infer", json=_v2(chosen, fields, datatypes))
        assert answer.status_code == 200, answer.text
    outputs = [o["name"] for o in metadata["outputs"]][:1]
    body = {**_v2(rows, fields, datatypes), "outputs": [{"name": n} for n in outputs]}
    assert _same(clients, f"/v2/models/{name}/infer", json=body).status_code == 200
    assert not clients[2].find(name).serving_loaded, "the online app never needed its ServingFunction"


@pytest.mark.parametrize("name", NAMES)
def test_bad_rows_give_the_same_error_on_both_paths(clients, bundles, name):
    table, _ = bundles
    fields = _fields(clients[2], name)
    rows = _rows(table, fields, seed=1)
    bad = _bad_rows(rows, name)
    many = [*bad] * 4  # more than ten problems: "(and N more)"
    for chosen in (bad, many, bad[:1]):
        for body in _bodies(chosen, fields):
            answer = _same(clients, f"/v1/models/{name}:predict", json=body)
            assert answer.status_code == 400 and "bad row(s): row 0, field" in answer.json()["error"]
    texts = [{f: (None if r[f] is None else str(r[f])) for f in fields} for r in many]  # every tensor BYTES
    answer = _same(clients, f"/v2/models/{name}/infer", json=_v2(texts, fields, {}))
    assert answer.status_code == 400 and "more)" in answer.json()["error"], answer.text


def test_requests_refused_before_the_model_are_the_same(clients, bundles):
    table, _ = bundles
    fields = _fields(clients[2], "us")
    rows = _rows(table, fields)
    for body in ({"instances": [{**rows[0], "extra": 1}]}, {"instances": [{k: v for k, v in rows[0].items()
                                                                          if k != "Price"}]},
                 {"instances": [{**rows[0], "Price": [1, 2]}]}, {"inputs": {f: [rows[0][f]] for f in fields[1:]}},
                 {"instances": rows, "inputs": {}}):
        answer = _same(clients, "/v1/models/us:predict", json=body)
        assert answer.status_code == 400


def test_binary_tensors_give_the_same_json(clients, bundles):
    table, _ = bundles
    rows = table.sample(5, random_state=4)
    header = {"inputs": [
        {"name": "Price", "datatype": "INT64", "shape": [5], "parameters": {"binary_data_size": 40}},
        {"name": "Income", "datatype": "FP32", "shape": [5], "parameters": {"binary_data_size": 20}},
        *[{"name": n, "datatype": "BYTES", "shape": [5], "data": [str(v) for v in rows[n]]}
          for n in ("ShelveLoc", "Urban")],
        {"name": "Advertising", "datatype": "INT64", "shape": [5], "data": rows["Advertising"].tolist()},
        {"name": "row_id", "datatype": "INT64", "shape": [5], "data": rows["row_id"].tolist()}]}
    head = json.dumps(header).encode()
    tail = rows["Price"].to_numpy(np.int64).tobytes() + rows["Income"].to_numpy(np.float32).tobytes()
    answer = _same(clients, "/v2/models/us/infer", content=head + tail,
                   headers={"Inference-Header-Content-Length": str(len(head))})
    assert answer.status_code == 200, answer.text
    assert struct.calcsize("<q") == 8


def test_large_requests_take_the_batch_path_with_the_same_json(bundles):
    table, paths = bundles
    online = ServedModels({"us": paths["us"]}, online_rows=3)
    batch = ServedModels({"us": paths["us"]}, online_rows=0)
    clients = (TestClient(create_app(online)), TestClient(create_app(batch)), online)
    fields = _fields(online, "us")
    rows = _rows(table, fields, n=3)
    _same(clients, "/v1/models/us:predict", json={"instances": rows})
    assert not online.find("us").serving_loaded
    _same(clients, "/v1/models/us:predict", json={"instances": _rows(table, fields, n=4)})
    assert online.find("us").serving_loaded, "four rows: the batch path"


def test_a_bundle_without_an_online_path_is_served_by_the_batch_path(bundles, monkeypatch):
    table, paths = bundles

    def unsupported(bundle):
        raise common.OnlinePathUnsupported("a text encoder")

    monkeypatch.setattr(common, "OnlinePredictor", unsupported)
    served = ServedModels({"us": paths["us"]})
    model = served.find("us")
    assert model.online is None and model.serving_loaded and not model.answers_online(1)
    monkeypatch.undo()
    batch = ServedModels({"us": paths["us"]}, online_rows=0)
    clients = (TestClient(create_app(served)), TestClient(create_app(batch)), served)
    rows = _rows(table, _fields(served, "us"), n=2)
    assert _same(clients, "/v1/models/us:predict", json={"instances": rows}).status_code == 200


def test_a_split_answers_with_each_versions_predictions(bundles):
    table, paths = bundles
    served = ServedModels({"us": {1: paths["us"], 2: paths["us"]}}, split={"us": "1:50,2:50"})
    client = TestClient(create_app(served))
    rows = _rows(table, _fields(served, "us"), n=8)
    answer = client.post("/v1/models/us:predict", json={"instances": rows})
    assert answer.status_code == 200 and {p["model_version"] for p in answer.json()["predictions"]} <= {"1", "2"}
    single = client.post("/v1/models/us/versions/1:predict", json={"instances": rows}).json()["predictions"]
    assert [{k: v for k, v in p.items() if k != "model_version"} for p in answer.json()["predictions"]] == single


def test_a_server_answering_few_rows_never_imports_pandas(bundles):
    """The cold start of ``mlpatterns serve``: loading the bundles and answering a small request
    needs neither pandas nor scikit-learn (about 2 CPU-seconds of imports on the project's VM)."""
    table, paths = bundles
    rows = _rows(table, ["Price", "Income", "Advertising", "ShelveLoc", "Urban", "row_id"], n=2)
    script = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from mlpatterns.serving.http import create_app\n"
        f"client = TestClient(create_app({{'us': {str(paths['us'])!r}}}))\n"
        f"answer = client.post('/v1/models/us:predict', json={{'instances': json.loads({json.dumps(json.dumps(rows))})}})\n"
        "assert answer.status_code == 200, answer.text\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'scipy', 'pyarrow', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
