"""Several worker processes for the HTTP Stateless Serving Function (16).

Problem: one Python process answers on one core, and a model server needs more; but
uvicorn starts worker processes only from an import string (a process cannot inherit a
loaded app across ``spawn``), and each worker's Prometheus counters would show only that
worker's share of the traffic.

Solution: :func:`run_server` puts the configuration (:class:`ServerConfig`, JSON) in the
environment variable ``MLPATTERNS_SERVE_CONFIG`` and runs uvicorn with the factory
:func:`app_from_environment` and ``workers=N``: the processes share the listening
socket, and each loads and verifies every bundle itself and polls the registry itself,
so an alias that moves reaches every worker within the reload interval. Metrics go
through prometheus_client's multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` points at a
temporary folder that :func:`run_server` creates before the workers start and removes
after they stop (or at the folder already set in the environment, left as it is), and
``/metrics`` sums the counters of all workers, whichever one answers the scrape.

Exit status: a stop asked for by SIGTERM ends :func:`run_server` with ``SystemExit(0)``
(``mlpatterns serve`` exits 0, as gunicorn does), with one worker as with several. uvicorn
alone differs by mode: its single server re-raises a captured SIGTERM once it has shut
down gracefully (the process then dies of the signal: status -15, 143 in a shell), while
its worker supervisor returns normally (0). :func:`run_server` owns SIGTERM from before the
bundles load until the server has stopped, so that re-raised signal, and a SIGTERM that
comes while the bundles load (nothing served yet), end the process with 0 instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from mlpatterns.serving.http._common import Limits
from mlpatterns.serving.http.graceful_drain import DEFAULT_DRAIN_SECONDS
from mlpatterns.serving.http.operations import MULTIPROCESS_ENV, token_from_file
from mlpatterns.serving.http.served_models import ModelLoadError, ModelSource, ServedModels

__all__ = ["CONFIG_ENV", "FACTORY", "STOPPED_STATUS", "ServerConfig", "app_from_environment", "log_config", "run_server"]

CONFIG_ENV = "MLPATTERNS_SERVE_CONFIG"
FACTORY = "mlpatterns.serving.http.workers:app_from_environment"
STOPPED_STATUS = 0  # the exit status of a server stopped by SIGTERM (gracefully, or while it was loading)


@dataclass(frozen=True)
class ServerConfig:
    """Everything a worker needs to build the app, as JSON-able values.

    ``models``: ``(name, source, version)`` per source (a folder or a ``models:/``
    reference; version None: the registry's, or 1). ``labels``: ``{name: {label:
    version}}``; ``split``: ``{name: "3:90,4:10"}``; ``token_file``: read by each worker.
    ``log``: a prediction log URL (None: no log), with ``log_sample_rate``, ``log_flush_s`` and
    ``log_time_column`` (:class:`~mlpatterns.serving.http.prediction_logging.PredictionLogging`);
    each worker opens its own logger on it.
    """

    models: tuple[tuple[str, str, int | None], ...]
    registry: str | None = None
    labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    split: Mapping[str, str] = field(default_factory=dict)
    reload_interval: float = 10.0
    token_file: str | None = None
    max_body_bytes: int = Limits.max_body_bytes
    max_rows: int = Limits.max_rows
    metrics: bool = True
    access_log: bool = True
    drain: float = DEFAULT_DRAIN_SECONDS
    log: str | None = None
    log_sample_rate: float = 1.0
    log_flush_s: float = 1.0
    log_time_column: str | None = None
    online_store: str | None = None
    window_state: str | None = None
    explainer: str | None = None  # "module:function" answering `explain: true` (create_app's explainer), or None

    @classmethod
    def of(cls, sources: list[ModelSource], **options: Any) -> ServerConfig:
        models = []
        for source in sources:
            if not isinstance(source.source, (str, os.PathLike)):
                raise ModelLoadError(f"model '{source.name}': worker processes load bundles from folders or "
                                     "models:/ references, not from a loaded ServingFunction")
            models.append((source.name, str(source.source), source.version))
        from mlpatterns.serving.http.traffic_split import TrafficSplit

        split = {name: str(TrafficSplit.of(value)) for name, value in (options.pop("split", None) or {}).items()}
        return cls(tuple(models), split=split, **options)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServerConfig:
        values = json.loads(text)
        values["models"] = tuple(tuple(m) for m in values["models"])
        return cls(**values)

    def sources(self) -> list[ModelSource]:
        return [ModelSource(name, source, version) for name, source, version in self.models]

    def load(self) -> ServedModels:
        """Load and verify every version (each worker does; the parent once, to fail before forking)."""
        return ServedModels(self.sources(), registry=self.registry, labels=self.labels, split=self.split,
                            online_store=self.online_store, window_state=self.window_state)

    def explainer_function(self) -> Any:
        """The app's ``explainer`` option: None, or the function ``explainer`` names as ``module:function``.

        The configuration names it (each worker process imports it) so that the layer that
        starts the server chooses it, as ``mlpatterns serve`` does with Explainable
        Predictions' (29) ``explainer_for_serving``; serving itself depends on no explainer.
        """
        if self.explainer is None:
            return None
        module, _, name = self.explainer.partition(":")
        try:
            function = getattr(import_module(module), name)
        except (ImportError, AttributeError, ValueError) as error:
            raise ModelLoadError(f"explainer: {self.explainer!r} names no function ({error})") from None
        if not callable(function):
            raise ModelLoadError(f"explainer: {self.explainer!r} is not a function")
        return function

    def prediction_log(self) -> Any:
        """The app's ``prediction_log`` option: None, or a
        :class:`~mlpatterns.serving.http.prediction_logging.PredictionLogging` (checked here)."""
        if self.log is None:
            return None
        from mlpatterns.serving.http.prediction_logging import PredictionLogging

        try:
            return PredictionLogging(self.log, sample_rate=self.log_sample_rate, flush_interval_s=self.log_flush_s,
                                     time_column=self.log_time_column)
        except ValueError as error:
            raise ModelLoadError(f"prediction log: {error}") from None

    def app(self, served: ServedModels | None = None) -> Any:
        """The app of this configuration, on ``served`` (its owner closes it) or on versions it loads."""
        from mlpatterns.serving.http.app import create_app

        options: dict[str, Any] = {"reload_interval": self.reload_interval, "metrics": self.metrics,
                                   "token": token_from_file(self.token_file) if self.token_file else None,
                                   "limits": Limits(self.max_body_bytes, self.max_rows), "access_log": self.access_log,
                                   "drain": self.drain, "prediction_log": self.prediction_log(),
                                   "explainer": self.explainer_function()}
        if served is not None:
            return create_app(served, **options)
        return create_app(self.sources(), registry=self.registry, labels=self.labels, split=self.split,
                          online_store=self.online_store, window_state=self.window_state, **options)


def app_from_environment() -> Any:
    """The uvicorn factory of every worker: the app of the configuration in ``MLPATTERNS_SERVE_CONFIG``."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise ModelLoadError(f"${CONFIG_ENV} is not set: start the workers with run_server (mlpatterns serve --workers)")
    return ServerConfig.from_json(text).app()


@contextmanager
def _environment(config: ServerConfig) -> Iterator[Path]:
    """The configuration and a multiprocess metrics folder in the environment, for the workers' lifetime."""
    saved = {name: os.environ.get(name) for name in (CONFIG_ENV, MULTIPROCESS_ENV)}
    given = os.environ.get(MULTIPROCESS_ENV)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="mlpatterns-serve-metrics-"))
    os.environ[CONFIG_ENV] = config.to_json()
    os.environ[MULTIPROCESS_ENV] = str(folder)
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if not given:
            shutil.rmtree(folder, ignore_errors=True)


def _stopped(sig: int, frame: Any) -> None:
    raise SystemExit(STOPPED_STATUS)


@contextmanager
def _sigterm_exits_cleanly() -> Iterator[None]:
    """SIGTERM raises ``SystemExit(0)`` here, where it is not uvicorn's (main thread only).

    uvicorn installs its own handler while it serves (with several workers, its supervisor
    keeps its own) and restores this one when done; with one worker it then re-raises the
    SIGTERM it captured, which lands here once the graceful shutdown is over.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler not set from Python, left as it was
            signal.signal(signal.SIGTERM, previous)


def run_server(config: ServerConfig, *, host: str = "127.0.0.1", port: int = 8501, workers: int = 1,
               log_level: str = "info") -> None:
    """Load and verify everything once (a bad bundle stops the start here), then serve until stopped.

    One worker serves the app loaded here; several each build their own from the configuration.
    Stopped by SIGTERM (drained and shut down gracefully, or while loading), it raises
    ``SystemExit(0)`` in both modes (called from the main thread; elsewhere uvicorn installs no
    signal handlers). A second SIGTERM with one worker ends the drain at once and the graceful
    shutdown proceeds, also ending with 0; with several, the supervisor waits for its workers
    and passes no further signal on (docs/patterns/serving_reliability.md).
    """
    import uvicorn

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a whole number >= 1, got {workers!r}")
    with _sigterm_exits_cleanly():
        served = config.load()
        # the app's access log (model, version, rows, ms) in place of uvicorn's, on uvicorn's handler
        logs = {"log_level": log_level, "log_config": log_config(log_level), "access_log": False}
        if workers == 1:
            try:
                uvicorn.run(config.app(served), host=host, port=port, **logs)
            finally:
                served.close()
            return
        try:
            stateful = sorted({name for name in served.names for m in served.versions(name).values()
                               if getattr(m.online, "stateful", False)})
            if stateful:  # each worker would hold its own windows: answers would depend on the worker
                raise ModelLoadError(f"model(s) {stateful} compute window features over the requests served "
                                     f"(Windowed Inference, 24): serve them from one worker, not {workers}")
            if config.log is not None:  # a bad log stops the start here, before the workers (each opens its own)
                from mlpatterns.serving.http.prediction_logging import PredictionRecorder

                recorder = PredictionRecorder(config.prediction_log())
                try:
                    recorder.check_time_column([m for name in served.names for m in served.versions(name).values()])
                finally:
                    recorder.close()
        finally:
            served.close()
        with _environment(config):
            uvicorn.run(FACTORY, factory=True, workers=workers, host=host, port=port, **logs)


def log_config(log_level: str = "info") -> dict[str, Any]:
    """uvicorn's logging configuration plus the app's access log (:data:`~mlpatterns.serving.http.operations.ACCESS_LOGGER`,
    one line a request naming the model, version, rows and milliseconds) on uvicorn's default
    handler (stderr), shown from ``log_level`` "info" down; uvicorn's own access log is turned off."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    from mlpatterns.serving.http.operations import ACCESS_LOGGER

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"][ACCESS_LOGGER] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    return config
