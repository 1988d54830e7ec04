"""Tests for mlpatterns.data.bucketize (ML.BUCKETIZE / ML.QUANTILE_BUCKETIZE, used by pattern 3)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlpatterns._json_state import estimator_from_json
from mlpatterns.data.bucketize import Bucketizer, bucketize, quantile_boundaries


def test_ml_bucketize_documented_example():
    # SELECT ML.BUCKETIZE(2.5, [1, 2, 3]), ML.BUCKETIZE(2.5, [1, 2, 3], TRUE) -> bin_3, bin_2
    assert bucketize([2.5], [1, 2, 3]).tolist() == ["bin_3"]
    assert bucketize([2.5], [1, 2, 3], exclude_boundaries=True).tolist() == ["bin_2"]


def test_bins_hold_their_lower_split_point():
    # bucket_ranges: (-inf, 1), [1, 2), [2, 3), [3, +inf)
    values = [-np.inf, 0.999, 1, 1.5, 2, 3, np.inf]
    expected = ["bin_1", "bin_1", "bin_2", "bin_2", "bin_3", "bin_4", "bin_4"]
    assert bucketize(values, [1, 2, 3]).tolist() == expected
    excluded = bucketize([1, 2, 3, 4, 5], [1, 2, 3, 4], exclude_boundaries=True)
    assert excluded.tolist() == ["bin_1", "bin_2", "bin_3", "bin_3", "bin_3"]
    assert bucketize([5, -5], []).tolist() == ["bin_1", "bin_1"]


def test_nulls_give_null():
    values = pd.Series([1.0, None, np.nan, 4.0], dtype="Float64")
    assert bucketize(values, [2]).tolist() == ["bin_1", None, None, "bin_2"]
    assert bucketize(np.array([None, 3], dtype=object), [2]).tolist() == [None, "bin_2"]


def test_ml_quantile_bucketize_documented_example():
    # ML.QUANTILE_BUCKETIZE(f, 3) OVER () on 1..5: 1 -> bin_1, 2, 3 -> bin_2, 4, 5 -> bin_3
    values = [1, 2, 3, 4, 5]
    points = quantile_boundaries(values, 3)
    assert points.tolist() == [2.0, 4.0]
    assert bucketize(values, points).tolist() == ["bin_1", "bin_2", "bin_2", "bin_3", "bin_3"]


def test_quantiles_match_approx_quantiles_documented_examples():
    # APPROX_QUANTILES(x, 2) on [1, 1, 1, 4, 5, 6, 7, 8, 9, 10] -> [1, 5, 10]
    assert quantile_boundaries([1, 1, 1, 4, 5, 6, 7, 8, 9, 10], 2).tolist() == [5.0]
    # the same with two NULLs (ignored by default) -> [1, 5, 10]
    assert quantile_boundaries([None, None, 1, 1, 1, 4, 5, 6, 7, 8, 9, 10], 2).tolist() == [5.0]
    # APPROX_QUANTILES(x, 2) on 1..5 -> [1, 3, 5]
    assert quantile_boundaries([5, 4, 3, 2, 1], 2).tolist() == [3.0]
    # APPROX_QUANTILES(x, 100)[OFFSET(90)] on 1..10 -> 9
    assert quantile_boundaries(range(1, 11), 10).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9]


def test_repeated_quantiles_are_merged():
    values = [30] * 5 + [38] * 84 + [42] * 11  # 9 deciles: 38 eight times, then 42
    assert quantile_boundaries(values, 10).tolist() == [38.0, 42.0]
    assert quantile_boundaries(values, 1).tolist() == []


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bucketize([1], [2, 1]), "strictly increasing"),
        (lambda: bucketize([1], [1, 1]), "strictly increasing"),
        (lambda: bucketize([1], [0, np.inf]), "must be finite"),
        (lambda: bucketize([1], ["a"]), "split points must be numbers"),
        (lambda: bucketize(["1"], [0]), "expected numbers, got string values such as '1'"),
        (lambda: bucketize([[1, 2]], [0]), "expected a 1-D column"),
        (lambda: quantile_boundaries([None, np.nan], 3), "no non-null value"),
        (lambda: quantile_boundaries([1, 2], 0), "num_buckets must be a positive integer"),
    ],
)
def test_bad_arguments_are_explained(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture
def mothers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "mother_age": pd.array([18, 22, 25, 29, 31, 35, None, 44], dtype="Int64"),
            "gestation_weeks": [30.0, 38.0, 39.0, 40.0, 40.0, 41.0, 37.0, np.nan],
        }
    )


def test_explicit_boundaries_for_all_or_per_column(mothers):
    same = Bucketizer(boundaries=[30, 40]).fit(mothers)
    expected = ["bin_1", "bin_1", "bin_1", "bin_1", "bin_2", "bin_2", None, "bin_3"]
    assert same.transform(mothers)[:, 0].tolist() == expected
    per_column = Bucketizer(
        boundaries={"mother_age": [20, 30, 40], "gestation_weeks": [37, 40]}, output="index"
    ).fit(mothers)
    out = per_column.transform(mothers)
    assert out.dtype == np.int64
    assert out[:, 0].tolist() == [0, 1, 1, 1, 2, 2, 4, 3]  # null -> n_bins = 4
    assert out[:, 1].tolist() == [0, 1, 1, 2, 2, 2, 1, 3]  # null -> n_bins = 3
    assert per_column.n_bins_ == [4, 3] and per_column.cardinalities_ == [5, 4]
    assert per_column.get_feature_names_out().tolist() == ["mother_age", "gestation_weeks"]


def test_exclude_boundaries_drops_the_outer_split_points(mothers):
    fitted = Bucketizer(boundaries=[10, 30, 50], exclude_boundaries=True).fit(mothers)
    assert [b.tolist() for b in fitted.boundaries_] == [[30.0], [30.0]]


def test_quantiles_are_learned_on_training_data_only(mothers):
    fitted = Bucketizer(n_quantiles=4).fit(mothers)
    learned = [b.copy() for b in fitted.boundaries_]
    assert learned[0].tolist() == quantile_boundaries(mothers["mother_age"], 4).tolist()
    serving = pd.DataFrame({"mother_age": [100, 12], "gestation_weeks": [20.0, 45.0]})
    out = fitted.transform(serving)
    assert out[:, 0].tolist() == [f"bin_{fitted.n_bins_[0]}", "bin_1"]
    assert all(np.array_equal(a, b) for a, b in zip(learned, fitted.boundaries_, strict=True))


def test_transformer_agrees_with_the_function(mothers):
    fitted = Bucketizer(n_quantiles=3).fit(mothers)
    for j, column in enumerate(mothers.columns):
        expected = bucketize(mothers[column], fitted.boundaries_[j])
        assert fitted.transform(mothers)[:, j].tolist() == expected.tolist()


def test_json_round_trip_transforms_identically(mothers):
    for params in (
        {"n_quantiles": 5, "output": "index"},
        {"boundaries": {"mother_age": [20, 30], "gestation_weeks": [37]}},
    ):
        fitted = Bucketizer(**params).fit(mothers)
        restored = estimator_from_json(json.loads(json.dumps(fitted.to_json_dict())))
        assert type(restored) is Bucketizer
        np.testing.assert_array_equal(restored.transform(mothers), fitted.transform(mothers))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "exactly one of boundaries= .* or n_quantiles="),
        ({"boundaries": [1], "n_quantiles": 3}, "exactly one of"),
        ({"n_quantiles": 0}, "n_quantiles must be a positive integer"),
        ({"boundaries": [1], "output": "onehot"}, "output must be one of"),
        (
            {"boundaries": [3, 1]},
            "boundaries for column 'mother_age': split points must be strictly",
        ),
        ({"boundaries": {"mother_age": [20]}}, "no split points for column 'gestation_weeks'"),
        ({"boundaries": {"mother_age": [20], "gestation_weeks": [1], "x": [1]}}, r"\['x'\]"),
    ],
)
def test_bad_parameters_are_named(mothers, params, message):
    with pytest.raises(ValueError, match=message):
        Bucketizer(**params).fit(mothers)


def test_bad_columns_are_named(mothers):
    frame = mothers.assign(plurality=["Single(1)"] * 8)
    with pytest.raises(ValueError, match="column 'plurality': expected numbers"):
        Bucketizer(n_quantiles=3).fit(frame)
    with pytest.raises(ValueError, match="column 'empty': no non-null value"):
        Bucketizer(n_quantiles=3).fit(pd.DataFrame({"empty": [None, None]}, dtype="Float64"))
