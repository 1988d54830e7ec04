"""The conformance suite that every online store backend passes (Feature Store, pattern 26).

A test class whose tests need one fixture, ``online_store_factory``: a callable with no
arguments that opens the *same* store each time it is called (so that reopening can be
checked); the suite closes what it opens. A backend's test module provides it::

    @pytest.fixture
    def online_store_factory(tmp_path):
        return lambda: open_online_store(f"sqlite:///{tmp_path}/online.db")

    class TestSQLiteOnlineStore(OnlineStoreConformance):
        pass

It checks the round trip of every value type (floats incl. NaN, -0.0 and infinities, ints
beyond 2**63, strings, also ones that look like JSON, bools, None, lists), unknown keys,
composite keys, latest-wins by event timestamp (an older write after a newer one changes
nothing), the created-timestamp tie-break (a missing one loses; a full tie goes to the
later write), the order of a batch read (with repeats),
the TTL at read time, a dict of its own per result, a view that gains or loses a feature,
persistence across reopen, and a clear error after close.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import pytest

from mlpatterns.reproducibility.feature_store.definitions import Entity, FeatureView
from mlpatterns.reproducibility.feature_store.online_store import OnlineStore, OnlineStoreError

__all__ = ["OnlineStoreConformance", "T0"]

T0 = dt.datetime(2024, 3, 1, 12, 0, 0, 123456)
_EMPTY_SOURCE = "unused.parquet"  # the online store never reads a view's source


def _view(name: str = "stats", keys: tuple[str, ...] = ("user",), features=("score",), *,
          created: bool = False, ttl: dt.timedelta | None = None) -> FeatureView:
    return FeatureView(name, [Entity("e", list(keys))], _EMPTY_SOURCE, "ts", list(features), ttl=ttl,
                       created_timestamp_field="created" if created else None)


def _row(user: Any, ts: dt.datetime, created: dt.datetime | None = None, **features: Any) -> dict[str, Any]:
    return {"user": user, "ts": ts, "created": created, **features}


class OnlineStoreConformance:
    """Tests every :class:`OnlineStore` backend must pass; needs the ``online_store_factory`` fixture."""

    @pytest.fixture
    def store(self, online_store_factory: Callable[[], OnlineStore]):
        store = online_store_factory()
        yield store
        store.close()

    def test_every_value_type_round_trips(self, store: OnlineStore) -> None:
        values = {"f": 0.1, "nan": math.nan, "big": 2**63 - 1, "neg": -7, "s": "", "uni": "Zürich ✈ \"q\"",
                  "yes": True, "no": False, "none": None, "emb": [0.25, -1.5, 3e-300], "nested": [[1, 2], ["a"]],
                  "huge": 2**70, "low": -(2**63), "inf": -math.inf, "zero": -0.0, "whole": 3.0,
                  "looks_json": "[1, 2]", "looks_nan": "NaN", "looks_null": "null"}
        view = _view(features=tuple(values))
        assert store.write(view, [_row(1, T0, **values)]) == 1
        [got] = store.read(view, [{"user": 1}])
        assert list(got) == list(values)
        for name, value in values.items():
            if name == "nan":
                assert isinstance(got[name], float) and math.isnan(got[name])
            else:
                assert got[name] == value and type(got[name]) is type(value), name
        assert type(got["emb"][0]) is float and type(got["nested"][0][0]) is int
        assert math.copysign(1.0, got["zero"]) == -1.0
        assert store.read(view, [{"user": 1}, {"user": 1}]) == [got, got]

    def test_numpy_and_pandas_values_are_stored_as_python_values(self, store: OnlineStore) -> None:
        np = pytest.importorskip("numpy")
        pd = pytest.importorskip("pandas")
        view = _view(features=("i", "x", "emb"))
        frame = pd.DataFrame({"user": np.array([5], dtype="int64"), "ts": [pd.Timestamp(T0)],
                              "i": np.array([3], dtype="int32"), "x": [np.float32(0.5)],
                              "emb": [np.array([1.0, 2.0])]})
        store.write(view, frame)
        [got] = store.read(view, pd.DataFrame({"user": [5]}))
        assert got == {"i": 3, "x": 0.5, "emb": [1.0, 2.0]} and type(got["i"]) is int

    def test_unknown_keys_and_unknown_views_give_none(self, store: OnlineStore) -> None:
        view = _view()
        assert store.read(_view("never_written"), [{"user": 1}]) == [{"score": None}]
        store.write(view, [_row(1, T0, score=1.0)])
        assert store.read(view, [{"user": 2}, {"user": "1"}]) == [{"score": None}, {"score": None}]
        assert store.read(view, []) == []

    def test_composite_keys(self, store: OnlineStore) -> None:
        view = _view("route", keys=("origin", "dest"), features=("delay",))
        rows = [{"origin": o, "dest": d, "ts": T0, "delay": f"{o}-{d}"}
                for o in ("EWR", "JFK") for d in ("LAX", "SFO")]
        store.write(view, rows)
        got = store.read(view, [{"origin": "JFK", "dest": "LAX"}, {"origin": "LAX", "dest": "JFK"},
                                {"origin": "EWR", "dest": "SFO"}])
        assert got == [{"delay": "JFK-LAX"}, {"delay": None}, {"delay": "EWR-SFO"}]

    def test_latest_event_timestamp_wins_and_an_older_write_changes_nothing(self, store: OnlineStore) -> None:
        view = _view()
        store.write(view, [_row(1, T0, score=1.0), _row(1, T0 + dt.timedelta(microseconds=1), score=2.0)])
        assert store.read(view, [{"user": 1}]) == [{"score": 2.0}]
        store.write(view, [_row(1, T0, score=9.0)])  # older, written later
        assert store.read(view, [{"user": 1}]) == [{"score": 2.0}]
        store.write(view, [_row(1, T0 + dt.timedelta(hours=1), score=3.0), _row(1, T0, score=8.0)])
        assert store.read(view, [{"user": 1}]) == [{"score": 3.0}]

    def test_aware_timestamps_compare_in_utc(self, store: OnlineStore) -> None:
        view = _view()
        plus_two = dt.timezone(dt.timedelta(hours=2))
        store.write(view, [_row(1, (T0 + dt.timedelta(hours=1)).replace(tzinfo=dt.UTC), score=1.0)])
        # 13:30 at UTC+2 is 11:30 UTC: older than 13:00 UTC, so it must not win
        store.write(view, [_row(1, T0.replace(hour=13, minute=30, tzinfo=plus_two), score=2.0)])
        assert store.read(view, [{"user": 1}]) == [{"score": 1.0}]

    def test_created_timestamp_breaks_ties(self, store: OnlineStore) -> None:
        view = _view(created=True)
        late, early = T0 + dt.timedelta(minutes=5), T0 + dt.timedelta(minutes=1)
        store.write(view, [_row(1, T0, late, score=1.0)])
        store.write(view, [_row(1, T0, early, score=2.0)])  # same event time, created earlier: loses
        store.write(view, [_row(1, T0, None, score=3.0)])  # no created timestamp: loses
        assert store.read(view, [{"user": 1}]) == [{"score": 1.0}]
        store.write(view, [_row(1, T0, late, score=4.0)])  # full tie: the later write wins
        assert store.read(view, [{"user": 1}]) == [{"score": 4.0}]
        store.write(view, [_row(2, T0, None, score=5.0), _row(2, T0, early, score=6.0)])
        assert store.read(view, [{"user": 2}]) == [{"score": 6.0}]

    def test_batch_read_keeps_the_order_given(self, store: OnlineStore) -> None:
        view = _view()
        store.write(view, [_row(u, T0, score=float(u)) for u in range(1000)])
        keys = [999, 3, -1, 3, 500, *range(998, -1, -7)]
        got = store.read(view, [{"user": k} for k in keys], features=["score"])
        assert got == [{"score": float(k) if k >= 0 else None} for k in keys]

    def test_features_selects_some(self, store: OnlineStore) -> None:
        view = _view(features=("a", "b"))
        store.write(view, [_row(1, T0, a=1, b=2)])
        assert store.read(view, [{"user": 1}], features=["b"]) == [{"b": 2}]
        with pytest.raises(ValueError, match="no feature"):
            store.read(view, [{"user": 1}], features=["c"])

    def test_each_result_is_a_dict_of_its_own(self, store: OnlineStore) -> None:
        view = _view(features=("a", "b"))
        store.write(view, [_row(1, T0, a=1, b=[2])])
        first, second = store.read(view, [{"user": 1}, {"user": 1}])
        first["a"] = 9
        second["b"].append(3)
        [alone] = store.read(view, [{"user": 1}])
        alone["c"] = 0
        assert store.read(view, [{"user": 1}]) == [{"a": 1, "b": [2]}]
        assert store.read(view, [{"user": 1}], features=["b", "a"]) == [{"b": [2], "a": 1}]

    def test_a_view_that_gains_or_loses_a_feature(self, store: OnlineStore) -> None:
        old, new = _view(features=("a",)), _view(features=("a", "Total", "total"))
        store.write(old, [_row(1, T0, a=1.0)])
        assert store.read(new, [{"user": 1}]) == [{"a": 1.0, "Total": None, "total": None}]
        store.write(new, [_row(2, T0, a=2.0, Total=[3], total="t")])
        assert store.read(new, [{"user": 2}, {"user": 1}]) == [{"a": 2.0, "Total": [3], "total": "t"},
                                                               {"a": 1.0, "Total": None, "total": None}]
        assert store.read(old, [{"user": 2}]) == [{"a": 2.0}]
        store.write(old, [_row(2, T0, a=4.0)])  # a later write replaces the whole row
        assert store.read(new, [{"user": 2}]) == [{"a": 4.0, "Total": None, "total": None}]

    def test_ttl_is_applied_at_read_time_when_now_is_given(self, store: OnlineStore) -> None:
        view = _view(ttl=dt.timedelta(hours=1))
        store.write(view, [_row(1, T0, score=1.0)])
        assert store.read(view, [{"user": 1}]) == [{"score": 1.0}]
        assert store.read(view, [{"user": 1}], now=T0 + dt.timedelta(hours=1)) == [{"score": 1.0}]  # inclusive
        late = T0 + dt.timedelta(hours=1, microseconds=1)
        assert store.read(view, [{"user": 1}], now=late) == [{"score": None}]

    def test_values_persist_across_reopen(self, online_store_factory: Callable[[], OnlineStore]) -> None:
        view = _view(keys=("user", "day"))
        with online_store_factory() as store:
            store.write(view, [{"user": 1, "day": "mon", "ts": T0, "score": [1.5]}])
        with online_store_factory() as again:
            assert again.read(view, [{"user": 1, "day": "mon"}]) == [{"score": [1.5]}]
            again.write(view, [{"user": 1, "day": "mon", "ts": T0 - dt.timedelta(days=1), "score": [0.0]}])
            assert again.read(view, [{"user": 1, "day": "mon"}]) == [{"score": [1.5]}]

    def test_use_after_close_raises_a_clear_error(self, online_store_factory: Callable[[], OnlineStore]) -> None:
        view = _view()
        store = online_store_factory()
        store.close()
        store.close()  # closing twice is fine
        with pytest.raises(OnlineStoreError, match="closed"):
            store.read(view, [{"user": 1}])
        with pytest.raises(OnlineStoreError, match="closed"):
            store.write(view, [_row(1, T0, score=1.0)])

    def test_bad_rows_are_refused_and_write_nothing(self, store: OnlineStore) -> None:
        view = _view()
        with pytest.raises(ValueError, match="lacks"):
            store.write(view, [_row(1, T0, score=1.0), {"user": 2, "ts": T0}])
        with pytest.raises(TypeError):
            store.write(view, [_row(1, T0, score=1.0), _row(2, T0, score=object())])
        assert store.read(view, [{"user": 1}, {"user": 2}]) == [{"score": None}, {"score": None}]

    def test_a_view_whose_keys_changed_is_refused(self, store: OnlineStore) -> None:
        store.write(_view(), [_row(1, T0, score=1.0)])
        with pytest.raises(OnlineStoreError, match="join keys"):
            store.read(_view(keys=("user", "day")), [{"user": 1, "day": "mon"}])
