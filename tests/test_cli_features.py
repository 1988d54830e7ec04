"""``mlpatterns features``: check, materialize, get and join a feature repository (Feature Store, 26)."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest

from mlpatterns.cli import main


@pytest.fixture
def repository(tmp_path):
    pd.DataFrame({
        "origin": ["EWR", "EWR", "JFK", "EWR"],
        "time_hour": pd.to_datetime(["2013-01-01 06:00", "2013-01-01 07:00", "2013-01-01 06:00",
                                     "2013-01-01 09:00"]),
        "temp": [39.0, 39.9, 41.0, 42.5],
    }).to_parquet(tmp_path / "weather.parquet", index=False)
    path = tmp_path / "features.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        online_store: sqlite:///online.db
        entities: {airport: {join_keys: [origin]}}
        feature_views:
          weather: {entities: [airport], source: weather.parquet, timestamp_field: time_hour, ttl: 2h,
                    features: [temp]}
        """))
    return path


def test_check_lists_the_views_with_their_rows(repository, capsys):
    assert main(["features", "check", str(repository)]) == 0
    out = capsys.readouterr().out
    assert "weather: keys ['origin'], features ['temp'], TTL 2:00:00; 4 rows" in out


def test_materialize_in_two_windows_then_get_reads_what_serving_reads(repository, capsys):
    assert main(["features", "materialize", str(repository), "--end", "2013-01-01T07:30:00"]) == 0
    assert main(["features", "get", str(repository), "--view", "weather", "--key", "origin=EWR"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"origin": "EWR", "temp": 39.9}
    assert main(["features", "materialize", str(repository), "--start", "2013-01-01T07:30:00"]) == 0
    assert main(["features", "get", str(repository), "--view", "weather", "--key", "origin=EWR"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["temp"] == 42.5
    assert (repository.parent / "online.db").is_file()  # the repository's online store, next to it
    assert main(["features", "get", str(repository), "--view", "weather", "--key", "origin=JFK",
                 "--at", "2013-01-01T09:00:00"]) == 0  # 3 h after its last value: past the 2 h TTL
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"origin": "JFK", "temp": None}


def test_join_writes_a_point_in_time_file_and_refuses_to_overwrite(repository, tmp_path, capsys):
    entities = tmp_path / "flights.csv"
    pd.DataFrame({"origin": ["EWR", "EWR", "LGA"],
                  "scheduled": ["2013-01-01 06:59:00", "2013-01-01 07:00:00", "2013-01-01 07:00:00"]}
                 ).to_csv(entities, index=False)
    output = tmp_path / "train.parquet"
    args = ["features", "join", str(repository), str(entities), str(output), "--event-timestamp", "scheduled",
            "--features", "weather:temp"]
    assert main(args) == 0
    assert pd.read_parquet(output)["temp"].tolist()[:2] == [39.0, 39.9]
    assert pd.isna(pd.read_parquet(output)["temp"].iloc[2])
    before = output.read_bytes()
    assert main(args) == 2
    assert "exists; give --overwrite" in capsys.readouterr().err and output.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(("args", "message"), [
    (["get", "{repo}", "--view", "rain", "--key", "origin=EWR"], "no feature view 'rain'"),
    (["get", "{repo}", "--view", "weather", "--key", "airport=EWR"], "--key: expected COLUMN=VALUE"),
    (["materialize", "{repo}", "--end", "tomorrow"], "--end: expected an ISO 8601 time"),
    (["materialize", "{repo}", "--online-store", "online.db"], "sqlite:///"),
    (["check", "{missing}"], "no such file"),
    (["get", "{repo}", "--view", "weather", "--key", "origin=EWR"], "no online store at"),
])
def test_bad_arguments_are_named(repository, tmp_path, capsys, args, message):
    args = [a.format(repo=repository, missing=tmp_path / "none.yaml") for a in args]
    assert main(["features", *args]) == 2
    assert message in capsys.readouterr().err
