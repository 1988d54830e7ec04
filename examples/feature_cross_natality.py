"""Feature Cross (pattern 3) on the US natality sample: a linear model with and without crosses.

Predicts baby weight (pounds) from what is known before birth: is_male, plurality,
mother_age, gestation_weeks. The naive model is linear in the raw inputs; the book's
model (chapter 2, BigQuery ML) buckets mother_age and gestation_weeks one year / one
week wide and adds their feature crosses. Every model here is a scikit-learn pipeline
of Ridge on one-hot features, trained on 80 % of the rows and scored on the other 20 %.

Run: .venv/bin/python examples/feature_cross_natality.py   (about 10 s on a 2-core CPU)
"""

from __future__ import annotations

import time

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlpatterns.data.bucketize import Bucketizer
from mlpatterns.data.feature_cross import FeatureCross
from mlpatterns.datasets import load_natality

INPUTS = ["is_male", "plurality", "mother_age", "gestation_weeks"]
AGE_SPLITS = list(range(15, 46))  # the book: ML.BUCKETIZE(mother_age, GENERATE_ARRAY(15, 45, 1))
WEEK_SPLITS = list(range(20, 51))  # and ML.BUCKETIZE(gestation_weeks, GENERATE_ARRAY(20, 50, 1))


def raw_features() -> ColumnTransformer:
    """The naive representation: numbers as numbers, categories one-hot."""
    return ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["mother_age", "gestation_weeks"]),
            ("categories", OneHotEncoder(handle_unknown="ignore"), ["is_male", "plurality"]),
        ]
    )


def binned() -> ColumnTransformer:
    """is_male, plurality and the two bucketized numbers, as 'bin_N' strings with their names."""
    return ColumnTransformer(
        [
            ("categories", "passthrough", ["is_male", "plurality"]),
            ("age", Bucketizer(boundaries=AGE_SPLITS), ["mother_age"]),
            ("weeks", Bucketizer(boundaries=WEEK_SPLITS), ["gestation_weeks"]),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def model(crosses: list[tuple[str, ...]] | str | None) -> object:
    """Ridge on raw features, one-hot bins and (optionally) one-hot feature crosses."""
    parts = [("raw", raw_features(), INPUTS)]
    parts.append(("bins", make_pipeline(binned(), OneHotEncoder(handle_unknown="ignore")), INPUTS))
    if crosses is not None:
        cross = FeatureCross(degree=2) if crosses == "degree2" else FeatureCross(crosses=crosses)
        steps = make_pipeline(binned(), cross, OneHotEncoder(handle_unknown="ignore"))
        parts.append(("crosses", steps, INPUTS))
    return make_pipeline(ColumnTransformer(parts), Ridge(alpha=1.0))


MODELS = {
    "linear on raw inputs (naive)": None,
    "+ bucketized age and weeks, no cross": "bins only",
    "+ is_male x plurality": [("is_male", "plurality")],
    "+ mother_age x gestation_weeks": [("mother_age", "gestation_weeks")],
    "+ both crosses above": [("is_male", "plurality"), ("mother_age", "gestation_weeks")],
    "+ plurality x gestation_weeks": [("plurality", "gestation_weeks")],
    "+ all degree-2 crosses (book's SQL)": "degree2",
}


def build(name: str) -> object:
    spec = MODELS[name]
    if spec is None:
        return make_pipeline(raw_features(), Ridge(alpha=1.0))
    return model(None if spec == "bins only" else spec)


def main() -> None:
    births = load_natality()
    train, test = train_test_split(births, test_size=0.2, random_state=0)
    multiple = (test["plurality"] != "Single(1)").to_numpy()
    y = test["weight_pounds"].to_numpy()
    mean_rmse = root_mean_squared_error(y, np.full(len(y), train["weight_pounds"].mean()))
    print(f"natality: {len(train):,} training rows, {len(test):,} test rows "
          f"({multiple.sum()} multiple births); predicting the mean: RMSE {mean_rmse:.4f}")
    print(f"{'model':40s} {'RMSE':>7s} {'multiple births':>16s} {'weights':>8s} {'fit s':>6s}")
    for name in MODELS:
        start = time.perf_counter()
        fitted = build(name).fit(train[INPUTS], train["weight_pounds"])
        seconds = time.perf_counter() - start
        predicted = fitted.predict(test[INPUTS])
        weights = fitted[-1].coef_.size
        print(
            f"{name:40s} {root_mean_squared_error(y, predicted):7.4f} "
            f"{root_mean_squared_error(y[multiple], predicted[multiple]):16.4f} "
            f"{weights:8d} {seconds:6.1f}"
        )
    print("book (BigQuery ML linear model with feature crosses): RMSE about 1.056")


if __name__ == "__main__":
    main()
