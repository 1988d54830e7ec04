"""Reframing (5) on real data: direct regression against a classifier over target buckets.

Natality (weight_pounds) and flights (arr_delay in minutes, heavy-tailed), both split
by a key hash; HistGradientBoosting on both sides. Prints RMSE, MAE and the measured
coverage of nominal 80 % and 95 % prediction intervals.

Run: .venv/bin/python examples/reframing_comparison.py
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from mlpatterns.datasets import load_flights, load_natality
from mlpatterns.problem import ReframedRegressor
from mlpatterns.reproducibility import hash_split


def natality():
    frame = load_natality()
    X = pd.DataFrame({
        "is_male": frame["is_male"].astype(float), "mother_age": frame["mother_age"],
        "gestation_weeks": frame["gestation_weeks"],
        "plurality": frame["plurality"].astype("category").cat.codes,
    })
    return "natality weight_pounds (lb)", X, frame["weight_pounds"], hash_split(frame, "row_id", {"train": 0.8, "test": 0.2})


def flights():
    frame = load_flights().dropna(subset=["arr_delay"]).reset_index(drop=True)
    X = pd.DataFrame({
        "month": frame["month"], "dep_hour": frame["dep_hour"], "distance": frame["distance"],
        "dayofweek": pd.to_datetime(frame["date"].astype(str)).dt.day_of_week,
        **{c: frame[c].astype("category").cat.codes for c in ("carrier", "origin", "dest")},
    })
    return "flights arr_delay (min)", X, frame["arr_delay"], hash_split(frame, "date", {"train": 0.8, "test": 0.2})


def main() -> None:
    rows = []
    for name, X, y, split in (natality(), flights()):
        train, test = (split == "train").to_numpy(), (split == "test").to_numpy()
        X_train, X_test, y_train, y_test = X[train].to_numpy(float), X[test].to_numpy(float), y[train].to_numpy(), y[test].to_numpy()
        direct = HistGradientBoostingRegressor(max_iter=200, random_state=0).fit(X_train, y_train)
        error = direct.predict(X_test) - y_test
        rows.append([name, "direct regression", np.sqrt(np.mean(error**2)), np.mean(np.abs(error)), None, None])
        for buckets in (20, 40):
            model = ReframedRegressor(HistGradientBoostingClassifier(max_iter=200, random_state=0),
                                      n_buckets=buckets).fit(X_train, y_train)
            error = model.predict(X_test) - y_test
            coverage = []
            for nominal in (0.8, 0.95):
                low, high = model.predict_interval(X_test, nominal)
                coverage.append(np.mean((y_test >= low) & (y_test <= high)))
            rows.append([name, f"reframed, {buckets} buckets", np.sqrt(np.mean(error**2)),
                         np.mean(np.abs(error)), *coverage])
    table = pd.DataFrame(rows, columns=["data", "model", "rmse", "mae", "coverage_80", "coverage_95"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
