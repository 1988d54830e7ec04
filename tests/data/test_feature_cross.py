"""Tests for mlpatterns.data.feature_cross (Feature Cross, pattern 3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlpatterns._json_state import estimator_from_json
from mlpatterns.data.feature_cross import FeatureCross, cross_values
from mlpatterns.hashing import hash_bucket


@pytest.fixture
def births() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "is_male": [True, False, True, None],
            "plurality": pd.array(
                ["Single(1)", "Twins(2)", "Twins(2)", "Single(1)"], dtype="string"
            ),
            "age_bin": ["bin_2", "bin_3", "bin_1", "bin_2"],
        }
    )


def test_bigquery_documented_example():
    # SELECT ML.FEATURE_CROSS(STRUCT('a' AS f1, 'b' AS f2, 'c' AS f3))
    # -> {"f1_f2":"a_b","f1_f3":"a_c","f2_f3":"b_c"}
    frame = pd.DataFrame({"f1": ["a"], "f2": ["b"], "f3": ["c"]})
    cross = FeatureCross().fit(frame)
    assert cross.get_feature_names_out().tolist() == ["f1_f2", "f1_f3", "f2_f3"]
    assert cross.transform(frame).tolist() == [["a_b", "a_c", "b_c"]]


def test_degree_makes_every_combination_up_to_it():
    frame = pd.DataFrame({name: ["v"] for name in ["a", "b", "c", "d"]})
    names = FeatureCross(degree=3).fit(frame).get_feature_names_out().tolist()
    assert names[:6] == ["a_b", "a_c", "a_d", "b_c", "b_d", "c_d"]
    assert names[6:] == ["a_b_c", "a_b_d", "a_c_d", "b_c_d"]
    assert len(FeatureCross(degree=4).fit(frame).get_feature_names_out()) == 6 + 4 + 1
    # a degree above the column count stops at the column count
    assert FeatureCross(degree=4).fit(frame[["a", "b"]]).get_feature_names_out().tolist() == ["a_b"]


def test_values_are_cast_like_bigquery_and_nulls_give_null(births):
    crossed = FeatureCross(crosses=[("is_male", "plurality")]).fit_transform(births)
    assert crossed[:, 0].tolist() == ["true_Single(1)", "false_Twins(2)", "true_Twins(2)", None]
    assert cross_values([1.0, 2.5, float("nan")], [7, 8, 9]).tolist() == ["1_7", "2.5_8", None]
    assert cross_values(["a", pd.NA], ["b", "c"], separator="|").tolist() == ["a|b", None]


def test_explicit_crosses_by_name_or_position(births):
    cross = FeatureCross(crosses=[("age_bin", "is_male"), (0, 1, 2)]).fit(births)
    assert cross.crosses_ == [(2, 0), (0, 1, 2)]
    assert cross.get_feature_names_out().tolist() == [
        "age_bin_is_male",
        "is_male_plurality_age_bin",
    ]
    assert cross.transform(births)[0].tolist() == ["bin_2_true", "true_Single(1)_bin_2"]


def test_hashed_crosses_match_hash_bucket_of_cross_values(births):
    for convention in ("bigquery", "keras"):
        cross = FeatureCross(num_buckets=20, convention=convention).fit(births)
        out = cross.transform(births)
        assert out.dtype == np.int64 and out.shape == (4, 3)
        expected = hash_bucket(
            cross_values(births["is_male"], births["plurality"]),
            20,
            convention=convention,
            null_bucket=20,
        )
        np.testing.assert_array_equal(out[:, 0], expected)
        assert out[3, 0] == 20  # the null cross has a bucket of its own
        assert cross.cardinalities_ == [21, 21, 21]
    assert FeatureCross().fit(births).cardinalities_ is None


def test_numpy_input_uses_generic_names():
    X = np.array([["a", "b"], ["c", "d"]], dtype=object)
    cross = FeatureCross().fit(X)
    assert cross.get_feature_names_out().tolist() == ["x0_x1"]
    assert cross.get_feature_names_out(["u", "v"]).tolist() == ["u_v"]
    assert cross.transform(X)[:, 0].tolist() == ["a_b", "c_d"]


def test_json_round_trip_transforms_identically(births):
    for params in ({"degree": 3}, {"crosses": [("is_male", "age_bin")], "num_buckets": 64}):
        cross = FeatureCross(**params).fit(births)
        restored = estimator_from_json(json.loads(json.dumps(cross.to_json_dict())))
        assert type(restored) is FeatureCross
        assert restored.crosses_ == cross.crosses_
        np.testing.assert_array_equal(restored.transform(births), cross.transform(births))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"degree": 1}, "degree must be an integer from 2 to 4"),
        ({"degree": 5}, "degree must be an integer from 2 to 4"),
        ({"num_buckets": 0}, "num_buckets must be a positive integer"),
        ({"convention": "md5"}, "convention must be one of"),
        ({"crosses": [("is_male", "weight")]}, r"crosses\[0\]: unknown column 'weight'"),
        ({"crosses": [("is_male",)]}, r"crosses\[0\]: expected a tuple of 2 or more"),
        ({"crosses": ["is_male"]}, r"crosses\[0\]: expected a tuple of 2 or more"),
        ({"crosses": [("is_male", 0)]}, "cannot be crossed with itself"),
        ({"crosses": [(0, 9)]}, "position 9 is out of range"),
        ({"crosses": []}, "at least one cross"),
    ],
)
def test_bad_parameters_are_named(births, params, message):
    with pytest.raises(ValueError, match=message):
        FeatureCross(**params).fit(births)


def test_bad_input_is_named(births):
    with pytest.raises(ValueError, match=r"at least 2 columns to cross, got 1 feature\(s\)"):
        FeatureCross().fit(births[["is_male"]])
    with pytest.raises(TypeError, match="column 'b': argument must be a string"):
        FeatureCross().fit(pd.DataFrame({"a": ["x"], "b": [{"k": 1}]}))
    with pytest.raises(ValueError, match="different lengths"):
        cross_values(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="at least 2 columns"):
        cross_values(["a"])
    with pytest.raises(TypeError, match="BYTES"):
        cross_values([b"a"], ["b"])


def test_crossing_plurality_with_gestation_helps_a_linear_model():
    """Direction of the effect on natality (subsample): see docs/patterns/feature_cross.md."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.metrics import root_mean_squared_error
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from mlpatterns.data.bucketize import Bucketizer
    from mlpatterns.datasets import load_natality

    births = load_natality().sample(30_000, random_state=0)
    train, test = train_test_split(births, test_size=0.3, random_state=0)
    inputs = ["is_male", "plurality", "mother_age", "gestation_weeks"]
    bins = ColumnTransformer(
        [
            ("categories", "passthrough", ["is_male", "plurality"]),
            ("age", Bucketizer(n_quantiles=10), ["mother_age"]),
            (
                "weeks",
                Bucketizer(boundaries=[28, 32, 35, 37, 38, 39, 40, 41, 42]),
                ["gestation_weeks"],
            ),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    without = make_pipeline(bins, OneHotEncoder(handle_unknown="ignore"), Ridge())
    cross = FeatureCross(crosses=[("plurality", "gestation_weeks")])
    with_cross = make_pipeline(
        ColumnTransformer(
            [
                ("bins", make_pipeline(bins, OneHotEncoder(handle_unknown="ignore")), inputs),
                (
                    "cross",
                    make_pipeline(bins, cross, OneHotEncoder(handle_unknown="ignore")),
                    inputs,
                ),
            ]
        ),
        Ridge(),
    )
    y = test["weight_pounds"].to_numpy()
    multiple = (test["plurality"] != "Single(1)").to_numpy()
    rmse = {}
    for name, model in [("without", without), ("with", with_cross)]:
        predicted = model.fit(train[inputs], train["weight_pounds"]).predict(test[inputs])
        rmse[name] = (
            root_mean_squared_error(y, predicted),
            root_mean_squared_error(y[multiple], predicted[multiple]),
        )
    assert rmse["with"][0] < rmse["without"][0]
    assert rmse["with"][1] < rmse["without"][1]
