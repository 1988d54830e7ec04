"""Ensembles (pattern 7) on flights: stack three kinds of model to predict arr_delay > 30.

Pre-departure features only; train/test split and out-of-fold folds both by a hash of
the flight date, so a day's flights (which share weather) never straddle folds.
Run: ``python examples/ensembles_flights.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlpatterns.datasets import load_flights
from mlpatterns.problem.ensembles import KeyedStackingClassifier
from mlpatterns.reproducibility import hash_split


def flight_data(n_rows: int = 30_000):
    flights = load_flights().dropna(subset=["arr_delay"])
    flights = flights.sample(n=n_rows, random_state=0)
    dates = pd.to_datetime(flights["date"].astype(str))
    X = pd.DataFrame({
        "dep_hour": flights["dep_hour"], "month": flights["month"],
        "weekday": dates.dt.day_of_week, "distance": flights["distance"],
        "carrier": flights["carrier"].astype("category").cat.codes,
        "origin": flights["origin"].astype("category").cat.codes,
        "dest": flights["dest"].astype("category").cat.codes,
    }).to_numpy(dtype=float)
    y = (flights["arr_delay"] > 30).to_numpy().astype(int)
    split = hash_split(flights, "date", {"train": 0.8, "test": 0.2}).to_numpy()
    keys = flights["date"].astype(str).to_numpy()
    return X, y, keys, split == "train"


def members():
    onehot = OneHotEncoder(handle_unknown="ignore", min_frequency=20)
    return [
        ("logistic", make_pipeline(onehot, LogisticRegression(max_iter=500))),
        ("boosting", HistGradientBoostingClassifier(max_iter=100, random_state=0)),
        ("forest", RandomForestClassifier(n_estimators=60, min_samples_leaf=20,
                                          random_state=0, n_jobs=1)),
        ("knn", make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=100))),
    ]


def main() -> None:
    X, y, keys, train = flight_data()
    stack = KeyedStackingClassifier(members(), n_splits=5).fit(X[train], y[train], groups=keys[train])
    report = stack.report_
    print("out-of-fold log loss:", {k: round(v, 4) for k, v in report["member_scores"].items()},
          "stack", round(report["stack_score"], 4), "gain", f"{report['gain']:.2%}")
    print("error correlation:\n", report["error_correlation"].round(2))
    for name, member in stack.named_estimators_.items():
        p = member.predict_proba(X[~train])[:, 1]
        print(f"test {name:9s} log loss {log_loss(y[~train], p):.4f} AUC {roc_auc_score(y[~train], p):.4f}")
    p = stack.predict_proba(X[~train])[:, 1]
    print(f"test {'stack':9s} log loss {log_loss(y[~train], p):.4f} AUC {roc_auc_score(y[~train], p):.4f}")
    print("rows train/test", int(train.sum()), int((~train).sum()), "positive rate", round(y.mean(), 3))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
