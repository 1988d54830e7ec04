"""The SQLite online store (the embedded default): ``sqlite:///PATH.db``, stdlib :mod:`sqlite3`.

One table per feature view, ``fv_<view name>``: the join keys (the primary key,
``WITHOUT ROWID``), the event and created timestamps as integer microseconds since the
epoch (naive UTC), ``__mlp_encoded`` and one untyped column per feature, so that a serving
read is one primary-key lookup whose row is the values themselves. Ints (64-bit), floats
and strings are stored as SQLite values; a list of floats (an embedding) as a BLOB of
little-endian float64s; a value SQLite would change (NaN, which it stores as NULL; a
bool, which it stores as an int; a larger int) or cannot hold (other lists) as JSON text.
The features stored those last two ways are named in ``__mlp_encoded`` (a JSON list of
names), so every value reads back as it was written. A feature column is named after the
feature, each ASCII capital ``C`` written ``^c`` (SQLite's column names ignore case); a
view that gains a feature gets a column added; a write replaces the whole row (a feature
the writing view lacks is set to NULL).

A write is an ``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` whose guard keeps a stored row
that is newer by (event, created) timestamp; a batch is one transaction. The file is in WAL
mode, so readers in other processes are not blocked by a writer.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from array import array
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
_INTERNAL = ("__mlp_ts", "__mlp_created", "__mlp_encoded")
_BIG_ENDIAN = sys.byteorder == "big"  # packed floats are little-endian in the file
_NATIVE = frozenset({str, float, int})  # stored as SQLite values (floats other than NaN, ints in 64 bits)


def feature_column(feature: str) -> str:
    """The column that holds ``feature``: its name with each ASCII capital ``C`` as ``^c``.

    >>> feature_column("temp"), feature_column("Temp")
    ('temp', '^temp')
    """
    return "".join(f"^{c.lower()}" if "A" <= c <= "Z" else c for c in feature)


class _ReadPlan:
    """The SELECTs of one view on one connection (built once, see SQLiteOnlineStore._read_plan)."""

    __slots__ = ("features", "many", "one", "width")

    def __init__(self, one: str, many: str, features: tuple[str, ...], width: int) -> None:
        self.one, self.many, self.features, self.width = one, many, features, width


class SQLiteOnlineStore(OnlineStore):
    """An online store in one SQLite file (see the module docstring); ``timeout`` in seconds for locks.

    ``create=False`` refuses a file that does not exist (a reader such as a server: an empty
    store would answer nulls), instead of creating it.
    """

    def __init__(self, url: str | BackendURL, timeout: float = 30.0, create: bool = True) -> None:
        super().__init__()
        parsed = parse_url(url)
        if parsed.scheme != "sqlite" or parsed.path is None or str(parsed.path) == ":memory:":
            raise OnlineStoreError(f"online store: expected 'sqlite:///PATH.db', got {parsed.redacted()!r}")
        if parsed.query:
            raise OnlineStoreError(f"online store: the SQLite backend takes no URL options, got "
                                   f"{sorted(parsed.query)} in {parsed.redacted()!r}")
        self.path = Path(parsed.path)
        self.url = f"sqlite:///{self.path}"
        if not create and not self.path.is_file():
            raise OnlineStoreError(f"no online store at {self.path}: materialize the features first "
                                   "(mlpatterns features materialize REPOSITORY)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(self.path, timeout=float(timeout), isolation_level=None,
                                    check_same_thread=False)  # closed by whichever thread closes the store
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=NORMAL")
        self._plans: dict[FeatureView, _ReadPlan] = {}
        self._cursor = self._con.cursor()  # reused by the serving path (a new cursor per call costs more)

    # -- the table -------------------------------------------------------------------------
    def _columns(self, view: FeatureView, table: str) -> list[str]:
        """The columns of the view's table ([] if it has none) after checking its join keys and layout."""
        columns = [row[1] for row in self._con.execute(f"PRAGMA table_info({table})")]
        if not columns:
            return columns
        if "__mlp_values" in columns or "__mlp_encoded" not in columns:
            raise OnlineStoreError(f"online store {self.url!r}: the table of FeatureView {view.name!r} has the "
                                   "layout of an earlier version (one JSON text per row), or is not an online "
                                   "store's; drop it and materialize the view again")
        keys = columns[:columns.index("__mlp_ts")]
        if keys != list(view.join_keys):
            raise OnlineStoreError(f"online store {self.url!r}: FeatureView {view.name!r} has join keys "
                                   f"{list(view.join_keys)}, but its stored table has {keys}")
        return columns

    def _read_plan(self, view: FeatureView) -> _ReadPlan | None:
        """The view's SELECTs, remembered per view; None while its table does not exist."""
        table = quote_identifier(f"fv_{view.name}")
        columns = self._columns(view, table)
        if not columns:
            return None
        present = set(columns)
        selected = [quote_identifier(c) if c in present else "NULL"
                    for c in map(feature_column, view.features)]
        values = ", ".join([*selected, "__mlp_ts", "__mlp_encoded"])
        names = [quote_identifier(k) for k in view.join_keys]
        where = " AND ".join(f"{n} = ?" for n in names)
        target = f"({', '.join(names)})" if len(names) > 1 else names[0]
        plan = _ReadPlan(f"SELECT {values} FROM {table} WHERE {where}",
                         f"SELECT {', '.join(names)}, {values} FROM {table} WHERE {target} IN (VALUES ",
                         tuple(view.features), len(names))
        if "NULL" not in selected:  # a column another process may add later is looked up again
            if len(self._plans) >= 256:
                self._plans.clear()
            self._plans[view] = plan
        return plan

    # -- the primitives ----------------------------------------------------------------------
    def _write_records(self, view: FeatureView, records: Sequence[Record]) -> None:
        owner = f"online store {self.url!r}: FeatureView {view.name!r}"
        features = view.features
        params = []
        for key, values, ts, created in records:
            row: list[Any] = [*key, ts, created, None]
            coded = []
            for name in features:
                value = values[name]
                kind = type(value)
                if value is None or (kind in _NATIVE and (
                        kind is str or (value == value if kind is float else _MIN <= value < 2**63))):
                    row.append(value)
                    continue
                try:
                    if kind is list and value and all(type(v) is float for v in value):
                        row.append(_pack(value))  # an embedding: 8 bytes a float, decoded in ~0.1 µs
                    else:
                        row.append(json.dumps(value, allow_nan=True))
                except (TypeError, ValueError) as error:
                    raise TypeError(f"{owner}: a feature value cannot be stored ({error}); values must be "
                                    "numbers, strings, bools, None or lists of them") from None
                coded.append(name)
            if coded:
                row[len(key) + 2] = json.dumps(coded)
            params.append(row)
        table = quote_identifier(f"fv_{view.name}")
        own = [feature_column(f) for f in features]
        try:
            self._con.execute("BEGIN IMMEDIATE")
            columns = self._columns(view, table)
            keys = ", ".join(quote_identifier(k) for k in view.join_keys)
            if not columns:
                self._con.execute(f"CREATE TABLE {table} ({keys}, __mlp_ts INTEGER NOT NULL, __mlp_created INTEGER, "
                                  f"__mlp_encoded TEXT, {', '.join(map(quote_identifier, own))}, "
                                  f"PRIMARY KEY ({keys})) WITHOUT ROWID")
                columns = [*view.join_keys, *_INTERNAL, *own]
            added = [c for c in own if c not in columns]
            for column in added:
                self._con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_identifier(column)}")
            others = [c for c in columns[len(view.join_keys) + len(_INTERNAL):] if c not in own]
            updates = [f"{c} = excluded.{c}" for c in [*_INTERNAL, *map(quote_identifier, own)]]
            updates += [f"{quote_identifier(c)} = NULL" for c in others]  # the whole row is replaced
            names = ", ".join([keys, *_INTERNAL, *map(quote_identifier, own)])
            self._con.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(params[0]))}) "
                f"ON CONFLICT ({keys}) DO UPDATE SET {', '.join(updates)} "
                f"WHERE excluded.__mlp_ts > {table}.__mlp_ts OR (excluded.__mlp_ts = {table}.__mlp_ts AND "
                f"coalesce(excluded.__mlp_created, {_MIN}) >= coalesce({table}.__mlp_created, {_MIN}))",
                params)
            self._con.execute("COMMIT")
        except BaseException:
            if self._con.in_transaction:
                self._con.execute("ROLLBACK")
            raise

    def _read_one(self, view: FeatureView, key: Key) -> tuple[dict[str, Any], int] | None:
        """The serving path: one primary-key lookup of a prepared (and cached) statement."""
        plan = self._plans.get(view) or self._read_plan(view)
        if plan is None:
            return None
        row = self._cursor.execute(plan.one, key).fetchone()
        if row is None:
            return None
        values = dict(zip(plan.features, row, strict=False))  # row ends with ts, json
        if row[-1] is not None:
            _decode(values, row[-1])
        return values, row[-2]

    def _read_records(self, view: FeatureView, keys: Sequence[Key]) -> list[tuple[dict[str, Any], int] | None]:
        plan = self._plans.get(view) or self._read_plan(view)
        if plan is None:
            return [None] * len(keys)
        if len(keys) == 1:
            return [self._read_one(view, keys[0])]
        width = plan.width
        found: dict[Key, tuple[tuple[Any, ...], int]] = {}
        distinct = list(dict.fromkeys(keys))
        marks = f"({', '.join('?' * width)})"
        for start in range(0, len(distinct), _CHUNK):
            chunk = distinct[start:start + _CHUNK]
            sql = f"{plan.many}{', '.join([marks] * len(chunk))})"
            for row in self._con.execute(sql, [v for key in chunk for v in key]):
                found[tuple(row[:width])] = row[width:]
        result: list[tuple[dict[str, Any], int] | None] = []
        for key in keys:
            row = found.get(key)
            if row is None:
                result.append(None)
                continue
            values = dict(zip(plan.features, row, strict=False))  # row ends with ts, json
            if row[-1] is not None:
                _decode(values, row[-1])
            result.append((values, row[-2]))
        return result

    def _close(self) -> None:
        self._con.close()


def _pack(floats: list[float]) -> bytes:
    packed = array("d", floats)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def _unpack(blob: bytes) -> list[float]:
    packed = array("d", blob)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tolist()


_CODED: dict[str, list[str]] = {}  # __mlp_encoded texts seen -> the names they list (a few per view)


def _decode(values: dict[str, Any], coded: str) -> None:
    """Read back in place the values stored as JSON text or packed floats (see the module docstring)."""
    names = _CODED.get(coded)
    if names is None:
        if len(_CODED) >= 4096:
            _CODED.clear()
        names = _CODED[coded] = json.loads(coded)
    for name in names:
        value = values.get(name)
        if type(value) is bytes:
            values[name] = array("d", value).tolist() if not _BIG_ENDIAN else _unpack(value)
        elif value is not None:
            values[name] = json.loads(value)
