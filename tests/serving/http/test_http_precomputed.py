"""Batch Serving (17) online: a table of precomputed predictions served by key over both protocols."""

from __future__ import annotations

import argparse
import sqlite3

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlpatterns.bundles.format import manifest_digest
from mlpatterns.cli.serve import add_serve_command
from mlpatterns.serving import ServingFunction
from mlpatterns.serving.batch_serving import PredictionTableError, PredictionTableWriter
from mlpatterns.serving.http import ModelLoadError, ModelSource, create_app
from mlpatterns.serving.http.precomputed_model import PrecomputedServing
from mlpatterns.serving.keyed_predictions import predict_file

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]  # as conftest.py trains them



@pytest.fixture(scope="module")
def tables(carseats, tmp_path_factory):
    """Tables of both bundles from Parquet (INTEGER keys) and of sales from CSV (TEXT keys), and what
    ``predict_file`` wrote to Parquet for the same rows (the expected answers)."""
    frame, bundles = carseats
    folder = tmp_path_factory.mktemp("precomputed")
    frame.to_parquet(folder / "carseats.parquet", index=False)
    frame.to_csv(folder / "carseats.csv", index=False)
    paths, expected = {}, {}
    for name, bundle in bundles.items():
        paths[name] = folder / f"{name}.sqlite"
        predict_file(bundle, folder / "carseats.parquet", paths[name])
        predict_file(bundle, folder / "carseats.parquet", folder / f"{name}.parquet")
        expected[name] = pd.read_parquet(folder / f"{name}.parquet").set_index("row_id")
    paths["sales_text"] = folder / "sales_text.db"
    predict_file(bundles["sales"], folder / "carseats.csv", paths["sales_text"])
    return paths, expected


@pytest.fixture(scope="module")
def client(carseats, tables):
    paths, _ = tables
    return TestClient(create_app({"sales": paths["sales"], "us": paths["us"], "sales_text": paths["sales_text"],
                                  "sales_model": carseats[1]["sales"]}))


def _asked(seed: int = 5) -> list[int]:
    """Row ids shuffled, with repeats."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(400)[:40].tolist()
    return [*ids, ids[3], ids[0], ids[3]]


def test_tf_serving_rows_and_columns_answer_what_the_batch_run_wrote(client, tables):
    _, expected = tables
    asked = _asked()
    for name, outputs in (("sales", ["prediction"]), ("us", ["probability", "prediction"])):
        answer = client.post(f"/v1/models/{name}:predict", json={"instances": [{"row_id": i} for i in asked]})
        assert answer.status_code == 200, answer.text
        rows = expected[name].loc[asked]
        assert answer.json()["predictions"] == [
            {"row_id": i, **{o: rows[o].iloc[n].item() for o in outputs}} for n, i in enumerate(asked)]
        columns = client.post(f"/v1/models/{name}:predict", json={"inputs": {"row_id": asked}}).json()["outputs"]
        assert columns == {"row_id": asked, **{o: rows[o].tolist() for o in outputs}}


def test_the_table_answers_as_the_model_does(client, carseats):
    asked = _asked(9)
    table = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": i} for i in asked]}).json()
    rows = carseats[0].set_index("row_id").loc[asked, INPUTS].reset_index()
    model = client.post("/v1/models/sales_model:predict", json={"instances": rows.to_dict("records")}).json()
    assert table == model


def test_open_inference_answers_by_key_tensor(client, tables):
    _, expected = tables
    asked = _asked(11)
    body = {"id": "q1", "inputs": [{"name": "row_id", "datatype": "INT64", "shape": [len(asked)], "data": asked}]}
    answer = client.post("/v2/models/us/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    rows = expected["us"].loc[asked]
    assert answer.json()["id"] == "q1" and answer.json()["model_version"] == "1"
    assert outputs["row_id"]["data"] == asked and outputs["row_id"]["datatype"] == "INT64"
    assert outputs["probability"] == {"name": "probability", "datatype": "FP64", "shape": [len(asked)],
                                      "data": rows["probability"].tolist()}
    assert outputs["prediction"]["datatype"] == "INT64"
    assert outputs["prediction"]["data"] == rows["prediction"].tolist()
    only = client.post("/v2/models/us/infer", json={**body, "outputs": [{"name": "probability"}]}).json()
    assert [o["name"] for o in only["outputs"]] == ["probability", "row_id"]


def test_metadata_names_the_keys_and_outputs(client):
    v2 = client.get("/v2/models/us").json()
    assert v2["inputs"] == [{"name": "row_id", "datatype": "INT64", "shape": [-1]}]
    assert {o["name"]: o["datatype"] for o in v2["outputs"]} == {
        "probability": "FP64", "prediction": "INT64", "row_id": "INT64"}
    assert client.get("/v2/models/sales_text").json()["inputs"] == [{"name": "row_id", "datatype": "BYTES", "shape": [-1]}]
    tf = client.get("/v1/models/us/metadata").json()["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert (tf["inputs"], tf["keys"], tf["task"]) == ([], ["row_id"], "classification")
    assert [o["name"] for o in tf["outputs"]] == ["probability", "prediction"]
    assert set(tf["precomputed"]) == {"bundle", "manifest_sha256", "created", "rows"}  # which bundle; no server path
    assert len(tf["precomputed"]["manifest_sha256"]) == 64 and tf["precomputed"]["rows"] > 0
    assert client.get("/v1/models/sales/metadata").json()["metadata"]["signature_def"]["signature_def"][
        "serving_default"]["task"] == "regression"


def test_the_table_says_which_bundle_computed_it(carseats, tables):
    serving = PrecomputedServing.open(tables[0]["us"])
    bundle = ServingFunction.load(carseats[1]["us"])
    digest = bundle.bundle.manifest.get("manifest_sha256") or manifest_digest(bundle.bundle.manifest)
    assert serving.source == {"table": str(tables[0]["us"]), "bundle": "us/linear", "bundle_path": str(carseats[1]["us"]),
                              "manifest_sha256": digest, "created": serving.table.created, "rows": 400}
    assert serving.signature["precomputed"] == serving.source and serving.name == "us/linear"


def test_text_keys_accept_text_and_numbers(client, tables):
    _, expected = tables
    answer = client.post("/v1/models/sales_text:predict", json={"instances": [{"row_id": "17"}, {"row_id": 17}]})
    assert answer.status_code == 200, answer.text
    value = expected["sales"].loc[17, "prediction"].item()
    assert answer.json()["predictions"] == [{"row_id": "17", "prediction": value}, {"row_id": 17, "prediction": value}]
    body = {"inputs": [{"name": "row_id", "datatype": "BYTES", "shape": [2], "data": ["17", "3"]}]}
    outputs = {o["name"]: o["data"] for o in client.post("/v2/models/sales_text/infer", json=body).json()["outputs"]}
    assert outputs == {"row_id": ["17", "3"], "prediction": expected["sales"].loc[[17, 3], "prediction"].tolist()}


def test_a_key_never_scored_is_a_404_naming_each_row(client):
    answer = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": 1}, {"row_id": 9999}, {"row_id": -4}]})
    assert answer.status_code == 404
    message = answer.json()["error"]
    assert message.startswith("row 1: key row_id=9999 has no precomputed prediction; "
                              "row 2: key row_id=-4 has no precomputed prediction; 2 of 3 row(s)")
    assert "sales.sqlite" in message
    body = {"inputs": [{"name": "row_id", "datatype": "INT64", "shape": [2], "data": [400, 0]}]}
    answer = client.post("/v2/models/sales/infer", json=body)
    assert answer.status_code == 404 and answer.json()["error"].startswith(
        "row 0: key row_id=400 has no precomputed prediction")
    text = client.post("/v1/models/sales_text:predict", json={"instances": [{"row_id": "017"}]})
    assert text.status_code == 404 and "row 0: key row_id='017' has no" in text.json()["error"]


def test_a_key_of_the_wrong_kind_is_a_400_naming_row_and_field(client):
    answer = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": 2}, {"row_id": "x"}, {"row_id": 1.5}]})
    assert answer.status_code == 400
    assert answer.json()["error"] == ("2 bad row(s): row 1, field 'row_id': expected a whole number, got 'x'; "
                                      "row 2, field 'row_id': expected a whole number, got 1.5")
    assert client.post("/v1/models/sales:predict", json={"instances": [{"row_id": None}]}).json()["error"] == (
        "1 bad row(s): row 0, field 'row_id': a key has no nulls")
    extra = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": 2, "Price": 3}]})
    assert extra.status_code == 400 and "unknown field(s) ['Price']" in extra.json()["error"]
    assert client.post("/v1/models/sales:predict", json={"instances": []}).json() == {"predictions": []}


def test_composite_keys_of_text_and_integers(tmp_path):
    path = tmp_path / "shelves.sqlite"
    writer = PredictionTableWriter(path, keys=["shelf", "row_id"], outputs=["probability", "prediction"],
                                   meta={"bundle": "shelves", "manifest_sha256": "0" * 64},
                                   types={"probability": "REAL", "prediction": "INTEGER"})
    stored = pd.DataFrame({"shelf": ["Bad", "Good", "Bad", "Medium"], "row_id": [1, 1, 2, 3],
                           "probability": [0.25, 0.75, 0.5, 0.125], "prediction": [0, 1, 1, 0]})
    writer.write(stored)
    writer.close()
    client = TestClient(create_app([ModelSource("shelves", str(path), 3)]))
    asked = [("Good", 1), ("Bad", 1), ("Medium", 3), ("Good", 1), ("Bad", 2)]
    answer = client.post("/v1/models/shelves/versions/3:predict",
                         json={"instances": [{"shelf": s, "row_id": r} for s, r in asked]})
    assert answer.status_code == 200, answer.text
    table = stored.set_index(["shelf", "row_id"])
    assert answer.json()["predictions"] == [
        {"shelf": s, "row_id": r, "probability": table.loc[(s, r), "probability"].item(),
         "prediction": table.loc[(s, r), "prediction"].item()} for s, r in asked]
    body = {"inputs": [{"name": "row_id", "datatype": "INT64", "shape": [2], "data": [3, 2]},
                       {"name": "shelf", "datatype": "BYTES", "shape": [2], "data": ["Medium", "Bad"]}]}
    outputs = {o["name"]: o["data"] for o in client.post("/v2/models/shelves/infer", json=body).json()["outputs"]}
    assert outputs == {"probability": [0.125, 0.5], "prediction": [0, 1], "shelf": ["Medium", "Bad"], "row_id": [3, 2]}
    missing = client.post("/v1/models/shelves:predict", json={"instances": [{"shelf": "Good", "row_id": 2}]})
    assert missing.status_code == 404
    assert missing.json()["error"].startswith("row 0: key shelf='Good', row_id=2 has no precomputed prediction")
    assert client.get("/v1/models/shelves/metadata").json()["metadata"]["signature_def"]["signature_def"][
        "serving_default"]["task"] == "classification"


def test_a_file_that_is_not_a_table_stops_the_start(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all, just bytes" * 40)
    with pytest.raises(ModelLoadError, match=r"model 'm': the table of precomputed predictions .*junk.sqlite cannot "
                                             r"be served: .*junk.sqlite: not a table of precomputed predictions"):
        create_app({"m": junk})
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    connection.close()
    with pytest.raises(ModelLoadError, match=r"foreign.db: not a table of precomputed predictions .* it has no "
                                             r"tables \['meta', 'predictions'\]"):
        create_app({"m": foreign})
    with pytest.raises(ModelLoadError, match=r"missing.sqlite: no such file \(a table of precomputed predictions"):
        create_app({"m": tmp_path / "missing.sqlite"})


def test_a_table_beside_a_bundle_as_two_versions(carseats, tables):
    client = TestClient(create_app({"sales": {1: tables[0]["sales"], 2: carseats[1]["sales"]}}))
    row = carseats[0].iloc[[7]][["row_id", *INPUTS]]
    from_table = client.post("/v1/models/sales/versions/1:predict", json={"instances": [{"row_id": 7}]}).json()
    latest = client.post("/v1/models/sales:predict", json={"instances": row.to_dict("records")}).json()
    assert from_table == latest


def test_the_cli_takes_a_table_as_a_model(tmp_path):
    parser = argparse.ArgumentParser(prog="mlpatterns")
    add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "flights=scores.sqlite", "flights/2=runs/b/scores.db", "runs/c/daily.sqlite"])
    assert args.models == [ModelSource("flights", "scores.sqlite"), ModelSource("flights", "runs/b/scores.db", 2),
                           ModelSource("daily", "runs/c/daily.sqlite")]
    assert all(m.precomputed for m in args.models)
    folder = tmp_path / "bundle.db"
    folder.mkdir()
    assert not ModelSource("m", str(folder)).precomputed  # a folder is a bundle, whatever its name


def test_large_requests_take_the_batch_path_with_the_same_answers(client, tables):
    _, expected = tables
    asked = [*range(399, -1, -1), *range(0, 400, 7)]  # more rows than the online path takes
    answer = client.post("/v1/models/us:predict", json={"inputs": {"row_id": asked}})
    assert answer.status_code == 200, answer.text
    rows = expected["us"].loc[asked]
    assert answer.json()["outputs"] == {"row_id": asked, "probability": rows["probability"].tolist(),
                                        "prediction": rows["prediction"].tolist()}
    missing = client.post("/v1/models/us:predict", json={"inputs": {"row_id": [*asked, 500, "x"]}})
    assert missing.status_code == 400 and missing.json()["error"] == (
        f"1 bad row(s): row {len(asked) + 1}, field 'row_id': expected a whole number, got 'x'")
    missing = client.post("/v1/models/us:predict", json={"inputs": {"row_id": [*asked, 500]}})
    assert missing.status_code == 404 and missing.json()["error"].startswith(
        f"row {len(asked)}: key row_id=500 has no precomputed prediction; 1 of {len(asked) + 1} row(s)")


def test_small_requests_take_the_online_path_without_pandas(client, tables, monkeypatch):
    def batch_path(*args, **kwargs):
        raise AssertionError("a small request took the batch path")

    monkeypatch.setattr(PrecomputedServing, "conform", batch_path)
    answer = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": 3}, {"row_id": "3"}]})
    value = tables[1]["sales"].loc[3, "prediction"].item()
    assert answer.json() == {"predictions": [{"row_id": 3, "prediction": value}, {"row_id": "3", "prediction": value}]}


def test_a_split_between_two_tables_answers_each_row_from_its_version(tables):
    paths, expected = tables
    client = TestClient(create_app({"sales": {1: paths["sales"], 2: paths["sales_text"]}}, split={"sales": "1:50,2:50"}))
    asked = _asked(13)
    answer = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": i} for i in asked]})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert {p["model_version"] for p in predictions} == {"1", "2"}
    assert [p["prediction"] for p in predictions] == expected["sales"].loc[asked, "prediction"].tolist()
    again = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": i} for i in asked]}).json()
    assert again == answer.json()  # a key keeps its version
    unknown = client.post("/v1/models/sales:predict", json={"instances": [{"row_id": 3}, {"row_id": 9999}]})
    assert unknown.status_code == 404 and "key row_id=9999 has no precomputed prediction" in unknown.json()["error"]


def test_closing_the_served_models_closes_their_tables(tables):
    from mlpatterns.serving.http.served_models import ServedModels

    paths, _ = tables
    served = ServedModels({"sales": paths["sales"]})
    table = served.find("sales").serving.table
    assert table.lookup([{"row_id": 0}]) is not None
    served.close()
    with pytest.raises(PredictionTableError, match="the table is closed"):
        table.lookup([{"row_id": 0}])
