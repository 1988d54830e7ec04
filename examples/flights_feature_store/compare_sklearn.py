"""Plain scikit-learn on the same joined columns and the same split as the specs.

    .venv/bin/python examples/flights_feature_store/compare_sklearn.py [--sample-fraction 1.0]

Builds the table `mlpatterns run flights.yaml` trains on with the library's documented
pieces, not the run's code path: the point-in-time join of the repository's views
(``load_repository(...).select`` + ``get_historical_features`` as of ``sched_dep``), the
window features (``window_features``, over every flight of the file, per origin, by actual
departure ``dep_ts``), the spec's repeatable sample (whole days whose ``date`` hashes into
the lowest half of 10,000 buckets) and hash split by ``date`` (80/10/10 of 100 buckets).
Then ``HistGradientBoostingClassifier`` (native categories, ``max_iter=300``,
``learning_rate=0.1``, scikit-learn's own early stopping on a random 10 % of its rows,
``random_state=0``) is fitted on train + valid and scored on the test days, for five
column sets. The paired 95 % intervals draw test *days* (1,000 draws).
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from mlpatterns.reproducibility.feature_store import get_historical_features, load_repository
from mlpatterns.reproducibility.repeatable_splitting import key_buckets
from mlpatterns.reproducibility.windowed_inference import WindowFeature, window_features

HERE = Path(__file__).resolve().parent
BASE_NUM = ["distance", "sched_dep_hour"]
BASE_CAT = ["carrier", "origin", "dest", "dayofweek", "month"]
STORED = [
    "temp",
    "humid",
    "wind_speed",
    "precip",
    "visib",
    "pressure",
    "seats",
    "engines",
    "plane_age",
]
WINDOWS = [
    "origin_delay_mean_1h",
    "origin_departures_1h",
    "origin_delay_mean_1d",
    "origin_departures_1d",
]
SETS = {
    "flight's own columns (flights_no_store.yaml)": BASE_NUM + BASE_CAT,
    "+ stored (weather, planes)": BASE_NUM + BASE_CAT + STORED,
    "+ windows": BASE_NUM + BASE_CAT + WINDOWS,
    "+ stored + windows (flights.yaml)": BASE_NUM + BASE_CAT + STORED + WINDOWS,
    "+ stored + windows + the flight's own dep_delay": BASE_NUM
    + BASE_CAT
    + STORED
    + WINDOWS
    + ["dep_delay"],
}


def joined_table(folder: Path, sample_fraction: float) -> pd.DataFrame:
    flights = pd.read_parquet(folder / "flights.parquet")
    repository = load_repository(folder / "features.yaml")
    views = repository.select(["weather", "planes:seats", "planes:engines", "planes:plane_age"])
    table = get_historical_features(flights, views, event_timestamp_column="sched_dep")
    hours, day = timedelta(hours=1), timedelta(days=1)
    declared = [
        WindowFeature(
            "origin_delay_mean_1h", "dep_delay", "mean", hours, key="origin", time="dep_ts"
        ),
        WindowFeature(
            "origin_departures_1h", "dep_delay", "count", hours, key="origin", time="dep_ts"
        ),
        WindowFeature(
            "origin_delay_mean_1d", "dep_delay", "mean", day, key="origin", time="dep_ts"
        ),
        WindowFeature(
            "origin_departures_1d", "dep_delay", "count", day, key="origin", time="dep_ts"
        ),
    ]
    windows = window_features(table, declared)
    table = pd.concat([table, windows[[w.name for w in declared]]], axis=1)
    dates = pd.to_datetime(table["date"])
    table["dayofweek"] = dates.dt.day_of_week
    table["month"] = dates.dt.month
    for column in ["carrier", "origin", "dest", "dayofweek", "month"]:
        table[column] = table[column].astype("category")
    keep = key_buckets(table, "date", 10_000) < round(sample_fraction * 10_000)
    table = table[keep].reset_index(drop=True)
    bucket = key_buckets(table, "date", 100)
    table["split"] = np.where(bucket < 80, "train", np.where(bucket < 90, "valid", "test"))
    return table


def day_bootstrap(y, scores, days, draws=1000, seed=0):
    """AUC of each score column over draws of whole test days."""
    rng = np.random.default_rng(seed)
    codes, uniques = pd.factorize(days)
    rows_of = [np.flatnonzero(codes == i) for i in range(len(uniques))]
    out = np.empty((draws, scores.shape[1]))
    for d in range(draws):
        rows = np.concatenate([rows_of[i] for i in rng.integers(0, len(uniques), len(uniques))])
        out[d] = [roc_auc_score(y[rows], scores[rows, j]) for j in range(scores.shape[1])]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=HERE)
    parser.add_argument("--sample-fraction", type=float, default=1.0)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument(
        "--predictions",
        nargs="*",
        default=[],
        metavar="NAME=FILE",
        help="`mlpatterns predict` outputs over flights.parquet (flight_id, probability), "
        "scored on the same test days and added to the comparison",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    table = joined_table(args.folder, args.sample_fraction)
    print(
        f"joined {len(table):,} flights in {time.perf_counter() - started:.1f} s; "
        f"splits {table['split'].value_counts().to_dict()}"
    )
    fit_rows = table[table["split"] != "test"]
    test = table[table["split"] == "test"]
    y = test["late"].to_numpy()
    scores = []
    for name, columns in SETS.items():
        started = time.perf_counter()
        model = HistGradientBoostingClassifier(
            max_iter=300, learning_rate=0.1, categorical_features="from_dtype", random_state=0
        )
        model.fit(fit_rows[columns], fit_rows["late"])
        p = model.predict_proba(test[columns])[:, 1]
        scores.append(p)
        print(
            f"{name:50s} test AUC {roc_auc_score(y, p):.4f}  ({model.n_iter_} trees, "
            f"{time.perf_counter() - started:.1f} s)"
        )
    names = list(SETS)
    for item in args.predictions:
        name, _, path = item.partition("=")
        predicted = pd.read_parquet(path) if path.endswith(".parquet") else pd.read_csv(path)
        p = (
            test[["flight_id"]]
            .merge(predicted, on="flight_id", how="left")["probability"]
            .to_numpy()
        )
        scores.append(p)
        names.append(f"mlpatterns: {name}")
        print(f"{names[-1]:50s} test AUC {roc_auc_score(y, p):.4f}  (mlpatterns predict)")
    scores = np.column_stack(scores)
    boot = day_bootstrap(y, scores, test["date"].astype(str).to_numpy(), draws=args.draws)
    print(
        f"paired differences to '{names[0]}', 95 % over {args.draws} draws of "
        f"{test['date'].nunique()} test days:"
    )
    for j in range(1, len(names)):
        diff = boot[:, j] - boot[:, 0]
        print(
            f"  {names[j]:50s} {roc_auc_score(y, scores[:, j]) - roc_auc_score(y, scores[:, 0]):+.4f} "
            f"[{np.percentile(diff, 2.5):+.4f}, {np.percentile(diff, 97.5):+.4f}]"
        )


if __name__ == "__main__":
    main()
