"""Alerts on metrics, drift and label coverage, and the webhook that carries them (Continued Model Evaluation, 18).

The frames are those of evaluate_windows and drift_windows: computed by them on a small DuckDB log,
or written by hand with exactly their columns (taken from a real call, so a renamed column fails here).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest

from mlpatterns.reproducibility.data_statistics import DataStatistics
from mlpatterns.serving.continued_evaluation import drift as drift_module
from mlpatterns.serving.continued_evaluation.alerts import (
    DRIFT_LIMITS,
    MIN_DRIFT_ROWS,
    Alert,
    check_alerts,
    send_webhook,
)
from mlpatterns.serving.continued_evaluation.drift import drift_windows
from mlpatterns.serving.continued_evaluation.evaluation_windows import evaluate_windows

duckdb = pytest.importorskip("duckdb")
DAY1, DAY2, DAY3 = (pd.Timestamp(f"2013-07-0{d}") for d in (1, 2, 3))


def _connect(predictions: pd.DataFrame, labels: pd.DataFrame | None = None):
    con = duckdb.connect()
    con.register("predictions", predictions)
    con.register("labels", labels if labels is not None else pd.DataFrame(
        {"key": pd.Series(dtype=str), "label": pd.Series(dtype=str), "labelled_at": pd.Series(dtype="datetime64[us]")}))
    return con


def _log(times, scores, inputs=None) -> pd.DataFrame:
    """The contract's ``predictions`` table: one row per (event time, score, inputs)."""
    n = len(times)
    inputs = inputs if inputs is not None else [{}] * n
    return pd.DataFrame({"event_time": pd.to_datetime(times), "model": "m", "version": "1",
                         "key": [f"k{i}" for i in range(n)], "inputs": [json.dumps(r) for r in inputs],
                         "prediction": scores, "predicted_label": ["1" if s >= 0.5 else "0" for s in scores],
                         "sample_rate": 1.0})


@pytest.fixture(scope="module")
def reference():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"dep_delay": rng.normal(0, 10, 2000), "carrier": rng.choice(["AA", "UA", "DL"], 2000),
                          "tailnum": rng.choice(["N1", "N2"], 2000)})
    return DataStatistics.from_frame(train, categorical=["carrier", "tailnum"])


@pytest.fixture(scope="module")
def columns(reference):
    """The columns of a real evaluate_windows (classification) and drift_windows frame."""
    con = _connect(_log(["2013-07-01 08:00"], [0.5], [{"dep_delay": 1.0, "carrier": "AA", "tailnum": "N1"}]))
    return {"evaluation": list(evaluate_windows(con, task="classification", min_labelled=1).columns),
            "drift": list(drift_windows(con, reference).columns)}


def _frame(columns: list[str], rows: list[dict]) -> pd.DataFrame:
    unknown = {c for row in rows for c in row} - set(columns)
    assert not unknown, f"not a column of the real frame: {unknown}"
    return pd.DataFrame(rows).reindex(columns=columns)


def _evaluation(columns, **overrides):
    rows = [  # two complete windows of version 1; the second one decayed
        {"window_start": DAY1, "window_end": DAY2, "model": "flights", "version": "1", "n_predictions": 1000,
         "n_labelled": 900, "label_coverage": 0.9, "too_small": False, "roc_auc": 0.80, "roc_auc_low": 0.77,
         "roc_auc_high": 0.83, "log_loss": 0.40, "log_loss_low": 0.38, "log_loss_high": 0.42},
        {"window_start": DAY2, "window_end": DAY3, "model": "flights", "version": "1", "n_predictions": 1000,
         "n_labelled": 400, "label_coverage": 0.4, "too_small": False, "roc_auc": 0.66, "roc_auc_low": 0.62,
         "roc_auc_high": 0.69, "log_loss": 0.55, "log_loss_low": 0.49, "log_loss_high": 0.61}]
    frame = _frame(columns["evaluation"], rows)
    for column, value in overrides.items():
        frame[column] = value
    return frame


def _drift(columns, **extra):
    base = {"window_start": DAY2, "window_end": DAY3, "role": "input", "reference_missing_share": 0.0, "n_rows": 500}
    rows = [{**base, "column": "dep_delay", "psi": 0.30, "js": 0.05, "ks": 0.25, "missing_share": 0.0},
            {**base, "column": "carrier", "psi": 0.9, "js": 0.3, "chi_square": 0.4, "missing_share": 0.2},
            {**base, "column": "tailnum", "psi": 5.0, "js": 0.6, "missing_share": 0.0}]
    frame = _frame(columns["drift"], rows)
    for column, value in extra.items():
        frame[column] = value
    return frame


def test_metric_on_the_bound_and_on_the_estimate(columns):
    thresholds = {"metrics": {"roc_auc": {"min": 0.70, "on": "bound"}, "log_loss": {"max": 0.5, "on": "bound"}}}
    alerts = check_alerts(_evaluation(columns), None, thresholds, min_labelled=100)
    assert [(a.kind, a.what, a.window, a.value, a.limit) for a in alerts] == [
        ("metric", "roc_auc", "2013-07-02 00:00:00/2013-07-03 00:00:00", 0.69, 0.70)]  # log_loss low 0.49 < 0.5
    assert "upper bound 0.69" in alerts[0].message and "version 1" in alerts[0].message
    on_estimate = check_alerts(_evaluation(columns), None, {"metrics": {"log_loss": {"max": 0.5, "on": "estimate"}}},
                               min_labelled=100)
    assert [(a.what, a.value) for a in on_estimate] == [("log_loss", 0.55)]


def test_a_small_window_raises_no_metric_alert(columns):
    thresholds = {"metrics": {"roc_auc": {"min": 0.9, "on": "estimate"}}}
    assert check_alerts(_evaluation(columns), None, thresholds, min_labelled=500) == []
    assert check_alerts(_evaluation(columns, too_small=True), None, thresholds, min_labelled=1) == []


def test_every_window_or_the_newest_that_ended_by_a_time(columns):
    thresholds = {"metrics": {"roc_auc": {"min": 0.9, "on": "estimate"}}}
    assert len(check_alerts(_evaluation(columns), None, thresholds, newest_only=False)) == 2
    first = check_alerts(_evaluation(columns), None, thresholds, at="2013-07-02T12:00:00")
    assert [a.value for a in first] == [0.80]


def test_slices_label_metric_alerts_and_skip_coverage(columns):
    frame = _evaluation(columns).assign(origin=["JFK", "JFK"])
    thresholds = {"metrics": {"roc_auc": {"min": 0.9, "on": "estimate"}}, "min_label_coverage": 0.5}
    alerts = check_alerts(frame, None, thresholds, slice_columns=["origin"])
    assert [a.what for a in alerts] == ["roc_auc [origin=JFK]"]  # coverage is the whole window's


def test_label_coverage(columns):
    alerts = check_alerts(_evaluation(columns), None, {"min_label_coverage": 0.5})
    assert [(a.kind, a.value, a.limit) for a in alerts] == [("coverage", 0.4, 0.5)]
    assert "400 of 1000" in alerts[0].message


def test_drift_per_feature_worst_first_with_overrides_and_ignored_features(columns):
    thresholds = {"drift": {"psi": 0.25, "ks": 0.2, "missing": 0.1, "columns": {"carrier": {"psi": None}}},
                  "ignore": ["tailnum"]}
    alerts = check_alerts(None, _drift(columns), thresholds)
    assert [(a.what, a.value) for a in alerts] == [("missing of carrier", 0.2), ("ks of dep_delay", 0.25),
                                                   ("psi of dep_delay", 0.30)]
    assert alerts[0].message == "missing of carrier 0.2 is above 0.1 in window 2013-07-02 00:00:00/2013-07-03 00:00:00"
    rise = check_alerts(None, _drift(columns, reference_missing_share=[0.0, 0.15, 0.0]), thresholds)
    assert "missing of carrier" not in [a.what for a in rise]  # 20% vs 15% in training: a rise of 5%
    assert [a.what for a in check_alerts(None, _drift(columns), {**thresholds, "features": ["carrier"]})] == [
        "missing of carrier"]
    spelled = check_alerts(None, _drift(columns), {"drift": {"jensen_shannon": 0.5, "chi_square": 0.3}})
    assert [(a.what, a.value) for a in spelled] == [("chi_square of carrier", 0.4), ("jensen_shannon of tailnum", 0.6)]


def test_the_predictions_drift_is_watched_beside_the_listed_features(columns):
    frame = _drift(columns)
    frame.loc[len(frame)] = {**frame.iloc[0].to_dict(), "column": "prediction", "role": "prediction", "psi": 0.5}
    alerts = check_alerts(None, frame, {"drift": {"psi": 0.25}, "features": ["carrier"]})
    assert [a.what for a in alerts] == ["psi of carrier", "psi of prediction"]


def test_drift_limits_name_every_drift_windows_statistic():
    assert sorted(DRIFT_LIMITS.values()) == sorted(drift_module.DRIFT_STATISTICS)
    assert list(DRIFT_LIMITS) == ["psi", "jensen_shannon", "ks", "chi_square", "out_of_range", "unseen_categories",
                                  "missing"]


def test_a_frame_without_a_needed_column_is_a_clear_error(columns):
    thresholds = {"metrics": {"roc_auc": {"min": 0.9}}}
    with pytest.raises(ValueError, match=r"no column\(s\) \['n_labelled'\].*evaluate_windows"):
        check_alerts(_evaluation(columns).drop(columns="n_labelled"), None, thresholds)
    with pytest.raises(ValueError, match=r"\['roc_auc_high'\].*evaluate_windows"):
        check_alerts(_evaluation(columns).drop(columns="roc_auc_high"), None, thresholds)
    with pytest.raises(ValueError, match=r"\['rmse', 'rmse_low', 'rmse_high'\]"):  # a metric the task lacks
        check_alerts(_evaluation(columns), None, {"metrics": {"rmse": {"max": 1.0}}})
    with pytest.raises(ValueError, match=r"\['origin'\]"):
        check_alerts(_evaluation(columns), None, {}, slice_columns=["origin"])
    with pytest.raises(ValueError, match=r"\['column'\].*drift_windows"):
        check_alerts(None, _drift(columns).rename(columns={"column": "feature"}), {"drift": {"psi": 0.2}})
    with pytest.raises(ValueError, match=r"\['js'\].*drift_windows"):
        check_alerts(None, _drift(columns).rename(columns={"js": "jensen_shannon"}), {"drift": {"psi": 0.2}})
    with pytest.raises(ValueError, match="unknown drift statistic 'js'; expected one of psi, jensen_shannon"):
        check_alerts(None, _drift(columns), {"drift": {"js": 0.2}})
    with pytest.raises(ValueError, match=r"monitoring.drift.columns.carrier: unknown drift statistic 'missing_share'"):
        check_alerts(None, _drift(columns), {"drift": {"columns": {"carrier": {"missing_share": 0.2}}}})


def test_on_the_monitors_own_evaluation_frame():
    predictions = _log(["2013-07-01 08:00", "2013-07-01 09:00", "2013-07-01 10:00", "2013-07-01 11:00"],
                       [0.9, 0.2, 0.6, 0.4])
    labels = pd.DataFrame({"key": ["k0", "k1", "k2", "k3"], "label": ["0", "1", "0", "1"],
                           "labelled_at": pd.Timestamp("2013-07-03")})
    frame = evaluate_windows(_connect(predictions, labels), task="classification", window="1d", min_labelled=1)
    alerts = check_alerts(frame, None, {"metrics": {"roc_auc": {"min": 0.5, "on": "estimate"}},
                                        "min_label_coverage": 1.0}, min_labelled=1)
    assert [(a.what, a.value) for a in alerts] == [("roc_auc", 0.0)]


def test_on_the_monitors_own_drift_frame(reference):
    rng = np.random.default_rng(1)
    times = pd.Timestamp("2013-07-01") + pd.to_timedelta(rng.uniform(0, 86400, 300), unit="s")
    inputs = [{"dep_delay": float(d), "carrier": "AA", "tailnum": "N1"} for d in rng.normal(40, 10, 300)]
    frame = drift_windows(_connect(_log(times, rng.uniform(0, 1, 300), inputs)), reference, window="1d")
    alerts = check_alerts(None, frame, {"drift": {"psi": 0.25, "out_of_range": 0.2}, "ignore": ["tailnum"]})
    assert {a.what for a in alerts} == {"psi of dep_delay", "out_of_range of dep_delay", "psi of carrier"}
    assert all(a.window == "2013-07-01 00:00:00/2013-07-02 00:00:00" and a.version is None for a in alerts)
    assert alerts == sorted(alerts, key=lambda a: a.value / a.limit, reverse=True)


class _Receiver(BaseHTTPRequestHandler):
    bodies: list = []
    status = 200

    def do_POST(self):  # noqa: N802 - http.server's name
        length = int(self.headers["Content-Length"])
        type(self).bodies.append((self.headers["Content-Type"], json.loads(self.rfile.read(length))))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.bodies, _Receiver.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", _Receiver
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_webhook_posts_the_alerts_as_json(receiver):
    url, handler = receiver
    alert = Alert("metric", "roc_auc", "2013-07-02/2013-07-03", 0.69, 0.7, "roc_auc is low", version="1")
    assert send_webhook(url, [alert], context={"model": "flights"}) is None
    (content_type, body), = handler.bodies
    assert content_type == "application/json" and body["count"] == 1 and body["model"] == "flights"
    assert body["alerts"] == [alert.to_dict()]


def test_webhook_errors_are_reported_not_raised(receiver):
    url, handler = receiver
    handler.status = 500
    assert "HTTP 500" in send_webhook(url, [])
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    port = server.server_address[1]
    server.server_close()  # nothing listens there now
    assert "not delivered" in send_webhook(f"http://127.0.0.1:{port}/", [], timeout=2)
    assert "not delivered" in send_webhook("http://", [], timeout=2)


def test_a_window_with_few_rows_raises_no_drift_alert(columns):
    """PSI is biased upward in small samples (about (bins - 1) / n): 40 rows of an unchanged column often pass 0.25."""
    few = _drift(columns, n_rows=MIN_DRIFT_ROWS - 1)
    assert check_alerts(None, few, {"drift": {"psi": 0.25}}) == []
    assert len(check_alerts(None, few, {"drift": {"psi": 0.25}}, min_drift_rows=10)) == 3


def test_a_webhook_error_shows_its_host_not_its_secret_path():
    alert = Alert(kind="metric", what="roc_auc", window="w", value=0.5, limit=0.7, message="m")
    error = send_webhook("http://user:pw@127.0.0.1:9/services/T000/B000/SECRET", [alert], timeout=2)
    assert error is not None and "127.0.0.1:9" in error and "SECRET" not in error and "pw" not in error
