"""The online store (SQLite backend, through the shared conformance suite) and materialize."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpatterns.reproducibility.feature_store import (
    Entity,
    FeatureView,
    OnlineStore,
    get_historical_features,
    materialize,
    open_online_store,
)
from mlpatterns.reproducibility.feature_store.online_store import OnlineStoreError
from mlpatterns.testing.online_store_conformance import OnlineStoreConformance

T0 = dt.datetime(2024, 1, 1)


@pytest.fixture
def online_store_factory(tmp_path):
    return lambda: open_online_store(f"sqlite:///{tmp_path}/online.db")


class TestSQLiteOnlineStore(OnlineStoreConformance):
    pass


def test_sqlite_file_is_in_wal_mode(tmp_path):
    import sqlite3

    with open_online_store(f"sqlite:///{tmp_path}/o.db") as store:
        assert isinstance(store, OnlineStore) and store.url == f"sqlite:///{tmp_path}/o.db"
    assert sqlite3.connect(tmp_path / "o.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_stores_one_column_per_feature(tmp_path):
    import sqlite3
    import struct

    view = FeatureView("stats", [Entity("e", ["user"])], "unused.parquet", "ts", ["score", "Score", "emb"])
    with open_online_store(f"sqlite:///{tmp_path}/o.db") as store:
        store.write(view, [{"user": 1, "ts": T0, "score": 0.5, "Score": 2, "emb": [1.0]},
                           {"user": 2, "ts": T0, "score": math.nan, "Score": True, "emb": None}])
    con = sqlite3.connect(tmp_path / "o.db")
    columns = [row[1] for row in con.execute('PRAGMA table_info("fv_stats")')]
    assert columns == ["user", "__mlp_ts", "__mlp_created", "__mlp_encoded", "score", "^score", "emb"]
    rows = con.execute('SELECT score, "^score", emb, __mlp_encoded FROM fv_stats ORDER BY user').fetchall()
    assert rows == [(0.5, 2, struct.pack("<d", 1.0), '["emb"]'), ("NaN", "true", None, '["score", "Score"]')]


def test_sqlite_refuses_a_table_of_the_earlier_layout(tmp_path):
    import sqlite3

    con = sqlite3.connect(tmp_path / "o.db")
    con.execute('CREATE TABLE fv_stats ("user", __mlp_ts INTEGER NOT NULL, __mlp_created INTEGER, '
                '__mlp_values TEXT NOT NULL, PRIMARY KEY ("user")) WITHOUT ROWID')
    con.close()
    view = FeatureView("stats", [Entity("e", ["user"])], "unused.parquet", "ts", ["score"])
    with open_online_store(f"sqlite:///{tmp_path}/o.db") as store, pytest.raises(OnlineStoreError, match="earlier"):
        store.read(view, [{"user": 1}])


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://user:secret@host:3306/features", "unknown scheme 'mysql'"),
    ("online.db", "plain path is ambiguous"),
    ("sqlite:///o.db?cache=1", "takes no URL options"),
    ("sqlite://host/o.db", "three slashes"),
])
def test_open_refuses_bad_urls_naming_them(url, message):
    with pytest.raises(OnlineStoreError, match=message) as info:
        open_online_store(url)
    assert "secret" not in str(info.value)


def test_open_refuses_unknown_options(tmp_path):
    with pytest.raises(OnlineStoreError, match="bad option"):
        open_online_store(f"sqlite:///{tmp_path}/o.db", pool=3)
    with open_online_store(f"sqlite:///{tmp_path}/o.db", timeout=1) as store:
        assert open_online_store(store) is store


def _weather(tmp_path=None):
    source = pd.DataFrame({
        "origin": ["EWR", "EWR", "JFK", "JFK", "LGA", "EWR"],
        "time_hour": pd.to_datetime(["2013-01-01 06:00", "2013-01-01 07:00", "2013-01-01 06:00",
                                     "2013-01-01 09:00", "2013-01-01 05:00", "2013-01-01 07:00"]),
        "created": pd.to_datetime(["2013-01-02"] * 5 + ["2013-01-01"]),
        "temp": [39.0, 39.9, 41.0, 42.0, 30.0, -1.0],
        "count": [1, 2, 3, 4, 5, 6],
    })
    if tmp_path is not None:
        path = tmp_path / "weather.parquet"
        source.to_parquet(path)
        source = path
    return FeatureView("weather", [Entity("airport", ["origin"])], source, "time_hour", ["temp", "count"],
                       ttl=dt.timedelta(hours=3), created_timestamp_field="created")


@pytest.mark.parametrize("from_file", [False, True])
def test_materialize_full_writes_the_latest_row_per_key(tmp_path, from_file):
    view = _weather(tmp_path if from_file else None)
    with open_online_store(f"sqlite:///{tmp_path}/o.db") as store:
        assert materialize(store, view) == 3
        got = store.read(view, [{"origin": "EWR"}, {"origin": "JFK"}, {"origin": "LGA"}, {"origin": "BOS"}])
    # EWR 07:00 twice: the larger created timestamp (39.9) wins over the later source row
    assert got == [{"temp": 39.9, "count": 2}, {"temp": 42.0, "count": 4}, {"temp": 30.0, "count": 5},
                   {"temp": None, "count": None}]
    assert type(got[0]["count"]) is int


def test_materialize_incremental_windows_are_half_open(tmp_path):
    view = _weather()
    nine = dt.datetime(2013, 1, 1, 9)
    with open_online_store(f"sqlite:///{tmp_path}/o.db") as store:
        assert materialize(store, view, end=nine) == 3  # 09:00 excluded
        assert store.read(view, [{"origin": "JFK"}]) == [{"temp": 41.0, "count": 3}]
        assert materialize(store, view, start=nine) == 1
        assert store.read(view, [{"origin": "JFK"}]) == [{"temp": 42.0, "count": 4}]
        assert materialize(store, view, end=nine) == 3  # replaying an older window changes nothing
        assert store.read(view, [{"origin": "JFK"}, {"origin": "EWR"}]) == [
            {"temp": 42.0, "count": 4}, {"temp": 39.9, "count": 2}]
        assert store.read(view, [{"origin": "LGA"}], now=nine) == [{"temp": None, "count": None}]  # TTL
        aware = dt.datetime(2013, 1, 1, 4, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 09:00 UTC
        assert materialize(store, view, start=aware) == 1
        with pytest.raises(ValueError, match="before end"):
            materialize(store, view, start=nine, end=nine)
        with pytest.raises(TypeError, match="OnlineStore"):
            materialize("sqlite:///x.db", view)


_times = st.integers(0, 12).map(lambda h: T0 + dt.timedelta(minutes=30 * h))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from("abc"), _times, st.integers(0, 2),
                               st.one_of(st.none(), st.floats(-5, 5))), min_size=1, max_size=12),
       t=_times, ttl_hours=st.sampled_from([None, 1, 3]))
def test_online_read_after_materialize_equals_the_offline_join(tmp_path_factory, rows, t, ttl_hours):
    source = pd.DataFrame(rows, columns=["key", "ts", "created_min", "value"])
    source["created"] = T0 + pd.to_timedelta(source["created_min"], unit="min")
    view = FeatureView("v", [Entity("k", ["key"])], source.drop(columns="created_min"), "ts", ["value"],
                       ttl=None if ttl_hours is None else dt.timedelta(hours=ttl_hours),
                       created_timestamp_field="created")
    keys = ["a", "b", "c"]
    offline = get_historical_features(pd.DataFrame({"key": keys, "event_timestamp": [t] * 3}), view)
    path = tmp_path_factory.mktemp("prop") / "o.db"
    with open_online_store(f"sqlite:///{path}") as store:
        materialize(store, view, end=t + dt.timedelta(microseconds=1))  # [start, end): up to t inclusive
        online = store.read(view, [{"key": k} for k in keys], now=t)
    for expected, got in zip(offline["value"].tolist(), online, strict=True):
        if expected is None or (isinstance(expected, float) and math.isnan(expected)):
            assert got["value"] is None
        else:
            assert got["value"] == expected
