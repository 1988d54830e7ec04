"""Reliability of ``mlpatterns serve`` (Stateless Serving Function, 16) as a real process on 127.0.0.1.

* Load: 16 keep-alive clients in a closed loop (the concurrency of ``benchmarks/bench_serving.py``)
  for 5 s (60 s under ``-m slow``), TF Serving rows and Open Inference v2 tensors in turn, 1 to 8
  rows a request with repeated keys: no error, every answer checked by its keys against the
  in-process :class:`ServingFunction`, and the server's resident memory after a warm-up and at
  the end within :data:`RSS_GROWTH_BOUND_MB`.
* SIGTERM under load: 8 clients keep asking while the server is told to stop. The server
  drains first (:mod:`mlpatterns.serving.http.graceful_drain`, ``--drain``, 1 s by default):
  not ready, ``Connection: close`` on each answer, still serving; then uvicorn's shutdown stops
  accepting connections, answers every request it has begun to read and closes the others. So
  each request must end in one of two ways: a complete, correct 200, or no byte of answer at
  all (refused, or closed before a status line, which only a request written after the signal
  may meet); every request written whole before the signal is answered; the server's access log
  must count exactly the 200s the clients got (none answered and lost on the way), and the
  process must end within :data:`EXIT_BOUND_S`. Without the drain, uvicorn closed keep-alive
  connections whose request was written but not yet read (docs/patterns/serving_reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import time
from collections import Counter

import numpy as np
import pytest

from mlpatterns.serving import ServingFunction
from mlpatterns.serving.serving_contract import json_value
from mlpatterns.testing.load_generator import rss_bytes, run_load, run_load_sync, serve_process

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
CONCURRENCY = 16  # benchmarks/bench_serving.py measures requests/s at concurrency 16
WARM_UP_S = 3.0
RSS_GROWTH_BOUND_MB = 10  # measured +0.1 to +1.1 MB in 5 s and 60 s (up to 7,311 requests); the doc page
EXIT_BOUND_S = 10.0
BODIES = 64

pytestmark = pytest.mark.skipif(os.name != "posix" or not os.path.exists("/proc/self/status"),
                                reason="SIGTERM, and resident memory from /proc")


class SalesRequests:
    """Request bodies over both protocols for the Carseats ``sales`` bundle, and the check of each answer."""

    def __init__(self, frame, bundle, base: str, count: int = BODIES, seed: int = 0,
                 rows: tuple[int, int] = (1, 8)) -> None:
        predicted = ServingFunction.load(bundle).predict(frame)
        self.reference = dict(zip(predicted["row_id"].tolist(), predicted["prediction"].tolist(), strict=True))
        records = [{c: json_value(v) for c, v in row.items()} for row in frame[["row_id", *INPUTS]].to_dict("records")]
        rng = random.Random(seed)
        self.rows = [rng.choices(records, k=rng.randint(*rows)) for _ in range(count)]  # keys may repeat
        self.urls = [f"{base}/v1/models/sales:predict", f"{base}/v2/models/sales/infer"]
        self.bodies = [self._tf(rows) if i % 2 == 0 else self._v2(rows) for i, rows in enumerate(self.rows)]

    @staticmethod
    def _tf(rows) -> bytes:
        return json.dumps({"instances": rows}).encode()

    @staticmethod
    def _v2(rows) -> bytes:
        types = {"Price": "INT64", "Income": "INT64", "Advertising": "INT64", "ShelveLoc": "BYTES", "Urban": "BYTES",
                 "row_id": "INT64"}
        return json.dumps({"inputs": [{"name": c, "datatype": t, "shape": [len(rows)], "data": [r[c] for r in rows]}
                                      for c, t in types.items()]}).encode()

    def url(self, index: int) -> str:
        return self.urls[index % len(self.bodies) % 2]

    def body(self, index: int) -> bytes:
        return self.bodies[index % len(self.bodies)]

    def check(self, index: int, status: int, content: bytes) -> str | None:
        """None if the answer is a 200 with one prediction per row sent, each equal to its key's."""
        if status != 200:
            return f"status {status}: {content[:200]!r}"
        answer = json.loads(content)
        if index % len(self.bodies) % 2 == 0:
            pairs = [(p["row_id"], p["prediction"]) for p in answer["predictions"]]
        else:
            outputs = {o["name"]: o["data"] for o in answer["outputs"]}
            pairs = list(zip(outputs["row_id"], outputs["prediction"], strict=True))
        sent = self.rows[index % len(self.bodies)]
        if Counter(k for k, _ in pairs) != Counter(r["row_id"] for r in sent):
            return f"keys {[k for k, _ in pairs]} for rows {[r['row_id'] for r in sent]}"
        got = np.array([v for _, v in pairs], dtype=np.float64)
        expected = np.array([self.reference[k] for k, _ in pairs], dtype=np.float64)
        if not np.allclose(got, expected, rtol=1e-6, atol=1e-7):  # float32 inside, as tests/serving/test_keyed_everywhere.py
            return f"predictions {got.tolist()} != {expected.tolist()}"
        return None


def _environment() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _load(carseats_sales, seconds: float) -> None:
    frame, bundles = carseats_sales
    arguments = [f"sales={bundles['sales']}", "--reload-interval", "0", "--log-level", "warning"]
    with serve_process(arguments, env=_environment()) as (process, base):
        requests = SalesRequests(frame, bundles["sales"], base)
        run = dict(concurrency=CONCURRENCY, check=requests.check)
        warm = run_load_sync(requests.url, requests.body, seconds=WARM_UP_S, **run)
        assert warm.errors == [], warm.errors[:5]
        before = rss_bytes(process.pid)
        report = run_load_sync(requests.url, requests.body, seconds=seconds, **run)
        after = rss_bytes(process.pid)
    growth = (after - before) / 2**20
    print(f"\nload {seconds:.0f} s at concurrency {CONCURRENCY}: {report.summary()}; "
          f"server RSS {before / 2**20:.1f} MB after {WARM_UP_S:.0f} s of warm-up, {after / 2**20:.1f} MB at the end "
          f"({growth:+.1f} MB)")
    assert report.errors == [], [(c.failed_at, c.error) for c in report.errors[:5]]
    assert len(report.ok) >= seconds, "fewer than one answer a second"
    assert growth <= RSS_GROWTH_BOUND_MB


def test_load_5_seconds(carseats_sales):
    _load(carseats_sales, 5.0)


@pytest.mark.slow
def test_load_60_seconds(carseats_sales):
    _load(carseats_sales, 60.0)


PREDICT_LINE = re.compile(r"POST /v(1/models/sales:predict|2/models/sales/infer) (\d+) model=")  # the app's access log


def _sigterm_under_load(frame, bundle, log_path, *, concurrency: int = 8, load_s: float = 2.0,
                        rows: tuple[int, int] = (1, 8)) -> int:
    """One server, ``concurrency`` clients, SIGTERM after ``load_s``; checks it all; returns the requests lost.

    Lost: written whole to the socket before the signal, then closed without a byte of answer.
    """
    arguments = [f"sales={bundle}", "--reload-interval", "0", "--log-level", "info"]
    with open(log_path, "w") as log, serve_process(arguments, env=_environment(), stdout=log) as (process, base):
        requests = SalesRequests(frame, bundle, base, count=16 if rows[0] > 100 else BODIES, rows=rows)

        async def load_and_stop():
            stop = asyncio.Event()
            load = asyncio.create_task(run_load(requests.url, requests.body, concurrency=concurrency, stop=stop,
                                                timeout=20, check=requests.check))
            await asyncio.sleep(load_s)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            while process.poll() is None and time.monotonic() - signalled < EXIT_BOUND_S + 5:
                await asyncio.sleep(0.02)
            ended = time.monotonic()
            await asyncio.sleep(0.3)  # the clients now meet a closed port
            stop.set()
            return await load, signalled, ended

        report, signalled, ended = asyncio.run(load_and_stop())
    assert ended - signalled <= EXIT_BOUND_S, "the server did not end after SIGTERM"
    assert process.returncode == 0  # a graceful stop exits 0 (test_http_exit_status.py)
    served = Counter(m.group(2) for m in PREDICT_LINE.finditer(log_path.read_text()))
    in_flight = [c for c in report.calls if c.sent < signalled < c.done]
    closed = [c for c in report.errors if c.failed_at == "answer"]
    lost = [c for c in closed if c.written is not None and c.written < signalled]
    print(f"\nSIGTERM under load: {len(report.ok)} answered ({sum(c.done > signalled for c in report.ok)} after the "
          f"signal), {len(in_flight)} in flight at the signal, {len(closed)} closed unanswered ({len(lost)} of them "
          f"written whole before the signal), {sum(c.failed_at == 'connect' for c in report.calls)} refused "
          f"afterwards; ended {ended - signalled:.2f} s after the signal, exit status {process.returncode}")
    assert len(report.ok) > 0 and in_flight, "the load did not span the signal"
    assert all(c.written is not None for c in report.ok), "the trace of the request's writing is missing"
    partial = [c for c in report.errors if c.answered or c.failed_at in ("body", "check")]
    assert partial == [], [(c.status, c.failed_at, c.error) for c in partial[:5]]  # no 5xx, no cut or wrong answer
    assert {c.failed_at for c in report.errors} <= {"connect", "answer"}
    assert served == {"200": len(report.ok)}  # every answer the server gave arrived whole
    return len(lost)


def test_sigterm_under_load_answers_or_refuses_every_request(carseats_sales, tmp_path):
    frame, bundles = carseats_sales
    assert _sigterm_under_load(frame, bundles["sales"], tmp_path / "server.log") == 0


@pytest.mark.slow
def test_sigterm_under_load_repeated(carseats_sales, tmp_path):
    """20 shutdowns at concurrency 16, each after a slightly different time: no request written before one is lost."""
    frame, bundles = carseats_sales
    lost = [_sigterm_under_load(frame, bundles["sales"], tmp_path / f"server{i}.log", concurrency=16,
                                load_s=1.0 + 0.013 * i) for i in range(20)]
    print(f"\n20 shutdowns under load: {sum(lost)} requests written before the signal closed unanswered, "
          f"in {sum(n > 0 for n in lost)} of the 20 runs")
    assert sum(lost) == 0


RUNS_WRITTEN_BEFORE = int(os.environ.get("MLPATTERNS_SIGTERM_RUNS", 30))


class AnswerLost(Exception):
    """A request written whole to its connection before SIGTERM was closed without an answer."""


@pytest.mark.slow
def test_sigterm_under_load_answers_every_request_written_before_it(carseats_sales, tmp_path):
    """Up to 30 shutdowns at concurrency 16 with 2,000-row requests, until a request written before the signal is lost.

    Whether a run loses one depends on where the signal falls in uvicorn's event loop (a
    shutdown starts on a 0.1 s tick), so one run is not enough. Without the drain, measured on
    the shared 2-core VM, 5 runs in 6 lost some (39 requests, written up to 0.88 s before the
    signal); with it, none in 6 (docs/patterns/serving_reliability.md).
    """
    frame, bundles = carseats_sales
    for i in range(RUNS_WRITTEN_BEFORE):
        lost = _sigterm_under_load(frame, bundles["sales"], tmp_path / f"server{i}.log", concurrency=16,
                                   load_s=1.0 + 0.013 * i, rows=(2000, 2000))
        if lost:
            raise AnswerLost(f"run {i + 1}: {lost} requests written whole before SIGTERM got no answer")
