"""Batch Serving (17): predictions computed in bulk ahead of time, looked up by key when asked.

Problem: some predictions are needed for many items at once (every flight of tomorrow,
every product), or faster than a model can compute them per request; scoring them one
request at a time wastes the model on work that could be done once, in bulk.

Solution: score the whole file in a batch job (:func:`~mlpatterns.serving.keyed_predictions.predict_file`,
``mlpatterns predict``) and keep the keyed predictions (Keyed Predictions, 20) in a
key-value table; a server then answers by key with an index lookup. An output path ending
in ``.sqlite`` or ``.db`` makes ``predict_file`` write such a table
(:class:`PredictionTableWriter`): ``predictions``, with the bundle's key columns as its
primary key and one column per output, and ``meta``, saying which bundle (its name and
manifest sha256) wrote it and when. :class:`PrecomputedPredictions` reads it back:
read-only, safe to share between the threads of a server; ``mlpatterns serve
NAME=scores.sqlite`` answers from it by key over HTTP
(:mod:`~mlpatterns.serving.http.precomputed_model`).

A key appears once in the table: a file whose rows repeat a key is refused (a lookup
could not say which of the rows answers), naming the first repeated key and its row.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is written, not where one is read (a server's cold start)
    import pandas as pd

__all__ = ["FORMAT", "PrecomputedPredictions", "PredictionTableError", "PredictionTableWriter"]

FORMAT = "mlpatterns.PrecomputedPredictions/1"
TABLE, META = "predictions", "meta"
_SQL_TYPES = ("INTEGER", "REAL", "TEXT")
_WHOLE = re.compile(r"\s*[-+]?[0-9]+\s*")
_BATCH = 500  # keys per lookup query (SQLite allows 32,766 parameters)


class PredictionTableError(ValueError):
    """A file that is not a table of precomputed predictions, or a key that cannot be looked up."""


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(values: pd.Series) -> str:
    """INTEGER for integers and booleans, REAL for other numbers, TEXT for the rest."""
    import pandas as pd

    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        return "INTEGER"
    if pd.api.types.is_float_dtype(dtype):
        return "REAL"
    kind = pd.api.types.infer_dtype(values, skipna=True)
    return {"integer": "INTEGER", "boolean": "INTEGER", "floating": "REAL",
            "mixed-integer-float": "REAL"}.get(kind, "TEXT")


def _sql_values(values: pd.Series, sql_type: str) -> list[Any]:
    """A column as Python values SQLite stores as ``sql_type`` (None for a null)."""
    import pandas as pd

    if sql_type == "TEXT" and not (isinstance(values.dtype, pd.StringDtype)
                                   or pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")):
        from mlpatterns.hashing import to_bigquery_strings  # dates, timestamps: their BigQuery text

        return [None if t is None else str(t) for t in to_bigquery_strings(values)]
    if sql_type == "INTEGER" and pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype("Int64")
    nulls = values.isna().to_numpy()
    items = (values.to_numpy() if isinstance(values.dtype, np.dtype) else values.astype(object)).tolist()
    if nulls.any():  # NaN, NA, NaT: SQL NULL
        return [None if null else v for v, null in zip(items, nulls.tolist(), strict=True)]
    return items


class PredictionTableWriter:
    """Writes keyed predictions into a new SQLite file: ``predictions`` and ``meta``.

    The column types are ``types`` (column to INTEGER, REAL or TEXT) where given, else
    those of the first chunk written: keys as the input gave them (a CSV's keys are
    text, a Parquet file's integers INTEGER). The
    file is built with SQLite's journal off, so it is meant to be a temporary file that
    the caller renames into place after :meth:`close` (as ``predict_file`` does); errors
    name ``shown_as`` (the final path) where given, not the temporary file.
    """

    def __init__(self, path: str | os.PathLike[str], *, keys: Sequence[str], outputs: Sequence[str],
                 meta: Mapping[str, Any], types: Mapping[str, str] | None = None,
                 shown_as: str | os.PathLike[str] | None = None) -> None:
        if not keys:
            raise PredictionTableError("a table of precomputed predictions needs key columns")
        self.path, self.keys, self.outputs = Path(path), list(keys), list(outputs)
        self.shown_as = Path(shown_as) if shown_as is not None else self.path
        self._meta, self._declared = dict(meta), dict(types or {})
        self._types: list[str] | None = None
        self.rows = 0
        # used by one thread at a time, not always the one that opened it (predict_file writes from a worker)
        self._connection = sqlite3.connect(self.path, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode = OFF")
        self._connection.execute("PRAGMA synchronous = OFF")

    @property
    def columns(self) -> list[str]:
        return self.keys + self.outputs

    def _create(self, types: list[str]) -> None:
        self._types = types
        columns = ", ".join(f"{_quoted(c)} {t}" for c, t in zip(self.columns, types, strict=True))
        keys = ", ".join(map(_quoted, self.keys))
        self._connection.execute(f"CREATE TABLE {TABLE} ({columns}, PRIMARY KEY ({keys})) WITHOUT ROWID")
        self._connection.execute(f"CREATE TABLE {META} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")

    def write(self, frame: pd.DataFrame, rows: Sequence[int] | np.ndarray | None = None) -> None:
        """Insert the rows of ``frame`` (keys and outputs); ``rows`` are their input positions, for errors."""
        if self._types is None:
            self._create([self._declared.get(c) or _sql_type(frame[c]) for c in self.columns])
        if not len(frame):
            return
        assert self._types is not None
        columns = [_sql_values(frame[c], t) for c, t in zip(self.columns, self._types, strict=True)]
        marks = ", ".join("?" * len(self.columns))
        try:
            with self._connection:
                self._connection.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", zip(*columns, strict=True))
        except sqlite3.IntegrityError as error:
            raise self._duplicate_error(frame, columns, rows) from error
        self.rows += len(frame)

    def _duplicate_error(self, frame: pd.DataFrame, columns: list[list[Any]], rows: Any) -> PredictionTableError:
        keys = list(zip(*columns[: len(self.keys)], strict=True))
        where = " AND ".join(f"{_quoted(k)} = ?" for k in self.keys)
        seen: set[tuple[Any, ...]] = set()
        for i, key in enumerate(keys):
            known = self._connection.execute(f"SELECT 1 FROM {TABLE} WHERE {where}", key).fetchone()
            if key in seen or known is not None:
                row = int(rows[i]) if rows is not None else i
                shown = ", ".join(f"{k}={v!r}" for k, v in zip(self.keys, key, strict=True))
                return PredictionTableError(
                    f"{self.shown_as}: row {row} repeats the key ({shown}) of an earlier row; a table of "
                    "precomputed predictions holds one prediction per key: remove the repeated rows, or "
                    "write a .csv or .parquet output (which keeps them and counts them)")
            seen.add(key)
        return PredictionTableError(f"{self.shown_as}: the rows could not be stored (a null key?)")

    def close(self) -> None:
        """Write ``meta`` and close the file (an empty table's undeclared columns are TEXT)."""
        if self._types is None:
            self._create([self._declared.get(c, "TEXT") for c in self.columns])
        assert self._types is not None
        meta = {**self._meta, "format": FORMAT, "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "keys": json.dumps(self.keys), "outputs": json.dumps(self.outputs),
                "types": json.dumps(dict(zip(self.columns, self._types, strict=True))), "rows": str(self.rows)}
        with self._connection:
            self._connection.executemany(f"INSERT OR REPLACE INTO {META} VALUES (?, ?)",
                                         [(k, str(v)) for k, v in meta.items()])
        self._connection.close()

    def abort(self) -> None:
        self._connection.close()


class PrecomputedPredictions:
    """Keyed predictions computed ahead of time, looked up by key (Batch Serving, 17).

    Open a file that ``predict_file`` (``mlpatterns predict ... scores.sqlite``) wrote;
    :meth:`lookup` takes keys as dicts (``{"year": 2013, "carrier": "UA", ...}``) and
    gives, for each, the stored row (keys and outputs) or ``None`` when no prediction was
    computed for it. A key value is matched exactly after conversion to the column's
    type: an INTEGER key accepts ``1545`` and ``"1545"``, a TEXT key ``"UA"`` and a
    number as its BigQuery text (``2013`` is ``"2013"``); a value that cannot be of the
    column's type (``"x"`` for an INTEGER key, a null, a missing key column) raises
    :class:`PredictionTableError`.

    Thread safety: the file is opened read-only (``mode=ro``); each thread gets its own
    connection on first use, so one object can serve every thread of a server.
    :meth:`close` closes them all.

    Examples
    --------
    >>> table = PrecomputedPredictions.open("scores.sqlite")  # doctest: +SKIP
    >>> table.lookup([{"year": 2013, "month": 1, "day": 1, "carrier": "UA", "flight": 1545,
    ...                "origin": "EWR"}])  # doctest: +SKIP
    [{'year': 2013, ..., 'probability': 0.21, 'prediction': 1}]
    """

    def __init__(self, path: Path, meta: dict[str, str], types: dict[str, str]) -> None:
        self.path, self.meta = path, meta
        self.keys: list[str] = json.loads(meta["keys"])
        self.outputs: list[str] = json.loads(meta["outputs"])
        self.types = types
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> PrecomputedPredictions:
        """Open a table of precomputed predictions read-only; refuse any other file with a clear error."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (a table of precomputed predictions, "
                                    "written by `mlpatterns predict BUNDLE INPUT OUTPUT.sqlite`)")
        connection = _connect(path)
        try:
            meta, types = _read_header(path, connection)
        finally:
            connection.close()
        return cls(path, meta, types)

    @property
    def bundle(self) -> str:
        """The name of the bundle that computed the predictions."""
        return self.meta.get("bundle", "")

    @property
    def manifest_sha256(self) -> str:
        return self.meta.get("manifest_sha256", "")

    @property
    def created(self) -> str:
        return self.meta.get("created", "")

    def __len__(self) -> int:
        return int(self._connection().execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])

    def __enter__(self) -> PrecomputedPredictions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise PredictionTableError(f"{self.path}: the table is closed")
        connection = getattr(self._local, "connection", None)
        if connection is None:
            with self._lock:
                if self._closed:
                    raise PredictionTableError(f"{self.path}: the table is closed")
                connection = _connect(self.path)
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for connection in self._connections:
                connection.close()
            self._connections.clear()

    @property
    def task(self) -> str:
        """The bundle's task: as ``meta`` records it, else read from the output columns' names."""
        return self.meta.get("task") or _task_of(self.outputs)

    def convert_key(self, column: str, value: Any) -> Any:
        """``value`` as stored in the key ``column`` (see the class); :class:`PredictionTableError` if it cannot be."""
        return _converted(value, self.types[column])

    def _key(self, key: Mapping[str, Any], position: int) -> tuple[Any, ...]:
        if not isinstance(key, Mapping):
            raise PredictionTableError(f"key {position}: expected a mapping of {self.keys} to values, "
                                       f"got {type(key).__name__}")
        missing = [k for k in self.keys if k not in key]
        if missing:
            raise PredictionTableError(f"key {position}: missing key column(s) {missing}; the keys are {self.keys}")
        return tuple(_as_type(key[k], self.types[k], f"key {position}, {k}") for k in self.keys)

    def lookup(self, keys: Sequence[Mapping[str, Any]]) -> list[dict[str, Any] | None]:
        """The stored row (keys and outputs) of each key, in order; ``None`` for a key never scored."""
        wanted = [self._key(key, i) for i, key in enumerate(keys)]
        found = self.fetch(wanted)
        names = self.keys + self.outputs
        return [dict(zip(names, key + found[key], strict=True)) if key in found else None for key in wanted]

    def fetch(self, keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        """The stored outputs of each key found, by key; ``keys`` are tuples already of the key
        columns' types (:meth:`convert_key`), in any order and with repeats."""
        connection = self._connection()
        names = ", ".join(map(_quoted, self.keys + self.outputs))
        tuple_sql = f"({', '.join(map(_quoted, self.keys))})"
        one = f"({', '.join('?' * len(self.keys))})"
        width = len(self.keys)
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        distinct = list(dict.fromkeys(keys))
        for start in range(0, len(distinct), _BATCH):
            batch = distinct[start : start + _BATCH]
            query = (f"SELECT {names} FROM {TABLE} WHERE {tuple_sql} IN "
                     f"(VALUES {', '.join([one] * len(batch))})")
            for values in connection.execute(query, [v for key in batch for v in key]):
                found[tuple(values[:width])] = tuple(values[width:])
        return found

    def get(self, **key: Any) -> dict[str, Any] | None:
        """The stored row of one key given as keyword arguments, or ``None``."""
        return self.lookup([key])[0]


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: close() may run in another thread; each thread uses its own
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)


def _read_header(path: Path, connection: sqlite3.Connection) -> tuple[dict[str, str], dict[str, str]]:
    """``meta`` as a dict and each column's type; a clear error for a file that is not such a table."""
    what = f"{path}: not a table of precomputed predictions ({FORMAT}, written by `mlpatterns predict` to .sqlite)"
    try:
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {TABLE, META} <= tables:
            raise PredictionTableError(f"{what}: it has no tables {sorted({TABLE, META} - tables)}")
        meta = dict(connection.execute(f"SELECT name, value FROM {META}").fetchall())
        columns = {row[1]: (row[2].upper(), row[5]) for row in connection.execute(f"PRAGMA table_info({TABLE})")}
    except sqlite3.DatabaseError as error:  # "file is not a database", a damaged file
        raise PredictionTableError(f"{what}: {error}") from error
    if meta.get("format") != FORMAT:
        raise PredictionTableError(f"{what}: its meta format is {meta.get('format')!r}")
    try:
        keys, outputs = json.loads(meta["keys"]), json.loads(meta["outputs"])
        types = json.loads(meta["types"])
    except (KeyError, ValueError) as error:
        raise PredictionTableError(f"{what}: meta lacks a valid {error}") from error
    primary = [name for name, (_, rank) in sorted(columns.items(), key=lambda item: item[1][1]) if rank]
    if (not isinstance(keys, list) or not keys or primary != keys or not isinstance(outputs, list)
            or set(columns) != set(keys) | set(outputs)
            or any(types.get(c) not in _SQL_TYPES or columns[c][0] != types[c] for c in columns)):
        raise PredictionTableError(f"{what}: its columns {list(columns)} do not match its meta "
                                   f"(keys {keys}, outputs {outputs})")
    return meta, types


def _task_of(outputs: Sequence[str]) -> str:
    """The task whose serving function gives these output columns (see ``ServingFunction.predict_conformed``)."""
    names = [o for o in outputs if not re.fullmatch(r"q[0-9]{2,}", o)]  # quantile bounds
    if names == ["prediction"]:
        return "regression"
    if names == ["probability", "prediction"]:
        return "classification"
    if "prediction" in names and all(o == "prediction" or o.startswith("probability_") for o in names):
        return "multiclass"
    if names and all(o.startswith(("probability_", "prediction_")) for o in names):
        return "multilabel"
    return "unknown"


def _as_type(value: Any, sql_type: str, where: str) -> Any:
    """A lookup value as stored in a column of ``sql_type``; a clear error, saying ``where``, if it cannot be one."""
    try:
        return _converted(value, sql_type)
    except PredictionTableError as error:
        raise PredictionTableError(f"{where}: {error}") from None


def _converted(value: Any, sql_type: str) -> Any:
    """A lookup value as stored in a column of ``sql_type``; :class:`PredictionTableError` saying why not."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise PredictionTableError("a key has no nulls")
    if isinstance(value, np.generic):
        value = value.item()
    if sql_type == "TEXT":
        if isinstance(value, str):
            return value
        from mlpatterns.hashing import to_bigquery_string

        try:
            text = to_bigquery_string(value)
        except TypeError:
            text = None
        if not isinstance(text, str):
            raise PredictionTableError(f"expected text, got {value!r}")
        return text
    if sql_type == "INTEGER":
        if isinstance(value, int):  # booleans too: 1 and 0
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _WHOLE.fullmatch(value):
            return int(value)
        raise PredictionTableError(f"expected a whole number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise PredictionTableError(f"expected a number, got {value!r}")
