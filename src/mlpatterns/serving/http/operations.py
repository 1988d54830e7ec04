"""What a serving engineer expects around the HTTP Stateless Serving Function (16).

Problem: a model server that only answers predictions cannot be run in production: nobody
sees how many requests each model gets, how many fail or how long they take; no line says
who asked for what; and anyone who reaches the port can use the models.

Solution: three pieces of ASGI middleware that :func:`~mlpatterns.serving.http.create_app`
puts around the routes, each an option of it:

* :class:`Observability` counts every request and error per model, version, protocol and
  status code, times each request per model and version, and exposes them as Prometheus
  text on ``GET /metrics`` from a registry of its own (not the process-wide default one,
  so that several apps, and tests, do not collide); it also writes one access-log line
  per request (method, path, status, model, rows, milliseconds, client) to the ``logging``
  logger ``mlpatterns.serving.http.access``, which ``mlpatterns serve`` prints to stderr in
  place of uvicorn's own access log (``--log-level info``, the default).
* :class:`BearerAuth` refuses, with 401, ``{"error": ...}`` and ``WWW-Authenticate:
  Bearer``, every request but the liveness and readiness probes that lacks
  ``Authorization: Bearer <token>`` (compared in constant time, :func:`hmac.compare_digest`).
* :func:`token_from_file` reads that token from a file only its owner can read (mode 0600).

Labels stay bounded: a model or version the server does not serve is counted as ``""``,
so that requests for made-up names cannot grow the metrics without end. Under several
worker processes the counters are summed over the workers (:class:`ServerMetrics`).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.responses import Response

__all__ = ["ACCESS_LOGGER", "MULTIPROCESS_ENV", "OPEN_PATHS", "BearerAuth", "Observability", "ServerMetrics", "TokenFileError",
           "check_token", "metrics_endpoint", "token_from_file"]

ACCESS_LOGGER = "mlpatterns.serving.http.access"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})  # probes answer without the token

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class TokenFileError(ValueError):
    """A token file that cannot be used: empty, or readable by others than its owner."""


def token_from_file(path: str | os.PathLike[str]) -> str:
    """The bearer token in ``path``, without surrounding whitespace.

    Refuses an empty file and, on POSIX, a file that group or others may access (the
    token would be a secret shared with every user of the machine): it must be mode 0600.
    """
    path = Path(path)
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise TokenFileError(f"the token file {path} has mode {mode:04o}, open to group or others; "
                                 f"expected mode 0600 (chmod 600 {path})")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise TokenFileError(f"the token file {path} is empty")
    return token


def check_token(token: str) -> None:
    """Refuse a token that cannot be sent as ``Authorization: Bearer <token>``: empty, spaced or not ASCII."""
    if not isinstance(token, str) or not token or any(c.isspace() for c in token) or not token.isascii():
        raise ValueError("the bearer token must be a non-empty ASCII string without whitespace")


def _protocol(path: str) -> str:
    if path.startswith("/v1/"):
        return "tf_serving"
    if path == "/v2" or path.startswith("/v2/"):
        return "open_inference"
    return "other"


async def _send_json(send: Send, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
    content = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


class BearerAuth:
    """Refuse every request but the health probes without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        check_token(token)
        self.app, self._token = app, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, given = header.partition(b" ")
        if scheme.lower() != b"bearer" or not given.strip():
            problem = "this server needs 'Authorization: Bearer <token>'"
        elif not hmac.compare_digest(given.strip(), self._token):
            problem = "the bearer token is not valid"
        else:
            await self.app(scope, receive, send)
            return
        await _send_json(send, 401, {"error": problem}, {"WWW-Authenticate": "Bearer"})


class ServerMetrics:
    """The Prometheus metrics of one app, in a registry of its own (:attr:`registry`).

    In prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set before it
    was imported, as ``mlpatterns serve --workers N`` does), every worker writes its
    values to that folder and :attr:`registry` reads all of them
    (``MultiProcessCollector``), so that ``/metrics`` gives the sums over the workers,
    whichever worker answers the scrape.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        folder = os.environ.get(MULTIPROCESS_ENV)
        own: CollectorRegistry | None = self.registry
        if folder:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(self.registry, path=folder)
            own = None  # the values live in the folder, collected from there
        labels = ["model", "version", "protocol", "code"]
        self.requests = Counter("mlpatterns_http_requests", "HTTP requests answered, per model, version, "
                                "protocol and status code", labels, registry=own)
        self.errors = Counter("mlpatterns_http_errors", "HTTP requests answered with a 4xx or 5xx status",
                              labels, registry=own)
        self.latency = Histogram("mlpatterns_http_request_duration_seconds", "Time to answer an HTTP request",
                                 ["model", "version"], registry=own)
        self.rows = Counter("mlpatterns_http_predicted_rows", "Rows predicted, per model and the version that "
                            "answered them (a traffic split sends the rows of one request to several)",
                            ["model", "version"], registry=own)
        self.reloads = Counter("mlpatterns_model_reloads", "Versions swapped in when an alias moved "
                               "(outcome 'loaded'), or refused while the old version serves on ('refused')",
                               ["model", "outcome"], registry=own)
        self.log_failures = Counter("mlpatterns_prediction_log_failures", "Answered requests whose predictions "
                                    "could not be handed to the prediction log (the requests were answered)",
                                    registry=own)
        self.log_dropped_rows = Counter("mlpatterns_prediction_log_dropped_rows", "Predictions the prediction "
                                        "log's full buffer dropped (the log falls behind the traffic)", registry=own)

    def count_reload(self, event: Any) -> None:
        """Count a :class:`~mlpatterns.serving.http.served_models.ReloadEvent`."""
        self.reloads.labels(model=event.source.name, outcome=event.outcome).inc()


def metrics_endpoint(metrics: ServerMetrics) -> Callable[[Any], Awaitable[Response]]:
    """The ``GET /metrics`` route: the app's registry as Prometheus text (behind the auth, when there is one)."""

    async def expose(request: Any) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return expose


class Observability:
    """Prometheus metrics on ``GET /metrics`` and an access-log line for every request.

    ``metrics`` None turns the metrics off, ``access_log`` False the log. The routes note
    the model and version that answered (``request.state``): a request for a model or
    version that is not served, or refused before routing (401), is counted as ``""``.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics | None, access_log: bool = True) -> None:
        self.app, self.metrics, self.access_log = app, metrics, access_log
        self.logger = logging.getLogger(ACCESS_LOGGER)
        # each label set's children, looked up once (labels() takes a lock and builds a tuple each call); the
        # label values are bounded (served models and versions, "" for any other, the status codes)
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any, Any]] = {}
        self._rows: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts
        started = time.perf_counter()

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        state = scope.get("state") or {}
        model, version = str(state.get("model", "")), str(state.get("version", ""))
        if self.metrics is not None:
            if status < 400:
                for answered, rows in (state.get("rows_by_version") or {}).items():
                    self._rows_of(model, answered).inc(rows)
            requests, errors, latency = self._metrics_of(model, version, _protocol(scope["path"]), status)
            requests.inc()
            if errors is not None:
                errors.inc()
            latency.observe(seconds)
        if self.access_log and self.logger.isEnabledFor(logging.INFO):
            rows = state.get("rows")
            host, port = scope.get("client") or ("-", 0)
            client = f"{host}:{port}"
            self.logger.info("%s %s %d model=%s rows=%s ms=%.1f client=%s", scope["method"], scope["path"], status,
                             f"{model}/{version}" if model else "-", "-" if rows is None else rows,
                             seconds * 1000.0, client, extra={"method": scope["method"], "path": scope["path"],
                                                              "status": status, "model": model, "version": version,
                                                              "rows": rows, "ms": seconds * 1000.0, "client": client})

    def _metrics_of(self, model: str, version: str, protocol: str, status: int) -> tuple[Any, Any, Any]:
        """The request counter, the error counter (None below 400) and the latency histogram of one label set."""
        found = self._children.get((model, version, protocol, status))
        if found is None:
            assert self.metrics is not None
            labels = {"model": model, "version": version, "protocol": protocol, "code": str(status)}
            found = (self.metrics.requests.labels(**labels),
                     self.metrics.errors.labels(**labels) if status >= 400 else None,
                     self.metrics.latency.labels(model=model, version=version))
            self._children[(model, version, protocol, status)] = found
        return found

    def _rows_of(self, model: str, version: str) -> Any:
        """The counter of the rows that one model version answered."""
        found = self._rows.get((model, version))
        if found is None:
            assert self.metrics is not None
            found = self._rows[(model, version)] = self.metrics.rows.labels(model=model, version=version)
        return found
