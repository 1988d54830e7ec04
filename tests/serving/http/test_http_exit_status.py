"""The exit status of ``mlpatterns serve`` stopped by SIGTERM (Stateless Serving Function, 16).

A graceful stop is no failure: after SIGTERM, the drain and uvicorn's graceful shutdown, the
real CLI exits 0 with one worker as with ``--workers 2`` (uvicorn alone re-raises the signal
with one worker, status -15, and returns 0 from its worker supervisor), and no request in
flight at the signal is lost: each ends as a complete 200 or with no byte of answer, and none
written whole before the signal goes unanswered. A second SIGTERM (an impatient operator)
ends the drain at once with one worker, still with status 0; with several, the supervisor
waits for its workers (each drains once) and also exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import pytest

from mlpatterns.cli import serve as serve_command
from mlpatterns.serving.http import workers
from mlpatterns.serving.serving_contract import json_value
from mlpatterns.testing.load_generator import run_load, serve_process

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
EXIT_BOUND_S = 15.0  # the drain (1 s), the graceful shutdown, and up to 0.5 s before uvicorn's supervisor passes SIGTERM on

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGTERM")


def _environment() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _requests(frame) -> tuple[list[bytes], list[list[int]]]:
    """TF Serving bodies of 1 to 4 Carseats rows each, and the keys each one sends."""
    records = [{c: json_value(v) for c, v in row.items()} for row in frame[["row_id", *INPUTS]].to_dict("records")]
    rows = [records[i:i + 1 + i % 4] for i in range(0, 160, 5)]
    return [json.dumps({"instances": r}).encode() for r in rows], [[x["row_id"] for x in r] for r in rows]


def _stop_under_load(frame, bundle, *, workers_n: int, signals: int = 1, drain: float = 1.0):
    """``mlpatterns serve --workers N`` under 8 clients, ``signals`` SIGTERMs 0.3 s apart after 1.5 s;
    returns (exit status, seconds from the first signal to the end, the load report, the first signal's time)."""
    bodies, keys = _requests(frame)

    def check(index: int, status: int, content: bytes) -> str | None:
        if status != 200:
            return f"status {status}: {content[:200]!r}"
        got = [p["row_id"] for p in json.loads(content)["predictions"]]
        expected = keys[index % len(bodies)]
        return None if got == expected else f"keys {got} for {expected}"

    arguments = [f"sales={bundle}", "--workers", str(workers_n), "--drain", str(drain), "--reload-interval", "0",
                 "--log-level", "warning"]
    with serve_process(arguments, env=_environment()) as (process, base):
        async def load_and_stop():
            stop = asyncio.Event()
            load = asyncio.create_task(run_load(f"{base}/v1/models/sales:predict", lambda i: bodies[i % len(bodies)],
                                                concurrency=8, stop=stop, timeout=20, check=check))
            await asyncio.sleep(1.5)
            signalled = time.monotonic()
            for n in range(signals):
                if n:
                    await asyncio.sleep(0.3)
                process.send_signal(signal.SIGTERM)
            while process.poll() is None and time.monotonic() - signalled < EXIT_BOUND_S + 5:
                await asyncio.sleep(0.02)
            ended = time.monotonic()
            await asyncio.sleep(0.3)  # the clients now meet a closed port
            stop.set()
            return await load, signalled, ended

        report, signalled, ended = asyncio.run(load_and_stop())
        status = process.poll()
    return status, ended - signalled, report, signalled


def _check_nothing_lost(report, signalled: float) -> None:
    assert report.ok and [c for c in report.calls if c.sent < signalled < c.done], "the load did not span the signal"
    partial = [c for c in report.errors if c.answered or c.failed_at in ("body", "check")]
    assert partial == [], [(c.status, c.failed_at, c.error) for c in partial[:5]]  # no 5xx, no cut or wrong answer
    lost = [c for c in report.errors if c.failed_at == "answer" and c.written is not None and c.written < signalled]
    assert lost == [], [(c.index, c.error) for c in lost[:5]]  # written whole before the signal, closed unanswered


@pytest.mark.parametrize("workers_n", [1, 2])
def test_sigterm_after_ready_exits_0_and_loses_no_request(carseats_sales, workers_n):
    frame, bundles = carseats_sales
    status, took, report, signalled = _stop_under_load(frame, bundles["sales"], workers_n=workers_n)
    assert took <= EXIT_BOUND_S, "the server did not end after SIGTERM"
    assert status == 0, f"--workers {workers_n}: exit status {status} after SIGTERM"
    _check_nothing_lost(report, signalled)


@pytest.mark.parametrize("workers_n", [1, 2])
def test_a_second_sigterm_exits_0_too(carseats_sales, workers_n):
    """One worker: the second signal ends a 30 s drain at once. Several: the supervisor passes on one
    SIGTERM and waits for its workers (a short drain here, so that the test does not wait 30 s)."""
    frame, bundles = carseats_sales
    drain = 30.0 if workers_n == 1 else 2.0
    status, took, report, signalled = _stop_under_load(frame, bundles["sales"], workers_n=workers_n, signals=2,
                                                       drain=drain)
    assert status == 0, f"--workers {workers_n}: exit status {status} after two SIGTERMs"
    assert took < 12.0  # with one worker, not the 30 s of the drain
    partial = [c for c in report.errors if c.answered or c.failed_at in ("body", "check")]
    assert partial == [], [(c.status, c.failed_at, c.error) for c in partial[:5]]


def test_sigterm_raises_system_exit_0_while_run_server_owns_it():
    """In the main thread, from before the bundles load until the server stops; then the handler before is back."""
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, workers._sigterm_exits_cleanly():
        assert signal.getsignal(signal.SIGTERM) is not before
        signal.raise_signal(signal.SIGTERM)
    assert stopped.value.code == workers.STOPPED_STATUS == 0
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_cli_stops_with_the_servers_status():
    with pytest.raises(SystemExit) as stopped:
        serve_command._stopped(signal.SIGTERM, None)
    assert stopped.value.code == workers.STOPPED_STATUS
