"""The SQLite online store (the embedded default): ``sqlite:///PATH.db``, stdlib :mod:`sqlite3`.

One table per feature view, ``fv_<view name>``: the join keys (the primary key,
``WITHOUT ROWID``), the event and created timestamps as integer microseconds since the
epoch (naive UTC), and the feature values of the row as one JSON object (floats incl. NaN,
ints, strings, bools, None and lists such as embeddings read back as they were written).
A write is an ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` whose guard keeps a stored row
that is newer by (event, created) timestamp; a batch is one transaction. The file is in WAL
mode, so readers in other processes are not blocked by a writer.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlpatterns.backends import BackendURL, parse_url
from mlpatterns.tables import quote_identifier

from ..definitions import FeatureView
from ._base import Key, OnlineStore, OnlineStoreError, Record

__all__ = ["SQLiteOnlineStore"]

_MIN = -(2**63)  # stands for a missing created timestamp: loses to any present one
_CHUNK = 400  # keys per SELECT (row values, well under SQLite's variable limit)


class SQLiteOnlineStore(OnlineStore):
    """An online store in one SQLite file (see the module docstring); ``timeout`` in seconds for locks."""

    def __init__(self, url: str | BackendURL, timeout: float = 30.0) -> None:
        super().__init__()
        parsed = parse_url(url)
        if parsed.scheme != "sqlite" or parsed.path is None or str(parsed.path) == ":memory:":
            raise OnlineStoreError(f"online store: expected 'sqlite:///PATH.db', got {parsed.redacted()!r}")
        if parsed.query:
            raise OnlineStoreError(f"online store: the SQLite backend takes no URL options, got "
                                   f"{sorted(parsed.query)} in {parsed.redacted()!r}")
        self.path = Path(parsed.path)
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=float(timeout), isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._checked: dict[str, tuple[str, ...]] = {}  # view name -> its table's key columns

    def _table(self, view: FeatureView, create: bool) -> str | None:
        """The view's table name after checking its keys; None if absent and not ``create``."""
        table = quote_identifier(f"fv_{view.name}")
        keys = self._checked.get(view.name)
        if keys is None:
            columns = [row[1] for row in self._con.execute(f"PRAGMA table_info({table})")]
            if not columns:
                if not create:
                    return None
                key_columns = ", ".join(quote_identifier(k) for k in view.join_keys)
                self._con.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} ({key_columns}, __mlp_ts INTEGER NOT NULL, "
                    f"__mlp_created INTEGER, __mlp_values TEXT NOT NULL, "
                    f"PRIMARY KEY ({key_columns})) WITHOUT ROWID"
                )
                columns = [*view.join_keys, "__mlp_ts", "__mlp_created", "__mlp_values"]
            keys = tuple(c for c in columns if not c.startswith("__mlp_"))
            self._checked[view.name] = keys
        if keys != tuple(view.join_keys):
            raise OnlineStoreError(f"online store {self.url!r}: FeatureView {view.name!r} has join keys "
                                   f"{list(view.join_keys)}, but its stored table has {list(keys)}")
        return table

    def _write_records(self, view: FeatureView, records: Sequence[Record]) -> None:
        table = self._table(view, create=True)
        keys = [quote_identifier(k) for k in view.join_keys]
        columns = ", ".join([*keys, "__mlp_ts", "__mlp_created", "__mlp_values"])
        marks = ", ".join("?" * (len(keys) + 3))
        sql = (
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            "__mlp_ts = excluded.__mlp_ts, __mlp_created = excluded.__mlp_created, "
            "__mlp_values = excluded.__mlp_values "
            f"WHERE excluded.__mlp_ts > {table}.__mlp_ts OR (excluded.__mlp_ts = {table}.__mlp_ts AND "
            f"coalesce(excluded.__mlp_created, {_MIN}) >= coalesce({table}.__mlp_created, {_MIN}))"
        )
        owner = f"online store {self.url!r}: FeatureView {view.name!r}"
        params = []
        for key, values, ts, created in records:
            try:
                text = json.dumps(values, allow_nan=True)
            except (TypeError, ValueError) as error:
                raise TypeError(f"{owner}: a feature value cannot be stored ({error}); values must be "
                                "numbers, strings, bools, None or lists of them") from None
            params.append((*key, ts, created, text))
        try:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(sql, params)
            self._con.execute("COMMIT")
        except BaseException:
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
            raise

    def _read_records(self, view: FeatureView, keys: Sequence[Key]) -> list[tuple[dict[str, Any], int] | None]:
        table = self._table(view, create=False)
        if table is None:
            return [None] * len(keys)
        names = [quote_identifier(k) for k in view.join_keys]
        if len(keys) == 1:  # the serving path: one primary-key lookup
            where = " AND ".join(f"{n} = ?" for n in names)
            row = self._con.execute(f"SELECT __mlp_values, __mlp_ts FROM {table} WHERE {where}", keys[0]).fetchone()
            return [None if row is None else (json.loads(row[0]), row[1])]
        found: dict[Key, tuple[dict[str, Any], int]] = {}
        width = len(names)
        target = f"({', '.join(names)})" if width > 1 else names[0]
        distinct = list(dict.fromkeys(keys))
        for start in range(0, len(distinct), _CHUNK):
            chunk = distinct[start:start + _CHUNK]
            values = ", ".join([f"({', '.join('?' * width)})"] * len(chunk))
            sql = (f"SELECT {', '.join(names)}, __mlp_values, __mlp_ts FROM {table} "
                   f"WHERE {target} IN (VALUES {values})")
            for row in self._con.execute(sql, [v for key in chunk for v in key]):
                found[tuple(row[:width])] = (json.loads(row[width]), row[width + 1])
        return [found.get(key) for key in keys]

    def _close(self) -> None:
        self._con.close()
