"""Stateless Serving Function (16) as an HTTP server: one app, two wire protocols.

Problem: a bundle scored only from a file or from Python cannot answer an application
online, and clients already speak TensorFlow Serving's REST API or the Open Inference
Protocol v2 (KServe, Triton); a new protocol would mean new clients.

Solution: :func:`create_app` loads every bundle once, verified (a tampered bundle refuses
to start, naming the file), and serves each through both protocols
(:mod:`~mlpatterns.serving.http.tf_serving`, :mod:`~mlpatterns.serving.http.open_inference`)
as a FastAPI app that uvicorn runs (``mlpatterns serve``). The function holds no state
between requests; inputs are checked at the boundary, so that a bad request gets a 4xx
``{"error": ...}`` naming the row and field, never a 500. Around the routes sit the
operations a serving engineer expects (:mod:`~mlpatterns.serving.http.operations`):
Prometheus metrics on ``/metrics``, an access log, and optional bearer-token auth.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from mlpatterns.bundles.format import BundleError
from mlpatterns.serving.http._common import Limits, RequestError, ServedModel
from mlpatterns.serving.http.open_inference import open_inference_router
from mlpatterns.serving.http.operations import (
    BearerAuth,
    Observability,
    ServerMetrics,
    check_token,
    metrics_endpoint,
)
from mlpatterns.serving.http.tf_serving import tf_serving_router
from mlpatterns.serving.stateless_serving_function import ServingFunction

__all__ = ["DEFAULT_VERSION", "ModelLoadError", "create_app", "load_models"]

DEFAULT_VERSION = "1"


class ModelLoadError(RuntimeError):
    """A bundle that cannot be served (missing, tampered, unreadable): the server does not start."""


def load_models(models: Mapping[str, str | os.PathLike[str] | ServingFunction]) -> dict[str, ServedModel]:
    """Load and verify every bundle (name -> folder or loaded function), each as version 1."""
    if not models:
        raise ModelLoadError("no model to serve; give at least one NAME=BUNDLE")
    served: dict[str, ServedModel] = {}
    for name, source in models.items():
        if not name or "/" in name or ":" in name:
            raise ModelLoadError(f"model name {name!r}: use letters, digits, '-', '_' or '.' (no '/' or ':')")
        if isinstance(source, ServingFunction):
            serving = source
        else:
            path = Path(source)
            try:
                serving = ServingFunction.load(path)
            except (BundleError, OSError, ValueError) as error:
                raise ModelLoadError(f"model '{name}': the bundle {path} cannot be served: {error}") from error
        served[name] = ServedModel(name, DEFAULT_VERSION, serving)
    return served


def create_app(
    models: Mapping[str, str | os.PathLike[str] | ServingFunction], *, limits: Limits | None = None,
    token: str | None = None, metrics: bool = True, access_log: bool = True,
) -> FastAPI:
    """A FastAPI app serving ``models`` (name -> bundle folder or :class:`ServingFunction`).

    Every bundle is loaded and verified here, before the app exists: one that fails
    raises :class:`ModelLoadError` and nothing is served. ``limits`` bounds each request
    (:class:`Limits`: 10 MB and 10,000 rows by default; beyond them, 413).

    ``token`` (e.g. from :func:`~mlpatterns.serving.http.operations.token_from_file`), when
    given, is required as ``Authorization: Bearer <token>`` on every endpoint but
    ``/v2/health/live`` and ``/v2/health/ready`` (401 otherwise). ``metrics`` exposes
    Prometheus counters and latencies on ``GET /metrics`` (a registry per app, at
    ``app.state.metrics_registry``); ``access_log`` writes one line per request to the
    logger ``mlpatterns.serving.http.access``. Rejected requests are counted and logged too.
    """
    limits = limits or Limits()
    if token is not None:
        check_token(token)
    served = load_models(models)
    app = FastAPI(title="mlpatterns serve", description=__doc__, version=DEFAULT_VERSION)
    app.state.models = served
    app.state.limits = limits
    app.state.ready = True  # every model above is loaded and verified

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": str(error.errors())}, status_code=400)

    app.include_router(tf_serving_router(served, limits))
    app.include_router(open_inference_router(served, limits, lambda: app.state.ready))
    server_metrics = ServerMetrics() if metrics else None
    if server_metrics is not None:
        app.add_route("/metrics", metrics_endpoint(server_metrics), methods=["GET"], include_in_schema=False)
    if token is not None:
        app.add_middleware(BearerAuth, token=token)
    # added last, so outermost: it also sees the 401s of the auth and the 500s of failures
    app.add_middleware(Observability, models=served, metrics=server_metrics, access_log=access_log)
    app.state.metrics_registry = server_metrics.registry if server_metrics else None
    return app
