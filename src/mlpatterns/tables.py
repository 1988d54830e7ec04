"""Reading CSV and Parquet files for training and for batch serving, through DuckDB.

One reader for both sides of the model, so that a file read for training and the same
file read for scoring give the same values: DuckDB's session time zone is UTC (it
would otherwise shift timestamps with a time zone into the machine's local time), a
CSV's column types are sniffed from the whole file when training (not from a sample
that can miss a bad value far down), and read as text when serving, where
:func:`conform_column` converts each column to the type recorded at training
(:func:`input_description`) and reports the values that do not convert.

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
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BadValue", "TableError", "boolean_texts", "conform_column", "describe_bad_values",
    "input_description", "iter_frames", "read_frame", "to_boolean",
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


def _relation(path: str | os.PathLike[str], *, as_text: bool, null_values: Sequence[str] | None = None) -> Any:
    import duckdb

    path = Path(path)
    markers = _checked_null_values(null_values)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
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
) -> tuple[int, Iterator[pd.DataFrame]]:
    """The row count and the file in DataFrames of ``chunk_rows`` rows, for scoring.

    CSV columns arrive as text (``null_values`` as for :func:`read_frame`); integer
    columns with nulls stay integers (as Python objects), so key columns pass through
    unchanged. A file without rows gives one empty frame with its columns, so that
    they can still be checked.
    """
    import duckdb

    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    relation = _relation(path, as_text=True, null_values=null_values)
    try:
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


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_of(relation: Any, path: Any, column: str) -> str:
    if column not in relation.columns:
        raise TableError(f"{path}: no column {column!r}; the file has {relation.columns}")
    return _quoted(column)


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


# -- the same types at serving ------------------------------------------------------------------
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_INTEGER_DTYPE = re.compile(r"u?int(8|16|32|64)?", re.IGNORECASE)


def to_boolean(value: object, texts: Mapping[str, bool] | None = None) -> bool | None:
    """A true/false value as read from a file: booleans, 0/1 numbers, or ``true``/``false``/``1``/``0`` text.

    ``texts`` adds lower-case texts (``{"yes": True, "no": False}``); case and
    surrounding spaces are ignored. Anything else is ``None`` (not a boolean), for the
    caller to report.

    >>> [to_boolean(v) for v in (True, 1.0, " FALSE ", "0", "yes", 2)]
    [True, True, False, False, None, None]
    >>> to_boolean("Yes", {"yes": True, "no": False})
    True
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return _BOOLEANS.get(text, None if texts is None else texts.get(text))
    return None


def input_description(
    name: str, values: pd.Series, *, date: bool = False,
    boolean_texts: Mapping[str, Mapping[str, Sequence[str]]] | None = None, categorical: bool = False,
) -> dict[str, Any]:
    """How a training column was read, for the signature: ``name``, ``type``, ``dtype``.

    ``type`` is ``date`` (when ``date``), ``boolean``, ``number`` or ``text``; ``dtype``
    is the pandas dtype (``int64``/``Int64`` make :func:`conform_column` read whole
    numbers). A boolean column read from text records ``true_values``/``false_values``
    (from :func:`boolean_texts`), which serving then accepts as well.

    >>> input_description("Urban", pd.Series([True, False]), boolean_texts={"Urban": {"true": ["Yes"], "false": ["No"]}})
    {'name': 'Urban', 'type': 'boolean', 'dtype': 'bool', 'true_values': ['Yes'], 'false_values': ['No']}
    """
    dtype = values.dtype
    if date:
        kind = "date"
    elif pd.api.types.is_bool_dtype(dtype):
        kind = "boolean"
    elif pd.api.types.is_numeric_dtype(dtype):
        kind = "number"
    else:
        kind = "text"
    description: dict[str, Any] = {"name": name, "type": kind, "dtype": str(dtype)}
    if categorical and kind == "number":  # only read as a category: an unseen code is no bad row
        description["categorical"] = True
    if kind == "boolean" and boolean_texts and name in boolean_texts:
        description["true_values"] = list(boolean_texts[name]["true"])
        description["false_values"] = list(boolean_texts[name]["false"])
    return description


def conform_column(values: pd.Series, description: Mapping[str, Any]) -> tuple[pd.Series, np.ndarray, str]:
    """A raw column converted to the type it was trained on, the rows that do not convert, and
    what they should have held.

    The conversion depends on each value and the ``description`` alone (see
    :func:`input_description`), never on the other rows of the chunk: a boolean becomes
    pandas ``boolean``, a whole-number column ``Int64`` (``2.5`` is not one), another
    number ``float64``, text ``str``; dates are left to the transform's parser.
    """
    kind, dtype = description["type"], str(description.get("dtype", ""))
    present = values.notna().to_numpy()
    if kind == "boolean":
        trues, falses = description.get("true_values", []), description.get("false_values", [])
        texts = {str(t).strip().lower(): True for t in trues} | {str(t).strip().lower(): False for t in falses}
        if pd.api.types.is_bool_dtype(values.dtype):
            converted = values.astype("boolean")
        else:
            converted = _by_value(values, lambda v: to_boolean(v, texts), "boolean")
        extra = [t for t in [*trues, *falses] if str(t).strip().lower() not in _BOOLEANS]
        expected = "true or false" + (f" (or {', '.join(map(repr, extra))})" if extra else "")
    elif kind == "number" and _INTEGER_DTYPE.fullmatch(dtype) and description.get("categorical"):
        # integer category codes: a new code that is not a number is an unseen category, not a bad row
        whole = _whole_numbers(values)
        keep = whole.notna().to_numpy() | ~present
        converted = pd.Series(np.where(keep, whole.astype(object), values.astype(object)), index=values.index,
                              dtype=object).where(present, None)
        return converted, np.zeros(len(values), dtype=bool), ""
    elif kind == "number" and _INTEGER_DTYPE.fullmatch(dtype):
        converted, expected = _whole_numbers(values), "a whole number"
    elif kind == "number":
        if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
            converted = pd.Series(values.to_numpy(dtype=np.float64, na_value=np.nan), index=values.index)
        else:
            converted = _parsed_text(values, "float64", _real_number)
            if converted is None:  # Python objects
                converted = _by_value(values, _real_number, "Float64").astype("float64")
        expected = "a number"
    elif kind == "text" and (dtype in ("str", "object") or dtype.startswith("string")):
        if not _is_text(values):  # numbers, booleans: cast as BigQuery casts, one value at a time
            from mlpatterns.hashing import to_bigquery_string

            items = [(v if isinstance(v, str) else to_bigquery_string(v)) if p else None
                     for v, p in zip(values, present, strict=True)]
            values = pd.Series(items, index=values.index, dtype=object)
        return values.astype(dtype), np.zeros(len(values), dtype=bool), "text"
    else:  # dates: parsed by the transform, which reports the ones that do not parse
        return values, np.zeros(len(values), dtype=bool), ""
    return converted, present & converted.isna().to_numpy(), expected


def _is_text(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.StringDtype) or pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")


_PLAIN = {"Int64": r"^-?[0-9]{1,18}$", "float64": r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,3})?$"}


def _parsed_text(values: pd.Series, dtype: str, convert: Any) -> pd.Series | None:
    """Text as numbers: plain numerals by Arrow (fast, exact), any other text by ``convert``
    one distinct value at a time. ``None`` if the values are not all text.

    Which way a value goes depends on the value alone, and both give the same number for a
    plain numeral (Arrow and Python both round decimals correctly; 18 digits fit int64).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not _is_text(values):
        return None
    text = pa.array(values, from_pandas=True, type=pa.large_string())
    plain = pc.fill_null(pc.match_substring_regex(text, _PLAIN[dtype]), False).to_numpy(zero_copy_only=False)
    whole = dtype == "Int64"
    data = np.zeros(len(values), dtype=np.int64) if whole else np.full(len(values), np.nan)
    if plain.any():
        data[plain] = pc.cast(text.filter(pa.array(plain)), pa.int64() if whole else pa.float64()).to_numpy()
    missing = ~plain
    rest = missing & values.notna().to_numpy()
    if rest.any():
        converted = _by_value(values[rest], convert, "Int64" if whole else "Float64").array
        data[rest] = converted.to_numpy(dtype=data.dtype, na_value=0 if whole else np.nan)
        missing[rest] = converted.isna()
    if whole:
        return pd.Series(pd.arrays.IntegerArray(data, missing), index=values.index)
    return pd.Series(data, index=values.index)


def _by_value(values: pd.Series, convert: Any, dtype: str) -> pd.Series:
    """``convert`` applied to each distinct value once (nulls stay null), in a column of ``dtype``."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    converted = pd.array([convert(v) for v in uniques], dtype=dtype)
    return pd.Series(converted.take(codes, allow_fill=True), index=values.index)


def _whole_numbers(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("Int64")
    if pd.api.types.is_float_dtype(values.dtype):
        real = values.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = np.isfinite(real) & (real == np.trunc(real)) & (np.abs(real) < 2.0**63)
        numbers = pd.arrays.IntegerArray(np.where(whole, real, 0).astype(np.int64), ~whole)
        return pd.Series(numbers, index=values.index)
    parsed = _parsed_text(values, "Int64", _whole_number)
    return parsed if parsed is not None else _by_value(values, _whole_number, "Int64")


def _number_text(text: str) -> str | None:
    text = text.strip()
    return None if "_" in text else text  # Python reads "1_000"; a CSV reader does not


def _real_number(value: object) -> float | None:
    """A float from a number or text, ``None`` if it is none."""
    try:
        real = float(_number_text(value) if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if np.isnan(real) else real


def _whole_number(value: object) -> int | None:
    """An integer within int64 from a number or text, ``None`` if it is none (``2.5``, ``'x'``)."""
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        number = int(value)
    else:
        if isinstance(value, str):
            value = _number_text(value)
            try:
                number = int(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                number = None
        else:
            number = None
        if number is None:
            real = _real_number(value)
            if real is None or not (math.isfinite(real) and real.is_integer()):
                return None
            number = int(real)
    return number if -(1 << 63) <= number < (1 << 63) else None
