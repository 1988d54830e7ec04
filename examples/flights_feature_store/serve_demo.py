"""Ask a running `mlpatterns serve` about real flights, after warming its windows up.

    .venv/bin/python examples/flights_feature_store/serve_demo.py --url http://127.0.0.1:PORT/v1/models/flights:predict

The server computes the window features from the requests it has served (Windowed
Inference, 24): a fresh server knows no departure yet, so its first flights get empty
windows (0 departures in the last day), which training never saw at that hour. This script
first sends the origin's departures of the day before the chosen flights, then every
departure of the origin up to the last chosen one (in time order, as a live feed would), and prints the served probabilities
next to `mlpatterns predict` over the whole flights.parquet (--whole-file), which is how
the model was trained and tested.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
INPUTS = [
    "flight_id",
    "origin",
    "tailnum",
    "carrier",
    "dest",
    "distance",
    "sched_dep_hour",
    "date",
    "sched_dep",
    "dep_ts",
    "dep_delay",
]


def instances(rows: pd.DataFrame) -> list[dict]:
    out = []
    for row in rows[INPUTS].to_dict("records"):
        row["date"] = str(row["date"])
        row["sched_dep"] = row["sched_dep"].isoformat() + "Z"
        row["dep_ts"] = row["dep_ts"].isoformat() + "Z"
        row["tailnum"] = None if pd.isna(row["tailnum"]) else row["tailnum"]
        out.append(row)
    return out


def post(url: str, rows: pd.DataFrame) -> list[dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"instances": instances(rows)}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)["predictions"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--origin", default="JFK")
    parser.add_argument(
        "--from",
        dest="start",
        default="2013-12-30T23:00:00",
        help="first scheduled departure (UTC)",
    )
    parser.add_argument("--flights", type=int, default=6)
    parser.add_argument(
        "--whole-file", type=Path, help="`mlpatterns predict` of flights.parquet, to compare"
    )
    args = parser.parse_args(argv)
    flights = pd.read_parquet(HERE / "flights.parquet")
    here = flights[flights["origin"] == args.origin].sort_values(
        ["dep_ts", "flight_id"], kind="stable"
    )
    chosen = here[here["sched_dep"] >= pd.Timestamp(args.start)].head(args.flights)
    first, last = chosen["dep_ts"].min(), chosen["dep_ts"].max()
    # the live feed: every departure of the origin in time order, from a day before the first chosen one
    feed = here[(here["dep_ts"] >= first - pd.Timedelta(days=1)) & (here["dep_ts"] <= last)]
    warm = feed[feed["dep_ts"] < first]
    post(args.url, warm)
    print(f"warmed up with {len(warm)} departures from {args.origin} in the day before {first}")
    rest = feed[feed["dep_ts"] >= first]
    served = pd.DataFrame(post(args.url, rest))
    print(f"then served the {len(rest)} departures from {first} to {last}; the chosen flights:")
    table = chosen[["flight_id", "sched_dep", "dep_ts", "dep_delay", "late"]].merge(
        served, on="flight_id"
    )
    if args.whole_file:
        whole = (
            pd.read_parquet(args.whole_file)
            if args.whole_file.suffix == ".parquet"
            else pd.read_csv(args.whole_file)
        )
        table = table.merge(
            whole[["flight_id", "probability"]].rename(
                columns={"probability": "predict_whole_file"}
            ),
            on="flight_id",
        )
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
