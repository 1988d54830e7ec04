"""Every prediction the HTTP server answers, in a prediction log (Continued Model Evaluation, 18).

Problem: a deployed model decays as the world drifts away from its training data, and
nobody can tell how much unless the predictions it served are kept, with their keys,
inputs, outputs, model version and time, to be joined with the ground truth that arrives
later. Writing them on the request path would add a disk write (or a database round trip)
to every answer.

Solution: :class:`PredictionRecorder`, which the app hands every answered request
(:attr:`ServedModels.on_answer <mlpatterns.serving.http.served_models.ServedModels>`).
It collects the request's rows (references) and its outputs (a small dict per row;
:class:`ColumnRows`, views built only when read, for large requests) and, once the answers
of this turn of the event loop are sent, hands them to a
:class:`~mlpatterns.serving.continued_evaluation.prediction_logger.PredictionLogger` in one
call per model version; the logger keeps them in memory and writes them from its own thread
every flush interval. The request path pays about 2-4 microseconds (flights, one row); the
JSON encoding and the write happen off it, in the flush thread. Each row is logged with the model and version that
answered it (a traffic split's rows with their own version's), ``source="http"``, and
its event time: the request's value of the configured time column (a replay), else the
time it was served. A logging failure never fails a request: it is counted
(``mlpatterns_prediction_log_failures`` on ``/metrics``) and logged once. The app's
shutdown closes the logger, which writes what it holds (a graceful stop loses nothing;
a crash loses at most the last flush interval). Each worker process logs on its own
(:mod:`~mlpatterns.serving.http.workers`): the log's backends take appends from several
processes at once.

Keys: a row's key is logged as the client sent it, the JSON values of the key columns made
text (``row_key_text(row, keys, separator="|")``: text as it is, an integer in digits). JSON
has no timestamp, so a timestamp key arrives as text and is logged as that very text; its
truth file joins when its key becomes the same text
(:func:`~mlpatterns.serving.continued_evaluation.ground_truth.read_ground_truth`): a CSV (read
as text) that writes it as the client does, a Parquet text column holding it, or a Parquet
timestamp column when the client sends ``CAST(ts AS STRING)``'s form, ``2013-07-01 05:00:00``
for a naive timestamp and ``2013-07-01 05:00:00+00`` for a time-zone-aware one (UTC), with
fractional seconds only when there are some. ISO 8601 text with a ``T`` or a ``Z``
(``2013-07-01T05:00:00``) joins only a truth key of that same text. (``mlpatterns predict
--log`` has the typed values, and logs a timestamp key as a Parquet timestamp truth gives it.)
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlpatterns.serving.http.model_sources import ModelLoadError

__all__ = ["ColumnRows", "PredictionLogging", "PredictionRecorder"]

_logger = logging.getLogger("mlpatterns.serving.http.prediction_log")
_EAGER_ROWS = 16  # requests of at most this many rows hand the logger their rows as plain dicts (see _log_rows)


@dataclass(frozen=True)
class PredictionLogging:
    """Where and how ``mlpatterns serve`` logs its predictions (``--log``, ``--log-sample-rate``,
    ``--log-flush-s``, ``--log-time-column``).

    ``log`` is a URL for :func:`~mlpatterns.serving.continued_evaluation.prediction_log.open_prediction_log`
    (a folder: Parquet files; ``sqlite:///PATH.db``; ``postgresql://...``), an open
    :class:`~mlpatterns.serving.continued_evaluation.prediction_log.PredictionLog`, or a
    :class:`~mlpatterns.serving.continued_evaluation.prediction_logger.PredictionLogger`
    (used as it is: its own rate and interval; flushed, not closed, at shutdown).
    ``sample_rate`` keeps that share of the predictions (by key hash when the model has
    keys, so a key is always in or always out); ``flush_interval_s`` is how often the
    buffered rows are written (a crash loses at most that much); ``time_column``, an input
    or key column of the served models, gives each row's event time (else the time served).
    """

    log: Any
    sample_rate: float = 1.0
    flush_interval_s: float = 1.0
    time_column: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, (int, float)) \
                or not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate: expected a share in (0, 1], got {self.sample_rate!r}")
        if isinstance(self.flush_interval_s, bool) or not isinstance(self.flush_interval_s, (int, float)) \
                or not 0 < self.flush_interval_s < float("inf"):
            raise ValueError(f"flush_interval_s: expected seconds > 0, got {self.flush_interval_s!r}")
        if self.time_column is not None and (not isinstance(self.time_column, str) or not self.time_column):
            raise ValueError(f"time_column: expected a column name, got {self.time_column!r}")

    @classmethod
    def of(cls, value: Any) -> PredictionLogging:
        """``value`` as options: itself, or the ``log`` of options with the defaults."""
        return value if isinstance(value, PredictionLogging) else cls(value)


class ColumnRows(Sequence[dict[str, Any]]):
    """Rows of a table held as columns (``{name: list}``), each built as a dict only when read.

    The answer of a request is columns; the prediction logger reads its rows in its flush
    thread, so the request path only makes this view (``names``: the columns each row
    holds; ``positions``: the rows, in order).
    """

    __slots__ = ("_columns", "_names", "_positions")

    def __init__(self, columns: Mapping[str, Sequence[Any]], names: Sequence[str], positions: Sequence[int]) -> None:
        self._columns, self._names, self._positions = columns, names, positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row, columns = self._positions[index], self._columns
        return {name: columns[name][row] for name in self._names}


class PredictionRecorder:
    """Hands the rows of every answered request to a prediction logger (see the module).

    ``options``: :class:`PredictionLogging` (or what :meth:`PredictionLogging.of` takes).
    The log is opened here, so that a bad URL stops the server before it starts
    (:class:`~mlpatterns.serving.http.model_sources.ModelLoadError` naming it); the logger
    and its flush thread start here too, and again by :meth:`start` after a :meth:`close`
    (an app's lifespan may run more than once). ``metrics``: the app's
    :class:`~mlpatterns.serving.http.operations.ServerMetrics` (failures and dropped rows are
    counted there), or None.

    Thread safety: called on the event loop; the logger's buffer takes a lock.
    """

    def __init__(self, options: Any, *, metrics: Any = None) -> None:
        from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger

        self.options = options = PredictionLogging.of(options)
        self.metrics = metrics
        self._lock = threading.Lock()
        self._failed = False
        self._dropped_seen = 0
        self._plans: dict[int, tuple[Any, ...]] = {}
        # the rows of the requests answered in this turn of the event loop, per model version: handed to the
        # logger in one call once the answers are sent (loop.call_soon)
        self._pending: dict[int, tuple[tuple[Any, ...], list[Any], list[Any], list[int]]] = {}
        self._scheduled = False
        given = options.log
        self._log: Any = None
        self._owns_log = False
        self._logger: Any = None
        if isinstance(given, PredictionLogger):
            self._owns_logger = False
            self._logger = given
            return
        self._owns_logger = True
        self._owns_log = isinstance(given, (str, os.PathLike))
        if not self._owns_log:
            self._log = given
        self.start()

    def _open(self) -> Any:
        from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

        url = os.fspath(self.options.log)
        try:
            return open_prediction_log(url)
        except Exception as error:  # noqa: BLE001 - any backend's refusal is a configuration error
            from mlpatterns.backends import redact_url

            raise ModelLoadError(f"prediction log {redact_url(url)!r} cannot be opened: {error}") from error

    @property
    def logger(self) -> Any:
        """The :class:`~mlpatterns.serving.continued_evaluation.prediction_logger.PredictionLogger` (None: closed)."""
        return self._logger

    def check_time_column(self, models: Sequence[Any]) -> None:
        """Refuse a time column that none of ``models`` (served models) takes as an input or key."""
        column = self.options.time_column
        if column is not None and not any(column in m.fields for m in models):
            fields = sorted({f for m in models for f in m.fields})
            raise ModelLoadError(f"prediction log: the time column {column!r} is not an input or key of any served "
                                 f"model; they take {fields}")

    def start(self) -> None:
        """Start a logger on the log (opening it from its URL), unless one runs (or the logger was given)."""
        with self._lock:
            if self._logger is None and self._owns_logger:
                from mlpatterns.serving.continued_evaluation.prediction_logger import (
                    PredictionLogger,
                )

                if self._log is None:
                    self._log = self._open()
                self._logger = PredictionLogger(self._log, flush_interval_s=float(self.options.flush_interval_s),
                                                sample_rate=float(self.options.sample_rate))

    def close(self) -> None:
        """Write every row held and stop the logger, and close the log opened here from a URL
        (a logger given is flushed, not closed; a log given is not closed)."""
        self._hand_over()
        with self._lock:
            logger, self._logger = self._logger, (None if self._owns_logger else self._logger)
            log, self._log = (self._log, None) if self._owns_log else (None, self._log)
        try:
            if logger is not None:
                logger.close() if self._owns_logger else logger.flush()
                self._count_dropped(logger)
            if log is not None:
                log.close()
        except Exception as error:  # noqa: BLE001 - a shutdown goes on; the failure is counted and logged
            self._failure(error)

    def __call__(self, route: Any, rows: Sequence[Mapping[str, Any]] | None,
                 columns: Mapping[str, Sequence[Any]] | None, count: int, answer: tuple[Any, Any]) -> None:
        """Log the ``count`` rows of one answered request (the arguments of ``Route.on_answer``); never raises."""
        logger = self._logger
        if logger is None or not count:
            return
        try:
            outputs, used = answer
            if used is None:
                self._log_rows(logger, route.model, rows, columns, outputs, range(count))
            else:  # a traffic split: each row with the version that answered it
                groups: dict[str, list[int]] = {}
                for position, version in enumerate(used):
                    groups.setdefault(version, []).append(position)
                for version, positions in groups.items():
                    self._log_rows(logger, route.versions[int(version)], rows, columns, outputs, positions)
        except Exception as error:  # noqa: BLE001 - logging never fails a request
            self._failure(error)

    def _later(self) -> None:
        """Hand the pending rows over once this turn of the event loop is done (now, outside a loop)."""
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._hand_over()
            return
        self._scheduled = True
        loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        """Give the logger the rows of the requests answered since the last call, one call per model version."""
        self._scheduled = False
        pending, self._pending = self._pending, {}
        logger = self._logger
        if logger is None or not pending:
            return
        for (_, name, version, keys, task, time_column, _), rows, outputs, requests in pending.values():
            try:
                logger.log_rows(model=name, version=version, source="http", rows=rows, outputs=outputs,
                                key_columns=keys, task=task, event_time_column=time_column)
            except Exception as error:  # noqa: BLE001 - logging never fails a request
                self._failure(error, len(requests))
        if logger.dropped_rows != self._dropped_seen:
            self._count_dropped(logger)

    def _plan(self, model: Any) -> tuple[Any, ...]:
        """What every request of ``model`` logs alike, read once: (model, name, version, keys, task, time column,
        fields)."""
        plan = self._plans.get(id(model))
        if plan is None or plan[0] is not model:  # a new model (a reload) may reuse a freed one's id
            column = self.options.time_column
            name, version = model.identity
            fields = tuple(model.fields)
            plan = (model, name, version, tuple(model.key_columns), model.task,
                    column if column is not None and column in fields else None, fields)
            self._plans[id(model)] = plan
        return plan

    def _log_rows(self, logger: Any, model: Any, rows: Sequence[Mapping[str, Any]] | None,
                  columns: Mapping[str, Sequence[Any]] | None, outputs: Mapping[str, Sequence[Any]],
                  positions: Sequence[int]) -> None:
        plan = self._plan(model)
        _, name, version, keys, task, time_column, fields = plan
        names = [output for output in outputs if output not in keys]
        if len(positions) <= _EAGER_ROWS:
            # Few rows (most requests): dicts of plain values, which the garbage collector does not track, in
            # the lists of this turn's requests of the model (the answer's column lists, or views over them,
            # held until the next flush, are tracked objects that every collection walks: measured about as
            # much again as the rest of the request path). The lists go to the logger after the answers.
            entry = self._pending.get(id(model))
            if entry is None or entry[0][0] is not model:
                entry = self._pending[id(model)] = (plan, [], [], [])
            _, held_rows, held_outputs, requests = entry
            held_outputs += [{n: outputs[n][i] for n in names} for i in positions]
            if rows is not None:
                held_rows += rows if isinstance(positions, range) else [rows[i] for i in positions]
            else:
                assert columns is not None
                held_rows += [{field: columns[field][i] for field in fields} for i in positions]
            requests.append(len(positions))
            self._later()
            return
        # many rows: views, so that the event loop builds nothing
        inputs = ColumnRows(columns, fields, positions) if rows is None else \
            (rows if isinstance(positions, range) else [rows[i] for i in positions])
        logger.log_rows(model=name, version=version, source="http", rows=inputs,
                        outputs=ColumnRows(outputs, names, positions), key_columns=keys, task=task,
                        event_time_column=time_column)
        if logger.dropped_rows != self._dropped_seen:
            self._count_dropped(logger)

    def _failure(self, error: Exception, requests: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.log_failures.inc(requests)
        if not self._failed:
            self._failed = True
            _logger.error("logging predictions failed (counted in mlpatterns_prediction_log_failures; "
                          "the requests are answered; logged once): %s: %s", type(error).__name__, error)

    def _count_dropped(self, logger: Any) -> None:
        dropped = int(getattr(logger, "dropped_rows", 0))
        if dropped > self._dropped_seen:
            if self.metrics is not None:
                self.metrics.log_dropped_rows.inc(dropped - self._dropped_seen)
            self._dropped_seen = dropped
