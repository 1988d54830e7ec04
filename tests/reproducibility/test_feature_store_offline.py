"""Feature Store (26): the offline store's point-in-time join against a brute-force reference.

The reference, for one entity row with keys ``k`` and event time ``t`` and one view: among
the view's source rows (position ``j``) with keys equal to ``k`` (none null), a non-null
event timestamp ``ts <= t`` and, with a TTL, ``ts >= t - ttl``, take the row with the
largest ``(ts, created is not null, created, j)``; no such row (or ``t`` null) gives null.
Timestamps are whole minutes from a small range, so equal timestamps, equal created
timestamps and values exactly at the TTL boundary happen in most examples.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlpatterns.reproducibility.feature_store import Entity, FeatureView, get_historical_features

BASE = pd.Timestamp("2024-01-01 00:00")
MINUTE = timedelta(minutes=1)


def reference(
    entity_df: pd.DataFrame, view: FeatureView, ts_column: str = "event_timestamp"
) -> dict[str, list]:
    source = view.source
    out: dict[str, list] = {f: [] for f in view.features}
    for _, row in entity_df.iterrows():
        t = row[ts_column]
        best, best_rank = None, None
        if not pd.isna(t) and not any(pd.isna(row[k]) for k in view.join_keys):
            for j in range(len(source)):
                s = source.iloc[j]
                ts = s[view.timestamp_field]
                if pd.isna(ts) or any(pd.isna(s[k]) or s[k] != row[k] for k in view.join_keys):
                    continue
                if ts > t or (view.ttl is not None and ts < t - view.ttl):
                    continue
                created = (
                    s[view.created_timestamp_field] if view.created_timestamp_field else pd.NaT
                )
                rank = (ts, not pd.isna(created), created if not pd.isna(created) else BASE, j)
                if best_rank is None or rank > best_rank:
                    best, best_rank = j, rank
        for f in view.features:
            out[f].append(np.nan if best is None else source.iloc[best][f])
    return out


def minutes(values):
    return pd.Series(
        [pd.NaT if v is None else BASE + v * MINUTE for v in values], dtype="datetime64[ns]"
    )


@st.composite
def view_and_entities(draw, keys=("k",), created=True):
    n = draw(st.integers(0, 25))
    source = pd.DataFrame(
        {k: draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)) for k in keys}
    )
    source["ts"] = minutes(draw(st.lists(st.integers(0, 12), min_size=n, max_size=n)))
    if created:
        source["created"] = minutes(
            draw(st.lists(st.one_of(st.none(), st.integers(0, 3)), min_size=n, max_size=n))
        )
    # each row's value is its position, so ties are visible
    source["value"] = np.arange(n, dtype=float)
    ttl = draw(st.one_of(st.none(), st.integers(1, 5).map(lambda m: m * MINUTE)))
    m = draw(st.integers(1, 15))
    # key 3 is never in the source: entities missing from the view
    entity_df = pd.DataFrame(
        {k: draw(st.lists(st.integers(0, 3), min_size=m, max_size=m)) for k in keys}
    )
    entity_df["event_timestamp"] = minutes(
        draw(st.lists(st.integers(0, 15), min_size=m, max_size=m))
    )
    entities = [Entity(f"e_{k}", [k]) for k in keys]
    view = FeatureView(
        "v",
        entities,
        source,
        "ts",
        ["value"],
        ttl=ttl,
        created_timestamp_field="created" if created else None,
    )
    return view, entity_df


def assert_matches(result: pd.DataFrame, expected: list, column: str) -> None:
    np.testing.assert_array_equal(
        result[column].to_numpy(dtype=float), np.asarray(expected, dtype=float)
    )


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(view_and_entities())
def test_matches_reference_one_key_with_created(case):
    view, entity_df = case
    result = get_historical_features(entity_df, [view])
    assert list(result.columns) == ["k", "event_timestamp", "value"]
    pd.testing.assert_frame_equal(result[["k", "event_timestamp"]], entity_df)
    assert_matches(result, reference(entity_df, view)["value"], "value")


@SETTINGS
@given(view_and_entities(keys=("k1", "k2"), created=False))
def test_matches_reference_composite_keys_without_created(case):
    view, entity_df = case
    result = get_historical_features(entity_df, view)
    assert_matches(result, reference(entity_df, view)["value"], "value")


@SETTINGS
@given(view_and_entities(), view_and_entities(created=False), st.booleans())
def test_matches_reference_two_views(first, second, shuffle_index):
    (view_a, entity_df), (view_b, _) = first, second
    view_b = FeatureView("w", view_b.entities, view_b.source, "ts", ["value"], ttl=view_b.ttl)
    if shuffle_index:  # the result keeps entity_df's index and order, whatever they are
        entity_df.index = np.arange(len(entity_df))[::-1] * 7
    result = get_historical_features(entity_df, [view_a, view_b], full_feature_names=True)
    assert list(result.columns) == ["k", "event_timestamp", "v__value", "w__value"]
    assert result.index.equals(entity_df.index)
    assert_matches(result, reference(entity_df, view_a)["value"], "v__value")
    assert_matches(result, reference(entity_df, view_b)["value"], "w__value")


def weather_view(ttl=timedelta(hours=3), **kwargs):
    source = pd.DataFrame(
        {
            "origin": ["EWR", "EWR", "EWR", "JFK"],
            "time_hour": pd.to_datetime(
                ["2013-01-01 06:00", "2013-01-01 07:00", "2013-01-01 10:00", "2013-01-01 06:00"]
            ),
            "temp": [39.0, 40.0, 45.0, 41.0],
        }
    )
    return FeatureView(
        "weather", [Entity("airport", ["origin"])], source, "time_hour", ["temp"], ttl=ttl, **kwargs
    )


def flights(origins, times):
    return pd.DataFrame(
        {"origin": origins, "event_timestamp": pd.to_datetime(times, format="ISO8601")}
    )


def test_no_value_from_the_future():
    entity_df = flights(
        ["EWR"] * 4,
        ["2013-01-01 05:59", "2013-01-01 06:59", "2013-01-01 07:00", "2013-01-01 09:59"],
    )
    result = get_historical_features(entity_df, weather_view(ttl=None))
    # 10:00's 45.0 is never seen before 10:00
    assert result["temp"].tolist()[1:] == [39.0, 40.0, 40.0]
    assert np.isnan(result["temp"].iloc[0])  # nothing known yet


def test_ttl_boundary_is_inclusive():
    entity_df = flights(
        ["EWR", "EWR", "JFK", "JFK"],
        [
            "2013-01-01 09:59",
            "2013-01-01 09:59:59.999999",
            "2013-01-01 09:00",
            "2013-01-01 09:00:00.000001",
        ],
    )
    result = get_historical_features(entity_df, weather_view())
    assert result["temp"].iloc[0] == 40.0
    assert result["temp"].iloc[1] == 40.0
    assert result["temp"].iloc[2] == 41.0  # exactly event_time - ttl: still valid (as Feast)
    assert np.isnan(result["temp"].iloc[3])  # one microsecond older than the TTL: null


def test_created_timestamp_resolves_equal_event_times_then_source_order():
    source = pd.DataFrame(
        {
            "k": [1, 1, 1, 2, 2, 3, 3],
            "ts": pd.to_datetime(["2024-01-01"] * 7),
            "created": pd.to_datetime(
                [
                    "2024-01-03",
                    "2024-01-05",
                    "2024-01-04",
                    "2024-01-02",
                    "2024-01-02",
                    None,
                    "2024-01-01",
                ]
            ),
            "x": [10.0, 11.0, 12.0, 20.0, 21.0, 30.0, 31.0],
        }
    )
    view = FeatureView(
        "v", [Entity("e", ["k"])], source, "ts", ["x"], created_timestamp_field="created"
    )
    entity_df = pd.DataFrame(
        {"k": [1, 2, 3], "event_timestamp": pd.to_datetime(["2024-01-02"] * 3)}
    )
    # largest created wins; created ties -> last in source order; a null created loses to any
    assert get_historical_features(entity_df, view)["x"].tolist() == [11.0, 21.0, 31.0]
    no_created = FeatureView("v", [Entity("e", ["k"])], source, "ts", ["x"])
    assert get_historical_features(entity_df, no_created)["x"].tolist() == [12.0, 21.0, 31.0]


def test_missing_entities_null_keys_and_null_times_get_nulls():
    entity_df = flights(["LGA", None, "EWR"], ["2013-01-01 08:00", "2013-01-01 08:00", None])
    result = get_historical_features(entity_df, weather_view())
    assert len(result) == 3 and result["temp"].isna().all()


def test_time_zones_are_converted_to_utc(tmp_path):
    view = weather_view()  # naive times, read as UTC
    aware = flights(["EWR"], ["2013-01-01 02:30"])
    # 02:30 in New York is 07:30 UTC
    aware["event_timestamp"] = aware["event_timestamp"].dt.tz_localize("America/New_York")
    assert get_historical_features(aware, view)["temp"].tolist() == [40.0]
    source = view.source.copy()
    source["time_hour"] = source["time_hour"].dt.tz_localize("UTC").dt.tz_convert("Asia/Tokyo")
    aware_view = FeatureView("weather", view.entities, source, "time_hour", ["temp"], ttl=view.ttl)
    naive = flights(["EWR", "JFK"], ["2013-01-01 07:30", "2013-01-01 09:00"])
    assert get_historical_features(naive, aware_view)["temp"].tolist() == [40.0, 41.0]


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_file_sources_give_the_same_answer(tmp_path, suffix):
    view = weather_view()
    path = tmp_path / f"weather.{suffix}"
    getattr(view.source, f"to_{suffix}")(path, index=False)
    file_view = FeatureView("weather", view.entities, path, "time_hour", ["temp"], ttl=view.ttl)
    entity_df = flights(
        ["EWR", "EWR", "JFK", "LGA"],
        ["2013-01-01 06:30", "2013-01-01 11:00", "2013-01-01 10:00", "2013-01-01 07:00"],
    )
    expected = get_historical_features(entity_df, view)
    pd.testing.assert_frame_equal(get_historical_features(entity_df, file_view), expected)
    assert expected["temp"].tolist()[:2] == [39.0, 45.0]


def test_select_and_name_collisions():
    view = weather_view()
    entity_df = flights(["EWR"], ["2013-01-01 07:00"])
    assert list(get_historical_features(entity_df, view.select("temp")).columns) == [
        "origin",
        "event_timestamp",
        "temp",
    ]
    with pytest.raises(ValueError, match="no feature"):
        view.select("humid")
    other = FeatureView("other", view.entities, view.source, "time_hour", ["temp"])
    with pytest.raises(ValueError, match="full_feature_names=True"):
        get_historical_features(entity_df, [view, other])
    both = get_historical_features(entity_df, [view, other], full_feature_names=True)
    assert list(both.columns)[2:] == ["weather__temp", "other__temp"]
    with pytest.raises(ValueError, match="already a column of entity_df"):
        get_historical_features(entity_df.assign(temp=1.0), view)


def test_bad_inputs_name_the_field():
    view = weather_view()
    with pytest.raises(ValueError, match="no event timestamp column 'ts'"):
        get_historical_features(flights(["EWR"], ["2013-01-01"]), view, event_timestamp_column="ts")
    with pytest.raises(TypeError, match="'event_timestamp'.*must be datetime64"):
        get_historical_features(
            pd.DataFrame({"origin": ["EWR"], "event_timestamp": ["2013-01-01"]}), view
        )
    with pytest.raises(ValueError, match="no column 'origin', a join key of FeatureView 'weather'"):
        get_historical_features(
            pd.DataFrame({"event_timestamp": pd.to_datetime(["2013-01-01"])}), view
        )
    missing = FeatureView("weather", view.entities, view.source, "time_hour", ["humid"])
    with pytest.raises(ValueError, match="FeatureView 'weather': feature 'humid' is not a column"):
        get_historical_features(flights(["EWR"], ["2013-01-01"]), missing)
    text_time = FeatureView(
        "weather", view.entities, view.source.assign(time_hour="x"), "time_hour", ["temp"]
    )
    with pytest.raises(
        TypeError,
        match="FeatureView 'weather': timestamp_field column 'time_hour' must hold timestamps",
    ):
        get_historical_features(flights(["EWR"], ["2013-01-01"]), text_time)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": "my view"}, ValueError, "name must be a Python identifier"),
        ({"features": []}, ValueError, "features must name at least one column"),
        ({"features": "temp"}, TypeError, "features must be a list"),
        ({"features": ["temp", "temp"]}, ValueError, "more than once"),
        ({"features": ["origin"]}, ValueError, "feature 'origin' is also a join key"),
        ({"features": ["time_hour"]}, ValueError, "also a timestamp field"),
        ({"ttl": timedelta(0)}, ValueError, "ttl must be positive"),
        ({"ttl": timedelta(hours=-1)}, ValueError, "ttl must be positive"),
        ({"ttl": 3600}, TypeError, "ttl must be a datetime.timedelta"),
        ({"entities": []}, ValueError, "entities must list at least one Entity"),
        ({"source": "weather.json"}, ValueError, "source must be a .parquet or .csv path"),
        ({"source": [1, 2]}, TypeError, "source must be"),
        ({"created_timestamp_field": "time_hour"}, ValueError, "must differ from timestamp_field"),
        ({"timestamp_field": "1st"}, ValueError, "timestamp_field must be a Python identifier"),
    ],
)
def test_bad_definitions(kwargs, error, message):
    arguments = {
        "name": "weather",
        "entities": [Entity("airport", ["origin"])],
        "source": "w.parquet",
        "timestamp_field": "time_hour",
        "features": ["temp"],
    } | kwargs
    with pytest.raises(error, match=message):
        FeatureView(**arguments)


def test_bad_entities():
    with pytest.raises(
        ValueError, match="Entity 'airport': join_keys must name at least one column"
    ):
        Entity("airport", [])
    with pytest.raises(ValueError, match="each of join_keys must be a Python identifier"):
        Entity("airport", ["air port"])
    assert Entity("airport", "origin").join_keys == ("origin",)


def test_package_import_is_lazy():
    import subprocess
    import sys

    code = (
        "import sys, mlpatterns.reproducibility.feature_store as fs; "
        "assert 'duckdb' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules); "
        "fs.Entity('a', ['k']); assert 'duckdb' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_flights_weather_example_agrees_with_duckdb_and_merge_asof():
    """examples/feature_store_flights_weather.py asserts the three joins equal on all 336,776 flights."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "feature_store_flights_weather.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "336,776 flights" in done.stdout and "all three equal" in done.stdout
