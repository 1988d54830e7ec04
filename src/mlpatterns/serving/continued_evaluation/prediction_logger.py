"""Logging served predictions off the request path (Continued Model Evaluation, 18).

Problem: continued evaluation needs every prediction a model serves, but a server cannot
afford to encode JSON and write to a file or a database inside each request.

Solution: :meth:`PredictionLogger.log_rows` only samples the rows and puts references to
them in an in-memory buffer (about a microsecond for a request of one row); a daemon thread
turns the buffer into log rows (keys, JSON, event times) and writes them with one
:meth:`~mlpatterns.serving.continued_evaluation.prediction_log.PredictionLog.append` every
``flush_interval_s``. Loss is bounded and counted: a full buffer drops rows (``dropped_rows``)
rather than block a request, and a killed process loses at most the rows logged in the last
``flush_interval_s`` plus the time one append takes.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from mlpatterns.hashing import fingerprint64
from mlpatterns.reproducibility.split_keys import key_value_text
from mlpatterns.serving.continued_evaluation.prediction_log import (
    PredictionLog,
    PredictionLogError,
    label_text,
    open_prediction_log,
)
from mlpatterns.serving.serving_contract import json_value

__all__ = ["PredictionLogger"]

_LOG = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1)
_TWO_64 = float(2**64)
_PREDICTION = {"classification": "probability", "regression": "prediction"}
_LABELLED = ("classification", "multiclass")


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is not None and getattr(value, "ndim", 0):  # a NumPy array
        return tolist()
    value = json_value(value)  # NumPy scalars, NA and NaT
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return _finite(_json_default(value)) if type(value).__module__ != "builtins" else value


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)


def _encode(mapping: Mapping[str, Any]) -> str:
    """A row as compact JSON text, cells as :func:`~mlpatterns.serving.serving_contract.json_value` makes them
    (NaN and infinities as null, also inside lists)."""
    try:
        return _ENCODER.encode(mapping if type(mapping) is dict else dict(mapping))
    except ValueError:  # a NaN or an infinity: the slow path
        return _ENCODER.encode(_finite(dict(mapping)))


def _key_text(row: Mapping[str, Any], columns: Sequence[str]) -> str | None:
    """``row_key_text(row, columns, separator="|")`` for one row (None if a key column is missing)."""
    texts = []
    for column in columns:
        if column not in row:
            return None
        text = key_value_text(row[column])
        if text is None:
            return None
        texts.append(text.decode("utf-8", "backslashreplace") if isinstance(text, bytes) else text)
    return texts[0] if len(texts) == 1 else "|".join(texts)


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


def _label(value: Any) -> str | None:
    try:
        return label_text(value)
    except PredictionLogError:  # not a class (a list, say): no predicted label
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


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
        self._pending: list[tuple] = []  # encoded rows whose write failed, retried first
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
                 event_time_column: str | None = None) -> int:
        """Buffer one request's predictions: ``rows`` (the input rows as received) and ``outputs``
        (the outputs served for each); returns how many rows were kept (sampled, and room left).

        ``model``, ``version`` and ``source`` (``"http"`` or ``"batch"``) go to every row;
        ``key_columns`` name the key (``row_key_text(row, key_columns, separator="|")``); ``task``
        (``classification``, ``regression``, ``multiclass``, ``multilabel``) says which output is the
        ``prediction`` and the ``predicted_label``; ``event_time_column`` names an input column
        holding the time the prediction is about (else it is the time of serving).
        """
        served = time.time_ns()
        if type(model) is not str or type(version) is not str or type(source) is not str:
            name, value = next((n, v) for n, v in (("model", model), ("version", version), ("source", source))
                               if not isinstance(v, str))
            raise PredictionLogError(f"{name}: expected text, got {type(value).__name__} {value!r:.80}")
        if isinstance(key_columns, str):
            key_columns = (key_columns,)
        count = len(rows)
        if count != len(outputs):
            raise PredictionLogError(f"outputs: expected one per input row ({count}), got {len(outputs)}")
        keys = None
        if self.sample_rate < 1.0 and count:
            rows, outputs, keys = self._sample(rows, outputs, key_columns)
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
                key_columns: Sequence[str]) -> tuple[list, list, list | None]:
        rate = self.sample_rate
        if not key_columns:
            kept = [i for i in range(len(rows)) if random.random() < rate]
            keys = None
        else:
            all_keys = [_key_text(row, key_columns) for row in rows]
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

    def _rows(self, batch: list[tuple]) -> list[tuple]:
        rate = self.sample_rate
        out = []
        for served_ns, model, version, source, task, key_columns, time_column, rows, outputs, keys in batch:
            served_at = _EPOCH + dt.timedelta(microseconds=served_ns // 1000)
            prediction_name = _PREDICTION.get(task)
            labelled = task in _LABELLED
            for i, (row, output) in enumerate(zip(rows, outputs, strict=True)):
                key = keys[i] if keys is not None else (_key_text(row, key_columns) if key_columns else None)
                event_time = served_at
                if time_column is not None:
                    event_time = _event_time(row.get(time_column))
                    if event_time is None:
                        self.invalid_event_times += 1
                        event_time = served_at
                out.append((served_at, event_time, model, version, key, _encode(row), _encode(output),
                            _number(output.get(prediction_name)) if prediction_name else None,
                            _label(output.get("prediction")) if labelled else None, rate, source))
        return out

    def _flush(self) -> int:
        with self._flush_lock:
            with self._lock:
                batch, self._buffer, self._buffered = self._buffer, [], 0
            try:
                rows = self._rows(batch)
            except Exception:
                with self._lock:
                    self.dropped_rows += sum(len(entry[7]) for entry in batch)
                raise
            rows, self._pending = self._pending + rows, []
            if not rows:
                return 0
            try:
                self.log.append(rows)
            except PredictionLogError:  # refused (a closed log): writing again would not help
                with self._lock:
                    self.dropped_rows += len(rows)
                raise
            except Exception:
                with self._lock:
                    keep = max(self.max_buffer_rows - self._buffered, 0)
                    self.dropped_rows += max(len(rows) - keep, 0)
                self._pending = rows[len(rows) - keep:] if keep else []
                raise
            self.written_rows += len(rows)
            return len(rows)

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
        return self._buffered + len(self._pending)

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
