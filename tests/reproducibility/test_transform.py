"""The Transform pattern: fitted on train only, saved as JSON, applied identically at serving."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from mlpatterns.hashing import hash_bucket
from mlpatterns.reproducibility.transform import FeatureTransform


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    n = 400
    return pd.DataFrame({
        "distance": np.where(rng.random(n) < 0.1, np.nan, rng.integers(100, 3000, n)).astype(float),
        "carrier": rng.choice(["UA", "AA", "DL", None], n),
        "dest": rng.choice(["IAH", "MIA", "ATL", "ORD"], n),
        "hour": rng.integers(5, 23, n),
        "date": [dt.date(2013, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 365, n)],
    })


def make(**overrides):
    declaration = dict(
        numeric=["distance"], categorical={"carrier": 16, "dest": 32},
        bucketize={"hour": {"boundaries": [9, 12, 18]}, "distance": {"quantiles": 4}},
        crosses=[{"columns": ["dest", "hour"], "buckets": 64}],
        date_parts={"date": ["dayofweek", "month"]},
    )
    declaration.update(overrides)
    return FeatureTransform(**declaration)


def test_learned_parameters_come_from_the_training_rows_only(frame):
    train, serve = frame.iloc[:200], frame.iloc[200:]
    transform = make().fit(train)
    state = transform.state_["numeric"]["distance"]
    assert state["median"] == pytest.approx(np.nanmedian(train["distance"]))
    assert state["median"] != pytest.approx(np.nanmedian(serve["distance"]))
    assert state["indicator"] is True


def test_output_layout(frame):
    features = make().fit(frame).transform(frame)
    assert features.numeric_names == ["distance", "distance_missing"]
    assert features.categorical_names == ["carrier", "dest", "hour_bin", "distance_bin",
                                          "date_dayofweek", "date_month", "dest_hour"]
    assert features.numeric.dtype == np.float32 and features.categorical.dtype == np.int64
    assert (features.categorical < np.array(features.cardinalities)).all()
    assert (features.categorical >= 0).all()
    assert features.matrix().shape == (len(frame), 9)


def test_hashed_columns_match_the_hashing_module(frame):
    features = make().fit(frame).transform(frame)
    expected = hash_bucket(frame["carrier"], 16, null_bucket=16)
    assert np.array_equal(features.categorical[:, 0], expected)


def test_json_round_trip_gives_identical_features(frame):
    transform = make().fit(frame.iloc[:300])
    restored = FeatureTransform.from_json(transform.to_json())
    before, after = transform.transform(frame), restored.transform(frame)
    assert np.array_equal(before.numeric, after.numeric)
    assert np.array_equal(before.categorical, after.categorical)


def test_unseen_categories_and_missing_numbers_at_serving(frame):
    transform = make().fit(frame)
    serving = frame.head(3).copy()
    serving["dest"] = ["NEW1", "NEW2", None]
    serving["distance"] = [np.nan, np.nan, np.nan]
    features = transform.transform(serving)
    assert (features.categorical[:, 1] < 33).all()
    assert (features.numeric[:, 1] == 1).all()


def test_missing_column_is_named(frame):
    transform = make().fit(frame)
    with pytest.raises(KeyError, match=r"missing input column\(s\) \['dest'\]"):
        transform.transform(frame.drop(columns=["dest"]))


def test_non_numeric_value_is_named(frame):
    transform = make().fit(frame)
    bad = frame.astype({"distance": object})
    bad.loc[3, "distance"] = "far"
    with pytest.raises(ValueError, match="column 'distance': expected numbers.*'far'"):
        transform.transform(bad)


def test_declaration_errors():
    with pytest.raises(ValueError, match=r"date_parts.date: unknown part\(s\) \['weekday'\]"):
        FeatureTransform(date_parts={"date": ["weekday"]})
    with pytest.raises(ValueError, match="bucketize.x: expected exactly one"):
        FeatureTransform(bucketize={"x": {}})
    with pytest.raises(ValueError, match="categorical.c: expected a positive bucket count"):
        FeatureTransform(categorical={"c": 0})


def test_unfitted_transform_refuses(frame):
    with pytest.raises(RuntimeError, match="not fitted"):
        make().transform(frame)


def test_calendar_parts_are_exact_indices_not_hashed():
    days = pd.DataFrame({"date": [dt.date(2013, 1, d) for d in range(1, 8)] + [None]})
    features = FeatureTransform(date_parts={"date": ["dayofweek", "month", "hour"]}).fit(days).transform(days)
    assert features.cardinalities == [8, 13, 25]
    assert features.categorical[:7, 0].tolist() == [1, 2, 3, 4, 5, 6, 0]  # 2013-01-01 was a Tuesday
    assert features.categorical[7].tolist() == [7, 12, 24]  # nulls get the last index


def test_dates_parse_alike_from_objects_text_and_time_zones():
    as_dates = pd.DataFrame({"date": [dt.date(2013, 3, 4), dt.date(2013, 3, 5)]})
    as_text = pd.DataFrame({"date": ["2013-03-04", "2013-03-05T00:00:00"]})
    aware = pd.DataFrame({"date": pd.to_datetime(["2013-03-04 01:00", "2013-03-05 01:00"]).tz_localize("Etc/GMT-1")})
    transform = FeatureTransform(date_parts={"date": ["dayofweek", "day"]}).fit(as_dates)
    expected = transform.transform(as_dates).categorical
    for frame in (as_text, aware):
        assert np.array_equal(transform.transform(frame).categorical, expected)


def test_values_treated_as_missing_are_reported(frame):
    transform = make().fit(frame)
    bad = frame.head(4).astype({"distance": object, "date": object})
    bad.loc[1, "date"] = "2013-02-30"
    bad.loc[2, "distance"] = "far"
    assert transform.row_problems(bad) == [
        (2, "distance", "expected a number, got 'far'"),
        (1, "date", "expected an ISO 8601 date or timestamp, got '2013-02-30'"),
    ]


def test_infinities_count_as_missing(frame):
    train = frame.assign(distance=frame["distance"].where(frame.index != 5, np.inf))
    transform = FeatureTransform(numeric=["distance"]).fit(train)
    assert np.isfinite(transform.state_["numeric"]["distance"]["mean"])
    features = transform.transform(train.head(6))
    assert np.isfinite(features.numeric).all() and features.numeric[5, 1] == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["state"]["numeric"]["distance"].update(std=0), "std must be positive"),
        (lambda d: d["state"]["numeric"].pop("distance"), r"state.numeric.distance must be an object"),
        (lambda d: d["state"]["boundaries"].update(hour=[18, 9]), "increasing order"),
        (lambda d: d["declaration"].update(numeric="distance"), "declaration.numeric must be a list"),
        (lambda d: d["declaration"].update(convention="md5"), "convention must be one of"),
        (lambda d: d.update(state=[]), "state must be an object"),
    ],
)
def test_malformed_json_is_refused_with_the_field(frame, change, message):
    payload = json.loads(make().fit(frame).to_json())
    change(payload)
    with pytest.raises(ValueError, match=message):
        FeatureTransform.from_dict(payload)
