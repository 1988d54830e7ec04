"""Repeatable Splitting (22): the split is the book's BigQuery formula, in Python and in SQL."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from threadpoolctl import threadpool_limits

from mlpatterns.datasets import load_flights
from mlpatterns.hashing import fingerprint64_column
from mlpatterns.reproducibility.repeatable_splitting import (
    HashKFold,
    hash_split,
    hash_split_frames,
    key_buckets,
    repeatable_sample,
    split_sql_condition,
)

FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "split_leak_flights.py"


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    return load_flights()[["date", "carrier", "origin", "flight", "distance", "arr_delay"]]


@pytest.fixture(scope="module")
def split(flights: pd.DataFrame) -> pd.Series:
    return hash_split(flights, "date", FRACTIONS, num_buckets=100)


def _bigquery_mod(fingerprints: np.ndarray, n: int) -> np.ndarray:
    """ABS(MOD(f, n)) by hand, with Python integers: MOD keeps the sign of the dividend."""
    out = []
    for f in map(int, fingerprints):
        remainder = abs(f) % n
        out.append(abs(remainder if f >= 0 else -remainder))
    return np.array(out)


def test_same_rows_every_run_and_in_any_order(flights, split):
    assert split.equals(hash_split(flights, "date", FRACTIONS))
    shuffled = flights.sample(frac=1.0, random_state=1)
    assert hash_split(shuffled, "date", FRACTIONS).sort_index().equals(split.sort_index())


def test_split_is_the_bigquery_formula_by_hand(flights, split):
    dates = pd.Series(pd.unique(flights["date"]))
    texts = [d.isoformat() for d in dates]  # CAST(date AS STRING)
    buckets = _bigquery_mod(fingerprint64_column(texts), 100)
    expected = np.where(buckets < 80, "train", np.where(buckets < 90, "valid", "test"))
    by_date = dict(zip(dates, expected, strict=True))
    assert split.astype(str).tolist() == [by_date[d] for d in flights["date"]]


def test_every_date_lies_in_one_split(flights, split):
    assert flights.groupby(split.to_numpy())["date"].nunique().sum() == 365
    assert (split.groupby(flights["date"]).nunique() == 1).all()


def test_fractions_of_the_365_dates_are_about_right(flights, split):
    dates_per_split = flights.groupby(split, observed=False)["date"].nunique() / 365
    for name, fraction in FRACTIONS.items():
        assert abs(dates_per_split[name] - fraction) < 0.05, dates_per_split.to_dict()
    assert list(split.cat.categories) == list(FRACTIONS)


def test_frames_helper_partitions_the_rows(flights, split):
    parts = hash_split_frames(flights, "date", FRACTIONS)
    assert list(parts) == list(FRACTIONS)
    assert sum(len(p) for p in parts.values()) == len(flights)
    assert parts["valid"].index.equals(flights.index[(split == "valid").to_numpy()])


@pytest.mark.parametrize("separator", ["", "-"])
def test_several_key_columns_hash_their_concatenation(flights, separator):
    frame = flights.head(5_000)
    text = frame["carrier"] + separator + frame["flight"].astype(str)
    expected = _bigquery_mod(fingerprint64_column(text.tolist()), 10)
    got = key_buckets(frame, ["carrier", "flight"], 10, separator=separator)
    assert got.tolist() == expected.tolist()


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([3, -1, 3, 0, 2**62]),
        pd.Series([1.0, 0.1, 1.0, 1e20, -0.0]),
        pd.Series([True, False, True, True, False]),
        pd.Series(["a", "é", "a", "", "😀"], dtype="string"),
        pd.Series(["x", "y", "x", "z", "y"], dtype="category"),
        pd.Series(
            pd.to_datetime(
                ["2013-01-01 05:00:00", "2013-01-01 00:00:00", "2013-01-01 05:00:00.5"] * 2,
                format="ISO8601",
            )
        ),
        pd.Series(
            pd.to_datetime(["2013-01-01 05:00", "2013-06-01 00:00"] * 2).tz_localize("US/Eastern")
        ),
        pd.Series([1, True, "1", 1.0, b"1"], dtype=object),
    ],
)
def test_casting_distinct_values_once_matches_casting_every_row(column):
    from mlpatterns.hashing import hash_bucket

    expected = hash_bucket(column, 7).tolist()
    assert key_buckets(pd.DataFrame({"k": column}), "k", 7).tolist() == expected


def test_repeatable_sample_keeps_whole_dates_and_can_be_split(flights):
    sample = repeatable_sample(flights, "date", 0.1)
    assert sample.index.equals(repeatable_sample(flights, "date", 0.1).index)
    assert 0.05 < sample["date"].nunique() / 365 < 0.15
    outside = flights.drop(sample.index)
    assert not set(sample["date"]) & set(outside["date"])
    # same num_buckets: the sample is buckets 0-9 of 100, all in "train" (the pitfall)
    assert (hash_split(sample, "date", FRACTIONS, num_buckets=100) == "train").all()
    # num_buckets * 10, the book's 70/700 trick: a real split of the sample
    inner = hash_split(sample, "date", FRACTIONS, num_buckets=1000)
    assert set(inner) == set(FRACTIONS)


def test_hash_kfold_is_a_group_kfold_by_hash(flights):
    frame = flights.dropna(subset=["arr_delay"]).sample(4_000, random_state=0)
    X, y, dates = frame[["distance"]].to_numpy(), frame["arr_delay"].to_numpy() > 30, frame["date"]
    cv = HashKFold(n_splits=5)
    assert cv.get_n_splits() == 5
    expected_fold = _bigquery_mod(fingerprint64_column(dates), 5)
    tests = []
    for k, (train, test) in enumerate(cv.split(X, y, groups=dates)):
        assert (expected_fold[test] == k).all() and (expected_fold[train] != k).all()
        assert not set(dates.iloc[train]) & set(dates.iloc[test])
        tests.append(test)
    assert sorted(np.concatenate(tests).tolist()) == list(range(len(frame)))
    scores = cross_val_score(LogisticRegression(), X, y, groups=dates, cv=cv, scoring="roc_auc")
    assert len(scores) == 5 and np.isfinite(scores).all()
    group_scores = cross_val_score(LogisticRegression(), X, y, groups=dates, cv=GroupKFold(5))
    assert len(group_scores) == 5
    with sklearn.config_context(enable_metadata_routing=True):
        routed = cross_val_score(
            LogisticRegression(), X, y, params={"groups": dates}, cv=cv, scoring="roc_auc"
        )
    assert np.allclose(routed, scores)


def test_hash_kfold_errors():
    X = np.zeros((4, 1))
    with pytest.raises(ValueError, match="needs groups="):
        next(HashKFold().split(X))
    with pytest.raises(ValueError, match="n_splits must be an integer of at least 2"):
        next(HashKFold(n_splits=1).split(X, groups=["a", "b", "c", "d"]))
    with pytest.raises(ValueError, match="received no key"):
        list(HashKFold(n_splits=5).split(X, groups=["a", "a", "b", "b"]))
    with pytest.raises(ValueError, match="groups has 1 null value.*position 1"):
        next(HashKFold(n_splits=2).split(X, groups=["a", None, "b", "c"]))


@pytest.mark.parametrize(
    ("fractions", "message"),
    [
        ({"train": 0.8, "test": 0.1}, "must sum to 1, got 0.9"),
        (
            {"train": 0.805, "test": 0.195},
            r"fractions\['train'\] = 0.805 must be a multiple of 1/100",
        ),
        ({"train": 1.1, "test": -0.1}, r"fractions\['train'\]"),
        ({"train": "0.8", "test": 0.2}, r"fractions\['train'\] must be a number"),
        ({}, "non-empty dict"),
        ([0.8, 0.2], "non-empty dict"),
    ],
)
def test_fraction_errors_name_the_field(fractions, message):
    frame = pd.DataFrame({"k": ["a", "b"]})
    with pytest.raises((ValueError, TypeError), match=message):
        hash_split(frame, "k", fractions)


def test_key_and_null_errors():
    frame = pd.DataFrame({"k": ["a", None, "c"], "x": [1, 2, 3]})
    with pytest.raises(
        KeyError, match=r"key column 'date' is not in the frame; its columns are \['k', 'x'\]"
    ):
        hash_split(frame, "date")
    with pytest.raises(ValueError, match="'k' has 1 null value.*row 1.*nulls='exclude'"):
        hash_split(frame, "k")
    excluded = hash_split(frame, "k", {"all": 1.0}, nulls="exclude")
    assert excluded.isna().tolist() == [False, True, False]
    assert len(repeatable_sample(frame, "k", 1.0, nulls="exclude")) == 2
    with pytest.raises(ValueError, match="fraction = 0.123 must be a multiple"):
        repeatable_sample(frame, "x", 0.123)


def test_sql_condition_text():
    assert split_sql_condition("date", "train", FRACTIONS, num_buckets=10) == (
        "ABS(MOD(FARM_FINGERPRINT(CAST(date AS STRING)), 10)) < 8"
    )
    assert split_sql_condition("date", "test", FRACTIONS, num_buckets=10).endswith(">= 9")
    assert split_sql_condition(["a", "b"], "train").startswith(
        "ABS(MOD(FARM_FINGERPRINT(CONCAT(CAST(a AS STRING), CAST(b AS STRING))), 100))"
    )
    with pytest.raises(
        ValueError, match=r"split 'holdout' is not one of .*\['train', 'valid', 'test'\]"
    ):
        split_sql_condition("date", "holdout", FRACTIONS)
    with pytest.raises(ValueError, match="quote"):
        split_sql_condition(["a", "b"], "train", separator="'")


@pytest.mark.parametrize(
    ("key", "separator"), [("date", ""), (["carrier", "origin"], ""), (["carrier", "flight"], "-")]
)
def test_duckdb_selects_exactly_the_python_rows(flights, key, separator):
    from mlpatterns.sql import connect

    con = connect()
    frame = flights.reset_index(drop=True).assign(i=np.arange(len(flights)))
    con.register("flights", frame)
    split = hash_split(frame, key, FRACTIONS, separator=separator)
    for name in FRACTIONS:
        where = split_sql_condition(key, name, FRACTIONS, separator=separator)
        rows = [r[0] for r in con.sql(f"SELECT i FROM flights WHERE {where} ORDER BY i").fetchall()]
        assert rows == np.flatnonzero((split == name).to_numpy()).tolist(), name


def test_random_split_overstates_the_metric_of_an_unseen_period():
    """The direction of the effect in examples/split_leak_flights.py, on a subsample."""
    spec = importlib.util.spec_from_file_location("split_leak_flights", EXAMPLE)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    frame = demo.prepare(load_flights()).sample(40_000, random_state=0)
    with threadpool_limits(1):  # OpenMP on shared cores: one thread is faster
        results = demo.compare_splits(frame, max_iter=50)
    random_rows, by_date = results["random rows"], results["by date"]
    assert random_rows["roc_auc"] > random_rows["unseen_roc_auc"] + 0.02
    assert random_rows["roc_auc"] > by_date["roc_auc"] + 0.02
    assert abs(by_date["roc_auc"] - by_date["unseen_roc_auc"]) < abs(
        random_rows["roc_auc"] - random_rows["unseen_roc_auc"]
    )
