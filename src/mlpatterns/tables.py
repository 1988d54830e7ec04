"""Reading CSV and Parquet files for training and for batch serving, through DuckDB.

One reader for both sides of the model, so that a file read for training and the same
file read for scoring give the same values: DuckDB's session time zone is UTC (it
would otherwise shift timestamps with a time zone into the machine's local time), a
CSV's column types are sniffed from the whole file when training (not from a sample
that can miss a bad value far down), and read as text when serving, where the serving
function converts each column to the type it was trained on and reports the values
that do not convert.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TableError", "iter_frames", "read_frame", "to_boolean"]

_CSV = (".csv", ".csv.gz", ".tsv")


class TableError(ValueError):
    """A file that cannot be read as a table; the message names the file."""


def _relation(path: str | os.PathLike[str], *, as_text: bool) -> Any:
    import duckdb

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return connection.read_parquet(str(path))
        if name.endswith(_CSV):
            if as_text:
                return connection.read_csv(str(path), all_varchar=True)
            return connection.read_csv(str(path), sample_size=-1)
    except duckdb.Error as error:
        raise TableError(f"{path}: cannot be read as a table ({error})") from error
    raise TableError(f"{path}: expected a .csv, .csv.gz, .tsv or .parquet file")


def read_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The whole file as a DataFrame, with column types sniffed from every row."""
    import duckdb

    relation = _relation(path, as_text=False)
    try:
        table = relation.arrow()  # a RecordBatchReader in DuckDB 2, a Table before
        return (table.read_all() if hasattr(table, "read_all") else table).to_pandas()
    except duckdb.Error as error:
        raise TableError(f"{path}: cannot be read as a table ({error})") from error


def iter_frames(path: str | os.PathLike[str], chunk_rows: int) -> tuple[int, Iterator[pd.DataFrame]]:
    """The row count and the file in DataFrames of ``chunk_rows`` rows, for scoring.

    CSV columns arrive as text; integer columns with nulls stay integers (as Python
    objects), so key columns pass through unchanged.
    """
    import duckdb

    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    relation = _relation(path, as_text=True)
    try:
        total = relation.shape[0]
        reader = relation.to_arrow_reader(chunk_rows)
    except duckdb.Error as error:
        raise TableError(f"{path}: cannot be read as a table ({error})") from error

    def frames() -> Iterator[pd.DataFrame]:
        for batch in reader:
            yield batch.to_pandas(integer_object_nulls=True)

    return total, frames()


_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def to_boolean(value: object) -> bool | None:
    """A true/false value as read from a file: booleans, 0/1 numbers, or ``true``/``false``/``1``/``0`` text.

    Anything else is ``None`` (not a boolean), for the caller to report.

    >>> [to_boolean(v) for v in (True, 1.0, " FALSE ", "0", "yes", 2)]
    [True, True, False, False, None, None]
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return _BOOLEANS.get(value.strip().lower())
    return None
