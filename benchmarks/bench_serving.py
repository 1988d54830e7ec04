"""Stateless Serving Function (16): the online path (``OnlinePredictor``) against the batch path
(``ServingFunction``), on the flights bundles of ``make demo``.

Rows (each a ratio of the online path to its baseline, measured side by side in this run):

* ``in-process, 1 row``: p50 and p99 of one row, ``OnlinePredictor.predict_rows([row])`` against
  ``ServingFunction.predict(frame)`` of the same row (the frame built as the HTTP server builds
  it, one object column per field, inside the timing), ``MLPATTERNS_BENCH_CALLS`` calls each
  (default 2,000), interleaved;
* ``in-process, 10 / 100 / 1,000 rows``: the same for one request of that many rows (where
  the batch path's vectorized pandas catches up);
* ``cold start``: a fresh Python process from start to its first prediction (import, read and
  verify the bundle, load the model, predict one row), median of 5;
* ``http``: three uvicorn servers on 127.0.0.1 (one worker each, each its own process) serving a
  bare FastAPI echo endpoint (the baseline), an endpoint calling ``OnlinePredictor`` and one
  calling ``ServingFunction``; keep-alive httpx clients send one row per request: p50/p99 at
  concurrency 1, the three servers asked in turn, and requests per second at concurrency 16
  (median of 3 rounds, the servers in turn); client and servers share the CPUs.

The bundles are ``runs/flights/bundles/{gradient_boosting,wide_and_deep}``; without them the
benchmark runs ``mlpatterns run examples/flights.yaml`` first (several minutes).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "runs" / "flights"
CALLS = int(os.environ.get("MLPATTERNS_BENCH_CALLS", 2000))
HTTP_SECONDS = float(os.environ.get("MLPATTERNS_BENCH_HTTP_SECONDS", 5))


def _log(message: str) -> None:
    print(f"  [serving] {message}", file=sys.stderr, flush=True)


def _bundle(name: str) -> Path:
    path = RUN / "bundles" / name
    if not (path / "manifest.json").exists():
        _log("building the flights bundles: mlpatterns run examples/flights.yaml")
        subprocess.run([str(Path(sys.executable).parent / "mlpatterns"), "run", str(ROOT / "examples" / "flights.yaml")],
                       cwd=ROOT, check=True)
    return path


def _rows(count: int) -> list[dict[str, Any]]:
    """Test rows of the flights run as JSON values (dates as ISO text)."""
    import pandas as pd

    from mlpatterns.serving.stateless_serving_function import ServingFunction

    serving = ServingFunction.load(_bundle("gradient_boosting"))
    fields = [*serving.input_columns, *serving.key_columns]
    frame = pd.read_parquet(RUN / "test.parquet", columns=list(dict.fromkeys(fields))).head(count)
    rows = json.loads(frame.to_json(orient="records", date_format="iso"))
    for row in rows:
        row["date"] = row["date"][:10]
    return rows


def _frame(fields: list[str], rows: list[dict[str, Any]]) -> Any:
    import pandas as pd

    return pd.DataFrame({f: pd.Series([row[f] for row in rows], dtype=object) for f in fields})


def _percentiles(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))]


def _in_process(name: str, rows: list[dict[str, Any]]) -> list[dict]:
    from mlpatterns.serving.online import OnlinePredictor
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    path = _bundle(name)
    serving, online = ServingFunction.load(path), OnlinePredictor.load(path)
    fields = list(dict.fromkeys([*serving.input_columns, *serving.key_columns]))
    out = []
    sizes = [("1 row", 1, CALLS), ("10 rows", 10, max(10, CALLS // 10)), ("100 rows", 100, max(10, CALLS // 40)),
             ("1,000 rows", 1000, max(10, CALLS // 100))]
    for label, batch, calls in sizes:
        batch_times, online_times = [], []
        gc.collect()
        for i in range(calls):
            start = i * batch % (len(rows) - batch + 1)
            chosen = rows[start: start + batch]
            started = time.perf_counter()
            serving.predict(_frame(fields, chosen))
            middle = time.perf_counter()
            online.predict_rows(chosen)
            batch_times.append(middle - started)
            online_times.append(time.perf_counter() - middle)
        (b50, b99), (o50, o99) = _percentiles(batch_times), _percentiles(online_times)
        out.append({"case": f"in-process, {label}", "model": name, "online_p50_ms": o50 * 1e3,
                    "online_p99_ms": o99 * 1e3, "baseline": "ServingFunction.predict",
                    "baseline_p50_ms": b50 * 1e3, "baseline_p99_ms": b99 * 1e3,
                    "p50_vs_baseline": o50 / b50, "p99_vs_baseline": o99 / b99})
        _log(f"{name}, {label}: online p50 {o50 * 1e3:.3f} ms, batch p50 {b50 * 1e3:.3f} ms")
    return out


_COLD = """
import json, sys, time
row = json.loads(sys.argv[2])
if sys.argv[1] == "online":
    from mlpatterns.serving.online import OnlinePredictor
    OnlinePredictor.load(sys.argv[3]).predict_rows([row])
else:
    import pandas as pd
    from mlpatterns.serving.stateless_serving_function import ServingFunction
    serving = ServingFunction.load(sys.argv[3])
    fields = list(dict.fromkeys([*serving.input_columns, *serving.key_columns]))
    serving.predict(pd.DataFrame({f: pd.Series([row[f]], dtype=object) for f in fields}))
print(json.dumps(sorted(m for m in ("pandas", "sklearn") if m in sys.modules)))
"""


def _cold_start(row: dict[str, Any]) -> dict:
    path = str(_bundle("gradient_boosting"))
    times: dict[str, list[float]] = {"online": [], "batch": []}
    for _ in range(5):
        for kind in times:
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", _COLD, kind, json.dumps(row), path], check=True,
                                  capture_output=True, text=True)
            times[kind].append(time.perf_counter() - started)
            if kind == "online" and json.loads(done.stdout):
                raise AssertionError(f"the online path imported {done.stdout.strip()}")
    online, batch = statistics.median(times["online"]), statistics.median(times["batch"])
    _log(f"cold start: online {online:.2f} s, batch {batch:.2f} s")
    return {"case": "cold start (process to first prediction)", "model": "gradient_boosting",
            "online_p50_ms": online * 1e3, "baseline": "ServingFunction", "baseline_p50_ms": batch * 1e3,
            "p50_vs_baseline": online / batch}


_SERVER = """
import sys
import uvicorn
from fastapi import FastAPI, Request

mode, path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
app = FastAPI()
if mode == "online":
    from mlpatterns.serving.online import OnlinePredictor
    predictor = OnlinePredictor.load(path)

    def answer(rows):
        outputs, problems = predictor.predict_rows(rows)
        return {"predictions": outputs, "problems": [p.__dict__ for p in problems]}
elif mode == "batch":
    import pandas as pd
    from mlpatterns.serving.stateless_serving_function import ServingFunction
    serving = ServingFunction.load(path)
    fields = list(dict.fromkeys([*serving.input_columns, *serving.key_columns]))

    def answer(rows):
        frame = pd.DataFrame({f: pd.Series([row[f] for row in rows], dtype=object) for f in fields})
        result, problems = serving.predict_good_rows(frame)
        return {"predictions": result.to_dict("records"), "problems": [p.__dict__ for p in problems]}
else:
    def answer(rows):
        return {"predictions": rows, "problems": []}

@app.post("/predict")
async def predict(request: Request):
    return answer((await request.json())["instances"])

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _latencies(urls: dict[str, str], body: bytes, seconds: float) -> dict[str, list[float]]:
    """Concurrency 1: one keep-alive connection per server, requests to the servers in turn."""
    import httpx

    times: dict[str, list[float]] = {mode: [] for mode in urls}
    headers = {"content-type": "application/json"}
    clients = {mode: httpx.AsyncClient(timeout=30) for mode in urls}
    try:
        for mode, url in urls.items():  # warm up
            for _ in range(20):
                (await clients[mode].post(url, content=body, headers=headers)).raise_for_status()
        deadline = time.perf_counter() + seconds * len(urls)
        while time.perf_counter() < deadline:
            for mode, url in urls.items():
                started = time.perf_counter()
                (await clients[mode].post(url, content=body, headers=headers)).raise_for_status()
                times[mode].append(time.perf_counter() - started)
    finally:
        for client in clients.values():
            await client.aclose()
    return times


async def _throughput(url: str, body: bytes, concurrency: int, seconds: float) -> float:
    """Requests per second with ``concurrency`` requests in flight on keep-alive connections."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    count = 0
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(client.post(url, content=body, headers=headers) for _ in range(concurrency)))
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                (await client.post(url, content=body, headers=headers)).raise_for_status()
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def _http(row: dict[str, Any]) -> list[dict]:
    """The three servers run at once and are measured in turn, so that the machine's load
    (other processes) weighs on all three alike."""
    import httpx

    path = str(_bundle("gradient_boosting"))
    body = json.dumps({"instances": [row]}).encode()
    modes = ("echo", "online", "batch")
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "server.py"
        script.write_text(_SERVER)
        ports = {mode: _free_port() for mode in modes}
        servers = [subprocess.Popen([sys.executable, str(script), mode, path, str(ports[mode])],
                                    env={**os.environ, "OMP_NUM_THREADS": "1"}) for mode in modes]
        try:
            urls = {mode: f"http://127.0.0.1:{ports[mode]}/predict" for mode in modes}
            for url in urls.values():
                for _ in range(600):
                    try:
                        httpx.post(url, content=body, timeout=1).raise_for_status()
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
            latencies = asyncio.run(_latencies(urls, body, HTTP_SECONDS))
            rounds: dict[str, list[float]] = {mode: [] for mode in modes}
            for _ in range(3):
                for mode in modes:
                    rounds[mode].append(asyncio.run(_throughput(urls[mode], body, 16, HTTP_SECONDS / 3)))
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)
    results = {}
    for mode in modes:
        p50, p99 = _percentiles(latencies[mode])
        results[mode] = {"p50": p50, "p99": p99, "rps": statistics.median(rounds[mode])}
        _log(f"http {mode}: p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, "
             f"{results[mode]['rps']:.0f} requests/s at 16")
    echo = results["echo"]
    rows = []
    for mode, label in (("online", "OnlinePredictor"), ("batch", "ServingFunction")):
        found = results[mode]
        rows.append({"case": f"http, {label} vs FastAPI echo", "model": "gradient_boosting",
                     "online_p50_ms": found["p50"] * 1e3, "online_p99_ms": found["p99"] * 1e3,
                     "baseline": "echo endpoint", "baseline_p50_ms": echo["p50"] * 1e3,
                     "baseline_p99_ms": echo["p99"] * 1e3, "p50_vs_baseline": found["p50"] / echo["p50"],
                     "p99_vs_baseline": found["p99"] / echo["p99"],
                     "p99_delta_ms": (found["p99"] - echo["p99"]) * 1e3,
                     "rps_16": found["rps"], "baseline_rps_16": echo["rps"],
                     "rps_vs_baseline": found["rps"] / echo["rps"]})
    return rows


def run() -> list[dict]:
    rows = _rows(1000)
    out: list[dict] = []
    for name in ("gradient_boosting", "wide_and_deep"):
        out += _in_process(name, rows)
    out.append(_cold_start(rows[0]))
    out += _http(rows[0])
    return out
