"""Fairness Lens (pattern 30) from Python on UCI Adult: who does an income classifier miss?

Trains scikit-learn's HistGradientBoosting on ``adult.data`` (without sex and race as
inputs), then looks at ``adult.test`` through the lens:

* the data before training: rows, share and rate of incomes above 50K per sex and race;
* the model after training: selection rate, accuracy, false negative and false positive
  rates per slice (fairlearn MetricFrame), with counts and Wilson intervals;
* mitigations of the false negative rate gap between the sexes, in one table with their
  cost in overall accuracy.

Run: ``.venv/bin/python examples/fairness_lens_adult.py [OUT_DIR] [ROWS]``: the plots go to
OUT_DIR (default ``fairness_lens_adult``); ROWS draws a sample of each file for a quick try.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from mlpatterns.datasets import load_adult
from mlpatterns.responsible.fairness_lens import (
    compare_mitigations,
    data_balance,
    model_slices,
    plot_mitigations,
    plot_slices,
    sensitive_slices,
)

NUMERIC = ["age", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORICAL = ["workclass", "marital_status", "occupation", "relationship", "native_country"]


def features(frame, categories):
    """Numbers as they are, categories as their code in the training file's categories (-1: unseen/missing)."""
    codes = [frame[c].astype("category").cat.set_categories(categories[c]).cat.codes.to_numpy() for c in CATEGORICAL]
    return np.column_stack([frame[NUMERIC].to_numpy(float), *codes])


def main(out_dir: str = "fairness_lens_adult", rows: int | None = None) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    adult = load_adult()
    train_all, test = adult[adult.source == "train"], adult[adult.source == "test"]
    if rows:
        train_all, test = train_all.sample(rows, random_state=0), test.sample(rows // 2, random_state=0)
    cut = int(len(train_all) * 0.9)  # the last tenth of adult.data chooses the per-slice thresholds
    train, valid = train_all.iloc[:cut], train_all.iloc[cut:]
    categories = {c: sorted(train[c].dropna().unique()) for c in CATEGORICAL}
    label = {name: (part["income"] == ">50K").to_numpy(int) for name, part in
             (("train", train), ("valid", valid), ("test", test))}
    X = {name: features(part, categories) for name, part in (("train", train), ("valid", valid), ("test", test))}

    balance = data_balance(sensitive_slices(train, ["sex", "race"]), label["train"], "classification")
    plot_slices(balance, ["share", "label_rate"], out / "fairness_adult_balance.png", "adult.data by slice")

    model = HistGradientBoostingClassifier(max_iter=200, random_state=0,
                                           categorical_features=list(range(len(NUMERIC), X["train"].shape[1])))
    model.fit(X["train"], label["train"])
    scores = {name: model.predict_proba(X[name])[:, 1] for name in X}
    slices = sensitive_slices(test, ["sex", "race"])
    result = model_slices(slices, label["test"], (scores["test"] >= 0.5).astype(int), "classification",
                          y_score=scores["test"])
    plot_slices(result, ["selection_rate", "false_negative_rate", "false_positive_rate"],
                out / "fairness_adult_slices.png", "adult.test by slice (threshold 0.5)")

    table = compare_mitigations(
        y_test=label["test"], scores_test=scores["test"], sensitive_test=test["sex"].to_numpy(object),
        threshold=0.5, y_valid=label["valid"], scores_valid=scores["valid"],
        sensitive_valid=valid["sex"].to_numpy(object), X_train=X["train"], y_train=label["train"],
        sensitive_train=train["sex"].to_numpy(object), X_test=X["test"], log=print)
    plot_mitigations(table["rows"], out / "fairness_adult_mitigation.png", "mitigations of the FNR gap by sex")

    print("| slice | rows | selection rate | accuracy | false negative rate (95 % CI) | false positive rate |")
    print("|---|---:|---:|---:|---:|---:|")
    for column in ("sex", "race"):
        for s in result["columns"][column]["slices"]:
            print(f"| {s['slice']} | {s['rows']:,} | {s['selection_rate']:.3f} | {s['accuracy']:.3f} | "
                  f"{s['false_negative_rate']:.3f} ({s['false_negative_rate_low']:.3f}-"
                  f"{s['false_negative_rate_high']:.3f}) | {s['false_positive_rate']:.3f} |")
    print("\n| method | accuracy | accuracy cost | FNR Female | FNR Male | FNR gap | sensitive needed at serving |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in table["rows"]:
        print(f"| {row['method']} | {row['accuracy']:.4f} | {row['accuracy_cost']:+.4f} | "
              f"{row['by_slice'].get('Female', float('nan')):.3f} | {row['by_slice'].get('Male', float('nan')):.3f} | "
              f"{row['gap']:.3f} | {'yes' if row['needs_sensitive_at_serving'] else 'no'} |")
    return {"balance": balance, "slices": result, "mitigation": table}


if __name__ == "__main__":
    main(*(sys.argv[1:2] or []), *(int(a) for a in sys.argv[2:3]))
