"""Windowed Inference (24): a stream processor's state kept in an online store continues exactly after a restart."""

from __future__ import annotations

import gc
import math
import os
import uuid
import zoneinfo
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlpatterns.reproducibility.windowed_inference import (
    AGGREGATES,
    StreamSlidingWindows,
    StreamWindows,
    WindowFeature,
    sliding_window_features,
    window_features,
)

REDIS_URL = os.environ.get("MLPATTERNS_TEST_REDIS_URL")


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request, tmp_path):
    """An online store URL: a fresh SQLite file, or MLPATTERNS_TEST_REDIS_URL when set and the backend exists."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    if not REDIS_URL:
        pytest.skip("MLPATTERNS_TEST_REDIS_URL is not set")
    from mlpatterns.reproducibility.feature_store.online_store import (
        OnlineStoreError,
        open_online_store,
    )

    try:
        open_online_store(REDIS_URL).close()
    except (OnlineStoreError, ImportError) as error:
        pytest.skip(f"no Redis online store here: {error}")
    return REDIS_URL


@pytest.fixture
def name():
    """A fresh processor name (a Redis server keeps the state of earlier runs)."""
    return f"windows_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    """14 June 2013's flights (as the batch = stream tests) and an arrival order up to 30 minutes late."""
    from mlpatterns.datasets import load_flights

    table = load_flights()
    day = table[(table["month"] == 6) & (table["day"] == 14)].dropna(subset=["dep_delay"])
    minutes = day["sched_dep_time"] // 100 * 60 + day["sched_dep_time"] % 100
    scheduled = pd.to_datetime(day[["year", "month", "day"]]) + pd.to_timedelta(minutes, unit="min")
    return pd.DataFrame(
        {"origin": day["origin"], "sched_dep": scheduled, "dep_delay": day["dep_delay"]}
    ).reset_index(drop=True)


def arrivals(data: pd.DataFrame, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    arrival = data["sched_dep"] + pd.to_timedelta(rng.integers(0, 31, len(data)), unit="min")
    records = data.to_dict("index")
    return [dict(records[i], id=i) for i in arrival.sort_values(kind="stable").index]


FEATURES = [
    WindowFeature(f"delay_{a}_{w}", "dep_delay", a, w, key="origin", time="sched_dep")
    for a in AGGREGATES
    for w in ("1h", "2h")
]


def identical(a: dict, b: dict) -> bool:
    """The same feature values, bit for bit (NaN equal to NaN)."""
    return a.keys() == b.keys() and all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)) for x, y in
        ((a[k], b[k]) for k in a)
    )


def run_events(processor: StreamWindows, events) -> dict:
    out = {}
    for event in events:
        for scored in processor.process(event):
            out[scored.event["id"]] = scored
    return out


def assert_equals_batch(scored: dict, data: pd.DataFrame) -> None:
    batch = window_features(data, FEATURES)
    assert sorted(scored) == list(data.index)
    for f in FEATURES:
        got = np.array([scored[i].features[f.name] for i in data.index], float)
        if f.aggregate in ("count", "sum"):
            np.testing.assert_array_equal(got, batch[f.name].to_numpy(float), err_msg=f.name)
        else:
            np.testing.assert_allclose(got, batch[f.name].to_numpy(float), rtol=1e-9, atol=1e-9,
                                       equal_nan=True, err_msg=f.name)


def uninterrupted(events) -> dict:
    processor = StreamWindows(FEATURES, allowed_lateness="30min")
    out = run_events(processor, events)
    out.update({s.event["id"]: s for s in processor.flush()})
    return out


@pytest.mark.parametrize("split", [1, 500, 967])
def test_a_restarted_processor_continues_exactly_per_event(flights, store_url, name, split):
    events = arrivals(flights, seed=24)
    expected = uninterrupted(events)

    first = StreamWindows(FEATURES, allowed_lateness="30min", state=store_url, name=name)
    assert not first.restored
    got = run_events(first, events[:split])
    pending_at_split = split - len(got)
    first.close(position=split - 1)
    del first
    gc.collect()

    second = StreamWindows(FEATURES, allowed_lateness="30min", state=store_url, name=name)
    assert second.restored and second.position == split - 1
    later = run_events(second, events[split:])
    later.update({s.event["id"]: s for s in second.flush()})
    second.close()
    assert not set(got) & set(later)  # each event emitted once: before or after the restart
    got.update(later)

    assert got.keys() == expected.keys()
    assert all(identical(got[i].features, expected[i].features) for i in expected)
    # The events pending at the restart come back whole (their Timestamps too).
    assert pending_at_split > 0 or split == 1
    assert all(got[i].event == expected[i].event for i in expected)
    assert_equals_batch(got, flights)


def test_after_a_crash_the_source_replays_from_the_checkpoint_and_results_repeat(flights, store_url, name):
    events = arrivals(flights, seed=7)
    expected = uninterrupted(events)
    first = StreamWindows(FEATURES, allowed_lateness="30min", state=store_url, name=name)
    before = run_events(first, events[:300])
    first.checkpoint(position=299)
    lost = run_events(first, events[300:650])  # emitted, then the process dies without a checkpoint
    del first
    gc.collect()

    second = StreamWindows(FEATURES, allowed_lateness="30min", state=store_url, name=name)
    assert second.position == 299
    replayed = run_events(second, events[second.position + 1:])
    replayed.update({s.event["id"]: s for s in second.flush()})
    second.close()
    # At-least-once output: what was emitted after the checkpoint comes again, with the same values.
    assert set(lost) <= set(replayed)
    assert all(identical(lost[i].features, replayed[i].features) for i in lost)
    got = {**before, **replayed}
    assert got.keys() == expected.keys()
    assert all(identical(got[i].features, expected[i].features) for i in expected)


def test_write_through_makes_every_returned_event_durable(flights, store_url, name):
    events = arrivals(flights, seed=3)
    expected = uninterrupted(events)
    first = StreamWindows(FEATURES, allowed_lateness="30min", state=store_url, name=name, write_through=True)
    got = run_events(first, events[:412])
    del first  # no checkpoint, no close: a crash right after the 412th process() returned
    gc.collect()
    second = StreamWindows(FEATURES, allowed_lateness="30min", state=store_url, name=name, write_through=True)
    assert second.restored and second.position is None
    got.update(run_events(second, events[412:]))
    got.update({s.event["id"]: s for s in second.flush()})
    assert got.keys() == expected.keys()
    assert all(identical(got[i].features, expected[i].features) for i in expected)


def test_sliding_windows_restart_equals_the_uninterrupted_stream_and_the_batch(flights, store_url, name):
    features = [WindowFeature(f"delay_{a}_{w}", "dep_delay", a, w, key="origin", time="sched_dep")
                for a in AGGREGATES for w in ("30min", "2h")]
    events = arrivals(flights, seed=10)
    kwargs = {"period": "10min", "allowed_lateness": "30min"}

    def frame(windows):
        return pd.DataFrame([{"origin": w.key, "window_end": w.end, **w.features} for w in windows])

    plain = StreamSlidingWindows(features, **kwargs)
    expected = [w for e in events for w in plain.process(e)] + plain.flush()

    windows = []
    for part, (start, stop) in enumerate([(0, 200), (200, 700), (700, len(events))]):
        processor = StreamSlidingWindows(features, **kwargs, state=store_url, name=name)
        assert processor.restored == (part > 0)
        windows += [w for e in events[start:stop] for w in processor.process(e)]
        if stop == len(events):
            windows += processor.flush()
        processor.close(position=stop)
        del processor
    assert [(w.key, w.end) for w in windows] == [(w.key, w.end) for w in expected]
    assert all(identical(a.features, b.features) for a, b in zip(windows, expected, strict=True))

    batch = sliding_window_features(flights, features, period="10min")
    got = frame(windows).sort_values(["origin", "window_end"]).reset_index(drop=True)
    assert len(got) == len(batch)
    assert got["origin"].tolist() == batch["origin"].tolist()
    for f in features:
        if f.aggregate in ("count", "sum"):
            np.testing.assert_array_equal(got[f.name].to_numpy(float), batch[f.name].to_numpy(float))
        else:
            np.testing.assert_allclose(got[f.name].to_numpy(float), batch[f.name].to_numpy(float),
                                       rtol=1e-9, atol=1e-9, equal_nan=True)


def test_late_events_after_a_restart_are_judged_against_the_restored_watermark(store_url, name):
    f = WindowFeature("n", "v", "count", "1h", key="k", time="t")
    noon = datetime(2013, 1, 1, 12)

    def event(key, minutes):
        return {"k": key, "t": noon + timedelta(minutes=minutes), "v": 1.0}

    before = [event("a", 0), event("a", -11), event("b", -300)]  # -11 min: rejected (lateness 10 min)
    after = [event("a", -11), event("a", -10), event("a", 10), event("b", -300)]

    plain = StreamWindows([f], allowed_lateness="10min")
    expected = [(s.event["k"], s.event["t"], s.features["n"]) for e in before + after for s in plain.process(e)]
    expected += [(s.event["k"], s.event["t"], s.features["n"]) for s in plain.flush()]

    with StreamWindows([f], allowed_lateness="10min", state=store_url, name=name) as first:
        got = [(s.event["k"], s.event["t"], s.features["n"]) for e in before for s in first.process(e)]
        assert first.rejected == 1
    with StreamWindows([f], allowed_lateness="10min", state=store_url, name=name) as second:
        assert second.rejected == 1  # restored
        got += [(s.event["k"], s.event["t"], s.features["n"]) for e in after for s in second.process(e)]
        got += [(s.event["k"], s.event["t"], s.features["n"]) for s in second.flush()]
        assert second.rejected == plain.rejected == 2
    assert got == expected


BASE = [WindowFeature("m", "v", "mean", "1h", key="k", time="t"),
        WindowFeature("n", "v", "count", "2h", key="k", time="t")]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s, n: StreamWindows([BASE[0], WindowFeature("n", "v", "count", "3h", key="k", time="t")],
                                    allowed_lateness="5min", state=s, name=n),
         r"feature 'n' width: stored 2:00:00, declared 3:00:00"),
        (lambda s, n: StreamWindows([BASE[0], WindowFeature("n", "v", "sum", "2h", key="k", time="t")],
                                    allowed_lateness="5min", state=s, name=n),
         r"feature 'n' aggregate: stored 'count', declared 'sum'"),
        (lambda s, n: StreamWindows(BASE, allowed_lateness="10min", state=s, name=n),
         r"allowed_lateness: stored 0:05:00, declared 0:10:00"),
        (lambda s, n: StreamWindows([WindowFeature(f.name, f.column, f.aggregate, f.width, "j", "t") for f in BASE],
                                    allowed_lateness="5min", state=s, name=n),
         r"key: stored 'k', declared 'j'"),
        (lambda s, n: StreamWindows(BASE[:1], allowed_lateness="5min", state=s, name=n),
         r"feature\(s\) \['n'\] stored but not declared"),
        (lambda s, n: StreamSlidingWindows(BASE, period="10min", allowed_lateness="5min", state=s, name=n),
         r"processor: stored StreamWindows, declared StreamSlidingWindows"),
    ],
)
def test_state_of_another_declaration_is_refused_naming_what_differs(store_url, name, build, message):
    with StreamWindows(BASE, allowed_lateness="5min", state=store_url, name=name) as first:
        first.process({"k": "a", "t": datetime(2013, 1, 1), "v": 1.0})
    with pytest.raises(ValueError, match="stored state was written by a different declaration") as error:
        build(store_url, name)
    assert error.match(message)
    # Reordering the same features is the same declaration.
    StreamWindows(BASE[::-1], allowed_lateness="5min", state=store_url, name=name).close()


def test_sliding_state_refuses_another_period_or_origin(store_url, name):
    with StreamSlidingWindows(BASE, period="10min", state=store_url, name=name) as first:
        first.process({"k": "a", "t": datetime(2013, 1, 1), "v": 1.0})
    with pytest.raises(ValueError, match=r"period: stored 0:10:00, declared 0:15:00"):
        StreamSlidingWindows(BASE, period="15min", state=store_url, name=name)
    with pytest.raises(ValueError, match=r"origin: stored 1970-01-01 00:00:00, declared 2013-01-01 00:05:00"):
        StreamSlidingWindows(BASE, period="10min", origin=datetime(2013, 1, 1, 0, 5), state=store_url, name=name)


def test_pending_events_of_every_storable_kind_come_back_equal(store_url, name):
    f = WindowFeature("n", "v", "count", "1h", key="k", time="t")
    paris = zoneinfo.ZoneInfo("Europe/Paris")
    event = {
        "k": np.int64(7), "t": pd.Timestamp("2024-03-31 01:30", tz="Europe/Paris"), "v": np.float32(2.5),
        "when": datetime(2024, 3, 31, 3, 30, tzinfo=paris), "day": date(2024, 3, 31),
        "wait": timedelta(minutes=3), "na": pd.NA, "nat": pd.NaT, "nan": float("nan"), "inf": -math.inf,
        "pair": (1, "x"), "nested": {"a": [1, None, True], 2: "two"}, "stamp": np.datetime64("2024-01-01T00:00"),
    }
    with StreamWindows([f], allowed_lateness="1h", state=store_url, name=name) as first:
        assert first.process(event) == []  # pending: its key's watermark is an hour behind it
    with StreamWindows([f], allowed_lateness="1h", state=store_url, name=name) as second:
        (scored,) = second.flush()
    back = scored.event
    assert back["t"] == event["t"] and str(back["t"].tz) == "Europe/Paris"
    assert back["when"] == event["when"] and back["when"].tzinfo == paris
    assert back["k"] == 7 and back["v"] == 2.5 and back["day"] == event["day"] and back["wait"] == event["wait"]
    assert back["na"] is pd.NA and back["nat"] is pd.NaT and math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert back["pair"] == (1, "x") and back["nested"] == {"a": [1, None, True], 2: "two"}
    assert back["stamp"] == pd.Timestamp("2024-01-01")
    assert scored.features == {"n": 0}


def test_misuse_is_refused_with_a_clear_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    f = WindowFeature("n", "v", "count", "1h", key="k", time="t")
    with pytest.raises(ValueError, match="needs a name"):
        StreamWindows([f], state=url)
    with pytest.raises(ValueError, match="name: expected the processor's name"):
        StreamWindows([f], state=url, name="not a name")
    with pytest.raises(ValueError, match="need a state store"):
        StreamWindows([f], name="x")
    processor = StreamWindows([f], allowed_lateness="1h", state=url, name="x")
    with pytest.raises(TypeError, match="event: a object value cannot be kept in the state store"):
        processor.process({"k": "a", "t": datetime(2013, 1, 1), "v": 1.0, "extra": object()})
    assert processor.held() == 0  # refused before any change
    with pytest.raises(ValueError, match="could not convert"):
        processor.process({"k": "a", "t": datetime(2013, 1, 1), "v": "soon"})
    assert processor.held() == 0
    processor.close()
    with pytest.raises(ValueError, match="is closed"):
        processor.process({"k": "a", "t": datetime(2013, 1, 1), "v": 1.0})
    # Without state= the processor works in memory, and checkpoint/close are no-ops.
    memory = StreamWindows([f])
    memory.checkpoint(position=3)
    memory.close()


def test_a_checkpoint_cut_short_leaves_the_previous_one_intact(flights, store_url, name):
    """The process dies after a checkpoint wrote the keys' rows but before its meta row: the restart
    restores the previous checkpoint (the new rows went to the slots the stored meta does not name)."""
    from mlpatterns.reproducibility.feature_store.online_store import open_online_store

    events = arrivals(flights, seed=5)
    expected = uninterrupted(events)
    store = open_online_store(store_url)
    first = StreamWindows(FEATURES, allowed_lateness="30min", state=store, name=name)
    got = run_events(first, events[:250])
    first.checkpoint(position=249)
    run_events(first, events[250:600])
    write = store.write

    def dies_before_the_meta(view, rows):
        rows = list(rows)
        write(view, [r for r in rows if r["stream_key"] != "*"])
        if any(r["stream_key"] == "*" for r in rows):
            raise SystemExit("killed")

    store.write = dies_before_the_meta
    with pytest.raises(SystemExit):
        first.checkpoint(position=599)
    store.close()
    del first

    second = StreamWindows(FEATURES, allowed_lateness="30min", state=store_url, name=name)
    assert second.position == 249
    got.update(run_events(second, events[250:]))
    got.update({s.event["id"]: s for s in second.flush()})
    second.close()
    assert got.keys() == expected.keys()
    assert all(identical(got[i].features, expected[i].features) for i in expected)


def test_leaving_a_with_block_by_an_exception_checkpoints_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    f = WindowFeature("n", "v", "count", "1h", key="k", time="t")
    with StreamWindows([f], state=url, name="w") as first:
        first.process({"k": "a", "t": datetime(2013, 1, 1), "v": 1.0})
        first.close(position=0)  # leaving the block then does nothing more
    with pytest.raises(RuntimeError), StreamWindows([f], state=url, name="w") as second:
        second.process({"k": "a", "t": datetime(2013, 1, 1, 0, 30), "v": 1.0})
        raise RuntimeError("the server died")
    with StreamWindows([f], state=url, name="w") as third:
        assert third.position == 0  # the first processor's checkpoint, not a second one
        (scored,) = third.process({"k": "a", "t": datetime(2013, 1, 1, 0, 30), "v": 1.0})
        assert scored.features == {"n": 1}
