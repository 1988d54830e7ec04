"""examples/feature_store_flights_model.py: the flights model with and without the store's features."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "feature_store_flights_model.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("feature_store_flights_model", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tables(example):
    return example.training_table()


def test_point_in_time_join_never_hands_a_flight_a_value_stamped_after_its_departure(
    example, tables
):
    joined, naive = tables
    assert len(joined) == 327_346  # the flights that arrived
    departure = joined["event_timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    for column, ttl in [
        ("weather_reading_time", example.TTL),
        ("day_reading_time", None),
        ("delay_reading_time", example.DELAY_TTL),
    ]:
        stamp = joined[column]
        found = stamp.notna()
        assert found.mean() > 0.95, column
        assert (stamp[found] <= departure[found]).all(), column
        if ttl is not None:
            assert (stamp[found] >= departure[found] - ttl).all(), column
    # the weather of the flight's own hour is the one joined when there is one at or before it
    assert (joined["weather_reading_time"] == departure.dt.floor("h"))[
        joined["weather_reading_time"].notna()
    ].mean() > 0.99
    # planes are static: one stamp before every flight, no TTL; 16 % of tail numbers unknown
    assert example.PLANES_TIMESTAMP.tz_localize(None) < departure.min()
    assert 0.1 < joined["plane_age"].isna().mean() < 0.2
    assert joined.loc[joined["tailnum"] == "N14228", "plane_age"].eq(2013 - 1999).all()
    # the naive joins do hand over values from after the departure: the check is not vacuous
    naive_departure = naive["event_timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    assert np.array_equal(naive["flight_id"], joined["flight_id"])
    for column in ["weather_reading_time", "day_reading_time", "delay_reading_time"]:
        assert (naive[column] > naive_departure).mean() > 0.9, column
    assert example.check_point_in_time(joined, naive)["naive_delay_reading_time"] > 0.9


def test_day_bootstrap_metrics_equal_sklearn_with_day_weights(example):
    from sklearn.metrics import log_loss, roc_auc_score

    rng = np.random.default_rng(1)
    days = pd.Series(rng.integers(0, 40, 3000))
    y = rng.random(3000) < 0.3
    p = np.round(rng.random(3000) * 0.5 + 0.2 * y, 2)  # ties between scores
    boot = example.DayBootstrap(days, y, draws=5, seed=0)
    auc, loss = boot.metrics(p)
    for i in range(6):
        weights = boot.counts[i][boot.codes]
        assert auc[i] == pytest.approx(roc_auc_score(y, p, sample_weight=weights), abs=1e-12)
        assert loss[i] == pytest.approx(log_loss(y, p, sample_weight=weights), abs=1e-12)


def test_quick_run_prints_the_tables():
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "327,346 flights that arrived" in out
    assert "no value stamped after its departure" in out
    for model in [
        "baseline",
        "+ weather",
        "+ planes",
        "+ weather + planes",
        "+ weather, as of 3 h after departure",
        "+ day's weather, as of departure",
        "+ day's weather, naive join on date",
        "+ origin's recent delays, as of departure",
        "+ origin's delays that hour, naive join on hour",
    ]:
        assert f"| {model} | " in out, model
    rows = {
        line.split(" | ")[0].lstrip("| "): line
        for line in out.splitlines()
        if line.startswith("| ") and line.split(" | ")[1].isdigit()  # a model row
    }
    auc = {name: float(line.split(" | ")[2].split()[0]) for name, line in rows.items()}
    assert 0.6 < auc["baseline"] < 0.8
    assert auc["+ weather"] > auc["baseline"]  # weather helps even in the quick run
