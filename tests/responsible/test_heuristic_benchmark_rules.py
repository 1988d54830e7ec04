"""Heuristic Benchmark (28): the single threshold and the previous period's rate, on real flights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlpatterns.datasets import load_flights
from mlpatterns.responsible.heuristic_rules import PreviousPeriodHeuristic, ThresholdHeuristic


@pytest.fixture(scope="module")
def first_quarter() -> pd.DataFrame:
    flights = load_flights().dropna(subset=["arr_delay"])
    flights = flights[flights["month"] <= 3].reset_index(drop=True)
    return flights.assign(late=(flights["arr_delay"] > 30).astype(float))


def test_threshold_finds_the_best_single_cut(first_quarter):
    train = first_quarter[first_quarter["month"] <= 2]
    test = first_quarter[first_quarter["month"] == 3]
    columns = ["distance", "sched_dep_time"]
    rule = ThresholdHeuristic(min_count=20).fit(train[columns], train["late"])
    # the cut leaves the two sides' rates as the rule's only two values
    below = train[rule.feature_] <= rule.threshold_
    assert rule.below_ == pytest.approx(train.loc[below, "late"].mean())
    assert rule.above_ == pytest.approx(train.loc[~below, "late"].mean())
    assert rule.feature_ == "sched_dep_time" and rule.above_ > rule.below_  # late flights come in the evening
    # no other cut of either column separates the classes better (Gini impurity decrease)

    def impurity(cut_column, cut):
        side = train[cut_column] <= cut
        return sum(part.mean() * (1 - part.mean()) * len(part) for part in (train.loc[side, "late"],
                                                                               train.loc[~side, "late"]))
    best = impurity(rule.feature_, rule.threshold_)
    for column in columns:
        for cut in np.quantile(train[column], np.linspace(0.05, 0.95, 19)):
            assert best <= impurity(column, cut) + 1e-9
    assert roc_auc_score(test["late"], rule.predict(test[columns])) > 0.55


def test_threshold_median_on_each_side_and_missing_values():
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0, 11.0, 40.0, np.nan]})
    y = [1.0, 1.0, 2.0, 10.0, 11.0, 12.0, 11.0]
    rule = ThresholdHeuristic(statistic="median").fit(X, y)
    assert (rule.below_, rule.above_) == (1.0, 11.0)
    assert rule.predict(pd.DataFrame({"x": [0.0, 100.0, np.nan]})).tolist() == [1.0, 11.0, 11.0]


def test_threshold_without_a_useful_cut_is_the_global_statistic():
    rule = ThresholdHeuristic().fit(pd.DataFrame({"x": [1.0, 1.0, 1.0]}), [0.0, 1.0, 1.0])
    assert rule.threshold_ == float("inf") and rule.predict(pd.DataFrame({"x": [5.0]})).tolist() == [2 / 3]


def test_previous_period_keeps_the_last_period_of_the_history(first_quarter):
    history = first_quarter[first_quarter["month"] <= 2]
    rule = PreviousPeriodHeuristic(time_column="date", period="week", levels=[["origin"]], min_count=20)
    rule.fit(history[["date", "origin"]], history["late"])
    assert (rule.period_start_, rule.period_end_) == ("2013-02-22", "2013-02-28")
    week = history[pd.to_datetime(history["date"]) >= "2013-02-22"]
    assert rule.period_rows_ == len(week)
    expected = week.groupby("origin")["late"].mean()
    query = pd.DataFrame({"date": ["2013-03-01"] * 3, "origin": ["EWR", "JFK", "LGA"]})
    assert rule.predict(query) == pytest.approx(expected.loc[["EWR", "JFK", "LGA"]].to_numpy())
    # one day: yesterday's rate; an unknown segment backs off to the period's overall rate
    day = PreviousPeriodHeuristic(time_column="date", period="day", levels=[["origin"]]).fit(
        history[["date", "origin"]], history["late"])
    last = history[history["date"] == history["date"].max()]
    assert day.period_rows_ == len(last)
    assert day.predict(pd.DataFrame({"date": ["x"], "origin": ["XXX"]}))[0] == pytest.approx(last["late"].mean())


def test_previous_period_on_a_numeric_time_and_its_errors():
    X = pd.DataFrame({"year": [2019, 2020, 2021, 2021, 2022, 2022]})
    y = [1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
    assert PreviousPeriodHeuristic(time_column="year").fit(X, y).predict(X[:1]).tolist() == [8.0]
    assert PreviousPeriodHeuristic(time_column="year", period=1.5).fit(X, y).predict(X[:1]).tolist() == [6.0]
    with pytest.raises(ValueError, match="needs a date or time column"):
        PreviousPeriodHeuristic(time_column="year", period="week").fit(X, y)
    with pytest.raises(ValueError, match="period must be one of"):
        PreviousPeriodHeuristic(time_column="year", period="fortnight").fit(X, y)
    with pytest.raises(KeyError, match="time_column: unknown column 'when'"):
        PreviousPeriodHeuristic(time_column="when").fit(X, y)
