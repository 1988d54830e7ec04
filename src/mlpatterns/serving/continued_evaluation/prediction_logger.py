"""Logging served predictions off the request path (Continued Model Evaluation, 18).

Problem: continued evaluation needs every prediction a model serves, but a server cannot
afford to encode JSON and write to a file or a database inside each request.

Solution: :meth:`PredictionLogger.log_rows` only samples the rows and puts references to
them in an in-memory buffer (about a microsecond for a request of one row); a daemon thread
turns the buffer into log columns (keys, JSON, event times; a column at a time, by
:mod:`~mlpatterns.serving.continued_evaluation.prediction_log_encoding`, about three times
quicker than a row at a time, pausing every ``_CHUNK`` rows so that a long flush does not hold
the server's event loop) and writes them with one
:meth:`~mlpatterns.serving.continued_evaluation.prediction_log.PredictionLog.append_columns`
every ``flush_interval_s``. Loss is bounded and counted: a full buffer drops rows (``dropped_rows``)
rather than block a request, and a killed process loses at most the rows logged in the last
``flush_interval_s`` plus the time one append takes.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import random
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from mlpatterns.hashing import fingerprint64
from mlpatterns.serving.continued_evaluation.prediction_log import (
    PREDICTION_COLUMNS,
    PredictionLog,
    PredictionLogError,
    open_prediction_log,
)
from mlpatterns.serving.continued_evaluation.prediction_log_encoding import (
    columns_of,
    encode_rows,
    key_text,
    key_texts,
    label_texts,
    numbers,
)

__all__ = ["PredictionLogger"]

_LOG = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1)
_TWO_64 = float(2**64)
_PREDICTION = {"classification": "probability", "regression": "prediction"}
_LABELLED = ("classification", "multiclass")
_CHUNK = 512  # rows encoded between two pauses of the flush thread


def _event_time(value: Any) -> dt.datetime | None:
    """A naive UTC datetime from a datetime, a date or ISO 8601 text; None when there is none."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, dt.datetime):
        if value != value:  # pandas NaT
            return None
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                           value.microsecond)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return None


def _output(name: str, named: dict[str, Sequence[Any]] | None, outputs: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
    """The output ``name`` of each row (None where a row has none); ``named``: the outputs as columns, if known."""
    if named is not None:
        return named.get(name) or [None] * len(outputs)
    return [output.get(name) for output in outputs]


class PredictionLogger:
    """Buffers served predictions and writes them to a prediction log from a background thread.

    Parameters
    ----------
    log : PredictionLog or str
        The log, or its URL (then the logger opens it and closes it on :meth:`close`).
    flush_interval_s : float
        How often the background thread writes the buffer (one ``append`` per flush).
    max_buffer_rows : int
        Rows the buffer holds at most; rows beyond it are dropped and counted in
        ``dropped_rows``, so a slow log never blocks a request.
    sample_rate : float
        The share of rows kept, in (0, 1]. With key columns a row is kept when its key's
        FarmHash Fingerprint64 falls below the rate (a key is always in or always out, and a
        key kept at a rate is kept at every higher rate); without, at random.

    Attributes
    ----------
    written_rows, dropped_rows, sampled_out_rows, invalid_event_times : int
        Rows written to the log; dropped (buffer full, or a failed write that did not fit
        back); left out by sampling; whose event time column held no time (they take
        ``served_at``).

    Notes
    -----
    Guarantees: rows are in the log after :meth:`flush` returns; :meth:`close` writes every
    buffered row (graceful shutdown loses nothing; it also runs at interpreter exit); a process
    killed without warning loses at most the rows logged in the last ``flush_interval_s`` plus
    the time one append takes. A write that fails is retried at the next flush (and raised by
    an explicit :meth:`flush`). The rows and outputs passed to :meth:`log_rows` are kept by
    reference until the next flush: do not change them after the call. Create the logger in
    the process that logs (after a server forks its workers).
    """

    def __init__(self, log: PredictionLog | str, *, flush_interval_s: float = 1.0, max_buffer_rows: int = 100_000,
                 sample_rate: float = 1.0) -> None:
        for name, value, low in (("flush_interval_s", flush_interval_s, 0.0), ("max_buffer_rows", max_buffer_rows, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > low:
                raise PredictionLogError(f"{name}: expected a number > {low}, got {value!r}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not 0 < sample_rate <= 1:
            raise PredictionLogError(f"sample_rate: expected a number in (0, 1], got {sample_rate!r}")
        self._owns_log = not isinstance(log, PredictionLog)
        self.log = open_prediction_log(log)
        self.flush_interval_s = float(flush_interval_s)
        self.max_buffer_rows = int(max_buffer_rows)
        self.sample_rate = float(sample_rate)
        self.written_rows = self.dropped_rows = self.sampled_out_rows = self.invalid_event_times = 0
        self._buffer: list[tuple] = []
        self._buffered = 0
        self._pending: dict[str, list[Any]] | None = None  # encoded columns whose write failed, retried first
        self._lock = threading.Lock()  # the buffer
        self._flush_lock = threading.Lock()  # one append at a time, in order
        self._closed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlpatterns-prediction-logger", daemon=True)
        self._thread.start()
        self._atexit = _closer(weakref.ref(self))
        atexit.register(self._atexit)

    # -- the request path ---------------------------------------------------------------------------
    def log_rows(self, *, model: str, version: str, source: str, rows: Sequence[Mapping[str, Any]],
                 outputs: Sequence[Mapping[str, Any]], key_columns: Sequence[str] = (), task: str,
                 event_time_column: str | None = None, keys: Sequence[str | None] | None = None) -> int:
        """Buffer one request's predictions: ``rows`` (the input rows as received) and ``outputs``
        (the outputs served for each); returns how many rows were kept (sampled, and room left).

        ``model``, ``version`` and ``source`` (``"http"`` or ``"batch"``) go to every row;
        ``key_columns`` name the key (``row_key_text(row, key_columns, separator="|")``); ``task``
        (``classification``, ``regression``, ``multiclass``, ``multilabel``) says which output is the
        ``prediction`` and the ``predicted_label``; ``event_time_column`` names an input column
        holding the time the prediction is about (else it is the time of serving). ``keys``, one per
        row, are the key texts already made (from the typed values, where ``rows`` hold them as JSON
        values: a timestamp's ISO text would not be the text a truth file's timestamp gives); else
        they are made from ``rows``.
        """
        served = time.time_ns()
        if type(model) is not str or type(version) is not str or type(source) is not str:
            name, value = next((n, v) for n, v in (("model", model), ("version", version), ("source", source))
                               if not isinstance(v, str))
            raise PredictionLogError(f"{name}: expected text, got {type(value).__name__} {value!r:.80}")
        if type(key_columns) is not tuple:
            key_columns = (key_columns,) if isinstance(key_columns, str) else tuple(key_columns)
        count = len(rows)
        if count != len(outputs):
            raise PredictionLogError(f"outputs: expected one per input row ({count}), got {len(outputs)}")
        if keys is not None:
            keys = list(keys)
            if len(keys) != count:
                raise PredictionLogError(f"keys: expected one per input row ({count}), got {len(keys)}")
        if self.sample_rate < 1.0 and count:
            rows, outputs, keys = self._sample(rows, outputs, key_columns, keys)
            count = len(rows)
        with self._lock:
            if self._closed:
                raise PredictionLogError("prediction logger: log_rows after close(); the logger is closed")
            room = self.max_buffer_rows - self._buffered
            if count > room:
                self.dropped_rows += count - room
                count = max(room, 0)
                rows, outputs = rows[:count], outputs[:count]
                keys = None if keys is None else keys[:count]
            if count:
                self._buffer.append((served, model, version, source, task, key_columns, event_time_column,
                                     rows, outputs, keys))
                self._buffered += count
        return count

    def _sample(self, rows: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]],
                key_columns: Sequence[str], given: list[str | None] | None = None) -> tuple[list, list, list | None]:
        rate = self.sample_rate
        if not key_columns and given is None:
            kept = [i for i in range(len(rows)) if random.random() < rate]
            keys = None
        else:
            all_keys = given if given is not None else [key_text(row, key_columns) for row in rows]
            kept = [i for i, key in enumerate(all_keys)
                    if (random.random() < rate if key is None else (fingerprint64(key) % 2**64) / _TWO_64 < rate)]
            keys = [all_keys[i] for i in kept]
        with self._lock:
            self.sampled_out_rows += len(rows) - len(kept)
        return [rows[i] for i in kept], [outputs[i] for i in kept], keys

    # -- the flush thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self._flush()
            except Exception:  # kept for the next flush; the thread goes on
                _LOG.exception("prediction logger: writing to %r failed; retrying at the next flush", self.log)

    def _columns(self, batch: list[tuple]) -> dict[str, list[Any]]:
        """The buffered requests as log columns: the requests of one model version (and source, task, key
        and time column) together, each of their columns encoded at once (:mod:`.prediction_log_encoding`),
        in chunks of ``_CHUNK`` rows with a pause between them, so that the server's threads get the
        interpreter while a long buffer is encoded."""
        groups: dict[tuple, list] = {}
        for served_ns, model, version, source, task, key_columns, time_column, rows, outputs, keys in batch:
            group = groups.get((model, version, source, task, key_columns, time_column))
            if group is None:
                group = groups[(model, version, source, task, key_columns, time_column)] = [[], [], [], None]
            group[0] += [_EPOCH + dt.timedelta(microseconds=served_ns // 1000)] * len(rows)
            # keys are known when sampling chose rows by them, or when given; else made at encoding
            if keys is not None and group[3] is None and group[1]:  # made now for the requests before
                group[3] = key_texts(group[1], key_columns) if key_columns else [None] * len(group[1])
            elif keys is None and group[3] is not None:
                keys = key_texts(rows, key_columns) if key_columns else [None] * len(rows)
            group[1] += rows
            group[2] += outputs
            if keys is not None:
                if group[3] is None:
                    group[3] = list(keys)
                else:
                    group[3] += keys
        columns: dict[str, list[Any]] = {name: [] for name in PREDICTION_COLUMNS}
        rate = self.sample_rate
        for (model, version, source, task, key_columns, time_column), (served, rows, outputs, keys) in groups.items():
            prediction_name = _PREDICTION.get(task)
            for start in range(0, len(rows), _CHUNK):
                if start:
                    time.sleep(0)  # let the event loop run between chunks
                stop = start + _CHUNK
                chunk_rows, chunk_outputs, count = rows[start:stop], outputs[start:stop], len(served[start:stop])
                served_at = served[start:stop]
                event_time = served_at
                if time_column is not None:
                    event_time = [_event_time(row.get(time_column)) for row in chunk_rows]
                    missing = event_time.count(None)
                    if missing:
                        self.invalid_event_times += missing
                        event_time = [e if e is not None else s for e, s in zip(event_time, served_at, strict=True)]
                input_columns = columns_of(chunk_rows)
                if keys is not None:
                    chunk_keys = keys[start:stop]
                elif key_columns:
                    chunk_keys = key_texts(chunk_rows, key_columns, input_columns)
                else:
                    chunk_keys = [None] * count
                output_columns = columns_of(chunk_outputs)
                named = dict(zip(*output_columns, strict=True)) if output_columns else None
                for name, values in (
                        ("served_at", served_at), ("event_time", event_time), ("model", [model] * count),
                        ("version", [version] * count), ("key", chunk_keys),
                        ("inputs", encode_rows(chunk_rows, input_columns)),
                        ("outputs", encode_rows(chunk_outputs, output_columns)),
                        ("prediction", numbers(_output(prediction_name, named, chunk_outputs))
                         if prediction_name else [None] * count),
                        ("predicted_label", label_texts(_output("prediction", named, chunk_outputs))
                         if task in _LABELLED else [None] * count),
                        ("sample_rate", [rate] * count), ("source", [source] * count)):
                    columns[name] += values
        return columns

    def _flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                batch, self._buffer, self._buffered = self._buffer, [], 0
            try:
                columns = self._columns(batch) if batch else None
            except Exception:
                with self._lock:
                    self.dropped_rows += sum(len(entry[7]) for entry in batch)
                raise
            pending, self._pending = self._pending, None
            if pending is not None:
                columns = pending if columns is None else {name: pending[name] + columns[name] for name in pending}
            count = 0 if columns is None else len(columns["served_at"])
            if not count:
                return 0
            try:
                self.log.append_columns(columns)
            except PredictionLogError:  # refused (a closed log): writing again would not help
                with self._lock:
                    self.dropped_rows += count
                raise
            except Exception:
                with self._lock:
                    keep = min(max(self.max_buffer_rows - self._buffered, 0), count)
                    self.dropped_rows += count - keep
                if keep:
                    self._pending = {name: values[count - keep:] for name, values in columns.items()}
                raise
            self.written_rows += count
            return count

    def flush(self) -> int:
        """Write the buffered rows now; returns how many were written. A failed write raises
        (its rows are kept for the next flush, as far as the buffer has room)."""
        return self._flush()

    def close(self) -> None:
        """Stop the thread and write every buffered row; the logger then refuses rows. Closing twice
        is harmless. Closes the log too when the logger opened it from a URL."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        atexit.unregister(self._atexit)
        try:
            self._flush()
        finally:
            if self._owns_log:
                self.log.close()

    @property
    def buffered_rows(self) -> int:
        """Rows waiting for the next flush."""
        return self._buffered + (0 if self._pending is None else len(self._pending["served_at"]))

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"PredictionLogger({self.log!r}, flush_interval_s={self.flush_interval_s}, "
                f"sample_rate={self.sample_rate}, written_rows={self.written_rows}, dropped_rows={self.dropped_rows})")


def _closer(ref: weakref.ref) -> Any:
    def close() -> None:
        logger = ref()
        if logger is not None:
            logger.close()

    return close
