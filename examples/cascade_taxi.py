"""Cascade (pattern 8) on NYC taxi fares: a router sends long, expensive rides to their own model.

Extreme regime: fare above $40 (about the top few percent, mostly airport and long
rides). Train/test split and the router's out-of-fold folds both by a hash of the
pickup date. Run: ``python examples/cascade_taxi.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from mlpatterns.datasets import load_taxi
from mlpatterns.problem import CascadeRegressor, regime_errors
from mlpatterns.reproducibility import hash_split

FEATURES = ["distance_km", "pickup_hour", "pickup_dayofweek", "pickup_longitude", "pickup_latitude",
            "dropoff_longitude", "dropoff_latitude", "passenger_count"]
THRESHOLD = 40.0


def taxi_data(n_rows: int | None = None):
    frame = load_taxi()
    if n_rows is not None:
        frame = frame.sample(n=n_rows, random_state=0)
    X = frame[FEATURES].to_numpy(dtype=float)
    y = frame["fare_amount"].to_numpy(dtype=float)
    keys = frame["pickup_date"].to_numpy()
    split = hash_split(pd.DataFrame({"date": keys}), "date", {"train": 0.8, "test": 0.2})
    return X, y, keys, split.to_numpy() == "train"


def compare(X, y, keys, train, max_iter: int = 200):
    single = HistGradientBoostingRegressor(max_iter=max_iter, random_state=0)
    single.fit(X[train], y[train])
    cascade = CascadeRegressor(
        router=HistGradientBoostingClassifier(max_iter=max_iter, random_state=0),
        typical=HistGradientBoostingRegressor(max_iter=max_iter, random_state=0),
        extreme=HistGradientBoostingRegressor(max_iter=max_iter, random_state=0),
        threshold=THRESHOLD,
    ).fit(X[train], y[train], groups=keys[train])
    extreme = y[~train] > THRESHOLD
    return (regime_errors(y[~train], single.predict(X[~train]), extreme),
            cascade.evaluate(X[~train], y[~train]), cascade)


def main() -> None:
    X, y, keys, train = taxi_data()
    single, cascade_errors, cascade = compare(X, y, keys, train)
    print(f"rows train/test {int(train.sum())}/{int((~train).sum())}, "
          f"extreme share {np.mean(y > THRESHOLD):.3f}")
    print(f"out-of-fold routing accuracy {cascade.routing_accuracy_:.4f}, "
          f"rows routed extreme in training {int(cascade.oof_routes_.sum())}")
    print("single model (test):\n", single.round(3))
    print("cascade (test):\n", cascade_errors.round(3))


if __name__ == "__main__":
    main()
