"""A small, bounded HTTP load generator for testing a served model (Stateless Serving Function, 16).

Problem: a reliability test of a model server needs many concurrent requests on
keep-alive connections, and for each one not just "did it fail" but *how*: refused
before a connection, closed before any answer, or cut off in the middle of one. A
benchmark loop that counts only successes cannot say which.

Solution: :func:`run_load` keeps ``concurrency`` requests in flight (a closed loop, or
paced to ``rate`` requests per second) on one ``httpx.AsyncClient`` until ``requests``
were sent, ``seconds`` passed or ``stop`` is set. Each request is streamed, so that the
moment its status line arrives is known; each outcome is a :class:`Call`: the status, or
where it failed (``"connect"``: no connection; ``"answer"``: a connection but no status
line; ``"body"``: a status line and then an incomplete body), the error, and the times.
A ``check`` callback looks at every complete answer (its keys, its values) and returns a
problem or None, so that bodies need not be kept. :class:`LoadReport` sums it up:
requests per second, latency percentiles, errors. :func:`serve_process` runs
``mlpatterns serve`` as a real process on 127.0.0.1 and a free port for such a run,
:func:`wait_ready` waits for any server process to answer its readiness check,
:func:`serve_in_thread` runs an ASGI app under uvicorn in a thread of this process, and
:func:`rss_bytes` reads a process's resident memory (Linux ``/proc``).

Example (against a running server)::

    report = run_load_sync("http://127.0.0.1:8501/v1/models/sales:predict",
                           lambda i: bodies[i % len(bodies)], concurrency=16, seconds=60)
    assert report.errors == [], report.errors[:5]
    print(report.summary())
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import httpx
import numpy as np

__all__ = ["Call", "LoadReport", "free_port", "rss_bytes", "run_load", "run_load_sync", "serve_in_thread",
           "serve_process", "wait_ready"]

_MAIN = "import sys; from mlpatterns.cli import main; sys.exit(main())"

Check = Callable[[int, int, bytes], "str | None"]


@dataclass(frozen=True)
class Call:
    """One request's outcome.

    ``status`` is None when no status line arrived; ``failed_at`` is None for a complete
    answer that ``check`` accepted, else ``"connect"``, ``"answer"``, ``"body"`` or
    ``"check"`` (a complete answer with a wrong status or content: ``error`` says what).
    ``sent`` and ``done`` are :func:`time.monotonic` times of the start and the end;
    ``written`` the time the whole request had been handed to the socket (None: never), from
    httpcore's ``trace`` extension.
    """

    index: int
    status: int | None
    failed_at: str | None
    error: str
    sent: float
    done: float
    written: float | None = None

    @property
    def answered(self) -> bool:
        """Whether any of the answer arrived (at least its status line)."""
        return self.status is not None


@dataclass
class LoadReport:
    """Every :class:`Call` of a run, in the order they ended, and the run's wall time."""

    calls: list[Call] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> list[Call]:
        return [c for c in self.calls if c.failed_at is None]

    @property
    def errors(self) -> list[Call]:
        return [c for c in self.calls if c.failed_at is not None]

    @property
    def requests_per_second(self) -> float:
        return len(self.ok) / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, percentile: float) -> float:
        """A percentile (0-100) of the successful calls' latencies, in milliseconds."""
        ok = self.ok
        return float(np.percentile([c.done - c.sent for c in ok], percentile) * 1e3) if ok else float("nan")

    def summary(self) -> str:
        return (f"{len(self.calls)} requests in {self.seconds:.1f} s, {len(self.errors)} errors, "
                f"{self.requests_per_second:.1f} requests/s, p50 {self.latency_ms(50):.1f} ms, "
                f"p99 {self.latency_ms(99):.1f} ms")


async def _call(client: httpx.AsyncClient, url: str, index: int, body: bytes, check: Check | None) -> Call:
    sent, written = time.monotonic(), []

    async def trace(name: str, info: dict) -> None:
        if name == "http11.send_request_body.complete":
            written.append(time.monotonic())

    status, stage = None, "connect"
    try:
        request = client.build_request("POST", url, content=body, headers={"Content-Type": "application/json"},
                                       extensions={"trace": trace})
        stage = "answer"
        response = await client.send(request, stream=True)
        status, stage = response.status_code, "body"
        try:
            content = await response.aread()
        finally:
            await response.aclose()
    except httpx.ConnectError as error:
        return Call(index, status, "connect", f"{type(error).__name__}: {error}", sent, time.monotonic())
    except (httpx.TransportError, OSError) as error:
        return Call(index, status, stage, f"{type(error).__name__}: {error}", sent, time.monotonic(),
                    written[0] if written else None)
    done = time.monotonic()
    try:
        problem = check(index, status, content) if check else (None if status == 200 else f"status {status}")
    except Exception as error:  # noqa: BLE001 - a check that cannot read the answer reports it as the problem
        problem = f"the check failed: {type(error).__name__}: {error}"
    return Call(index, status, None if problem is None else "check", problem or "", sent, done,
                written[0] if written else None)


async def run_load(url: str | Callable[[int], str], body: Callable[[int], bytes], *, concurrency: int = 8, requests: int | None = None,
                   seconds: float | None = None, rate: float | None = None, check: Check | None = None,
                   stop: asyncio.Event | None = None, timeout: float = 30.0, keep_alive: bool = True,
                   retry_delay: float = 0.05) -> LoadReport:
    """POST ``body(i)`` to ``url`` for i = 0, 1, ... with ``concurrency`` requests in flight.

    Parameters
    ----------
    url : the URL, or ``url(i)``: the URL of request ``i``.
    body : the JSON body of request ``i`` (bytes).
    requests, seconds, stop : the run ends at the first of: ``requests`` sent, ``seconds``
        passed, ``stop`` set (the requests in flight then finish); at least one is needed.
    rate : requests per second over all connections (None: as fast as answers come).
    check : ``check(i, status, content)`` of each complete answer; a string is a problem,
        and so is an exception it raises. Without it, any status but 200 is one.
    keep_alive : False opens a new connection for every request (spread over the workers
        of a multi-process server).
    retry_delay : the pause after a request that got no answer, so that a stopped server
        is not asked in a busy loop.
    """
    if requests is None and seconds is None and stop is None:
        raise ValueError("run_load needs a bound: requests, seconds or stop")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency if keep_alive else 0)
    report, counter = LoadReport(), iter(range(requests if requests is not None else 2**62))
    start = time.monotonic()
    end = start + seconds if seconds is not None else float("inf")

    async def worker(client: httpx.AsyncClient) -> None:
        for index in counter:
            if time.monotonic() >= end or (stop is not None and stop.is_set()):
                return
            if rate is not None:
                await asyncio.sleep(max(0.0, start + index / rate - time.monotonic()))
            call = await _call(client, url if isinstance(url, str) else url(index), index, body(index), check)
            report.calls.append(call)
            if call.status is None:
                await asyncio.sleep(retry_delay)

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    report.seconds = time.monotonic() - start
    return report


def run_load_sync(url: str | Callable[[int], str], body: Callable[[int], bytes], **options) -> LoadReport:
    """:func:`run_load` in a new event loop (``stop`` is not available here)."""
    return asyncio.run(run_load(url, body, **options))


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen | None = None, *, timeout: float = 60.0, interval: float = 0.2,
               name: str | None = None) -> None:
    """Wait until ``GET url`` answers 200 (a server's readiness or health check).

    Raises RuntimeError as soon as ``process`` (the server, if given) has ended, and
    TimeoutError after ``timeout`` seconds; between two tries it sleeps ``interval``
    seconds (a cold-start measurement wants a small one). ``name`` names the server in
    these errors (default: "the server at URL").
    """
    name = name or f"the server at {url}"
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:  # one client: no new TLS context on each try
        while True:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} ended with {process.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} was not ready within {timeout} s")
            time.sleep(interval)


@contextmanager
def serve_process(arguments: Sequence[str], *, env: dict[str, str] | None = None, stdout: IO[Any] | None = None,
                  ready_timeout: float = 60.0) -> Iterator[tuple[subprocess.Popen, str]]:
    """``mlpatterns serve ARGUMENTS --port P`` on 127.0.0.1, ready; yields (the process, its base URL).

    The process is started with the running interpreter, waited for until
    ``/v2/health/ready`` answers 200, and on exit sent SIGTERM if still alive (killed if
    it has not ended 20 s later). ``stdout`` receives its output and errors (None: inherited).
    """
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", _MAIN, "serve", *arguments, "--host", "127.0.0.1",
                                "--port", str(port)], env=env, stdout=stdout,
                               stderr=subprocess.STDOUT if stdout is not None else None)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/v2/health/ready", process, timeout=ready_timeout, name="mlpatterns serve")
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serve_in_thread(app: Any, *, ready_timeout: float = 20.0, **config: Any) -> Iterator[str]:
    """``app`` served by uvicorn in a daemon thread on 127.0.0.1 and a free port; yields its base URL.

    Ready once uvicorn says it started (TimeoutError after ``ready_timeout`` seconds, RuntimeError if
    the thread ended first); on exit it is told to stop, and RuntimeError if its thread has not
    ended 10 s later. ``config``: more :class:`uvicorn.Config` arguments (``log_level`` is
    ``"warning"`` unless given).
    """
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **{"log_level": "warning", **config}))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn ended before it started")
            if time.monotonic() > deadline:
                raise TimeoutError(f"uvicorn did not start within {ready_timeout} s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    if thread.is_alive():
        raise RuntimeError("uvicorn did not stop within 10 s")


def rss_bytes(pid: int) -> int:
    """The resident memory of a process (``VmRSS`` of ``/proc/PID/status``; Linux only)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no VmRSS for process {pid}{' (not Linux?)' if os.name != 'posix' else ''}")
