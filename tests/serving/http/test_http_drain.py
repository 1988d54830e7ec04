"""The drain before ``mlpatterns serve`` shuts down (Stateless Serving Function, 16).

On SIGTERM the server stops being ready, answers with ``Connection: close`` and keeps
serving for ``--drain`` seconds before uvicorn's graceful shutdown; a second signal ends
the grace at once. Under load, no request written before the signal is lost
(tests/serving/http/test_http_reliability.py).
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from mlpatterns.cli import serve as serve_command
from mlpatterns.serving.http import app as app_module
from mlpatterns.serving.http import create_app
from mlpatterns.serving.http.graceful_drain import DEFAULT_DRAIN_SECONDS, Drain
from mlpatterns.testing.load_generator import serve_process


def _environment() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


@pytest.mark.parametrize("seconds", [-1, float("inf"), float("nan"), True, "1"])
def test_a_wrong_drain_is_refused_naming_the_field(seconds):
    with pytest.raises(ValueError, match="drain: expected seconds >= 0"):
        Drain(seconds)


def test_a_wrong_drain_is_refused_before_any_bundle_loads():
    with pytest.raises(ValueError, match="drain"):
        create_app({"sales": "/no/such/bundle"}, drain=-1)


def test_the_cli_defaults_are_the_servers():
    assert serve_command.DEFAULT_DRAIN_SECONDS == DEFAULT_DRAIN_SECONDS
    assert serve_command.DEFAULT_RELOAD_INTERVAL == app_module.DEFAULT_RELOAD_INTERVAL


def test_while_draining_the_app_is_not_ready_and_closes_each_connection(carseats_sales):
    frame, bundles = carseats_sales
    app = create_app(bundles, access_log=False)
    row = {c: (None if v != v else v) for c, v in frame.drop(columns=["Sales"]).iloc[0].to_dict().items()}
    fields = {"sales": app.state.models.find("sales").fields}
    body = {"instances": [{f: row[f] for f in fields["sales"]}]}
    with TestClient(app) as client:
        before = client.post("/v1/models/sales:predict", json=body)
        assert before.status_code == 200 and before.headers.get("connection") != "close"
        assert client.get("/v2/health/ready").status_code == 200
        app.state.drain.draining = True
        app.state.drain.on_start()  # what the first SIGTERM does, in the server's event loop
        during = client.post("/v1/models/sales:predict", json=body)
        assert during.status_code == 200 and during.json() == before.json()  # still serving
        assert during.headers["connection"] == "close"
        ready = client.get("/v2/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"ready": False})
        assert client.get("/v2/health/live").status_code == 200
    with TestClient(app) as client:  # a new lifespan serves again
        assert client.get("/v2/health/ready").status_code == 200
        assert client.post("/v1/models/sales:predict", json=body).headers.get("connection") != "close"


def _stop(arguments, bundle, signals: int) -> tuple[float, int, int, bool]:
    """Seconds from the first SIGTERM to the end, the readiness and predict statuses during the grace,
    and whether the predict answer asked to close its connection."""
    arguments = [f"sales={bundle}", "--reload-interval", "0", "--log-level", "warning", *arguments]
    with serve_process(arguments, env=_environment()) as (process, base), \
            httpx.Client(base_url=base, timeout=10) as client:
        metadata = client.get("/v1/models/sales/metadata").json()
        inputs = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
        process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        for _ in range(signals - 1):
            time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
        ready = predicted = 0
        closing = False
        if signals == 1:
            deadline = time.monotonic() + 1.5  # within the grace of 2 s: the signal reaches the loop
            while (ready := client.get("/v2/health/ready").status_code) == 200 and time.monotonic() < deadline:
                time.sleep(0.02)
            answer = client.post("/v1/models/sales:predict", json={"inputs": {
                **{i["name"]: [] for i in inputs["inputs"]}, **{k: [] for k in inputs["keys"]}}})
            predicted, closing = answer.status_code, answer.headers.get("connection") == "close"
        process.wait(timeout=30)
        return time.monotonic() - sent, ready, predicted, closing


def test_sigterm_drains_then_stops(carseats_sales):
    _, bundles = carseats_sales
    took, ready, predicted, closing = _stop(["--drain", "2"], bundles["sales"], signals=1)
    assert (ready, predicted, closing) == (503, 200, True)
    assert 2.0 <= took < 12.0


def test_a_second_signal_ends_the_grace(carseats_sales):
    _, bundles = carseats_sales
    took, *_ = _stop(["--drain", "30"], bundles["sales"], signals=2)
    assert took < 10.0  # not the 30 s of the grace
