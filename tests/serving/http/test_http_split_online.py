"""A traffic split on the online path (Stateless Serving Function, 16): a split request of few
rows is answered by each version's ``OnlinePredictor``, without pandas, with the batch path's
JSON byte for byte: the same version for every row (the key's FarmHash bucket, computed from
the JSON values as ``key_buckets`` computes it from the batch path's frame), the same
predictions in the request's order, the same errors.

Two apps serve the same versions under the same splits: one answers few rows online
(``online_rows=256``, the default), the other always by the batch path (``online_rows=0``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlpatterns.reproducibility.repeatable_splitting import key_buckets
from mlpatterns.serving.http import ServedModels, create_app

SPLITS = {"sales": "3:60,4:40", "shelf": "1:50,champion:50"}


@pytest.fixture(scope="module")
def bundles(carseats, tmp_path_factory, spec_bundles):
    """Two different models of each name, so each version answers differently: sales (regression,
    keyed by row_id) and shelf (multiclass with a date input, keyed by (store, row_id))."""
    frame, _ = carseats
    folder = tmp_path_factory.mktemp("split_online")
    table = frame.copy()
    table["store"] = [f"store-{i % 13}-é" for i in range(len(table))]
    table["opened"] = (pd.Timestamp("2011-01-01") + pd.to_timedelta(table["row_id"] * 5, unit="D")).dt.strftime(
        "%Y-%m-%d")
    models = {"linear": {"type": "linear"},
              "gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 5}}}
    sales = spec_bundles(folder, table, "sales", {
        "keys": ["row_id"], "split": {"key": "row_id"}, "target": {"column": "Sales"},
        "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"]},
        "models": models})
    shelf = spec_bundles(folder, table, "shelf", {
        "keys": ["store", "row_id"], "split": {"key": "row_id"},
        "target": {"column": "ShelveLoc", "task": "multiclass"},
        "features": {"numeric": ["Sales", "Price"], "categorical": ["Urban", "US"],
                     "date_parts": {"opened": ["month", "dayofweek"]}},
        "models": models})
    return table, {"sales": {3: sales["linear"], 4: sales["gradient_boosting"]},
                   "shelf": {1: shelf["linear"], 2: shelf["gradient_boosting"]}}


def _served(paths, **options):
    return ServedModels(paths, labels={"shelf": {"champion": 2}}, split=SPLITS, **options)


@pytest.fixture(scope="module")
def clients(bundles):
    """(online, batch, the online app's ServedModels)."""
    _, paths = bundles
    online, batch = _served(paths), _served(paths, online_rows=0)
    for name in SPLITS:
        assert online.route(name).answers_inline(256) and not online.route(name).answers_inline(257)
        assert not batch.route(name).answers_inline(1)
    return TestClient(create_app(online)), TestClient(create_app(batch)), online


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _fields(served, name):
    return list(dict.fromkeys(served.find(name).fields))


def _rows(table, fields, n=8, seed=0):
    return [{f: _plain(row[f]) for f in fields} for row in table.sample(n, random_state=seed).to_dict("records")]


# keys of every kind a JSON request can hold; each goes to a version by its text's bucket
KEYS = [0, 7, -3, 2**70, 3.0, 3.5, 1e20, -0.0, 0.0, 1e-7, True, False, "7", "shop-1", "é日本", "", " 7 ", "3.0"]


def _keyed(rows, name):
    key = {"sales": "row_id", "shelf": "row_id"}[name]
    keyed = [{**rows[i % len(rows)], key: value} for i, value in enumerate(KEYS)]
    if name == "shelf":  # the composite key's other column, of several kinds too
        stores = ["store-1-é", "", 5, 2.5, False, "ß"]
        keyed += [{**row, "store": stores[i % len(stores)]} for i, row in enumerate(keyed)]
    return keyed


def _same(clients, url, **request):
    online, batch, _ = clients
    a, b = online.post(url, **request), batch.post(url, **request)
    assert (a.status_code, a.content) == (b.status_code, b.content), url
    return a


def _bodies(rows, fields):
    return [{"instances": rows}, {"inputs": {f: [r[f] for r in rows] for f in fields}}]


def _v2(rows, fields, datatypes):
    def value(datatype, v):
        return v == "Yes" if datatype == "BOOL" and isinstance(v, str) else v

    return {"id": "req-1", "inputs": [{"name": f, "datatype": datatypes.get(f, "BYTES"), "shape": [len(rows)],
                                       "data": [value(datatypes.get(f), r[f]) for r in rows]} for f in fields]}


def _expected_versions(served, name, rows) -> list[str]:
    """Each row's version from pandas' key_buckets on the batch path's frame of object columns."""
    route = served.route(name)
    keys = route.model.key_columns
    frame = pd.DataFrame({k: pd.Series([r[k] for r in rows], dtype=object) for k in keys})
    buckets = key_buckets(frame, keys, 10_000)
    versions = []
    for bucket in buckets:
        target = next(t for t, low, high in route.split.ranges() if low <= bucket < high)
        versions.append(str(route.version_of(target)))
    return versions


@pytest.mark.parametrize("name", list(SPLITS))
def test_split_requests_give_the_batch_paths_json(clients, bundles, name):
    table, _ = bundles
    served = clients[2]
    fields = _fields(served, name)
    rows = _rows(table, fields)
    keyed = _keyed(rows, name)
    for chosen in (rows[:1], rows, keyed, []):
        for body in _bodies(chosen, fields):
            answer = _same(clients, f"/v1/models/{name}:predict", json=body)
            assert answer.status_code == 200, answer.text
    answer = clients[0].post(f"/v1/models/{name}:predict", json={"instances": keyed}).json()["predictions"]
    used = [p["model_version"] for p in answer]
    assert used == _expected_versions(served, name, keyed) and len(set(used)) == 2
    key = served.find(name).key_columns
    assert [[p[k] for k in key] for p in answer] == [[r[k] for k in key] for r in keyed]  # the request's order
    by_version = {v: clients[0].post(f"/v1/models/{name}/versions/{v}:predict", json={"instances": keyed}).json()
                  for v in set(used)}  # each row answered by its own version
    for i, (row, version) in enumerate(zip(answer, used, strict=True)):
        assert {k: v for k, v in row.items() if k != "model_version"} == by_version[version]["predictions"][i]
    metadata = clients[0].get(f"/v2/models/{name}").json()
    datatypes = {t["name"]: t["datatype"] for t in metadata["inputs"]}
    for chosen in (rows[:1], rows, []):
        answer = _same(clients, f"/v2/models/{name}/infer", json=_v2(chosen, fields, datatypes))
        assert answer.status_code == 200, answer.text
    for model in served.versions(name).values():
        assert model._serving is None, "the online app never needed a ServingFunction"


def _bad_rows(rows, name):
    base = rows[0]
    bad = [{**base, "row_id": None}, {**rows[1]}]
    if name == "shelf":
        bad += [{**base, "store": None}, {**base, "opened": "2013-02-30"}, {**base, "Urban": "maybe"}]
    else:
        bad += [{**base, "Price": "abc"}, {**base, "Urban": "maybe"}, {**base, "row_id": None, "Price": ""}]
    return bad


@pytest.mark.parametrize("name", list(SPLITS))
def test_bad_rows_and_null_keys_give_the_same_400(clients, bundles, name):
    table, _ = bundles
    fields = _fields(clients[2], name)
    rows = _rows(table, fields, seed=1)
    bad = _bad_rows(rows, name)
    for chosen in (bad, [*bad] * 4, bad[:1], [rows[0], {**rows[1], "row_id": None}]):
        for body in _bodies(chosen, fields):
            answer = _same(clients, f"/v1/models/{name}:predict", json=body)
            assert answer.status_code == 400 and "bad row(s): row " in answer.json()["error"], answer.text
    assert "key is null" in _same(clients, f"/v1/models/{name}:predict",
                                  json={"instances": [rows[0], {**rows[1], "row_id": None}]}).json()["error"]
    texts = [{f: (None if r[f] is None else str(r[f])) for f in fields} for r in [*bad] * 4]
    answer = _same(clients, f"/v2/models/{name}/infer", json=_v2(texts, fields, {}))
    assert answer.status_code == 400 and "more)" in answer.json()["error"], answer.text
    for body in ({"instances": [{**rows[0], "extra": 1}]}, {"instances": [{**rows[0], "row_id": [1, 2]}]},
                 {"instances": [{k: v for k, v in rows[0].items() if k != "row_id"}]},
                 {"instances": [{**rows[0], "row_id": {"a": 1}}]}):
        assert _same(clients, f"/v1/models/{name}:predict", json=body).status_code == 400


def test_which_splits_take_the_online_path(bundles, carseats):
    table, paths = bundles
    _, found = carseats
    served = ServedModels(paths, labels={"shelf": {"champion": 2}}, split=SPLITS, online_rows=3)
    route = served.route("sales")
    assert route.answers_inline(3) and not route.answers_inline(4)  # more rows than online_rows: batch
    assert not served.route("sales", version=3).split and served.route("sales", version=3).answers_inline(3)
    # versions whose outputs differ (a regression and a classification) keep the batch path, same JSON
    mixed = {"m": {1: found["sales"], 2: found["us"]}}
    online = ServedModels(mixed, split={"m": "1:50,2:50"})
    assert not online.route("m").answers_inline(1)
    clients = (TestClient(create_app(online)), TestClient(create_app(ServedModels(mixed, split={"m": "1:50,2:50"},
                                                                                   online_rows=0))), online)
    rows = _rows(table, _fields(online, "m"), n=6)
    assert _same(clients, "/v1/models/m:predict", json={"instances": rows}).status_code == 200


def test_a_split_server_answering_few_rows_never_imports_pandas(bundles):
    """The cold start of ``mlpatterns serve`` with a traffic split: loading both versions and
    answering a small split request needs neither pandas nor scikit-learn."""
    table, paths = bundles
    rows = _rows(table, ["Price", "Income", "Advertising", "ShelveLoc", "Urban", "row_id"], n=12)
    models = {"sales": {v: str(p) for v, p in paths["sales"].items()}}
    script = (
        "import json, sys\n"
        "from fastapi.testclient import TestClient\n"
        "from mlpatterns.serving.http import create_app\n"
        f"client = TestClient(create_app({models!r}, split={{'sales': '3:50,4:50'}}))\n"
        f"rows = json.loads({json.dumps(json.dumps(rows))})\n"
        "answer = client.post('/v1/models/sales:predict', json={'instances': rows})\n"
        "assert answer.status_code == 200, answer.text\n"
        "assert {p['model_version'] for p in answer.json()['predictions']} == {'3', '4'}, answer.text\n"
        "columns = {f: [r[f] for r in rows] for f in rows[0]}\n"
        "assert client.post('/v1/models/sales:predict', json={'inputs': columns}).status_code == 200\n"
        "bad = client.post('/v1/models/sales:predict', json={'instances': [{**rows[0], 'row_id': None}]})\n"
        "assert bad.status_code == 400 and 'key is null' in bad.text, bad.text\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'scipy', 'pyarrow', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_a_one_row_split_request_is_faster_online(clients, bundles):
    """Measured in process (reported, loosely checked): a 1-row split request online vs by the batch path."""
    table, _ = bundles
    online, batch, served = clients
    body = {"instances": _rows(table, _fields(served, "sales"), n=1)}

    def median(client):
        for _ in range(3):
            client.post("/v1/models/sales:predict", json=body)
        times = []
        for _ in range(30):
            start = time.perf_counter()
            client.post("/v1/models/sales:predict", json=body)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    fast, slow = median(online), median(batch)
    print(f"1-row split request: online {fast * 1e3:.2f} ms, batch {slow * 1e3:.2f} ms")
    assert fast < slow
