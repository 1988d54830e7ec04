"""The retraining interval (Continued Model Evaluation, 18): a decay fit of the metric against the model's age.

Exact behaviour on windows with a known decay; then the whole path on real flights: a logistic
regression trained on January-June 2013, evaluated week by week on July-December.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlpatterns.datasets import load_flights
from mlpatterns.serving.continued_evaluation.evaluation_windows import evaluate_windows
from mlpatterns.serving.continued_evaluation.retraining_interval import estimate_retraining_interval

duckdb = pytest.importorskip("duckdb")


def windows_with(values, *, start="2013-07-01", every="7D", metric="roc_auc") -> pd.DataFrame:
    starts = pd.date_range(start, periods=len(values), freq=every)
    return pd.DataFrame({"window_start": starts, "window_end": starts + pd.Timedelta(every), metric: values,
                         "too_small": False, "version": "1"})


def test_a_known_linear_decay_is_recovered_with_its_crossing():
    rng = np.random.default_rng(7)
    ages = np.arange(20) * 7 + 3.5  # weekly windows' middles
    values = 0.80 - 0.001 * ages + rng.normal(0, 0.002, len(ages))
    result = estimate_retraining_interval(windows_with(values), trained_at="2013-07-01", training_metric=0.80)
    assert result.slope_low < -0.001 < result.slope_high and result.decay_measurable
    assert result.tolerance == pytest.approx(0.784)
    assert result.recommended_days == pytest.approx((0.784 - result.intercept) / result.slope_per_day)
    assert 12 < result.recommended_days < 20 and result.days_low < result.recommended_days < result.days_high
    assert "retrain about every" in result.reasoning and result.ages == pytest.approx(tuple(ages))
    assert result.slope_per_day == pytest.approx(np.polyfit(ages, values, 1)[0])


def test_a_flat_metric_measures_no_decay_and_says_so():
    rng = np.random.default_rng(3)
    result = estimate_retraining_interval(windows_with(0.75 + rng.normal(0, 0.01, 12)), trained_at="2013-07-01")
    assert not result.decay_measurable and result.recommended_days is None
    assert result.slope_low < 0 < result.slope_high
    assert result.reasoning.startswith("No decay of roc_auc is measurable over 12 windows")
    few = estimate_retraining_interval(windows_with([0.8, 0.7]), trained_at="2013-07-01")
    assert few.recommended_days is None and np.isnan(few.slope_per_day) and "Too few windows" in few.reasoning


def test_a_loss_that_grows_and_an_explicit_tolerance():
    result = estimate_retraining_interval(windows_with([10.0, 10.2, 10.5, 10.6, 10.9, 11.1], metric="rmse", every="30D"),
                                 trained_at="2013-06-16", metric="rmse", tolerance=11.0)
    assert result.direction == "minimize" and result.slope_per_day > 0 and result.decay_measurable
    assert result.recommended_days == pytest.approx((11.0 - result.intercept) / result.slope_per_day)
    started_beyond = estimate_retraining_interval(windows_with([0.70, 0.69, 0.67, 0.66]), trained_at="2013-07-01",
                                         training_metric=0.80)
    assert started_beyond.recommended_days == 0 and "at once" in started_beyond.reasoning


def test_bad_input_names_what_is_wrong():
    two = pd.concat([windows_with([0.8, 0.79, 0.78]), windows_with([0.8, 0.79, 0.78]).assign(version="2")])
    with pytest.raises(ValueError, match=r"versions \['1', '2'\]: name one with version="):
        estimate_retraining_interval(two, trained_at="2013-07-01")
    assert estimate_retraining_interval(two, trained_at="2013-07-01", version="2").decay_measurable
    with pytest.raises(ValueError, match="has no better direction"):
        estimate_retraining_interval(two, trained_at="2013-07-01", metric="positive_rate", version="1")
    with pytest.raises(KeyError, match="windows need the columns"):
        estimate_retraining_interval(two, trained_at="2013-07-01", metric="rmse", version="1")


def test_real_flights_weekly_auc_of_a_model_trained_on_the_first_half():
    from sklearn.linear_model import LogisticRegression

    flights = load_flights().dropna(subset=["arr_delay"])
    features = ["dep_hour", "distance", "month"]
    train, later = flights[flights["month"] <= 6], flights[flights["month"] >= 7]
    model = LogisticRegression(max_iter=500).fit(train[["dep_hour", "distance"]], train["arr_delay"] > 15)
    probability = model.predict_proba(later[["dep_hour", "distance"]])[:, 1]
    served = pd.to_datetime(later["time_hour"]).dt.tz_localize(None).astype("datetime64[us]")
    keys = later.index.astype(str)
    predictions = pd.DataFrame({
        "served_at": served, "event_time": served, "model": "flights", "version": "1", "key": keys,
        "inputs": [json.dumps(r) for r in later[features].to_dict("records")], "outputs": "{}",
        "prediction": probability, "predicted_label": np.where(probability >= 0.5, "1", "0"),
        "sample_rate": 1.0, "source": "batch"})
    labels = pd.DataFrame({"key": keys, "label": np.where(later["arr_delay"] > 15, "1", "0"),
                           "labelled_at": served + pd.Timedelta("1D"), "source": "truth"})
    con = duckdb.connect()
    con.register("predictions", predictions)
    con.register("labels", labels)
    windows = evaluate_windows(con, task="classification", window="1w")
    result = estimate_retraining_interval(windows, trained_at="2013-07-01", training_metric=0.62)
    assert len(result.ages) == len(windows[~windows["too_small"]]) >= 26 and min(result.ages) > 0
    assert result.slope_low <= result.slope_per_day <= result.slope_high
    assert result.decay_measurable == (result.slope_high < 0)
    assert (result.recommended_days is None) == (not result.decay_measurable)
    assert f"over {len(result.ages)} windows" in result.reasoning
