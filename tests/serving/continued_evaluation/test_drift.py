"""Feature and prediction drift per window (Continued Model Evaluation, 18) on real flights.

The reference is January-June 2013 (the training months of the issue's demonstration); the
log holds the first days of July, served with the inputs JSON of the contract. DuckDB's
per-window figures must equal the pandas path of :mod:`mlpatterns.reproducibility`
(``DataStatistics.from_frame(window, reference=...)`` and its PSI / Jensen-Shannon).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlpatterns.datasets import load_flights
from mlpatterns.reproducibility.data_statistics import DataStatistics
from mlpatterns.reproducibility.data_validation import (
    aligned_counts,
    jensen_shannon_distance,
    population_stability_index,
    validate,
)
from mlpatterns.serving.bundle import write_bundle
from mlpatterns.serving.continued_evaluation.drift import (
    drift_windows,
    explain_drift,
    window_statistics,
)
from mlpatterns.serving.continued_evaluation.reference_statistics import (
    prediction_statistics,
    training_statistics,
)
from mlpatterns.testing.registry import make_signature

duckdb = pytest.importorskip("duckdb")
COLUMNS = ["carrier", "origin", "dest", "dep_delay", "distance", "dep_hour", "air_time", "tailnum"]


def score(frame: pd.DataFrame) -> np.ndarray:
    return 1 / (1 + np.exp(-(np.nan_to_num(frame["dep_delay"].to_numpy(dtype=np.float64)) - 15) / 10))


def log_of(frame: pd.DataFrame, version: str = "1") -> pd.DataFrame:
    served = pd.to_datetime(frame["time_hour"]).dt.tz_localize(None).astype("datetime64[us]")
    cells = frame[COLUMNS].astype(object).where(frame[COLUMNS].notna(), None)
    probability = score(frame)
    return pd.DataFrame({
        "served_at": served, "event_time": served, "model": "flights", "version": version,
        "key": frame.index.astype(str), "inputs": [json.dumps(row) for row in cells.to_dict("records")],
        "outputs": "{}", "prediction": probability, "predicted_label": np.where(probability >= 0.5, "1", "0"),
        "sample_rate": 1.0, "source": "batch"})


def connect(log: pd.DataFrame):
    con = duckdb.connect()
    con.register("predictions", log)
    return con


@pytest.fixture(scope="module")
def flights():
    return load_flights()


@pytest.fixture(scope="module")
def reference(flights):
    train = flights[flights["month"] <= 6]
    return DataStatistics.from_frame(train[[*COLUMNS, "arr_delay"]], categorical=["dep_hour"])


@pytest.fixture(scope="module")
def july(flights):
    return flights[(flights["month"] == 7) & (flights["day"] <= 4)]


def _window_frame(july: pd.DataFrame, start: str) -> pd.DataFrame:
    served = pd.to_datetime(july["time_hour"]).dt.tz_localize(None)
    inside = july[(served >= start) & (served < pd.Timestamp(start) + pd.Timedelta("1D"))]
    return inside[COLUMNS]


def test_window_figures_equal_the_pandas_statistics_path(reference, july):
    drift = drift_windows(connect(log_of(july)), reference)
    assert set(drift["column"]) == set(COLUMNS)  # arr_delay (the target) is not served: not compared
    window = _window_frame(july, "2013-07-02")
    expected = DataStatistics.from_frame(window, reference=reference)
    rows = drift[drift["window_start"] == pd.Timestamp("2013-07-02")].set_index("column")
    anomalies = {(a.column, a.statistic): a.value for a in validate(
        expected, DataStatistics(reference.row_count, {c: reference.columns[c] for c in COLUMNS}),
        thresholds={"out_of_range": 0.0, "unseen_categories": 0.0, "row_count_ratio": None})}
    for column in COLUMNS:
        _, e, a = aligned_counts(reference.columns[column], expected.columns[column])
        row = rows.loc[column]
        assert row["n_rows"] == len(window) and row["n_present"] == window[column].notna().sum()
        assert row["psi"] == pytest.approx(population_stability_index(e, a), rel=1e-9), column
        assert row["js"] == pytest.approx(jensen_shannon_distance(e, a), rel=1e-9), column
        assert row["missing_share"] == pytest.approx(window[column].isna().mean())
        if reference.columns[column].kind in ("integer", "float"):
            assert row["out_of_range_share"] == pytest.approx(anomalies.get((column, "out_of_range_share"), 0.0))
            values, ref_values = window[column].dropna(), reference.columns[column].numeric
            # the binned KS statistic is exact at the reference's edges and a lower bound of the raw one
            cdf = np.array([(values < ref_values.edges[0]).mean(), *((values <= e).mean() for e in ref_values.edges[1:])])
            ref_cdf = np.cumsum(ref_values.counts)[:-1] / sum(ref_values.counts)
            assert row["ks"] == pytest.approx(np.abs(cdf - ref_cdf).max())
            train = load_flights().query("month <= 6")[column].dropna()
            assert row["ks"] <= stats.ks_2samp(values, train).statistic + 1e-12
        else:
            shares = np.maximum(e / e.sum(), 1e-4)
            assert row["chi_square"] == pytest.approx(stats.chisquare(a, shares / shares.sum() * a.sum()).statistic
                                                      / a.sum(), rel=1e-9)
            if column != "tailnum":
                assert row["unseen_share"] == pytest.approx(anomalies.get((column, "unseen_share"), 0.0))
    # > 1000 tail numbers: the reference's list is truncated, so neither unseen shares nor "new" values are claimed
    assert np.isnan(rows.loc["tailnum", "unseen_share"]) and rows.loc["tailnum", "new_categories"] == []


def test_new_category_and_shift_are_explained(reference, july):
    changed = july.copy()
    rng = np.random.default_rng(0)
    picked = rng.random(len(changed)) < 0.03
    changed.loc[picked, "dest"] = "XYZ"
    changed.loc[changed["carrier"] == "UA", "dep_delay"] += 120
    drift = drift_windows(connect(log_of(changed)), reference, columns=["dest", "dep_delay", "origin"])
    day = drift[drift["window_start"] == pd.Timestamp("2013-07-03")].set_index("column")
    new_share = dict(day.loc["dest", "new_categories"])["XYZ"]
    window = _window_frame(changed, "2013-07-03")
    assert new_share == pytest.approx((window["dest"] == "XYZ").mean())
    assert day.loc["dest", "unseen_share"] == pytest.approx(new_share)
    assert day.loc["dep_delay", "psi"] > 0.2 > day.loc["origin", "psi"]
    explained = explain_drift(drift, "2013-07-03", top=2)
    assert list(explained["column"]) == ["dep_delay", "dest"] or list(explained["column"]) == ["dest", "dep_delay"]
    sentence = explained.set_index("column").loc["dest", "sentence"]
    assert sentence.startswith("dest: PSI ") and "new categories 'XYZ' " in sentence and "largest change" in sentence
    assert "median" in explained.set_index("column").loc["dep_delay", "sentence"]
    with pytest.raises(ValueError, match="no drift window starts at"):
        explain_drift(drift, "2012-01-01")


def test_prediction_drift_against_the_test_split_outputs(flights, reference, july):
    test = flights[(flights["month"] == 6) & (flights["day"] > 15)]
    outputs = prediction_statistics("classification", score(test), threshold=0.5)
    assert set(outputs.columns) == {"prediction", "predicted_label"}
    drift = drift_windows(connect(log_of(july)), reference, prediction_reference=outputs, columns=["origin"])
    predicted = drift[drift["role"] == "prediction"]
    assert set(predicted["column"]) == {"prediction", "predicted_label"}
    assert set(drift.loc[drift["role"] == "input", "column"]) == {"origin"}
    window = july.loc[_window_frame(july, "2013-07-01").index]
    expected = DataStatistics.from_frame(pd.DataFrame({"prediction": score(window)}), reference=outputs)
    _, e, a = aligned_counts(outputs.columns["prediction"], expected.columns["prediction"])
    first = predicted[(predicted["column"] == "prediction") & (predicted["window_start"] == pd.Timestamp("2013-07-01"))]
    assert first["psi"].iloc[0] == pytest.approx(population_stability_index(e, a))
    labels = prediction_statistics("multiclass", np.array([[0.2, 0.8], [0.9, 0.1], [0.3, 0.7]]), classes=["a", "b"])
    assert dict(labels.columns["predicted_label"].categories.values) == {"b": 2, "a": 1}
    assert prediction_statistics("multilabel", np.zeros((3, 2))) is None


def test_missing_unparsable_and_empty_windows_do_not_crash(reference):
    rows = [{"dep_delay": None, "dest": None}, {"dep_delay": "late", "dest": "ATL"}, {"dep_delay": 5.0, "dest": "ATL"}]
    log = pd.DataFrame({"event_time": pd.to_datetime(["2013-07-01 10:00", "2013-07-01 11:00", "2013-07-03 11:00"]),
                        "model": "flights", "version": "1", "key": ["a", "b", "c"],
                        "inputs": [json.dumps(r) for r in rows], "prediction": 0.5, "predicted_label": "1"})
    con = connect(log)
    drift = drift_windows(con, reference, columns=["dep_delay", "dest", "air_time"],
                          until="2013-07-02").set_index("column")
    assert drift.loc["dep_delay", "missing_share"] == 1.0  # "late" is not a number: missing, like null
    assert np.isnan(drift.loc["dep_delay", "psi"]) and drift.loc["dep_delay", "changes"] == "no values"
    assert drift.loc["air_time", "missing_share"] == 1.0  # a column the inputs never carry
    assert drift.loc["dest", "missing_share"] == 0.5 and drift.loc["dest", "psi"] > 0.2
    assert len(drift_windows(con, reference, columns=["dest"], since="2014-01-01")) == 0
    assert len(explain_drift(drift_windows(con, reference, columns=["dest"], since="2014-01-01"))) == 0
    stats_by_window = window_statistics(con, reference, columns=["dest"], model="other")
    assert stats_by_window == []
    with pytest.raises(KeyError, match="have no training statistics"):
        drift_windows(con, reference, columns=["wheels"])


def test_training_statistics_read_from_a_bundle(tmp_path, reference):
    outputs = prediction_statistics("classification", np.array([0.1, 0.7, 0.4]))
    manifest = {"name": "flights/linear", "task": "classification", "model": {"file": "model.onnx"},
                "transform": "transform.json", "signature": make_signature(), "statistics": "statistics.json",
                "prediction_statistics": "prediction_statistics.json"}
    files = {"model.onnx": b"onnx", "transform.json": b"{}", "statistics.json": reference.to_json().encode(),
             "prediction_statistics.json": outputs.to_json().encode()}
    inputs, predicted = training_statistics(write_bundle(tmp_path / "new", files, manifest))
    assert inputs == reference and predicted == outputs
    del files["prediction_statistics.json"], manifest["prediction_statistics"]
    assert training_statistics(write_bundle(tmp_path / "old", files, manifest))[1] is None


def test_sliding_windows_count_each_row_in_every_window_it_falls_in(reference, july):
    con = connect(log_of(july))
    tumbling = drift_windows(con, reference, columns=["origin"], window="1d")
    sliding = drift_windows(con, reference, columns=["origin"], window="2d", step="1d")
    assert sliding["n_rows"].sum() == 2 * tumbling["n_rows"].sum() == 2 * len(july)
    two_days = sliding.set_index("window_start").loc[pd.Timestamp("2013-07-02"), "n_rows"]
    assert two_days == tumbling.set_index("window_start")["n_rows"].loc[["2013-07-02", "2013-07-03"]].sum()
