"""Feature Store (26) through the lifecycle: a spec's features from a repository, served online by key.

The served prediction equals the batch prediction for the same entity and time, for an
entity whose stored features change over time (the issue's test), and the training join
is point in time correct.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlpatterns.cli import main
from mlpatterns.lifecycle import run_spec
from mlpatterns.reproducibility.feature_store import materialize, open_online_store
from mlpatterns.reproducibility.feature_store.repository import load_repository
from mlpatterns.serving.http import create_app
from mlpatterns.spec import SpecError, load_spec

START = dt.datetime(2024, 1, 1)


def _write_project(folder: Path, rows: int = 3000) -> Path:
    """Devices whose stored 'level' changes every hour; the label follows the level as of the event."""
    rng = np.random.default_rng(7)
    devices = [f"d{i}" for i in range(20)]
    hours = 24 * 10
    readings = pd.DataFrame(
        [(d, START + dt.timedelta(hours=h), float(rng.normal(50 + 10 * np.sin(h / 7 + i), 5)))
         for i, d in enumerate(devices) for h in range(hours)],
        columns=["device", "reading_time", "level"])
    readings.to_parquet(folder / "readings.parquet", index=False)
    events = pd.DataFrame({
        "event_id": np.arange(rows),
        "device": rng.choice(devices, rows),
        "event_time": [START + dt.timedelta(minutes=int(m)) for m in rng.integers(60, hours * 60, rows)],
        "load": rng.normal(0, 1, rows),
    })
    known = pd.merge_asof(events.sort_values("event_time"), readings.sort_values("reading_time"),
                          left_on="event_time", right_on="reading_time", by="device").sort_values("event_id")
    events["alarm"] = (known["level"].to_numpy() + 5 * events["load"] > 55).astype(int)
    events.to_csv(folder / "events.csv", index=False)
    (folder / "features.yaml").write_text(textwrap.dedent("""\
        version: 1
        online_store: sqlite:///online.db
        entities:
          device: {join_keys: [device]}
        feature_views:
          readings:
            entities: [device]
            source: readings.parquet
            timestamp_field: reading_time
            ttl: 2h
            features: [level]
        """))
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: alarms
        data:
          path: events.csv
          feature_store: {{repository: features.yaml, event_timestamp: event_time, features: [readings]}}
        target: {{column: alarm, positive_label: 1}}
        keys: [event_id]
        split: {{key: event_id, fractions: {{train: 0.8, valid: 0.1, test: 0.1}}}}
        features: {{numeric: [level, load]}}
        models:
          gbm: {{type: gradient_boosting, params: {{max_iter: 60}}}}
        output: {{dir: {folder / "runs"}}}
        """))
    return spec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feature_store_spec")
    spec = load_spec(_write_project(folder))
    run_spec(spec, log=lambda *a, **k: None)
    return folder, folder / "runs" / "bundles" / "gbm"


def test_the_bundle_records_the_feature_service_and_the_join_is_point_in_time(trained):
    folder, bundle = trained
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    section = manifest["feature_store"]
    assert section["event_timestamp"] == "event_time"
    assert [v["name"] for v in section["views"]] == ["readings"] and section["views"][0]["features"] == ["level"]
    assert section["repository_sha256"] == load_repository(folder / "features.yaml").sha256
    assert section["online_store"] == f"sqlite:///{folder.resolve() / 'online.db'}"
    assert "level" in [i["name"] for i in manifest["signature"]["inputs"]]
    assert manifest["metrics"]["test"]["roc_auc"] > 0.8  # the level as of the event explains the label


def test_served_equals_batch_for_an_entity_whose_features_change(trained, tmp_path):
    folder, bundle = trained
    repository = load_repository(folder / "features.yaml")
    view = repository.view("readings")
    readings = pd.read_parquet(folder / "readings.parquet")
    device = "d3"
    times = [START + dt.timedelta(hours=30, minutes=20), START + dt.timedelta(hours=31, minutes=40)]
    store_url = f"sqlite:///{tmp_path / 'online.db'}"
    served, levels = [], []
    open_online_store(store_url).close()  # an empty store: serve refuses one that does not exist
    with TestClient(create_app({"alarms": bundle}, reload_interval=0, online_store=store_url)) as client:
        for time in times:
            with open_online_store(store_url) as store:  # the latest values known at `time`
                materialize(store, view, end=time + dt.timedelta(microseconds=1))
            answer = client.post("/v1/models/alarms:predict", json={"instances": [
                {"event_id": 1, "device": device, "event_time": time.isoformat(), "load": 0.3}]})
            assert answer.status_code == 200, answer.text
            served.append(answer.json()["predictions"][0]["probability"])
            known = readings[(readings.device == device) & (readings.reading_time <= time)]
            levels.append(known.sort_values("reading_time")["level"].iloc[-1])
    assert levels[0] != levels[1]  # the entity's feature changed between the two times

    batch_input = tmp_path / "batch.csv"
    pd.DataFrame({"event_id": [1, 2], "device": [device, device], "event_time": times,
                  "load": [0.3, 0.3]}).to_csv(batch_input, index=False)
    assert main(["predict", str(bundle), str(batch_input), str(tmp_path / "scores.csv")]) == 0
    batch = pd.read_csv(tmp_path / "scores.csv")["probability"].tolist()
    assert served[0] != served[1]
    np.testing.assert_allclose(served, batch, rtol=0, atol=1e-6)


def test_a_served_request_needs_the_keys_and_event_time_not_the_stored_features(trained, tmp_path):
    folder, bundle = trained
    store_url = f"sqlite:///{tmp_path / 'online.db'}"
    with open_online_store(store_url) as store:
        materialize(store, load_repository(folder / "features.yaml").view("readings"))
    with TestClient(create_app({"alarms": bundle}, reload_interval=0, online_store=store_url)) as client:
        metadata = client.get("/v1/models/alarms/metadata").json()
        missing = client.post("/v1/models/alarms:predict", json={"instances": [
            {"event_id": 1, "device": "d1", "load": 0.3}]})
        bad_time = client.post("/v1/models/alarms:predict", json={"instances": [
            {"event_id": 1, "device": "d1", "event_time": "yesterday", "load": 0.3}]})
        stale = client.post("/v1/models/alarms:predict", json={"instances": [
            {"event_id": 1, "device": "d1", "event_time": "2030-01-01T00:00:00", "load": 0.3}]})
    inputs = str(metadata)
    assert "event_time" in inputs and "device" in inputs
    assert missing.status_code == 400 and "event_time" in missing.json()["error"]
    assert bad_time.status_code == 400 and "ISO 8601" in bad_time.json()["error"]
    assert stale.status_code == 200  # past the TTL: the level is missing and imputed, as in training


def test_spec_errors_name_the_field(tmp_path):
    spec = _write_project(tmp_path, rows=50)
    text = spec.read_text()
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(text.replace("features: [readings]", "features: [readings:temperature]"))
    with pytest.raises(SpecError, match=r"data.feature_store.*no feature 'temperature'"):
        run_spec(load_spec(wrong), log=lambda *a, **k: None)
    wrong.write_text(text.replace("event_timestamp: event_time", "event_timestamp: when"))
    with pytest.raises(SpecError, match=r"data.feature_store.*'when'"):
        run_spec(load_spec(wrong), log=lambda *a, **k: None)
    wrong.write_text(text.replace("repository: features.yaml", "repository: nowhere.yaml"))
    with pytest.raises(SpecError, match=r"data.feature_store.repository: no such file"):
        run_spec(load_spec(wrong), log=lambda *a, **k: None)
    wrong.write_text(text.replace("feature_store: {", "feature_store: {ttl: 3h, "))
    with pytest.raises(SpecError, match=r"data.feature_store: unknown field"):
        load_spec(wrong)


def test_serve_refuses_a_store_never_materialized_and_predict_scores_the_runs_own_test_file(trained, tmp_path):
    from mlpatterns.serving.http import ModelLoadError

    folder, bundle = trained
    with pytest.raises(ModelLoadError, match="no online store at .*materialize the features first"):
        create_app({"alarms": bundle}, reload_interval=0, online_store=f"sqlite:///{tmp_path / 'typo.db'}")
    assert not (tmp_path / "typo.db").exists()
    test_file = folder / "runs" / "test.parquet"  # holds 'level', joined by the run: joined again, not trusted
    assert main(["predict", str(bundle), str(test_file), str(tmp_path / "scores.parquet")]) == 0
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == len(pd.read_parquet(test_file))


def test_validate_reads_the_repository(tmp_path, capsys):
    spec = _write_project(tmp_path, rows=50)
    assert main(["validate", str(spec)]) == 0
    spec.write_text(spec.read_text().replace("features: [readings]", "features: [reading]"))
    assert main(["validate", str(spec)]) == 2
    assert "no feature view 'reading'" in capsys.readouterr().err
