"""The monitor's plots (Continued Model Evaluation, 18) drawn from a real replay: a logistic
regression trained on January-June 2013 flights, served July-September, evaluated by day."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from mlpatterns.datasets import load_flights
from mlpatterns.reproducibility.data_statistics import DataStatistics
from mlpatterns.serving.continued_evaluation.drift import drift_windows, window_statistics
from mlpatterns.serving.continued_evaluation.evaluation_windows import evaluate_windows
from mlpatterns.serving.continued_evaluation.monitor_plots import (
    plot_drift_heatmap,
    plot_metric_over_time,
    plot_prediction_distribution,
    plot_retraining_interval,
)
from mlpatterns.serving.continued_evaluation.reference_statistics import prediction_statistics
from mlpatterns.serving.continued_evaluation.retraining_interval import estimate_retraining_interval

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("matplotlib")
INPUTS = ["dep_hour", "distance", "origin", "carrier"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def replay():
    from sklearn.linear_model import LogisticRegression

    flights = load_flights().dropna(subset=["arr_delay"])
    train = flights[flights["month"] <= 6]
    later = flights[flights["month"].between(7, 9)]
    model = LogisticRegression(max_iter=500).fit(train[["dep_hour", "distance"]], train["arr_delay"] > 15)
    test = train[train["month"] == 6]
    outputs = prediction_statistics("classification", model.predict_proba(test[["dep_hour", "distance"]])[:, 1])
    frames = []
    for version, shift in (("1", 0.0), ("2", 0.05)):  # a second version that predicts a little higher
        probability = np.clip(model.predict_proba(later[["dep_hour", "distance"]])[:, 1] + shift, 0, 1)
        served = pd.to_datetime(later["time_hour"]).dt.tz_localize(None).astype("datetime64[us]")
        frames.append(pd.DataFrame({
            "served_at": served, "event_time": served, "model": "flights", "version": version,
            "key": later.index.astype(str), "inputs": [json.dumps(r) for r in later[INPUTS].to_dict("records")],
            "outputs": "{}", "prediction": probability, "predicted_label": np.where(probability >= 0.5, "1", "0"),
            "sample_rate": 1.0, "source": "batch"}))
    labels = pd.DataFrame({"key": later.index.astype(str), "label": np.where(later["arr_delay"] > 15, "1", "0"),
                           "labelled_at": pd.Timestamp("2014-01-01"), "source": "truth"})
    con = duckdb.connect()
    con.register("predictions", pd.concat(frames, ignore_index=True))
    con.register("labels", labels)
    reference = DataStatistics.from_frame(train[INPUTS], categorical=["dep_hour"])
    return con, reference, outputs


def _png(path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    return data


def test_metric_over_time_with_bands_thresholds_and_crossings(replay, tmp_path):
    con, _, _ = replay
    windows = evaluate_windows(con, task="classification", window="1w")
    path = plot_metric_over_time(windows, tmp_path / "plots" / "roc_auc.png", metric="roc_auc",
                                 thresholds={"warning": 0.62, "retrain": 0.6})
    _png(path)
    _png(plot_metric_over_time(windows, tmp_path / "plots" / "log_loss.png", metric="log_loss", thresholds=0.6))
    with pytest.raises(KeyError, match="windows have no column 'rmse'"):
        plot_metric_over_time(windows, tmp_path / "x.png", metric="rmse")


def test_drift_heat_map_and_prediction_distribution(replay, tmp_path):
    con, reference, outputs = replay
    drift = drift_windows(con, reference, prediction_reference=outputs, window="1w", version="1")
    _png(plot_drift_heatmap(drift, tmp_path / "drift.png"))
    _png(plot_drift_heatmap(drift, tmp_path / "drift_js.png", statistic="js", threshold=None))
    daily = drift_windows(con, reference, window="1d", version="1", columns=["origin"])
    _png(plot_drift_heatmap(daily, tmp_path / "daily.png"))  # 92 windows: no annotations, thinned labels
    stats = window_statistics(con, reference, prediction_reference=outputs, window="1w", version="2", columns=[])
    _png(plot_prediction_distribution(stats, outputs, tmp_path / "prediction.png"))
    _png(plot_prediction_distribution(stats, outputs, tmp_path / "label.png", column="predicted_label"))


def test_retraining_interval_plot(replay, tmp_path):
    con, _, _ = replay
    windows = evaluate_windows(con, task="classification", window="1w", by=("version",))
    result = estimate_retraining_interval(windows, trained_at="2013-07-01", version="1")
    _png(plot_retraining_interval(result, tmp_path / "interval.png"))
    flat = estimate_retraining_interval(pd.DataFrame({"window_start": pd.date_range("2013-07-01", periods=2, freq="7D"),
                                             "roc_auc": [0.7, 0.71], "too_small": False}),
                               trained_at="2013-07-01", window="7d")
    _png(plot_retraining_interval(flat, tmp_path / "flat.png"))


def test_without_matplotlib_the_error_says_which_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    windows = pd.DataFrame({"window_start": [pd.Timestamp("2013-07-01")], "roc_auc": [0.7]})
    with pytest.raises(ImportError, match=r"pip install 'mlpatterns\[plot\]'"):
        plot_metric_over_time(windows, tmp_path / "x.png")
