"""Stateless Serving Function (16) as an HTTP server: one app, two wire protocols.

Problem: a bundle scored only from a file or from Python cannot answer an application
online, and clients already speak TensorFlow Serving's REST API or the Open Inference
Protocol v2 (KServe, Triton); a new protocol would mean new clients.

Solution: :func:`create_app` loads every bundle once, verified (a tampered bundle refuses
to start, naming the file), keeps several versions of a name side by side with labels, a
traffic split and reloads of registry aliases (:mod:`~mlpatterns.serving.http.served_models`),
and serves each through both protocols
(:mod:`~mlpatterns.serving.http.tf_serving`, :mod:`~mlpatterns.serving.http.open_inference`)
as a FastAPI app that uvicorn runs (``mlpatterns serve``). The function holds no state
between requests; inputs are checked at the boundary, so that a bad request gets a 4xx
``{"error": ...}`` naming the row and field, never a 500. Around the routes sit the
operations a serving engineer expects (:mod:`~mlpatterns.serving.http.operations`):
Prometheus metrics on ``/metrics``, an access log, and optional bearer-token auth.
``/openapi.json`` (and ``/docs``) is typed from each bundle's signature
(:mod:`~mlpatterns.serving.http.openapi_signatures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Route

from mlpatterns.serving.http._common import ONLINE_MAX_ROWS, Limits, RequestError
from mlpatterns.serving.http.direct_routes import DirectRoutes
from mlpatterns.serving.http.graceful_drain import DEFAULT_DRAIN_SECONDS, Drain, DrainingConnections
from mlpatterns.serving.http.open_inference import open_inference_router
from mlpatterns.serving.http.openapi_signatures import ModelDocument, typed_openapi
from mlpatterns.serving.http.operations import (
    BearerAuth,
    Observability,
    ServerMetrics,
    check_token,
    metrics_endpoint,
)
from mlpatterns.serving.http.served_models import ModelLoadError, ServedModels, load_models
from mlpatterns.serving.http.tf_serving import VERSION_FIELD, tf_serving_router

__all__ = ["DEFAULT_RELOAD_INTERVAL", "DEFAULT_VERSION", "ModelLoadError", "create_app", "load_models",
           "model_documents"]

DEFAULT_VERSION = "1"  # of a bundle folder given without a version
DEFAULT_RELOAD_INTERVAL = 10.0  # seconds between two looks at the registry's aliases


def create_app(
    models: Any, *, registry: Any = None, labels: Mapping[str, Mapping[str, int]] | None = None,
    split: Mapping[str, Any] | None = None, reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    limits: Limits | None = None, token: str | None = None, metrics: bool = True, access_log: bool = True,
    online_rows: int = ONLINE_MAX_ROWS, drain: float = DEFAULT_DRAIN_SECONDS, prediction_log: Any = None,
    online_store: str | None = None, window_state: str | None = None, explainer: Any = None,
) -> FastAPI:
    """A FastAPI app serving ``models``.

    ``models`` maps each name to a bundle folder, a :class:`ServingFunction` or a
    ``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` reference (one version), to a
    list of references (several registered versions), or to ``{version: bundle}``
    (several versions of folders); a folder alone is version 1. It may also be a list of
    :class:`~mlpatterns.serving.http.served_models.ModelSource`, or a
    :class:`~mlpatterns.serving.http.served_models.ServedModels` already loaded. Examples::

        create_app({"sales": "runs/carseats/bundles/linear"})
        create_app({"flights": {3: "runs/a/bundles/gbm", 4: "runs/b/bundles/gbm"}}, split={"flights": "3:90,4:10"})
        create_app({"flights": ["models:/flights@champion", "models:/flights@challenger"]},
                   registry="sqlite:///registry/registry.db", split={"flights": "champion:95,challenger:5"})

    ``registry`` (a URL or an open registry) resolves the references; each registry alias
    of a served version is a label (``/v1/models/flights/labels/champion:predict``), and
    ``labels`` adds ``{name: {label: version}}``. ``split`` sends each row of a request
    without version to a version by the hash of its key (see
    :mod:`~mlpatterns.serving.http.traffic_split`). Every ``reload_interval`` seconds
    (0: never) while the app runs, a background task re-resolves the aliases and swaps in
    the versions they now point at (``app.state.models.reload()`` does it at once).

    ``explainer`` (Explainable Predictions, 29), a function from a served version's
    :class:`ServingFunction` to a function from rows to their attribution columns (e.g.
    :func:`mlpatterns.responsible.explainable_predictions.explained_predictions.explainer_for_serving`),
    lets a request ask ``"explain": true`` (TF Serving) or ``"parameters": {"explain": true}``
    (Open Inference Protocol); without it, such a request is a 400. It is given here, not
    imported, because the explanations (chapter 7) are built on serving, not the reverse.

    Every bundle is loaded and verified here, before the app exists: one that fails
    raises :class:`ModelLoadError` and nothing is served. ``limits`` bounds each request
    (:class:`Limits`: 10 MB and 10,000 rows by default; beyond them, 413). A request of
    at most ``online_rows`` rows is answered by the bundle's pandas-free
    :class:`~mlpatterns.serving.online.OnlinePredictor` (0: never; with a traffic split, when
    every version of the split has one), a larger one by its :class:`ServingFunction`; the
    answers are the same.

    ``token`` (e.g. from :func:`~mlpatterns.serving.http.operations.token_from_file`), when
    given, is required as ``Authorization: Bearer <token>`` on every endpoint but
    ``/v2/health/live`` and ``/v2/health/ready`` (401 otherwise). ``metrics`` exposes
    Prometheus counters and latencies on ``GET /metrics`` (a registry per app, at
    ``app.state.metrics_registry``); ``access_log`` writes one line per request to the
    logger ``mlpatterns.serving.http.access``. Rejected requests are counted and logged too.

    ``drain`` is the grace between SIGTERM (or SIGINT) and the shutdown, when the app
    runs in a server's main thread (:mod:`~mlpatterns.serving.http.graceful_drain`):
    not ready, ``Connection: close`` on every answer, still serving (0: none).

    ``online_store`` (a URL) is where bundles trained on stored features (Feature Store, 26) read
    them by key; default: the online store their feature repository names. ``window_state`` (a URL) is
    where bundles with window features (Windowed Inference, 24) keep their stream's state, per event, so a
    restarted server continues with the same windows (default: in memory; serve them from one worker).

    ``prediction_log`` logs every prediction answered (Continued Model Evaluation, 18): a
    log URL (``"logs/predictions"``, a folder of Parquet files; ``"sqlite:///logs/predictions.db"``),
    or :class:`~mlpatterns.serving.http.prediction_logging.PredictionLogging` with a sample rate, a
    flush interval and a time column (:mod:`~mlpatterns.serving.http.prediction_logging`); None
    (default): no log. It is opened here (a bad URL raises :class:`ModelLoadError`) and closed
    (every row written) when the app shuts down; a logging failure never fails a request.
    """
    limits = limits or Limits()
    if token is not None:
        check_token(token)
    grace = Drain(drain)  # checks the seconds before anything loads
    if reload_interval < 0:
        raise ValueError(f"reload_interval: expected seconds >= 0 (0: no reload), got {reload_interval!r}")
    owned = not isinstance(models, ServedModels)  # loaded here: its registry is closed at shutdown
    if not owned and (registry is not None or labels or split or online_rows != ONLINE_MAX_ROWS
                      or online_store is not None or window_state is not None):
        raise ValueError("registry, labels, split, online_rows, online_store and window_state configure the models "
                         "loaded here; give them to ServedModels when passing one")
    if online_rows < 0:
        raise ValueError(f"online_rows: expected rows >= 0 (0: never the online path), got {online_rows!r}")
    served = models if not owned else load_models(
        models, registry=registry, labels=labels, split=split, online_rows=online_rows, online_store=online_store,
        window_state=window_state)
    server_metrics = ServerMetrics() if metrics else None
    if server_metrics is not None:
        served.on_reload = server_metrics.count_reload
    recorder = None
    if prediction_log is not None:
        from mlpatterns.serving.http.prediction_logging import PredictionRecorder

        try:
            recorder = PredictionRecorder(prediction_log, metrics=server_metrics)
            recorder.check_time_column([m for name in served.names for m in served.versions(name).values()])
        except BaseException:
            if recorder is not None:
                recorder.close()
            if owned:
                served.close()
            raise
        served.on_answer = recorder

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watcher = None
        if reload_interval > 0 and served.polls_registry:
            watcher = asyncio.create_task(served.watch(reload_interval))
        app.state.ready = served.ready  # again ready if an earlier lifespan drained
        restore_signals = grace.install(asyncio.get_running_loop())
        if recorder is not None:
            recorder.start()  # again, if an earlier lifespan closed it
        # what is loaded now (modules, models) lives as long as the server: out of the garbage
        # collector's reach, its first collections walk only what requests allocate (one of 40 ms
        # in the first 20,000 flights requests otherwise, 0.1 ms frozen; a 2-core VM)
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            restore_signals()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if recorder is not None:
                recorder.close()  # every row held is written: a graceful stop loses nothing
            if owned:
                served.close()

    app = FastAPI(title="mlpatterns serve", description=__doc__, version=DEFAULT_VERSION, lifespan=lifespan)
    app.state.models = served
    app.state.limits = limits
    app.state.ready = served.ready  # every version is loaded and verified
    app.state.drain = grace
    app.state.prediction_log = recorder  # a PredictionRecorder, or None
    app.state.explainer = explainer  # Explainable Predictions (29): answers `explain: true`, or None

    def stop_being_ready() -> None:
        app.state.ready = False

    grace.on_start = stop_being_ready

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": str(error.errors())}, status_code=400)

    routers = [tf_serving_router(served, limits),
               open_inference_router(served, limits, lambda: app.state.ready and served.ready)]
    for router in routers:
        app.include_router(router)
    if server_metrics is not None:
        app.add_route("/metrics", metrics_endpoint(server_metrics), methods=["GET"], include_in_schema=False)
    # innermost: the predictions answered before FastAPI's dispatch, inside the auth, drain and metrics
    app.add_middleware(DirectRoutes, routes=[r for router in routers for r in router.routes
                                             if isinstance(r, Route) and not isinstance(r, APIRoute)])
    if token is not None:
        app.add_middleware(BearerAuth, token=token)
    app.add_middleware(DrainingConnections, drain=grace)
    # added last, so outermost: it also sees the 401s of the auth and the 500s of failures
    app.add_middleware(Observability, metrics=server_metrics, access_log=access_log)
    app.state.metrics_registry = server_metrics.registry if server_metrics else None
    app.openapi = _typed_openapi(app, served, limits)  # type: ignore[method-assign]  # FastAPI's documented way
    return app


def model_documents(served: ServedModels) -> list[ModelDocument]:
    """What the OpenAPI document says of each served name, version and label (typed from the signatures)."""
    documents = []
    for name in served.names:
        latest = served.find(name)
        extra = {VERSION_FIELD: "text"} if served.split(name) is not None else {}
        documents.append(ModelDocument(name, None, latest.signature, _key_kinds(latest), extra))
        for version, model in served.versions(name).items():
            documents.append(ModelDocument(name, str(version), model.signature, _key_kinds(model)))
        for label in served.labels(name):
            model = served.find(name, label=label)
            documents.append(ModelDocument(name, None, model.signature, _key_kinds(model), label=label))
    return documents


def _key_kinds(model: Any) -> dict[str, str]:
    return {key: model.key_kind(key) for key in model.key_columns}


def _typed_openapi(app: FastAPI, served: ServedModels, limits: Limits) -> Any:
    """``app.openapi`` answering FastAPI's document with typed paths for the versions served now."""
    generic = app.openapi
    cache: dict[Any, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        documents = model_documents(served)  # a reload may have changed the versions since the last call
        key = repr(documents)
        if key not in cache:
            cache.clear()
            cache[key] = typed_openapi(generic(), documents, max_rows=limits.max_rows)
        return cache[key]

    return openapi
