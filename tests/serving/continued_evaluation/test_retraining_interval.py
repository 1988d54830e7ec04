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
    # the default: 2 % below where serving starts (the intercept), reached after drop * intercept / decay days
    assert result.relative_to == "served" and result.tolerance == pytest.approx(0.98 * result.intercept)
    assert result.recommended_days == pytest.approx(0.02 * result.intercept / -result.slope_per_day)
    assert 12 < result.recommended_days < 20 and result.days_low < result.recommended_days < result.days_high
    assert result.days_low == pytest.approx(0.02 * result.intercept / -result.slope_low)
    assert "retrain about every" in result.reasoning and result.ages == pytest.approx(tuple(ages))
    assert result.slope_per_day == pytest.approx(np.polyfit(ages, values, 1)[0])
    # no gap: the intercept's interval holds the training metric
    assert result.intercept_low < 0.80 < result.intercept_high and not result.gap_significant
    assert result.gap == pytest.approx(result.intercept - 0.80) and "no significant gap" in result.reasoning
    old = estimate_retraining_interval(windows_with(values), trained_at="2013-07-01", training_metric=0.80,
                                       relative_to="training")
    assert old.tolerance == pytest.approx(0.784)
    assert old.recommended_days == pytest.approx((0.784 - old.intercept) / old.slope_per_day)


def test_a_gap_at_age_0_is_reported_apart_from_the_decay():
    """Serving starts 0.05 below the test split's metric, then decays slowly: the old definition said "retrain
    at once" (the line starts below the training metric - 2 %); the gap is its own finding, the interval
    measures the decay from where serving starts."""
    rng = np.random.default_rng(11)
    ages = np.arange(20) * 7 + 3.5
    values = 0.75 - 0.0002 * ages + rng.normal(0, 0.002, len(ages))
    result = estimate_retraining_interval(windows_with(values), trained_at="2013-07-01", training_metric=0.80)
    assert result.gap == pytest.approx(result.intercept - 0.80) and -0.06 < result.gap < -0.04
    assert result.gap_significant and result.intercept_high < 0.80
    assert result.recommended_days == pytest.approx(0.02 * result.intercept / -result.slope_per_day)
    assert 50 < result.recommended_days < 100 and result.days_low < result.recommended_days < result.days_high
    assert "not decay" in result.reasoning and f"after {result.recommended_days:.0f} days" in result.reasoning
    old = estimate_retraining_interval(windows_with(values), trained_at="2013-07-01", training_metric=0.80,
                                       relative_to="training")
    assert old.recommended_days == 0 and "retrain at once" in old.reasoning and old.gap == result.gap
    with pytest.raises(ValueError, match="relative_to must be one of served, training"):
        estimate_retraining_interval(windows_with(values), trained_at="2013-07-01", relative_to="test")
    unknown = estimate_retraining_interval(windows_with(values), trained_at="2013-07-01")  # no training metric
    assert np.isnan(unknown.gap) and not unknown.gap_significant and "test split" not in unknown.reasoning
    assert unknown.recommended_days == pytest.approx(result.recommended_days)


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
                                                  training_metric=0.80, relative_to="training")
    assert started_beyond.recommended_days == 0 and "retrain at once" in started_beyond.reasoning
    from_start = estimate_retraining_interval(windows_with([0.70, 0.69, 0.67, 0.66]), trained_at="2013-07-01",
                                              training_metric=0.80)
    assert from_start.recommended_days > 0 and from_start.gap < -0.09 and from_start.gap_significant


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
    assert result.gap == pytest.approx(result.intercept - 0.62) and "on the test split" in result.reasoning
    assert result.recommended_days is None or result.recommended_days > 0  # never "every 0 days" from a gap


def test_real_flights_replay_a_test_split_gap_is_not_counted_as_decay():
    """The replay's situation: a model tested on June, served July-December. July's flights score below the
    test split from the first week; the old definition (tolerance from the test metric) counts that gap as
    decay and recommends a few days; the gap is reported apart and the interval comes from the decay alone."""
    from sklearn import metrics
    from sklearn.linear_model import LogisticRegression

    flights = load_flights().dropna(subset=["arr_delay"])
    features = ["dep_hour", "distance"]
    train, test = flights[flights["month"] <= 5], flights[flights["month"] == 6]
    later = flights[flights["month"] >= 7]
    model = LogisticRegression(max_iter=500).fit(train[features], train["arr_delay"] > 15)
    tested = metrics.roc_auc_score(test["arr_delay"] > 15, model.predict_proba(test[features])[:, 1])
    served = pd.to_datetime(later["time_hour"]).dt.tz_localize(None)
    rows = pd.DataFrame({"event_time": served, "y": (later["arr_delay"] > 15).to_numpy(),
                         "p": model.predict_proba(later[features])[:, 1]})
    weekly = [(start, metrics.roc_auc_score(group["y"], group["p"]))
              for start, group in rows.groupby(rows["event_time"].dt.to_period("W").dt.start_time)]
    frame = pd.DataFrame(weekly, columns=["window_start", "roc_auc"]).assign(too_small=False)
    frame["window_end"] = frame["window_start"] + pd.Timedelta("7D")
    result = estimate_retraining_interval(frame, trained_at="2013-07-01", training_metric=tested)
    old = estimate_retraining_interval(frame, trained_at="2013-07-01", training_metric=tested, relative_to="training")
    assert result.gap == pytest.approx(result.intercept - tested) and result.gap < 0
    assert f"against {tested:.4g} on the test split" in result.reasoning
    assert result.decay_measurable and old.decay_measurable and result.slope_per_day == old.slope_per_day
    assert old.recommended_days < result.recommended_days  # the gap made the old interval shorter
    assert result.recommended_days == pytest.approx(0.02 * result.intercept / -result.slope_per_day)


def test_overlapping_windows_do_not_narrow_the_slope_interval():
    """Weekly windows every day share 6 of their 7 days with their neighbour: fitted as if independent, their
    slope interval came out about sqrt(7) times narrower than that of weekly windows every week on the same
    data. With the effective sample size (n * step / window) both intervals have comparable widths."""
    from scipy import stats

    rng = np.random.default_rng(5)
    ratios, naive_ratios = [], []
    for _ in range(20):
        days = pd.date_range("2013-07-01", periods=182, freq="D")
        daily = 0.80 - 0.0002 * np.arange(len(days)) + rng.normal(0, 0.01, len(days))  # a metric per day
        rolling = pd.Series(daily).rolling(7).mean().to_numpy()[6:]  # weekly window starting each day
        every_day = pd.DataFrame({"window_start": days[: len(rolling)], "roc_auc": rolling, "too_small": False})
        every_day["window_end"] = every_day["window_start"] + pd.Timedelta("7D")
        every_week = every_day.iloc[::7]
        sliding = estimate_retraining_interval(every_day, trained_at="2013-07-01")
        tumbling = estimate_retraining_interval(every_week, trained_at="2013-07-01")
        assert tumbling.effective_windows == len(every_week) == 26
        assert sliding.effective_windows == pytest.approx(len(every_day) / 7)
        assert "worth 25.1 independent ones" in sliding.reasoning and "independent" not in tumbling.reasoning
        ratios.append((sliding.slope_high - sliding.slope_low) / (tumbling.slope_high - tumbling.slope_low))
        fit = stats.linregress(sliding.ages, sliding.values)  # the old interval: n - 2 degrees of freedom
        naive = 2 * stats.t.ppf(0.975, len(sliding.values) - 2) * fit.stderr
        naive_ratios.append(naive / (tumbling.slope_high - tumbling.slope_low))
    assert 0.7 < np.median(ratios) < 1.4  # comparable widths
    assert np.median(naive_ratios) < 0.5  # the old fit: about 1 / sqrt(7) = 0.38 as wide
    step_given = estimate_retraining_interval(every_day, trained_at="2013-07-01", step="7d")
    assert step_given.effective_windows == len(every_day)  # a step stated as the window: no overlap assumed
    few = estimate_retraining_interval(every_day.iloc[:14], trained_at="2013-07-01")  # 14 days: 2 independent
    assert np.isnan(few.slope_per_day) and "Too few windows" in few.reasoning and few.effective_windows == 2
