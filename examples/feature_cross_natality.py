"""Feature Cross (pattern 3) on the US natality sample: a linear model with and without crosses.

Predicts baby weight (pounds) from what is known before birth: is_male, plurality,
mother_age and gestation_weeks. Every model is a scikit-learn pipeline ending in Ridge
(alpha=1) on one-hot features, trained on 80 % of the 65,137 births and scored on the
other 20 %:

* the naive model is linear in the raw inputs;
* then mother_age and gestation_weeks are bucketized one year / one week wide, as in
  the book's BigQuery ML model, and added as one-hot features (still no interaction);
* then feature crosses are added. Crosses use coarser bins (5 quantile bins of
  mother_age learned on the training rows, 10 clinical bins of gestation_weeks): a
  cross of fine bins has too many cells with too few births in each.

Run: .venv/bin/python examples/feature_cross_natality.py        (about 10 s, 2-core CPU)
     .venv/bin/python examples/feature_cross_natality.py --cv   (5-fold CV, about 40 s)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import KFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlpatterns.data.bucketize import Bucketizer
from mlpatterns.data.feature_cross import FeatureCross
from mlpatterns.datasets import load_natality

INPUTS = ["is_male", "plurality", "mother_age", "gestation_weeks"]
FINE_AGE = list(range(15, 46))  # the book: ML.BUCKETIZE(mother_age, GENERATE_ARRAY(15, 45, 1))
FINE_WEEKS = list(range(20, 51))  # ML.BUCKETIZE(gestation_weeks, GENERATE_ARRAY(20, 50, 1))
CLINICAL_WEEKS = [28, 32, 35, 37, 38, 39, 40, 41, 42]  # very/moderately/late preterm, term, post


def binned(age: Bucketizer, weeks: Bucketizer) -> ColumnTransformer:
    """is_male, plurality and the bucketized numbers ('bin_N'), keeping the column names."""
    return ColumnTransformer(
        [
            ("categories", "passthrough", ["is_male", "plurality"]),
            ("age", age, ["mother_age"]),
            ("weeks", weeks, ["gestation_weeks"]),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def crossed_model(crosses: list[tuple[str, ...]] | int | None, fine: bool = False) -> Pipeline:
    """Ridge on raw numbers, one-hot fine bins and, optionally, one-hot feature crosses.

    ``crosses`` is a list of column tuples, or a degree for every combination.
    """
    one_hot = OneHotEncoder(handle_unknown="ignore")
    parts = [
        ("numbers", StandardScaler(), ["mother_age", "gestation_weeks"]),
        (
            "bins",
            make_pipeline(
                binned(Bucketizer(boundaries=FINE_AGE), Bucketizer(boundaries=FINE_WEEKS)), one_hot
            ),
            INPUTS,
        ),
    ]
    if crosses is not None:
        cross = (
            FeatureCross(degree=crosses)
            if isinstance(crosses, int)
            else FeatureCross(crosses=crosses)
        )
        bins = (
            binned(Bucketizer(boundaries=FINE_AGE), Bucketizer(boundaries=FINE_WEEKS))
            if fine
            else binned(Bucketizer(n_quantiles=5), Bucketizer(boundaries=CLINICAL_WEEKS))
        )
        parts.append(
            ("crosses", make_pipeline(bins, cross, OneHotEncoder(handle_unknown="ignore")), INPUTS)
        )
    return make_pipeline(ColumnTransformer(parts), Ridge(alpha=1.0))


def naive_model() -> Pipeline:
    """Linear in the raw inputs: numbers as numbers, categories one-hot."""
    features = ColumnTransformer(
        [
            ("numbers", StandardScaler(), ["mother_age", "gestation_weeks"]),
            ("categories", OneHotEncoder(handle_unknown="ignore"), ["is_male", "plurality"]),
        ]
    )
    return make_pipeline(features, Ridge(alpha=1.0))


MODELS = {
    "linear on raw inputs (naive)": naive_model,
    "+ bucketized age and weeks, no cross": lambda: crossed_model(None),
    "+ is_male x plurality": lambda: crossed_model([("is_male", "plurality")]),
    "+ mother_age x gestation_weeks": lambda: crossed_model([("mother_age", "gestation_weeks")]),
    "+ plurality x gestation_weeks": lambda: crossed_model([("plurality", "gestation_weeks")]),
    "+ all degree-2 crosses": lambda: crossed_model(2),
    "+ all degree-2 crosses, fine bins": lambda: crossed_model(2, fine=True),
}


def evaluate(train, test) -> dict[str, tuple[float, float, int, float]]:
    """RMSE on all test births and on multiple births, weights and fit seconds per model."""
    y = test["weight_pounds"].to_numpy()
    multiple = (test["plurality"] != "Single(1)").to_numpy()
    results = {}
    for name, build in MODELS.items():
        start = time.perf_counter()
        model = build().fit(train[INPUTS], train["weight_pounds"])
        seconds = time.perf_counter() - start
        predicted = model.predict(test[INPUTS])
        results[name] = (
            root_mean_squared_error(y, predicted),
            root_mean_squared_error(y[multiple], predicted[multiple]),
            model[-1].coef_.size,
            seconds,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cv", action="store_true", help="5-fold cross-validation instead of one split"
    )
    args = parser.parse_args()
    births = load_natality()
    if args.cv:
        folds = [
            (births.iloc[a], births.iloc[b])
            for a, b in KFold(5, shuffle=True, random_state=0).split(births)
        ]
    else:
        folds = [train_test_split(births, test_size=0.2, random_state=0)]
    runs = [evaluate(train, test) for train, test in folds]
    train, test = folds[0]
    y = test["weight_pounds"].to_numpy()
    mean_rmse = root_mean_squared_error(y, np.full(len(y), train["weight_pounds"].mean()))
    print(
        f"natality: {len(train):,} training and {len(test):,} test births"
        f"{' per fold, 5 folds' if args.cv else ''}; predicting the mean: RMSE {mean_rmse:.4f}"
    )
    baseline = np.array([run["+ bucketized age and weeks, no cross"] for run in runs])
    print(
        f"{'model':38s} {'RMSE':>7s} {'multiple births':>15s} {'weights':>7s} {'fit s':>5s}"
        + ("  folds better than no cross (all / multiple)" if args.cv else "")
    )
    for name in MODELS:
        values = np.array([run[name] for run in runs])
        rmse, multiple_rmse, weights, seconds = values.mean(axis=0)
        line = f"{name:38s} {rmse:7.4f} {multiple_rmse:15.4f} {int(weights):7d} {seconds:5.1f}"
        if args.cv:
            better = (values[:, :2] < baseline[:, :2]).sum(axis=0)
            line += f"  {better[0]}/5 / {better[1]}/5"
        print(line)
    print("book (BigQuery ML linear model with feature crosses, natality table): RMSE about 1.056")


if __name__ == "__main__":
    main()
