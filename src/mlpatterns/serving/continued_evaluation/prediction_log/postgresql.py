"""A prediction log in PostgreSQL, for servers on several machines (Continued Model Evaluation, 18).

``postgresql+psycopg://USER:PASSWORD@HOST/DATABASE`` (``postgresql://`` is read as psycopg 3,
which ``mlpatterns[registry]`` installs); query parameters go to psycopg
(``?options=-csearch_path%3Dmonitoring`` picks a schema). The tables are
``mlpatterns_predictions`` (indexed on ``event_time`` and on ``key``) and
``mlpatterns_labels`` (primary key ``key``: a new label replaces the old one), in the
connection's schema; processes creating them at once take an advisory lock.

Each append is one transaction with one ``COPY ... FROM STDIN``, so readers see whole appends
and any number of processes append at once. :meth:`add_labels` is one ``INSERT ... ON CONFLICT
DO UPDATE ... WHERE the label differs RETURNING (xmax = 0)``: returned rows are the added
(inserted) and changed (updated) keys, the rest were unchanged.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

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

__all__ = ["PostgresPredictionLog"]

_SCHEMA_LOCK = 0x6D6C7070_72656431  # "mlppred1": the advisory lock taken while creating the tables
_SCHEMA = """
CREATE TABLE IF NOT EXISTS mlpatterns_predictions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, served_at TIMESTAMP NOT NULL, event_time TIMESTAMP NOT NULL,
    model TEXT NOT NULL, version TEXT NOT NULL, key TEXT, inputs TEXT, outputs TEXT, prediction DOUBLE PRECISION,
    predicted_label TEXT, sample_rate DOUBLE PRECISION NOT NULL, source TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS mlpatterns_predictions_event_time ON mlpatterns_predictions (event_time);
CREATE INDEX IF NOT EXISTS mlpatterns_predictions_key ON mlpatterns_predictions (key);
CREATE TABLE IF NOT EXISTS mlpatterns_labels (
    key TEXT PRIMARY KEY, label TEXT NOT NULL, labelled_at TIMESTAMP NOT NULL, source TEXT NOT NULL)
"""
_UPSERT = """
INSERT INTO mlpatterns_labels AS old (key, label, labelled_at, source)
SELECT k, l, %(at)s, %(source)s FROM unnest(%(keys)s::text[], %(labels)s::text[]) AS t (k, l)
ON CONFLICT (key) DO UPDATE SET label = EXCLUDED.label, labelled_at = EXCLUDED.labelled_at, source = EXCLUDED.source
WHERE old.label IS DISTINCT FROM EXCLUDED.label
RETURNING (xmax = 0) AS inserted
"""


class PostgresPredictionLog(PredictionLog):
    """A prediction log in a PostgreSQL database (see the module docstring)."""

    def __init__(self, url: str | BackendURL, *, engine_kwargs: dict[str, Any] | None = None) -> None:
        parsed = parse_url(url)
        if parsed.scheme != "postgresql":
            raise PredictionLogError(f"prediction log: expected 'postgresql+psycopg://...', got {parsed.redacted()!r}")
        if parsed.driver not in (None, "psycopg"):
            raise PredictionLogError(f"prediction log: expected the psycopg driver (postgresql+psycopg://), got "
                                     f"{parsed.redacted()!r}")
        self.url = parsed.text if parsed.driver else "postgresql+psycopg://" + parsed.text.split("://", 1)[1]
        self._engine = sa.create_engine(self.url, **{"pool_pre_ping": True, **(engine_kwargs or {})})
        self._pid = os.getpid()
        with self._begin() as connection:
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.exec_driver_sql(statement)

    def _begin(self) -> Any:
        if self._pid != os.getpid():  # a forked child must not share the parent's connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        return self._engine.begin()

    def _append(self, columns: dict[str, list[Any]], rows: int) -> None:
        statement = f"COPY mlpatterns_predictions ({', '.join(PREDICTION_COLUMNS)}) FROM STDIN"
        with self._begin() as connection:
            driver = connection.connection.driver_connection
            with driver.cursor() as cursor, cursor.copy(statement) as copy:
                for row in zip(*(columns[name] for name in PREDICTION_COLUMNS), strict=True):
                    copy.write_row(row)

    def _add_labels(self, labels: dict[str, str], source: str) -> LabelCounts:
        with self._begin() as connection:
            inserted = [row[0] for row in connection.exec_driver_sql(
                _UPSERT, {"at": utc_now(), "source": source, "keys": list(labels), "labels": list(labels.values())})]
        added = sum(inserted)
        return LabelCounts(added, len(inserted) - added, len(labels) - len(inserted))

    def _select(self, query: str, parameters: dict[str, Any]) -> list[tuple]:
        with self._begin() as connection:
            return [tuple(row) for row in connection.exec_driver_sql(query, parameters)]

    def _predictions(self, since: dt.datetime | None, until: dt.datetime | None) -> pa.Table:
        where = [test for test, bound in (("event_time >= %(since)s", since), ("event_time < %(until)s", until))
                 if bound is not None]
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {', '.join(PREDICTION_COLUMNS)} FROM mlpatterns_predictions{condition} ORDER BY id"
        return arrow_table(self._select(query, {"since": since, "until": until}), "predictions", micros=False)

    def _labels(self) -> pa.Table:
        rows = self._select(f"SELECT {', '.join(LABEL_COLUMNS)} FROM mlpatterns_labels", {})
        return arrow_table(rows, "labels", micros=False)

    def _close(self) -> None:
        self._engine.dispose()
