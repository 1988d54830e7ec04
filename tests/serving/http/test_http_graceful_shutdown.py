"""Graceful shutdown of the HTTP Stateless Serving Function (16): uvicorn, on SIGTERM, stops
accepting and finishes the request in flight before the process exits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from mlpatterns.testing.load_generator import free_port, wait_ready

SERVER = """
import sys, time, uvicorn
from mlpatterns.serving import ServingFunction
from mlpatterns.serving.http import create_app
serving = ServingFunction.load(sys.argv[1])
fast = serving.predict_conformed
def slow(raw, conformed):
    time.sleep(1.5)
    return fast(raw, conformed)
serving.predict_conformed = slow
uvicorn.run(create_app({"sales": serving}), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM is POSIX")
def test_sigterm_finishes_the_request_in_flight(carseats):
    frame, bundles = carseats
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-c", SERVER, str(bundles["sales"]), str(port)])
    try:
        wait_ready(f"{base}/v2/health/ready", process, timeout=15, interval=0.1, name="the slowed server")
        rows = frame[["row_id", "Price", "Income", "Advertising", "ShelveLoc", "Urban"]].head(3)
        body = json.dumps({"instances": json.loads(rows.to_json(orient="records"))}).encode()
        result: dict = {}

        def call() -> None:
            request = urllib.request.Request(f"{base}/v1/models/sales:predict", data=body,
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    result["status"], result["body"] = answer.status, json.loads(answer.read())
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                result["error"] = error

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)  # the request is now sleeping inside the model
        process.send_signal(signal.SIGTERM)
        caller.join(timeout=10)
        assert result.get("status") == 200, result
        assert [p["row_id"] for p in result["body"]["predictions"]] == rows["row_id"].tolist()
        assert process.wait(timeout=10) in (0, -signal.SIGTERM)  # recent uvicorn re-raises the signal once done
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
