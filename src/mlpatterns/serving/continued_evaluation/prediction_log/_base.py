"""The prediction log of Continued Model Evaluation (18): the abstract base of its backends.

Problem: to evaluate a deployed model continuously, every prediction it serves must be
kept (its time, the model version, the row's key, the inputs and outputs) so that the
ground truth which arrives later can be joined to it and the model scored on live data.

Solution: an append-only log of two tables, ``predictions`` and ``labels`` (columns in
:data:`PREDICTION_COLUMNS` and :data:`LABEL_COLUMNS`, Arrow types in :func:`arrow_schema`),
behind one small base class with a backend per storage (Parquet files, SQLite, PostgreSQL),
chosen by URL through :func:`~mlpatterns.serving.continued_evaluation.prediction_log.open_prediction_log`.
Writers only append; DuckDB reads (:meth:`PredictionLog.register`) and does every aggregation.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = [
    "KEY_SEPARATOR", "LABEL_COLUMNS", "PREDICTION_COLUMNS", "CompactionResult", "LabelCounts", "PredictionLog", "PredictionLogError", "arrow_schema",
    "arrow_table", "check_source", "label_text", "utc_now",
]

KEY_SEPARATOR = "|"  # between the key columns' texts in a logged key (row_key_text(row, keys, separator=...))

PREDICTION_COLUMNS = ("served_at", "event_time", "model", "version", "key", "inputs", "outputs", "prediction",
                      "predicted_label", "sample_rate", "source")
LABEL_COLUMNS = ("key", "label", "labelled_at", "source")
_TYPES = {"served_at": "timestamp", "event_time": "timestamp", "labelled_at": "timestamp", "prediction": "double",
          "sample_rate": "double"}
_REQUIRED = {"served_at", "event_time", "model", "version", "sample_rate", "source"}
_NONE = type(None)
_TZINFO = operator.attrgetter("tzinfo")
_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class PredictionLogError(ValueError):
    """A prediction log refused a call: bad input, a closed log, or a URL it cannot open."""


@dataclass(frozen=True)
class LabelCounts:
    """What :meth:`PredictionLog.add_labels` did: keys new to the log, keys whose label changed, and
    keys that already had that label (nothing written for them)."""

    added: int
    changed: int
    unchanged: int


@dataclass(frozen=True)
class CompactionResult:
    """What :meth:`PredictionLog.compact` did: input files merged (with their bytes), rows and files
    written (with their bytes), files deleted (replaced ones past their grace, stale temporary
    files); ``skipped`` when another compaction held the lock; ``note`` says why nothing was done."""

    files_merged: int = 0
    rows: int = 0
    files_written: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    files_deleted: int = 0
    skipped: bool = False
    note: str = ""

    def __str__(self) -> str:
        if self.skipped or not (self.files_merged or self.files_deleted):
            return self.note or "nothing to do"
        return (f"merged {self.files_merged:,} file(s) ({self.bytes_before:,} bytes) into {self.files_written:,} "
                f"({self.bytes_after:,} bytes, {self.rows:,} rows); deleted {self.files_deleted:,} file(s)")


def arrow_schema(table: str = "predictions") -> pa.Schema:
    """The Arrow schema of ``"predictions"`` or ``"labels"``: timestamps are ``timestamp[us]`` (naive,
    meaning UTC), numbers ``float64``, the rest ``string``; only the key, texts and outputs may be null."""
    import pyarrow as pa

    columns = {"predictions": PREDICTION_COLUMNS, "labels": LABEL_COLUMNS}.get(table)
    if columns is None:
        raise PredictionLogError(f"table: expected 'predictions' or 'labels', got {table!r}")
    types = {"timestamp": pa.timestamp("us"), "double": pa.float64()}
    required = _REQUIRED if table == "predictions" else {"key", "label", "labelled_at", "source"}
    return pa.schema([pa.field(name, types.get(_TYPES.get(name, ""), pa.string()), nullable=name not in required)
                      for name in columns])


def label_text(value: Any) -> str | None:
    """The one text of a label or a predicted class, so that the two compare as equal.

    None, NaN and pandas' NA/NaT give None; a boolean ``"1"``/``"0"``; an integral number
    (``1``, ``1.0``, NumPy integers) its integer's digits; another float ``repr(float(x))``;
    text itself.

    >>> [label_text(v) for v in (True, 1, 1.0, 0.5, "yes", None, float("nan"))]
    ['1', '1', '1', '0.5', 'yes', None, None]
    """
    if value is None or isinstance(value, str):
        return value
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b":  # NumPy bools
        return "1" if value else "0"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    raise PredictionLogError(f"label: expected a number, a boolean, text or null, got {type(value).__name__} "
                             f"{value!r:.80}")


def arrow_table(rows: list[tuple], table: str, micros: bool) -> pa.Table:
    """Fetched rows as an Arrow table of ``arrow_schema(table)`` (times as microseconds when ``micros``)."""
    import pyarrow as pa

    schema = arrow_schema(table)
    if not rows:
        return schema.empty_table()
    arrays = []
    for field, values in zip(schema, zip(*rows, strict=True), strict=True):
        if micros and field.type == pa.timestamp("us"):
            arrays.append(pa.array(values, pa.int64()).cast(field.type))
        else:
            arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def utc_now() -> dt.datetime:
    """Now, in UTC, as a naive datetime (the log's convention)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def check_source(source: Any) -> str:
    """A labels ``source`` (the sha256 hex of the truth data): a plain name, never a path."""
    if not isinstance(source, str) or not _SOURCE.fullmatch(source):
        raise PredictionLogError("source: expected the sha256 hex of the truth data (letters, digits, '.', '_', "
                                 f"'-'; at most 128; no path), got {source!r:.80}")
    return source


def _time(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime) and value == value:  # NaT compares unequal to itself
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                           value.microsecond)
    raise PredictionLogError(f"{where}: expected a datetime.datetime (naive UTC), got {type(value).__name__} "
                             f"{value!r:.80}")


def _check_column(name: str, values: list[Any], table: str) -> list[Any]:
    kind = _TYPES.get(name, "text")
    where = f"{table}: column {name!r}"
    types = set(map(type, values))  # the usual columns are checked by their set of types, without a loop
    if kind == "timestamp":
        if types <= {dt.datetime} and set(map(_TZINFO, values)) <= {None}:
            return values
        return [_time(v, f"{where} of row {i}") for i, v in enumerate(values)]
    if kind == "text":
        if types <= ({str} if name in _REQUIRED else {str, _NONE}):
            return values
        expected = "text" if name in _REQUIRED else "text or None"
        for i, v in enumerate(values):
            if not (isinstance(v, str) or (v is None and name not in _REQUIRED)):
                raise PredictionLogError(f"{where} of row {i}: expected {expected}, got {type(v).__name__} {v!r:.80}")
        return [None if v is None else str(v) for v in values]
    if name == "prediction" and types <= {float, _NONE}:
        return [None if v != v else v for v in values]
    if name == "sample_rate" and types <= {float} and all(0.0 < v <= 1.0 for v in set(values)):
        return values
    out = []
    for i, v in enumerate(values):
        if v is None and name == "prediction":
            out.append(None)
            continue
        if isinstance(v, bool) or not isinstance(v, Real):
            expected = "a number or None" if name == "prediction" else "a number in (0, 1]"
            raise PredictionLogError(f"{where} of row {i}: expected {expected}, got {type(v).__name__} {v!r:.80}")
        number = float(v)
        if name == "sample_rate" and not 0.0 < number <= 1.0:
            raise PredictionLogError(f"{where} of row {i}: expected a number in (0, 1], got {number!r}")
        out.append(None if math.isnan(number) else number)
    return out


def prediction_columns(rows: Sequence[tuple]) -> dict[str, list[Any]]:
    """Rows in :data:`PREDICTION_COLUMNS` order as checked columns (NaN predictions as None)."""
    width = len(PREDICTION_COLUMNS)
    for i, row in enumerate(rows):
        if not isinstance(row, (tuple, list)) or len(row) != width:
            raise PredictionLogError(
                f"predictions: row {i}: expected a tuple of {width} values {PREDICTION_COLUMNS}, got "
                f"{type(row).__name__} of length {len(row) if hasattr(row, '__len__') else '?'}")
    return {name: _check_column(name, [row[j] for row in rows], "predictions")
            for j, name in enumerate(PREDICTION_COLUMNS)}


def checked_columns(columns: Mapping[str, Sequence[Any]]) -> tuple[dict[str, list[Any]], int]:
    """Columns named :data:`PREDICTION_COLUMNS`, of equal length, as checked columns and their length."""
    if not isinstance(columns, Mapping) or set(columns) != set(PREDICTION_COLUMNS):
        names = sorted(columns) if isinstance(columns, Mapping) else type(columns).__name__
        raise PredictionLogError(f"predictions: expected a mapping of the columns {PREDICTION_COLUMNS}, got {names}")
    lengths = {name: len(columns[name]) for name in PREDICTION_COLUMNS}
    if len(set(lengths.values())) > 1:
        raise PredictionLogError(f"predictions: expected columns of one length, got {lengths}")
    return ({name: _check_column(name, list(columns[name]), "predictions") for name in PREDICTION_COLUMNS},
            lengths["served_at"])


def label_pairs(rows: Sequence[tuple[str, str]]) -> dict[str, str]:
    """(key, label text) rows as a dict; a key given twice keeps its last label."""
    labels: dict[str, str] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, (tuple, list)) or len(row) != 2:
            raise PredictionLogError(f"labels: row {i}: expected a (key, label) pair, got {row!r:.80}")
        for name, value in zip(("key", "label"), row, strict=True):
            if not isinstance(value, str):
                raise PredictionLogError(f"labels: column {name!r} of row {i}: expected text (see label_text), "
                                         f"got {type(value).__name__} {value!r:.80}")
        labels[row[0]] = row[1]
    return labels


class PredictionLog(ABC):
    """An append-only log of predictions and labels (Continued Model Evaluation, 18).

    Thread and process contract: use one object per process, and call :meth:`append` from
    one thread at a time (the :class:`~mlpatterns.serving.continued_evaluation.prediction_logger.
    PredictionLogger`'s flush thread). Many processes (a server's workers) may append to the
    same log at once; each :meth:`append` is atomic (after a crash, all of its rows are in the
    log or none), and readers see only whole appends. :meth:`add_labels` of one ``source`` runs
    in one process at a time. Reads return every row, in no guaranteed order.

    Backends implement ``_append``, ``_add_labels``, ``_predictions``, ``_labels`` and ``_close``
    (``_compact`` where the storage has pieces to merge); the base checks the input and refuses a
    closed log.
    """

    url: str
    _closed: bool = False

    # -- the primitives a backend implements ------------------------------------------------------
    @abstractmethod
    def _append(self, columns: dict[str, list[Any]], rows: int) -> None:
        """Write checked columns (:data:`PREDICTION_COLUMNS`) atomically."""

    @abstractmethod
    def _add_labels(self, labels: dict[str, str], source: str) -> LabelCounts:
        """Write the labels that are new or changed; count them."""

    @abstractmethod
    def _predictions(self, since: dt.datetime | None, until: dt.datetime | None) -> pa.Table:
        """The predictions with ``since <= event_time < until``."""

    @abstractmethod
    def _labels(self) -> pa.Table:
        """Every label row."""

    def _close(self) -> None:  # noqa: B027 (a backend with nothing to release keeps this)
        """Release connections or files."""

    def _compact(self, older_than: dt.timedelta, grace: dt.timedelta) -> CompactionResult:
        """Merge what the storage keeps in pieces; this default has nothing to merge."""
        return CompactionResult(note=f"nothing to compact: {type(self).__name__} keeps its rows in a database that "
                                "maintains itself")

    # -- the public calls -------------------------------------------------------------------------
    def append(self, rows: Sequence[tuple]) -> None:
        """Append prediction rows, tuples in :data:`PREDICTION_COLUMNS` order, atomically."""
        self._check_open("append")
        if len(rows):
            self._append(prediction_columns(rows), len(rows))

    def append_columns(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Append prediction rows given as columns (``{name: values}``, every name of
        :data:`PREDICTION_COLUMNS`, values as :meth:`append` takes them), atomically: the same rows as
        ``append(list(zip(*columns.values())))``, without building the rows (the logger's path)."""
        self._check_open("append")
        checked, count = checked_columns(columns)
        if count:
            self._append(checked, count)

    def add_labels(self, rows: Sequence[tuple[str, str]], *, source: str) -> LabelCounts:
        """Add ground truth: ``(key, label text)`` rows from the data whose sha256 is ``source``.

        Idempotent: a key that already has that label is counted ``unchanged`` and nothing is
        written; a new label for a key is written with a later ``labelled_at`` and wins the join.
        A key given twice in ``rows`` keeps its last label.
        """
        self._check_open("add_labels")
        source = check_source(source)
        labels = label_pairs(rows)
        return self._add_labels(labels, source) if labels else LabelCounts(0, 0, 0)

    def predictions(self, since: dt.datetime | None = None, until: dt.datetime | None = None) -> pa.Table:
        """The predictions whose ``event_time`` is in ``[since, until)`` (since inclusive, until
        exclusive; None leaves that side open), as an Arrow table of :func:`arrow_schema`."""
        self._check_open("predictions")
        since = None if since is None else _time(since, "since")
        until = None if until is None else _time(until, "until")
        return self._predictions(since, until)

    def labels(self) -> pa.Table:
        """Every label row, as an Arrow table of ``arrow_schema("labels")``. Several rows may share a key:
        the one with the latest ``labelled_at`` wins (ties: the larger label text)."""
        self._check_open("labels")
        return self._labels()

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Make views ``predictions`` and ``labels`` of this log in the DuckDB connection ``con``.

        This base registers Arrow tables read now; a backend may point the views at its storage.
        """
        self._check_open("register")
        for name, table in (("predictions", self.predictions()), ("labels", self.labels())):
            con.register(name, table)

    def compact(self, *, older_than: dt.timedelta = dt.timedelta(minutes=10),
                grace: dt.timedelta | None = None) -> CompactionResult:
        """Merge the log's closed pieces so that reads stay fast; run it from one process (a cron job,
        ``mlpatterns monitor compact``), never from every writer.

        The Parquet folder merges its files not modified for ``older_than`` into one file per UTC day
        and keeps the files it replaced for ``grace`` (default: ``older_than``) for reads that started
        before; see :mod:`~mlpatterns.serving.continued_evaluation.prediction_log.parquet_compaction`.
        Readers and writers may go on meanwhile, and a crash at any point loses and doubles nothing.
        The database backends (SQLite, PostgreSQL) have nothing to compact: this base does nothing and
        says so in :attr:`CompactionResult.note`.
        """
        self._check_open("compact")
        for name, value in (("older_than", older_than), ("grace", grace)):
            if not (value is None and name == "grace") and (not isinstance(value, dt.timedelta) or
                                                              value < dt.timedelta(0)):
                raise PredictionLogError(f"{name}: expected a datetime.timedelta >= 0, got {value!r:.80}")
        return self._compact(older_than, older_than if grace is None else grace)

    def close(self) -> None:
        """Close the log; later calls raise :class:`PredictionLogError`. Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self, call: str) -> None:
        if self._closed:
            from mlpatterns.backends import redact_url

            raise PredictionLogError(f"prediction log {redact_url(self.url)!r}: {call} on a closed log; open it again "
                                     "with open_prediction_log(url)")

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        from mlpatterns.backends import redact_url

        return f"{type(self).__name__}({redact_url(self.url)!r}{', closed' if self._closed else ''})"
