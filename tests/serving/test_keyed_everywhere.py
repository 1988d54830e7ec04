"""Keyed Predictions (20) through every interface: shuffled, split, duplicated rows come back matched by key.

Keys of three kinds (an integer, a text, a composite of a text and an integer) go through
the serving function, batch files (CSV and Parquet), the DuckDB SQL function, the Ray
engine and the HTTP server (TF Serving rows and columns, Open Inference Protocol v2);
every answer is checked by its key against one reference: exactly where the path is the
same code on the same float64 values, to float32 tolerance where JSON carries them.
"""

from __future__ import annotations

import json
from collections import Counter

import duckdb
import numpy as np
import pandas as pd
import pytest

from mlpatterns.serving.keyed_predictions import predict_file
from mlpatterns.serving.serving_contract import json_value
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.sql_predict import bundle_sql_types, register_bundle

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
KEYS = {"int": ["row_id"], "text": ["code"], "composite": ["shop", "row_id"]}
PARTS = 4


@pytest.fixture(scope="module")
def keyed(keyed_carseats):
    """The keyed Carseats bundles (tests/serving/conftest.py); the rows shuffled with 40 duplicated."""
    assert keyed_carseats.keys == KEYS and keyed_carseats.inputs == INPUTS
    frame = keyed_carseats.frame
    rows = pd.concat([frame, frame.sample(40, random_state=2)]).sample(frac=1.0, random_state=5)
    return keyed_carseats.folder, keyed_carseats.bundles, frame, rows.reset_index(drop=True)


def _reference(bundle, frame, keys):
    predicted = ServingFunction.load(bundle).predict(frame)  # the unshuffled rows, in one call
    return {tuple(r[k] for k in keys): (r["probability"], r["prediction"]) for _, r in predicted.iterrows()}


def _check(answers: pd.DataFrame, rows: pd.DataFrame, keys, reference, *, exact: bool):
    """Every input row answered once (duplicates too), each answer equal to its key's reference."""
    def key(r):
        return tuple(v.item() if hasattr(v, "item") else v for v in (r[k] for k in keys))

    assert Counter(key(r) for _, r in answers.iterrows()) == Counter(key(r) for _, r in rows.iterrows())
    expected = np.array([reference[key(r)] for _, r in answers.iterrows()], dtype=np.float64)
    assert answers["prediction"].astype(np.int64).tolist() == expected[:, 1].astype(np.int64).tolist()
    if exact:
        np.testing.assert_array_equal(answers["probability"].to_numpy(np.float64), expected[:, 0])
    else:
        np.testing.assert_allclose(answers["probability"].to_numpy(np.float64), expected[:, 0], rtol=1e-6, atol=1e-7)


def _parts(rows):
    return [rows.iloc[i::PARTS] for i in range(PARTS)]  # several requests, each in another order


@pytest.fixture(params=list(KEYS))
def case(request, keyed):
    folder, bundles, frame, rows = keyed
    kind = request.param
    keys = KEYS[kind]
    return bundles[kind], rows[[*keys, *INPUTS]], keys, _reference(bundles[kind], frame, keys)


def test_serving_function(case):
    bundle, rows, keys, reference = case
    serving = ServingFunction.load(bundle)
    answers = pd.concat([serving.predict(part) for part in _parts(rows)])
    _check(answers, rows, keys, reference, exact=True)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_predict_file(case, tmp_path, kind):
    bundle, rows, keys, reference = case
    answers = []
    for i, part in enumerate(_parts(rows)):
        source = tmp_path / f"part{i}.{kind}"
        part.to_csv(source, index=False) if kind == "csv" else part.to_parquet(source)
        summary = predict_file(bundle, source, tmp_path / f"out{i}.{kind}", chunk_rows=37)
        assert summary.bad_rows == 0
        answers.append(pd.read_csv(summary.output) if kind == "csv" else pd.read_parquet(summary.output))
    _check(pd.concat(answers), rows, keys, reference, exact=True)  # CSV writes floats that read back exactly


def test_duckdb_sql_function(case):
    bundle, rows, keys, reference = case
    connection = duckdb.connect()
    serving = register_bundle(connection, "score", bundle)
    arguments = ", ".join(f"{name} = 'Yes'" if kind == "BOOLEAN" else name for name, kind in bundle_sql_types(serving))
    answers = []
    for part in _parts(rows):
        connection.register("part", part)
        answers.append(connection.sql(f"SELECT {', '.join(keys)}, score({arguments}) AS probability FROM part").df())
        connection.unregister("part")
    answers = pd.concat(answers)
    answers["prediction"] = (answers["probability"] >= serving.threshold).astype(np.int64)
    _check(answers, rows, keys, reference, exact=True)


# An integer key is the composite key's second column; on its own it runs under -m slow (12 s of Ray).
@pytest.mark.parametrize("case", [pytest.param("int", marks=pytest.mark.slow), "text", "composite"], indirect=True)
def test_ray_engine(case, local_ray):  # local_ray: tests/conftest.py
    from mlpatterns.serving.ray_batch_serving import predict_dataset

    bundle, rows, keys, reference = case
    dataset = local_ray.data.from_pandas(_parts(rows))  # predict_file_ray: tests/serving/test_ray_batch_serving.py
    scored = predict_dataset(bundle, dataset, batch_size=64, concurrency=2).to_pandas()
    _check(scored, rows, keys, reference, exact=True)


@pytest.fixture(scope="module")
def client(keyed):
    from fastapi.testclient import TestClient

    from mlpatterns.serving.http import create_app

    return TestClient(create_app(keyed[1]))


def _tf_rows(client, kind, part):
    body = {"instances": [{c: json_value(v) for c, v in row.items()} for row in part.to_dict(orient="records")]}
    return pd.DataFrame(_post(client, f"/v1/models/{kind}:predict", body)["predictions"])


def _tf_columns(client, kind, part):
    body = {"inputs": {c: [json_value(v) for v in part[c]] for c in part.columns}}
    return pd.DataFrame(_post(client, f"/v1/models/{kind}:predict", body)["outputs"])


def _open_inference(client, kind, part):
    types = {"Price": "INT64", "Income": "INT64", "Advertising": "INT64", "ShelveLoc": "BYTES", "Urban": "BOOL",
             "row_id": "INT64", "code": "BYTES", "shop": "BYTES"}
    values = {**{c: part[c].tolist() for c in part.columns}, "Urban": (part["Urban"] == "Yes").tolist()}
    tensors = [{"name": c, "datatype": types[c], "shape": [len(part)], "data": [json_value(v) for v in values[c]]}
               for c in part.columns]
    answer = _post(client, f"/v2/models/{kind}/infer", {"id": "keyed", "inputs": tensors})
    return pd.DataFrame({o["name"]: o["data"] for o in answer["outputs"]})


def _post(client, path, body):
    answer = client.post(path, content=json.dumps(body))
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.parametrize("protocol", [_tf_rows, _tf_columns, _open_inference], ids=["tf-rows", "tf-columns", "v2"])
def test_http(case, client, protocol, request):
    bundle, rows, keys, reference = case
    kind = request.node.callspec.params["case"]
    answers = pd.concat([protocol(client, kind, part) for part in _parts(rows)])
    _check(answers, rows, keys, reference, exact=False)
