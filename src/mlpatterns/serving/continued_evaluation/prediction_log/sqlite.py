"""A prediction log in an SQLite file (Continued Model Evaluation, 18).

``sqlite:///predictions.db`` (relative) or ``sqlite:////srv/predictions.db`` (absolute). For
processes on one machine: the file uses write-ahead logging (readers never wait for a
writer), ``synchronous=NORMAL`` (a commit survives a killed process) and a busy timeout
(60 s), and each append is one ``BEGIN IMMEDIATE`` transaction with one ``executemany``, so
writers take turns and readers see whole appends. Tables ``mlpatterns_predictions``
(indexed on ``event_time`` and on ``key``) and ``mlpatterns_labels`` (one row per key: a new
label replaces the old one); times are stored as integer microseconds since 1970 (UTC).

Python's own :mod:`sqlite3` drives it rather than SQLAlchemy: two fixed tables need no
mapping, ``executemany`` reaches the driver without a layer in between, and the embedded log
then works without SQLAlchemy installed. SQLite's locks need a local disk: across machines
use the PostgreSQL backend.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from mlpatterns.backends import BackendURL, parse_url
from mlpatterns.serving.continued_evaluation.prediction_log._base import (
    LABEL_COLUMNS,
    PREDICTION_COLUMNS,
    LabelCounts,
    PredictionLog,
    PredictionLogError,
    arrow_table,
    utc_now,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["SQLitePredictionLog"]

TIMEOUT_S = 60.0
_EPOCH = dt.datetime(1970, 1, 1)
_US = dt.timedelta(microseconds=1)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS mlpatterns_predictions (
    id INTEGER PRIMARY KEY, served_at INTEGER NOT NULL, event_time INTEGER NOT NULL, model TEXT NOT NULL,
    version TEXT NOT NULL, key TEXT, inputs TEXT, outputs TEXT, prediction REAL, predicted_label TEXT,
    sample_rate REAL NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mlpatterns_predictions_event_time ON mlpatterns_predictions (event_time);
CREATE INDEX IF NOT EXISTS mlpatterns_predictions_key ON mlpatterns_predictions (key);
CREATE TABLE IF NOT EXISTS mlpatterns_labels (
    key TEXT PRIMARY KEY, label TEXT NOT NULL, labelled_at INTEGER NOT NULL, source TEXT NOT NULL) WITHOUT ROWID;
"""
_CHUNK = 500  # keys per "IN (...)" (SQLite allows 32,766 parameters)


def _micros(value: dt.datetime) -> int:
    return (value - _EPOCH) // _US


class SQLitePredictionLog(PredictionLog):
    """A prediction log in an SQLite file (see the module docstring)."""

    def __init__(self, url: str | BackendURL, *, timeout: float = TIMEOUT_S) -> None:
        parsed = parse_url(url)
        if parsed.scheme != "sqlite" or parsed.path is None or str(parsed.path) == ":memory:":
            raise PredictionLogError(f"prediction log: expected 'sqlite:///PATH.db', got {parsed.redacted()!r}")
        if parsed.query:
            raise PredictionLogError(f"prediction log: unknown option(s) {sorted(parsed.query)} in "
                                     f"{parsed.redacted()!r}; the SQLite log takes none")
        self.path = parsed.path.resolve()
        self.url = f"sqlite:///{self.path}"
        self.timeout = float(timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pid = -1
        self._connection: sqlite3.Connection | None = None
        with self._lock:
            self._connect()

    def _connect(self) -> sqlite3.Connection:
        """This process's connection (a forked child opens its own); call with the lock held."""
        if self._connection is None or self._pid != os.getpid():
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None,
                                         check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                connection.close()
                raise
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def _write(self, work: Any) -> Any:
        with self._lock:
            connection = self._connect()
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return result

    def _append(self, columns: dict[str, list[Any]], rows: int) -> None:
        micros: dict[dt.datetime, int] = {}  # the rows of a request share their times: each converted once
        for name in ("served_at", "event_time"):
            columns[name] = [micros[value] if value in micros else micros.setdefault(value, _micros(value))
                             for value in columns[name]]
        names = ", ".join(PREDICTION_COLUMNS)
        marks = ", ".join("?" * len(PREDICTION_COLUMNS))
        values = list(zip(*(columns[name] for name in PREDICTION_COLUMNS), strict=True))
        self._write(lambda c: c.executemany(f"INSERT INTO mlpatterns_predictions ({names}) VALUES ({marks})", values))

    def _add_labels(self, labels: dict[str, str], source: str) -> LabelCounts:
        def upsert(connection: sqlite3.Connection) -> LabelCounts:
            keys = list(labels)
            current: dict[str, str] = {}
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start:start + _CHUNK]
                current.update(connection.execute(
                    f"SELECT key, label FROM mlpatterns_labels WHERE key IN ({', '.join('?' * len(chunk))})",
                    chunk).fetchall())
            new = [(key, label) for key, label in labels.items() if current.get(key) != label]
            at = _micros(utc_now())
            connection.executemany(
                "INSERT INTO mlpatterns_labels (key, label, labelled_at, source) VALUES (?, ?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET label = excluded.label, labelled_at = excluded.labelled_at, source = excluded.source",
                [(key, label, at, source) for key, label in new])
            added = sum(key not in current for key, _ in new)
            return LabelCounts(added, len(new) - added, len(labels) - len(new))

        return self._write(upsert)

    def _read(self, query: str, parameters: list[Any]) -> list[tuple]:
        with self._lock:
            return self._connect().execute(query, parameters).fetchall()

    def _predictions(self, since: dt.datetime | None, until: dt.datetime | None) -> pa.Table:
        where, parameters = [], []
        if since is not None:
            where.append("event_time >= ?")
            parameters.append(_micros(since))
        if until is not None:
            where.append("event_time < ?")
            parameters.append(_micros(until))
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM mlpatterns_predictions{condition} ORDER BY id"
        return arrow_table(self._read(query, parameters), "predictions", micros=True)

    def _labels(self) -> pa.Table:
        rows = self._read(f"SELECT {', '.join(LABEL_COLUMNS)} FROM mlpatterns_labels", [])
        return arrow_table(rows, "labels", micros=True)

    def _close(self) -> None:
        with self._lock:
            if self._connection is not None and self._pid == os.getpid():
                self._connection.close()
            self._connection = None
