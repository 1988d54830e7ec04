"""Windowed Inference (24): batch (DuckDB) and stream compute the same window features."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpatterns.reproducibility.windowed_inference import (
    AGGREGATES,
    EPOCH,
    LateEventError,
    StreamSlidingWindows,
    StreamWindows,
    WindowFeature,
    sliding_window_features,
    window_features,
)

EXACT = ("count", "sum")  # exact for integer-valued data; the others within the tolerance below
RTOL = ATOL = 1e-9


def reference_aggregate(cells: pd.Series, aggregate: str) -> float | int:
    """The brute-force aggregate of a window's cells (missing ones left out), as the module defines it."""
    values = cells.dropna().to_numpy(float)
    n = len(values)
    return {
        "count": n,
        "sum": float(values.sum()),
        "mean": values.mean() if n else math.nan,
        "max": values.max() if n else math.nan,
        "min": values.min() if n else math.nan,
        "std": values.std(ddof=1) if n > 1 else math.nan,
    }[aggregate]


def brute_force(data: pd.DataFrame, f: WindowFeature) -> list[float]:
    """The definition, row by row: the values of the key's events with time in [t - width, t)."""
    out = []
    for _, row in data.iterrows():
        t = row[f.time]
        same_key = data[f.key] == row[f.key] if f.key else pd.Series(True, index=data.index)
        inside = same_key & (data[f.time] >= t - f.width) & (data[f.time] < t)
        out.append(reference_aggregate(data.loc[inside, f.column], f.aggregate))
    return out


def all_features(width: str, key: str | None = "key", column: str = "value") -> list[WindowFeature]:
    return [
        WindowFeature(f"{a}_{width}", column, a, width, key=key, time="time") for a in AGGREGATES
    ]


def assert_same(f: WindowFeature, got, expected) -> None:
    got, expected = np.asarray(got, float), np.asarray(expected, float)
    if f.aggregate in EXACT:
        np.testing.assert_array_equal(got, expected, err_msg=f.name)
    else:
        np.testing.assert_allclose(
            got, expected, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=f.name
        )


def small_events(seed: int = 0, n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = datetime(2013, 1, 1)
    data = pd.DataFrame(
        {
            "key": rng.choice(["JFK", "LGA"], n),
            # on a 5-minute grid: many ties
            "time": [start + timedelta(minutes=int(m)) for m in rng.integers(0, 60, n) * 5],
            "value": rng.integers(-10, 60, n).astype(float),
        }
    )
    data.loc[rng.random(n) < 0.1, "value"] = np.nan
    return data


def stream_features(
    data: pd.DataFrame, features, order, lateness
) -> tuple[pd.DataFrame, StreamWindows]:
    """Deliver the rows of ``data`` in ``order``; collect the emitted features by row label."""
    processor = StreamWindows(features, allowed_lateness=lateness)
    rows = {}
    records = data.to_dict("index")
    for label in order:
        event = dict(records[label], id=label)
        for scored in processor.process(event):
            rows[scored.event["id"]] = scored.features
    for scored in processor.flush():
        rows[scored.event["id"]] = scored.features
    return pd.DataFrame.from_dict(rows, orient="index"), processor


def test_batch_matches_the_definition_with_ties_and_missing_values():
    data = small_events()
    features = all_features("30min") + all_features("2h") + all_features("1h", key=None)
    features = [
        WindowFeature(
            f.name + ("_all" if f.key is None else ""),
            f.column,
            f.aggregate,
            f.width,
            f.key,
            f.time,
        )
        for f in features
    ]
    batch = window_features(data, features)
    assert list(batch.index) == list(data.index)
    assert batch["count_30min"].dtype == np.int64
    for f in features:
        assert_same(f, batch[f.name], brute_force(data, f))


def test_same_timestamp_events_are_outside_each_others_windows():
    t = datetime(2013, 1, 1, 8)
    data = pd.DataFrame(
        {
            "key": ["a"] * 4,
            "time": [t, t, t + timedelta(hours=1), t + timedelta(hours=1)],
            "value": [1.0, 2.0, 3.0, 4.0],
        }
    )
    f = WindowFeature("n", "value", "count", "1h", key="key", time="time")
    assert window_features(data, [f])["n"].tolist() == [0, 0, 2, 2]  # start included, ties excluded
    stream, _ = stream_features(data, [f], data.index, timedelta(0))
    assert stream.loc[data.index, "n"].tolist() == [0, 0, 2, 2]


@pytest.fixture(scope="module")
def one_day_of_flights() -> pd.DataFrame:
    from mlpatterns.datasets import load_flights

    flights = load_flights()
    day = flights[(flights["month"] == 6) & (flights["day"] == 14)].dropna(subset=["dep_delay"])
    minutes = day["sched_dep_time"] // 100 * 60 + day["sched_dep_time"] % 100
    scheduled = pd.to_datetime(day[["year", "month", "day"]]) + pd.to_timedelta(minutes, unit="min")
    return pd.DataFrame(
        {"origin": day["origin"], "sched_dep": scheduled, "dep_delay": day["dep_delay"]}
    ).reset_index(drop=True)


def test_batch_equals_stream_event_by_event_on_a_day_of_flights_delivered_out_of_order(
    one_day_of_flights,
):
    data = one_day_of_flights
    features = [
        WindowFeature(f"delay_{a}_{w}", "dep_delay", a, w, key="origin", time="sched_dep")
        for a in AGGREGATES
        for w in ("1h", "2h", "1D")
    ]
    lateness = timedelta(minutes=30)
    # Each flight arrives up to 30 minutes after its scheduled time, so never later than the lateness allows.
    rng = np.random.default_rng(24)
    arrival = data["sched_dep"] + pd.to_timedelta(rng.integers(0, 31, len(data)), unit="min")
    order = arrival.sort_values(kind="stable").index
    out_of_order = int((data.loc[order, "sched_dep"].diff() < pd.Timedelta(0)).sum())
    assert out_of_order > 100, out_of_order

    batch = window_features(data, features)
    stream, processor = stream_features(data, features, order, lateness)
    assert processor.rejected == 0
    assert len(stream) == len(data) > 800
    stream = stream.loc[data.index]
    for f in features:
        assert_same(f, stream[f.name], batch[f.name])
    assert (batch["delay_count_1h"] > 0).mean() > 0.9  # the windows are not trivially empty


def test_state_is_bounded_by_the_widest_window_and_the_lateness(one_day_of_flights):
    data = one_day_of_flights.sort_values("sched_dep", kind="stable")
    f = WindowFeature("m", "dep_delay", "mean", "1h", key="origin", time="sched_dep")
    processor = StreamWindows([f], allowed_lateness="10min")
    most = 0
    for event in data.to_dict("records"):
        processor.process(event)
        most = max(most, processor.held())
    assert most < 150 < len(data)  # three airports' last 70 minutes, never the whole day


def test_pandas_rolling_closed_left_agrees_on_the_mean(one_day_of_flights):
    data = one_day_of_flights.sort_values(["origin", "sched_dep"], kind="stable")
    rolling = (
        data.groupby("origin").rolling("2h", on="sched_dep", closed="left")["dep_delay"].mean()
    )
    f = WindowFeature("m", "dep_delay", "mean", "2h", key="origin", time="sched_dep")
    batch = window_features(data, [f])
    np.testing.assert_allclose(batch["m"].to_numpy(), rolling.to_numpy(), rtol=1e-9, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from("ab"), st.integers(0, 40), st.integers(-5, 5), st.integers(0, 6)),
        min_size=1,
        max_size=40,
    ),
    width=st.integers(1, 15),
)
def test_property_stream_equals_batch_for_any_delivery_within_lateness(events, width):
    start = datetime(2020, 1, 1)
    data = pd.DataFrame(
        {
            "key": [k for k, *_ in events],
            "time": [start + timedelta(minutes=m) for _, m, _, _ in events],
            "value": [float(v) for *_, v, _ in events],
        }
    )
    delays = pd.to_timedelta([d for *_, d in events], unit="min")
    order = (data["time"] + delays).sort_values(kind="stable").index
    features = all_features(f"{width}min")
    stream, processor = stream_features(data, features, order, timedelta(minutes=6))
    assert processor.rejected == 0
    batch = window_features(data, features)
    for f in features:
        assert_same(f, stream.loc[data.index, f.name], batch[f.name])


def test_events_beyond_the_allowed_lateness_are_rejected_and_change_nothing():
    f = WindowFeature("n", "v", "count", "1h", key="k", time="t")
    noon = datetime(2013, 1, 1, 12)
    stream = StreamWindows([f], allowed_lateness="10min")

    def event(key, t):
        return {"k": key, "t": t, "v": 1.0}

    def emitted(scored):
        return [(s.event["t"], s.features["n"]) for s in scored]

    # Noon waits until its key's watermark (largest time seen - 10 min) reaches noon.
    assert stream.process(event("a", noon)) == []
    assert stream.process(event("a", noon - timedelta(minutes=11))) == []
    assert stream.rejected == 1
    # Exactly at the bound: accepted, and final at once (the watermark is at its time).
    at_bound = stream.process(event("a", noon - timedelta(minutes=10)))
    assert emitted(at_bound) == [(noon - timedelta(minutes=10), 0)]
    # Another key has its own watermark: five hours behind "a" is not late, only pending.
    assert stream.process(event("b", noon - timedelta(hours=5))) == []
    assert stream.rejected == 1
    # 12:10 moves the watermark to noon: noon is emitted, with 11:50 in its hour.
    assert emitted(stream.process(event("a", noon + timedelta(minutes=10)))) == [(noon, 1)]
    assert sorted(emitted(stream.flush())) == [
        (noon - timedelta(hours=5), 0),
        (noon + timedelta(minutes=10), 2),
    ]

    strict = StreamWindows([f], allowed_lateness=timedelta(0), on_late="raise")
    # No lateness: every accepted event is scored as it arrives.
    assert strict.process(event("a", noon))[0].features == {"n": 0}
    with pytest.raises(LateEventError, match="allowed lateness"):
        strict.process(event("a", noon - timedelta(microseconds=1)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aggregate": "median"}, "aggregate: expected one of count, sum, mean, max, min, std"),
        ({"width": timedelta(0)}, "width: expected a positive duration"),
        ({"width": "-1h"}, "width: expected a positive duration"),
        ({"width": "soon"}, "width: expected a duration"),
        ({"name": ""}, "name: expected a non-empty string"),
    ],
)
def test_bad_declarations_name_the_field(kwargs, message):
    args = {
        "name": "f",
        "column": "v",
        "aggregate": "mean",
        "width": "1h",
        "key": "k",
        "time": "t",
    } | kwargs
    with pytest.raises(ValueError, match=message):
        WindowFeature(**args)


def test_declarations_that_do_not_fit_the_data_name_the_field():
    data = pd.DataFrame({"k": ["a"], "t": [datetime(2013, 1, 1)], "v": [1.0], "s": ["x"]})
    with pytest.raises(ValueError, match="'f' column: column 'delay' is not in the data"):
        window_features(data, [WindowFeature("f", "delay", "mean", "1h", key="k", time="t")])
    with pytest.raises(ValueError, match="'f' key: column 'origin' is not in the data"):
        window_features(data, [WindowFeature("f", "v", "mean", "1h", key="origin", time="t")])
    with pytest.raises(ValueError, match="'f' time: column 'v' must hold timestamps"):
        window_features(data, [WindowFeature("f", "s", "mean", "1h", key="k", time="v")])
    with pytest.raises(ValueError, match="names must be unique"):
        window_features(data, [WindowFeature("f", "v", "mean", "1h", "k", "t")] * 2)
    with pytest.raises(ValueError, match="one StreamWindows serves one key"):
        StreamWindows(
            [
                WindowFeature("f", "v", "mean", "1h", "k", "t"),
                WindowFeature("g", "v", "mean", "1h", None, "t"),
            ]
        )
    with pytest.raises(ValueError, match="event: expected a 'v' field"):
        StreamWindows([WindowFeature("f", "v", "mean", "1h", "k", "t")]).process(
            {"k": "a", "t": datetime(2013, 1, 1)}
        )


# Sliding windows with a period: one result per key and window end on the grid.


def sliding_brute_force(data: pd.DataFrame, features, period, origin=EPOCH) -> pd.DataFrame:
    """The definition: every grid end e whose widest window [e - width, e) holds an event of the key."""
    period = pd.Timedelta(period)
    widest = max(f.width for f in features)
    key, time = features[0].key, features[0].time
    rows = []
    groups = data.groupby(key, dropna=False) if key else [(None, data)]
    for k, events in groups:
        first = origin + ((events[time].min() - origin) // period + 1) * period
        end = first
        while end <= events[time].max() + widest:
            row = {key: k} if key else {}
            row["window_end"] = end
            for f in features:
                inside = (events[time] >= end - f.width) & (events[time] < end)
                row[f.name] = reference_aggregate(events.loc[inside, f.column], f.aggregate)
            if ((events[time] >= end - widest) & (events[time] < end)).any():
                rows.append(row)
            end += period
    return pd.DataFrame(rows)


def assert_same_windows(features, got: pd.DataFrame, expected: pd.DataFrame) -> None:
    key = features[0].key
    sort = [key, "window_end"] if key else ["window_end"]
    got = got.sort_values(sort).reset_index(drop=True)
    expected = expected.sort_values(sort).reset_index(drop=True)
    assert len(got) == len(expected)
    if key:
        assert got[key].tolist() == expected[key].tolist()
    assert [pd.Timestamp(t) for t in got["window_end"]] == [
        pd.Timestamp(t) for t in expected["window_end"]
    ]
    for f in features:
        assert_same(f, got[f.name], expected[f.name])


def stream_windows(data, features, order, lateness, period, **kwargs):
    processor = StreamSlidingWindows(features, period=period, allowed_lateness=lateness, **kwargs)
    records = data.to_dict("index")
    results = []
    for label in order:
        results.extend(processor.process(records[label]))
    results.extend(processor.flush())
    key = features[0].key
    frame = pd.DataFrame(
        [{**({key: w.key} if key else {}), "window_end": w.end, **w.features} for w in results]
    )
    return frame, processor, results


def test_sliding_batch_matches_the_definition_with_boundary_events():
    data = small_events(seed=3, n=120)  # times on a 5-minute grid: many exactly on window ends
    boundary = pd.DataFrame(
        {
            "key": ["JFK", "JFK", "LGA"],
            "time": pd.to_datetime(["2013-01-01 02:00", "2013-01-01 02:10", "2013-01-01 00:00"]),
            "value": [100.0, 7.0, 3.0],
        }
    )
    data = pd.concat([data, boundary], ignore_index=True)
    for period, widths in (
        ("10min", ("30min", "2h")),
        ("15min", ("20min", "1h")),
        ("1h", ("25min",)),
    ):
        features = [f for w in widths for f in all_features(w)]
        batch = sliding_window_features(data, features, period=period)
        assert batch["count_" + widths[0]].dtype == np.int64
        assert list(batch.index) == list(range(len(batch)))
        assert_same_windows(features, batch, sliding_brute_force(data, features, period))
    # No key, and an origin off the epoch (and after the data): ends at 00:05 + n * 10 min.
    features = all_features("30min", key=None)
    origin = datetime(2030, 1, 1, 0, 5)  # after the data: negative offsets
    batch = sliding_window_features(data, features, period="10min", origin=origin)
    assert (batch["window_end"].dt.minute % 10 == 5).all()
    assert_same_windows(features, batch, sliding_brute_force(data, features, "10min", origin))


def test_sliding_window_boundaries_start_included_end_excluded():
    t = datetime(2013, 1, 1, 8)
    data = pd.DataFrame(
        {"key": ["a", "a"], "time": [t, t + timedelta(hours=2)], "value": [1.0, 2.0]}
    )
    f = WindowFeature("n", "value", "count", "2h", key="key", time="time")
    batch = sliding_window_features(data, [f], period="1h")
    # 08:00 is in the windows ending 09:00 and 10:00 (start included); 10:00 is not in the
    # window ending 10:00 (end excluded) but in those ending 11:00 and 12:00.
    assert batch["window_end"].dt.hour.tolist() == [9, 10, 11, 12]
    assert batch["n"].tolist() == [1, 1, 1, 1]
    stream, _, _ = stream_windows(data, [f], data.index, timedelta(0), "1h")
    assert_same_windows([f], stream, batch)


def test_sliding_batch_equals_stream_window_by_window_on_a_day_of_flights(one_day_of_flights):
    data = one_day_of_flights
    features = [
        WindowFeature(f"delay_{a}_{w}", "dep_delay", a, w, key="origin", time="sched_dep")
        for a in AGGREGATES
        for w in ("30min", "2h")
    ]
    rng = np.random.default_rng(10)
    arrival = data["sched_dep"] + pd.to_timedelta(rng.integers(0, 31, len(data)), unit="min")
    order = arrival.sort_values(kind="stable").index
    batch = sliding_window_features(data, features, period="10min")
    stream, processor, results = stream_windows(data, features, order, "30min", "10min")
    assert processor.rejected == 0
    assert len(batch) > 3 * 6 * 15  # three airports, about a day of 10-minute ends
    assert_same_windows(features, stream, batch)
    # Emitted in end order per key, each window once.
    for key in ("JFK", "LGA", "EWR"):
        ends = [w.end for w in results if w.key == key]
        assert ends == sorted(set(ends))
    assert processor.held() < 200 < len(data)


def test_sliding_stream_emits_once_the_watermark_passes_the_end_and_rejects_late_events():
    f = WindowFeature("n", "v", "count", "20min", key="k", time="t")
    noon = datetime(2013, 1, 1, 12)
    stream = StreamSlidingWindows([f], period="10min", allowed_lateness="5min")

    def event(t):
        return {"k": "a", "t": t, "v": 1.0}

    assert stream.process(event(noon)) == []  # windows ending 12:10 and 12:20 pending
    # 12:15 moves the watermark to 12:10: the window ending 12:10 is final.
    out = stream.process(event(noon + timedelta(minutes=15)))
    assert [(w.end, w.features["n"]) for w in out] == [(noon + timedelta(minutes=10), 1)]
    assert stream.process(event(noon + timedelta(minutes=9))) == []  # too late: 12:09 < 12:10
    assert stream.rejected == 1
    assert [(w.end.minute, w.features["n"]) for w in stream.flush()] == [(20, 2), (30, 1)]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"period": timedelta(0)}, ValueError, "period: expected a positive duration"),
        ({"period": "-10min"}, ValueError, "period: expected a positive duration"),
        ({"period": "often"}, ValueError, "period: expected a duration"),
        ({"period": 10}, TypeError, "period: expected a datetime.timedelta"),
        ({"period": "10min", "origin": "1970"}, TypeError, "origin: expected a datetime"),
    ],
)
def test_sliding_bad_declarations_name_the_field(kwargs, error, message):
    f = WindowFeature("f", "v", "mean", "1h", key="k", time="t")
    data = pd.DataFrame({"k": ["a"], "t": [datetime(2013, 1, 1)], "v": [1.0]})
    with pytest.raises(error, match=message):
        sliding_window_features(data, [f], **kwargs)
    with pytest.raises(error, match=message):
        StreamSlidingWindows([f], **kwargs)
    with pytest.raises(ValueError, match="sliding windows share one key"):
        sliding_window_features(
            data, [f, WindowFeature("g", "v", "mean", "1h", None, "t")], period="10min"
        )


def test_the_delays_example_runs_and_batch_agrees_with_the_stream(capsys):
    """The book's example on the shipped delays.csv: it exits non-zero when batch and stream disagree."""
    import importlib.util
    from pathlib import Path

    from mlpatterns.datasets import load_delays

    delays = load_delays()
    assert list(delays.columns) == ["scheduled", "delay"] and len(delays) == 1487
    assert pd.api.types.is_datetime64_any_dtype(delays["scheduled"])
    path = Path(__file__).resolve().parents[2] / "examples" / "windowed_inference_delays.py"
    spec = importlib.util.spec_from_file_location("windowed_inference_delays", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main([])
    out = capsys.readouterr().out
    assert "batch and stream agree flight by flight: True" in out
    assert "batch and stream agree window by window: True" in out


def test_time_zone_aware_times_are_windowed_in_utc_in_batch_as_on_the_stream():
    local = pd.date_range("2024-03-30 22:00", periods=12, freq="37min", tz="Europe/Paris")  # spans the DST change
    data = pd.DataFrame({"t": local, "k": ["a", "b"] * 6, "v": np.arange(12.0)})
    features = [WindowFeature("n", "v", "count", "2h", key="k", time="t"),
                WindowFeature("s", "v", "sum", "2h", key="k", time="t")]
    batch = window_features(data, features)
    naive = data.assign(t=data["t"].dt.tz_convert("UTC").dt.tz_localize(None))
    pd.testing.assert_frame_equal(batch, window_features(naive, features))
    processor = StreamWindows(features)
    streamed = {}
    for index, event in data.iterrows():
        for scored in processor.process({**event.to_dict(), "row": index}):
            streamed[scored.event["row"]] = scored.features
    assert [streamed[i]["s"] for i in range(12)] == list(batch["s"])


@pytest.mark.parametrize("missing", [None, float("nan"), np.float32("nan"), pd.NA, pd.NaT])
def test_every_kind_of_missing_value_is_left_out_alike_by_batch_and_stream(missing):
    times = pd.date_range("2024-01-01", periods=4, freq="10min")
    values = pd.array([1.0, 2.0, 4.0, 8.0], dtype="Float64")
    data = pd.DataFrame({"t": times, "v": values})
    data.loc[1, "v"] = pd.NA
    features = [WindowFeature("n", "v", "count", "1h", time="t"), WindowFeature("m", "v", "mean", "1h", time="t")]
    batch = window_features(data, features)
    processor = StreamWindows(features)
    out = []
    for i, t in enumerate(times):
        value = missing if i == 1 else float(values[i])
        out += processor.process({"t": t, "v": value})
    assert [o.features["n"] for o in out] == list(batch["n"]) == [0, 1, 1, 2]
    np.testing.assert_allclose([o.features["m"] for o in out], batch["m"].to_numpy(dtype=float), equal_nan=True)
