"""Alerts on metrics, drift and label coverage, and the webhook that carries them (Continued Model Evaluation, 18)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import duckdb
import pandas as pd
import pytest

from mlpatterns.serving.continued_evaluation.alerts import Alert, check_alerts, send_webhook
from mlpatterns.serving.continued_evaluation.evaluation_windows import evaluate_windows

DAY1, DAY2, DAY3 = (pd.Timestamp(f"2013-07-0{d}") for d in (1, 2, 3))


def _evaluation(**overrides):
    rows = [  # two complete windows of version 1; the second one decayed
        {"window_start": DAY1, "window_end": DAY2, "model": "flights", "version": "1", "n_predictions": 1000,
         "n_labelled": 900, "label_coverage": 0.9, "too_small": False, "roc_auc": 0.80, "roc_auc_low": 0.77,
         "roc_auc_high": 0.83, "log_loss": 0.40, "log_loss_low": 0.38, "log_loss_high": 0.42},
        {"window_start": DAY2, "window_end": DAY3, "model": "flights", "version": "1", "n_predictions": 1000,
         "n_labelled": 400, "label_coverage": 0.4, "too_small": False, "roc_auc": 0.66, "roc_auc_low": 0.62,
         "roc_auc_high": 0.69, "log_loss": 0.55, "log_loss_low": 0.49, "log_loss_high": 0.61}]
    frame = pd.DataFrame(rows)
    for column, value in overrides.items():
        frame[column] = value
    return frame


def test_metric_on_the_bound_and_on_the_estimate():
    thresholds = {"metrics": {"roc_auc": {"min": 0.70, "on": "bound"}, "log_loss": {"max": 0.5, "on": "bound"}}}
    alerts = check_alerts(_evaluation(), None, thresholds, min_labelled=100)
    assert [(a.kind, a.what, a.window, a.value, a.limit) for a in alerts] == [
        ("metric", "roc_auc", "2013-07-02 00:00:00/2013-07-03 00:00:00", 0.69, 0.70)]  # log_loss low 0.49 < 0.5
    assert "upper bound 0.69" in alerts[0].message and "version 1" in alerts[0].message
    on_estimate = check_alerts(_evaluation(), None, {"metrics": {"log_loss": {"max": 0.5, "on": "estimate"}}},
                        min_labelled=100)
    assert [(a.what, a.value) for a in on_estimate] == [("log_loss", 0.55)]


def test_a_small_window_raises_no_metric_alert():
    thresholds = {"metrics": {"roc_auc": {"min": 0.9, "on": "estimate"}}}
    assert check_alerts(_evaluation(), None, thresholds, min_labelled=500) == []
    assert check_alerts(_evaluation(too_small=True), None, thresholds, min_labelled=1) == []


def test_every_window_or_the_newest_that_ended_by_a_time():
    thresholds = {"metrics": {"roc_auc": {"min": 0.9, "on": "estimate"}}}
    assert len(check_alerts(_evaluation(), None, thresholds, newest_only=False)) == 2
    first = check_alerts(_evaluation(), None, thresholds, at="2013-07-02T12:00:00")
    assert [a.value for a in first] == [0.80]


def test_label_coverage():
    alerts = check_alerts(_evaluation(), None, {"min_label_coverage": 0.5})
    assert [(a.kind, a.value, a.limit) for a in alerts] == [("coverage", 0.4, 0.5)]
    assert "400 of 1000" in alerts[0].message


def test_drift_per_feature_worst_first_with_overrides_and_ignored_features():
    wide = pd.DataFrame({"window_start": [DAY2] * 3, "window_end": [DAY3] * 3,
                         "feature": ["dep_delay", "carrier", "tailnum"], "psi": [0.30, 0.9, 5.0],
                         "ks": [0.25, None, None], "missing_share": [0.0, 0.2, 0.0]})
    thresholds = {"drift": {"psi": 0.25, "ks": 0.2, "missing": 0.1, "columns": {"carrier": {"psi": None}}},
                  "ignore": ["tailnum"]}
    alerts = check_alerts(None, wide, thresholds)
    assert [(a.what, a.value) for a in alerts] == [("missing of carrier", 0.2), ("ks of dep_delay", 0.25),
                                                   ("psi of dep_delay", 0.30)]
    rise = check_alerts(None, wide.assign(reference_missing_share=[0.0, 0.15, 0.0]), thresholds)
    assert ("missing of carrier", pytest.approx(0.05)) not in [(a.what, a.value) for a in rise]  # 20% vs 15%: +5%
    long = wide.melt(id_vars=["window_start", "window_end", "feature"], var_name="statistic").dropna()
    assert [(a.what, a.value) for a in check_alerts(None, long, thresholds)] == [(a.what, a.value) for a in alerts]
    assert [a.what for a in check_alerts(None, wide, {**thresholds, "features": ["carrier"]})] == ["missing of carrier"]


def test_on_the_monitors_own_evaluation_frame():
    predictions = pd.DataFrame({
        "event_time": pd.to_datetime(["2013-07-01 08:00", "2013-07-01 09:00", "2013-07-01 10:00",
                                      "2013-07-01 11:00"]),
        "model": "m", "version": "1", "key": list("abcd"), "inputs": "{}", "prediction": [0.9, 0.2, 0.6, 0.4],
        "predicted_label": ["1", "0", "1", "0"], "sample_rate": 1.0})
    labels = pd.DataFrame({"key": list("abcd"), "label": ["0", "1", "0", "1"],
                           "labelled_at": pd.Timestamp("2013-07-03")})
    con = duckdb.connect()
    con.register("predictions", predictions)
    con.register("labels", labels)
    frame = evaluate_windows(con, task="classification", window="1d", min_labelled=1)
    alerts = check_alerts(frame, None, {"metrics": {"roc_auc": {"min": 0.5, "on": "estimate"}}}, min_labelled=1)
    assert [(a.what, a.value) for a in alerts] == [("roc_auc", 0.0)]


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
