"""Reading CSV and Parquet files for training and for batch serving, through DuckDB.

One reader for both sides of the model, so that a file read for training and the same
file read for scoring give the same values: DuckDB's session time zone is UTC (it
would otherwise shift timestamps with a time zone into the machine's local time), a
CSV's column types are sniffed from the whole file when training (not from a sample
that can miss a bad value far down), and read as text when serving, where
:func:`~mlpatterns.input_types.conform_column` converts each column to the type recorded
at training (:func:`~mlpatterns.input_types.input_description`) and reports the values
that do not convert.

What training learns about the file travels with the model: integer columns stay
integers (pandas ``Int64`` where they hold nulls, not floats), the texts a boolean
column was written with (``Yes``/``No`` is what DuckDB's sniffer reads as booleans,
:func:`boolean_texts`), and the null markers (``null_values``, DuckDB's ``nullstr``;
the default is the empty field only). :func:`describe_bad_values` finds the row and
value that made a column text instead of numbers.
"""

from __future__ import annotations

import csv
import gzip
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.input_types import (  # serving-time conversion
    conform_column,
    input_description,
    to_boolean,
)

__all__ = [
    "BadValue", "TableError", "boolean_texts", "conform_column", "describe_bad_values",
    "input_description", "iter_frames", "label_text", "label_texts", "quote_identifier", "read_frame", "to_boolean",
]

_CSV = (".csv", ".csv.gz", ".tsv")
_CASTS = {"number": "DOUBLE", "integer": "BIGINT", "boolean": "BOOLEAN", "date": "TIMESTAMP"}


class TableError(ValueError):
    """A file that cannot be read as a table; the message names the file."""


@dataclass(frozen=True)
class BadValue:
    """The first value of a column that is not of the expected kind.

    ``row`` counts data rows from 1 (the header is not a row); ``line`` is the line of
    the file where that row starts (header, skipped and blank lines counted), ``None``
    for Parquet.
    """

    column: str
    row: int
    line: int | None
    value: str

    def __str__(self) -> str:
        line = f" (line {self.line})" if self.line is not None else ""
        return f"row {self.row}{line} holds {self.value!r}"


def _is_csv(path: Path) -> bool:
    return path.name.lower().endswith(_CSV)


def _checked_null_values(null_values: Sequence[str] | None) -> list[str] | None:
    if null_values is None:
        return None
    if isinstance(null_values, str) or not all(isinstance(v, str) for v in null_values) or not null_values:
        raise ValueError(f"null_values: expected a non-empty list of texts that mean 'no value' "
                         f"(e.g. ['NA', '']), got {null_values!r}")
    return list(null_values)


def _relation(path: str | os.PathLike[str], *, as_text: bool, null_values: Sequence[str] | None = None,
              threads: int | None = None) -> Any:
    import duckdb

    path = Path(path)
    markers = _checked_null_values(null_values)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    if threads is not None:
        connection.execute(f"SET threads = {int(threads)}")
    try:
        if path.name.lower().endswith(".parquet"):
            return connection.read_parquet(str(path))
        if _is_csv(path):
            options: dict[str, Any] = {} if markers is None else {"na_values": markers}
            if as_text:
                return connection.read_csv(str(path), all_varchar=True, **options)
            return connection.read_csv(str(path), sample_size=-1, **options)
    except duckdb.Error as error:
        raise TableError(f"{path}: cannot be read as a table ({error})") from error
    raise TableError(f"{path}: expected a .csv, .csv.gz, .tsv or .parquet file")


def _to_pandas(table: Any) -> pd.DataFrame:
    """Arrow to pandas, integers and booleans kept as such (nullable where they hold nulls)."""
    import pyarrow as pa

    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
                pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
                pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype()}
    frame = table.to_pandas(types_mapper=nullable.get)
    for i, column in enumerate(table.columns):
        if column.type in nullable and column.null_count == 0:  # no null: the plain NumPy dtype
            frame.isetitem(i, frame.iloc[:, i].astype(nullable[column.type].numpy_dtype))
    return frame


def read_frame(path: str | os.PathLike[str], *, null_values: Sequence[str] | None = None) -> pd.DataFrame:
    """The whole file as a DataFrame, with column types sniffed from every row.

    Integer columns stay integers: ``int64`` without nulls, pandas ``Int64`` with them
    (a float would turn ``1`` into ``1.0``); boolean columns with nulls are ``boolean``.
    ``null_values`` lists the texts of a CSV that mean "no value" (default: the empty
    field only); they replace the default, so list ``""`` too to keep it.
    """
    import duckdb

    relation = _relation(path, as_text=False, null_values=null_values)
    try:
        table = relation.arrow()  # a RecordBatchReader in DuckDB 2, a Table before
        return _to_pandas(table.read_all() if hasattr(table, "read_all") else table)
    except duckdb.Error as error:
        raise TableError(f"{path}: cannot be read as a table ({error})") from error


def iter_frames(
    path: str | os.PathLike[str], chunk_rows: int, *, null_values: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> tuple[int, Iterator[pd.DataFrame]]:
    """The row count and the file in DataFrames of ``chunk_rows`` rows, for scoring.

    CSV columns arrive as text (``null_values`` as for :func:`read_frame`); integer
    columns with nulls stay integers (as Python objects), so key columns pass through
    unchanged. A file without rows gives one empty frame with its columns, so that
    they can still be checked. ``columns`` reads only those of the file's columns (in
    that order; one the file lacks is left out, for the caller to report): a file's
    other columns are never read, nor held in memory.
    """
    import duckdb

    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    # one DuckDB thread: the reader runs next to the scoring, which has the other cores, and holds
    # one row group at a time (less memory; measured no slower on 2 cores, docs/patterns/batch_serving.md)
    relation = _relation(path, as_text=True, null_values=null_values, threads=1)
    try:
        if columns is not None:
            present = set(relation.columns)
            relation = relation.select(*[quote_identifier(c) for c in dict.fromkeys(columns) if c in present])
        total = relation.shape[0]
        reader = relation.to_arrow_reader(chunk_rows)
    except duckdb.Error as error:
        raise TableError(f"{path}: cannot be read as a table ({error})") from error

    def frames() -> Iterator[pd.DataFrame]:
        rows = 0
        for batch in reader:
            rows += batch.num_rows
            yield batch.to_pandas(integer_object_nulls=True)
        if rows == 0:
            yield reader.schema.empty_table().to_pandas()

    return total, frames()


def quote_identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier (DuckDB, PostgreSQL, SQLite): in double quotes, each ``"`` doubled."""
    return '"' + name.replace('"', '""') + '"'


def _column_of(relation: Any, path: Any, column: str) -> str:
    if column not in relation.columns:
        raise TableError(f"{path}: no column {column!r}; the file has {relation.columns}")
    return quote_identifier(column)


def boolean_texts(
    path: str | os.PathLike[str], columns: Sequence[str], *, null_values: Sequence[str] | None = None,
) -> dict[str, dict[str, list[str]]]:
    """The texts that mean true and false in each of a CSV's boolean ``columns``.

    DuckDB's sniffer reads ``Yes``/``No``, ``Y``/``N``, ``T``/``F`` and ``1``/``0``
    columns as booleans; recording which texts the file used lets the serving function
    accept them back (``{"Urban": {"true": ["Yes"], "false": ["No"]}}``). Parquet files
    hold booleans, not texts: they give ``{}``.
    """
    path = Path(path)
    if not _is_csv(path):
        return {}
    relation = _relation(path, as_text=True, null_values=null_values)
    texts = {}
    for column in columns:
        name = _column_of(relation, path, column)
        rows = relation.query("rel", f"SELECT DISTINCT {name}, TRY_CAST({name} AS BOOLEAN) FROM rel "
                                     f"WHERE {name} IS NOT NULL ORDER BY 1").fetchall()
        wrong = [text for text, value in rows if value is None]
        if wrong:
            raise TableError(f"{path}: column {column!r} is not a true/false column: it holds {wrong[0]!r}")
        texts[column] = {"true": [t for t, v in rows if v], "false": [t for t, v in rows if not v]}
    return texts


def describe_bad_values(
    path: str | os.PathLike[str], column: str, expected: str = "number", *,
    null_values: Sequence[str] | None = None,
) -> BadValue | None:
    """The first value of ``column`` that is not a number (or ``expected``: integer, boolean, date).

    A single such value makes DuckDB read the whole column as text; this names it, so
    that it can be fixed or declared a null marker (``data.null_values``). ``None`` when
    every non-null value converts.
    """
    if expected not in _CASTS:
        raise ValueError(f"expected must be one of {list(_CASTS)}, got {expected!r}")
    path = Path(path)
    relation = _relation(path, as_text=True, null_values=null_values)
    name = _column_of(relation, path, column)
    query = relation.query("rel", f"SELECT CAST({name} AS VARCHAR) AS value, {name} IS NOT NULL AND "
                                  f"TRY_CAST({name} AS {_CASTS[expected]}) IS NULL AS bad FROM rel")
    start = 0
    for batch in query.to_arrow_reader(1 << 16):
        bad = batch.column(1).to_numpy(zero_copy_only=False)
        if bad.any():
            first = int(bad.argmax())
            row = start + first + 1
            line = _csv_line(path, row) if _is_csv(path) else None
            return BadValue(column, row, line, batch.column(0)[first].as_py())
        start += batch.num_rows
    return None


def _csv_line(path: Path, row: int) -> int | None:
    """The line where data row ``row`` (from 1) of a CSV starts, read with DuckDB's sniffed dialect."""
    import duckdb

    with duckdb.connect() as connection:
        delimiter, quote, escape, header, skip = connection.execute(
            "SELECT Delimiter, Quote, Escape, HasHeader, SkipRows FROM sniff_csv(?)", [str(path)]).fetchone()
    single = {k: v for k, v in (("quotechar", quote), ("escapechar", escape)) if isinstance(v, str) and len(v) == 1}
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as handle:
        for _ in range(skip):
            handle.readline()
        reader = csv.reader(handle, delimiter=delimiter if len(delimiter) == 1 else ",", **single)
        end = data_rows = 0
        for record in reader:
            start, end = end + 1, reader.line_num
            if not record:  # DuckDB skips blank lines
                continue
            if header:
                header = False
                continue
            data_rows += 1
            if data_rows == row:
                return skip + start
    return None


def label_text(value: Any) -> str:
    """A target label as the text a user sees: ``Yes``, ``3`` (not ``3.0``), ``true``."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    return str(value)


def label_texts(column: pd.Series) -> pd.Series:
    """Every label of a target column as text (see :func:`label_text`), one conversion per distinct value."""
    texts = {value: label_text(value) for value in column.unique()}
    return column.map(texts).astype(object)
