"""Heuristic Benchmark: a segment lookup with back-off, better than the global rate on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from mlpatterns.datasets import load_flights
from mlpatterns.reproducibility.repeatable_splitting import hash_split
from mlpatterns.responsible import HeuristicBenchmark
from mlpatterns.responsible.heuristic_rules import PreviousPeriodHeuristic, ThresholdHeuristic


def test_backs_off_from_fine_to_coarse_segments():
    X = pd.DataFrame({"route": ["a"] * 4 + ["b"] * 2, "hour": [5, 5, 6, 6, 5, 5]})
    y = [1, 1, 0, 0, 0, 1]
    rule = HeuristicBenchmark(levels=[["route", "hour"], ["route"]], min_count=2).fit(X, y)
    query = pd.DataFrame({"route": ["a", "a", "b", "c"], "hour": [5, 7, 9, 5]})
    assert rule.predict(query).tolist() == [1.0, 0.5, 0.5, 0.5]
    assert rule.level_share_.tolist() == pytest.approx([1.0, 0.0, 0.0])


def test_median_statistic_and_min_count():
    X = pd.DataFrame({"g": ["a", "a", "a", "b"]})
    rule = HeuristicBenchmark(levels=[["g"]], min_count=3, statistic="median").fit(X, [1.0, 2.0, 10.0, 4.0])
    assert rule.predict(pd.DataFrame({"g": ["a", "b"]})).tolist() == [2.0, 3.0]


def test_errors_name_the_problem():
    X = pd.DataFrame({"g": ["a", "b"]})
    with pytest.raises(KeyError, match=r"levels\[0\]: unknown column\(s\) \['h'\]"):
        HeuristicBenchmark(levels=[["h"]]).fit(X, [0, 1])
    with pytest.raises(ValueError, match="statistic must be"):
        HeuristicBenchmark(statistic="mode").fit(X, [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        HeuristicBenchmark().fit(X, [0, np.nan])


def test_route_and_hour_rate_beats_the_global_rate_on_flights():
    flights = load_flights().dropna(subset=["arr_delay"])
    flights = flights[flights["month"] <= 3].reset_index(drop=True)
    split = hash_split(flights, "date", {"train": 0.7, "valid": 0.1, "test": 0.2}).to_numpy()
    late = (flights["arr_delay"] > 30).to_numpy(dtype=float)
    columns = ["origin", "dest", "dep_hour"]
    rule = HeuristicBenchmark(levels=[columns, ["origin", "dest"], ["origin"]]).fit(
        flights.loc[split == "train", columns], late[split == "train"]
    )
    auc = roc_auc_score(late[split == "test"], rule.predict(flights.loc[split == "test", columns]))
    assert auc > 0.6  # the global rate alone ranks nothing: AUC 0.5


@parametrize_with_checks([ThresholdHeuristic(), ThresholdHeuristic(statistic="median"),
                          *PreviousPeriodHeuristic._estimator_check_instances()])
def test_the_other_heuristics_pass_the_estimator_checks(estimator, check):
    check(estimator)
