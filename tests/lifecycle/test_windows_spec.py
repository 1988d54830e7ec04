"""Windowed Inference (24) through the lifecycle: window features declared once in the spec, computed in batch
for training and ``mlpatterns predict``, and by the stream processor in ``mlpatterns serve``."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlpatterns.cli import main
from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.http import create_app
from mlpatterns.spec import SpecError, load_spec

START = dt.datetime(2024, 3, 1)


def _events(rng: np.random.Generator, n: int, first_id: int = 0, minutes: int = 60 * 24 * 6) -> pd.DataFrame:
    """Departures at three airports; a delay is anomalous when far above the airport's last two hours."""
    airports = np.array(["EWR", "JFK", "LGA"])
    minutes = np.sort(rng.integers(0, minutes, n))
    frame = pd.DataFrame({"flight": np.arange(first_id, first_id + n), "origin": airports[rng.integers(0, 3, n)],
                          "scheduled": [START + dt.timedelta(minutes=int(m)) for m in minutes]})
    level = 10 + 20 * np.sin(minutes / 300.0)  # congestion drifts through the day
    frame["dep_delay"] = np.round(level + rng.normal(0, 8, n) + 60 * (rng.random(n) < 0.05), 1)
    return frame


def _label(frame: pd.DataFrame) -> pd.Series:
    from mlpatterns.reproducibility.windowed_inference import WindowFeature, window_features

    ref = window_features(frame, [WindowFeature("m", "dep_delay", "mean", "2h", key="origin", time="scheduled")])
    return (frame["dep_delay"] > ref["m"].fillna(frame["dep_delay"].mean()) + 25).astype(int)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("windows_spec")
    history = _events(np.random.default_rng(1), 6000)
    history["anomalous"] = _label(history)
    history.to_csv(folder / "departures.csv", index=False)
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: departures
        data:
          path: departures.csv
          windows:
            key: origin
            time: scheduled
            features:
              delay_mean_2h: {{column: dep_delay, aggregate: mean, width: 2h}}
              delay_std_2h: {{column: dep_delay, aggregate: std, width: 2h}}
              departures_2h: {{column: dep_delay, aggregate: count, width: 2h}}
        target: {{column: anomalous, positive_label: 1}}
        keys: [flight]
        split: {{key: flight, fractions: {{train: 0.8, valid: 0.1, test: 0.1}}}}
        features: {{numeric: [dep_delay, delay_mean_2h, delay_std_2h, departures_2h]}}
        models:
          gbm: {{type: gradient_boosting, params: {{max_iter: 80}}}}
        output: {{dir: {folder / "runs"}}}
        """))
    run_spec(load_spec(spec), log=lambda *a, **k: None)
    return folder, folder / "runs" / "bundles" / "gbm"


def test_the_bundle_records_the_declaration_and_the_windows_help(project):
    folder, bundle = project
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["windows"]["features"]["delay_mean_2h"] == {"column": "dep_delay", "aggregate": "mean",
                                                                 "width": "2h"}
    assert manifest["metrics"]["test"]["roc_auc"] > 0.9


def test_served_in_time_order_equals_batch_prediction_over_the_same_events(project, tmp_path):
    folder, bundle = project
    new_day = _events(np.random.default_rng(2), 150, first_id=100000)
    rows = [{"flight": int(r.flight), "origin": r.origin, "scheduled": r.scheduled.isoformat(),
             "dep_delay": float(r.dep_delay)} for r in new_day.itertuples()]
    served = []
    with TestClient(create_app({"departures": bundle}, reload_interval=0)) as client:
        metadata = client.get("/v1/models/departures/metadata").json()
        for start in range(0, len(rows), 7):  # requests of a few rows, in time order
            answer = client.post("/v1/models/departures:predict", json={"instances": rows[start:start + 7]})
            assert answer.status_code == 200, answer.text
            served += [p["probability"] for p in answer.json()["predictions"]]
        late = client.post("/v1/models/departures:predict", json={"instances": [
            {**rows[0], "origin": rows[-1]["origin"], "flight": 1}]})
    assert "delay_mean_2h" not in json.dumps(metadata["metadata"]["signature_def"]["signature_def"]
                                             ["serving_default"]["inputs"])
    assert late.status_code == 400 and "time order" in late.json()["error"]
    batch_input = tmp_path / "new_day.csv"
    new_day.to_csv(batch_input, index=False)
    assert main(["predict", str(bundle), str(batch_input), str(tmp_path / "scores.parquet")]) == 0
    batch = pd.read_parquet(tmp_path / "scores.parquet")["probability"].to_numpy()
    np.testing.assert_allclose(served, batch, rtol=0, atol=1e-6)
    assert len(set(np.round(served, 6))) > 10  # the windows move the answers


def test_state_in_an_online_store_outlives_the_server(project, tmp_path):
    folder, bundle = project
    new_day = _events(np.random.default_rng(3), 60, first_id=200000, minutes=180)  # windows span the restart
    rows = [{"flight": int(r.flight), "origin": r.origin, "scheduled": r.scheduled.isoformat(),
             "dep_delay": float(r.dep_delay)} for r in new_day.itertuples()]
    state = f"sqlite:///{tmp_path / 'windows.db'}"

    def serve(part, **options):
        with TestClient(create_app({"departures": bundle}, reload_interval=0, **options)) as client:
            answer = client.post("/v1/models/departures:predict", json={"instances": part})
            assert answer.status_code == 200, answer.text
            return [p["probability"] for p in answer.json()["predictions"]]

    restarted = serve(rows[:30], window_state=state) + serve(rows[30:], window_state=state)
    uninterrupted = serve(rows)
    forgetful = serve(rows[:30]) + serve(rows[30:])  # in memory: the second server starts empty
    assert restarted == uninterrupted and forgetful != uninterrupted


def test_window_mistakes_are_named(tmp_path):
    def spec_with(windows: str):
        path = tmp_path / "spec.yaml"
        path.write_text(textwrap.dedent(f"""\
            name: w
            data: {{path: d.csv, windows: {windows}}}
            target: {{column: y, task: regression}}
            split: {{key: id, fractions: {{train: 0.8, valid: 0.1, test: 0.1}}}}
            features: {{numeric: [x]}}
            models: {{m: {{type: linear}}}}
            """))
        return path
    with pytest.raises(SpecError, match=r"data.windows.features.m.aggregate: expected one of"):
        load_spec(spec_with("{time: t, features: {m: {column: x, aggregate: median, width: 1h}}}"))
    with pytest.raises(SpecError, match=r"data.windows.features.m"):
        load_spec(spec_with("{time: t, features: {m: {column: x, aggregate: mean, width: soon}}}"))
    with pytest.raises(SpecError, match=r"data.windows: missing field 'time'"):
        load_spec(spec_with("{features: {m: {column: x, aggregate: mean, width: 1h}}}"))


def test_a_refused_request_holds_none_of_its_rows(project):
    folder, bundle = project
    base = dt.datetime(2024, 4, 1, 10)
    row = {"flight": 1, "origin": "EWR", "dep_delay": 5.0}
    at = {m: (base + dt.timedelta(minutes=m)).isoformat() for m in (0, 10, 20, 30)}
    with TestClient(create_app({"departures": bundle}, reload_interval=0)) as client:
        def ask(*rows):
            return client.post("/v1/models/departures:predict", json={"instances": list(rows)})
        assert ask({**row, "scheduled": at[0]}).status_code == 200
        late = ask({**row, "scheduled": at[20], "dep_delay": 900.0}, {**row, "scheduled": at[10]})
        assert late.status_code == 400 and "nothing of this request was served" in late.json()["error"]
        bad = ask({**row, "scheduled": at[20], "dep_delay": 900.0}, {**row, "scheduled": at[30], "dep_delay": "x"})
        assert bad.status_code == 400 and "row 1" in bad.json()["error"]
        retried = ask({**row, "scheduled": at[20]}, {**row, "scheduled": at[30]})
        assert retried.status_code == 200, retried.text
    # the retry's windows hold the first row only, never the refused 900-minute delays
    fresh = _served_alone(bundle, [{**row, "scheduled": at[0]}, {**row, "scheduled": at[20]},
                                   {**row, "scheduled": at[30]}])
    assert [p["probability"] for p in retried.json()["predictions"]] == fresh[1:]


def _served_alone(bundle, rows):
    with TestClient(create_app({"departures": bundle}, reload_interval=0)) as client:
        return [client.post("/v1/models/departures:predict", json={"instances": [r]}).json()["predictions"][0]
                ["probability"] for r in rows]


def test_windows_cover_the_whole_file_before_a_sample_and_never_the_label(project, tmp_path):
    from mlpatterns.spec.data import load_data

    folder, _ = project
    spec = load_spec(folder / "spec.yaml")
    whole = load_data(spec).set_index("flight")
    spec.data["sample_fraction"] = 0.5
    sampled = load_data(spec).set_index("flight")
    assert 0 < len(sampled) < len(whole)
    np.testing.assert_array_equal(sampled["departures_2h"], whole.loc[sampled.index, "departures_2h"])
    text = (folder / "spec.yaml").read_text().replace("column: dep_delay, aggregate: count",
                                                      "column: anomalous, aggregate: count")
    (tmp_path / "label.yaml").write_text(text)
    with pytest.raises(SpecError, match=r"data.windows.features.departures_2h.column: 'anomalous' is the target"):
        load_spec(tmp_path / "label.yaml")


def test_several_workers_are_refused_for_a_bundle_with_windows(project):
    from mlpatterns.serving.http import ModelLoadError
    from mlpatterns.serving.http.served_models import ModelSource
    from mlpatterns.serving.http.workers import ServerConfig, run_server

    _, bundle = project
    config = ServerConfig.of([ModelSource("departures", str(bundle), None)])
    with pytest.raises(ModelLoadError, match="serve them from one worker, not 2"):
        run_server(config, port=1, workers=2)
