"""Repeatable Splitting (pattern 22) for time series: train on the past, test on the future.

Problem: consecutive rows of a time series are correlated (one day's weather delays
the next day's flights too), and a model in production predicts a period it has
never seen. A random or hashed split scatters neighbouring days over training and
test, so the test metric measures how well the model interpolates between days it
knows, not how well it forecasts.

Solution: split sequentially, as the book does for time series: every training row
comes before every validation row, which comes before every test row. The split is
decided by cut-off times, ``split = "test" if time >= cutoffs["test"]``, so it is the
same in every run and in SQL (:func:`time_split_sql_condition`). Cut-offs can be
given, or chosen from fractions of the rows in time order (:func:`time_cutoffs`);
record them (in a bundle's lineage) to split new data the same way.

Times are compared in UTC: a date is its midnight, a naive timestamp is UTC, an aware
one is converted, ISO 8601 text is parsed (``"2013-01-01T10:00:00Z"``). Numbers (a
year, an epoch) are compared as numbers. A row AT a cut-off belongs to the later split.

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"day": pd.date_range("2013-01-01", periods=10).repeat(2)})
>>> time_cutoffs(frame["day"], {"train": 0.6, "valid": 0.2, "test": 0.2})
{'valid': '2013-01-07', 'test': '2013-01-09'}
>>> time_split(frame, "day", cutoffs={"test": "2013-01-09"}).value_counts(sort=False).to_dict()
{'train': 16, 'test': 4}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.repeatable_splitting import DEFAULT_FRACTIONS, Nulls

__all__ = ["TIME_SPLITS", "time_cutoffs", "time_split", "time_split_sql_condition"]

TIME_SPLITS: tuple[str, ...] = ("train", "valid", "test")  # in time order


def _null_error(name: str, missing: pd.Series) -> ValueError:
    return ValueError(
        f"time column {name!r} has {int(missing.sum())} null value(s), the first in row "
        f"{missing.index[int(np.argmax(missing.to_numpy()))]!r}; drop them, fill them, or pass "
        "nulls='exclude' to leave those rows out of every split"
    )


def _times(values: pd.Series, name: str, nulls: Nulls) -> pd.Series:
    """The column as numbers or as UTC datetimes (nulls kept as NaN/NaT)."""
    if nulls not in ("raise", "exclude"):
        raise ValueError(f"nulls must be 'raise' or 'exclude', got {nulls!r}")
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if pd.api.types.is_bool_dtype(values) or kind == "boolean":
        raise TypeError(f"time column {name!r} holds booleans; expected dates, times or numbers")
    if pd.api.types.is_numeric_dtype(values):
        times = values
    elif kind in ("integer", "floating", "mixed-integer-float", "decimal"):
        times = pd.to_numeric(values)
    elif kind in ("string", "date", "datetime", "datetime64", "empty"):
        options = {"format": "ISO8601"} if kind == "string" else {}
        try:
            times = pd.to_datetime(values, utc=True, errors="coerce", **options)
        except (TypeError, ValueError) as error:  # e.g. out of bounds
            raise ValueError(f"time column {name!r}: {error}") from error
        bad = times.isna() & values.notna()
        if bad.any():
            position = int(np.argmax(bad.to_numpy()))
            raise ValueError(
                f"time column {name!r} has {int(bad.sum())} value(s) that are not ISO 8601 "
                f"times, the first {values.iloc[position]!r} in row {values.index[position]!r}"
            )
    else:
        raise TypeError(
            f"time column {name!r} holds {kind} values; expected dates, timestamps, "
            "ISO 8601 text or numbers (a year, an epoch)"
        )
    missing = times.isna()
    if missing.all():
        raise ValueError(f"time column {name!r} has no non-null value to split")
    if missing.any() and nulls == "raise":
        raise _null_error(name, missing)
    return times


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _cutoff(value: Any, field: str, numeric: bool, name: str) -> Any:
    """One cut-off as a number (numeric column) or a UTC :class:`pandas.Timestamp`."""
    if numeric:
        if not _is_number(value) or np.isnan(value):
            holds = f"time column {name!r} holds numbers" if name else "the column_type is numeric"
            raise TypeError(f"{field} = {value!r} must be a number: {holds}")
        return value.item() if isinstance(value, np.number) else value
    if _is_number(value) or not isinstance(value, (str, dt.date, np.datetime64)):
        raise TypeError(
            f"{field} = {value!r} must be a date, a timestamp or ISO 8601 text"
            + (f": time column {name!r} holds times" if name else "")
        )
    try:
        stamp = (
            pd.to_datetime(value, format="ISO8601")
            if isinstance(value, str)
            else pd.Timestamp(value)
        )
    except (TypeError, ValueError) as error:
        raise ValueError(f"{field} = {value!r} is not an ISO 8601 time ({error})") from error
    if pd.isna(stamp):
        raise ValueError(f"{field} must be a time, got {value!r}")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _checked_cutoffs(cutoffs: Any, numeric: bool, name: str) -> dict[str, Any]:
    if not isinstance(cutoffs, Mapping) or not cutoffs:
        raise TypeError(
            f"cutoffs must be a non-empty dict of split name to the time it starts, e.g. "
            f"{{'valid': '2013-10-01', 'test': '2013-11-15'}}, got {cutoffs!r}"
        )
    for split in cutoffs:
        if split == TIME_SPLITS[0]:
            raise ValueError(
                "cutoffs['train']: train starts at the earliest row; give the cut-offs of "
                f"the later splits only, {list(TIME_SPLITS[1:])}"
            )
        if split not in TIME_SPLITS:
            raise ValueError(
                f"cutoffs: unknown split {split!r}; the splits are {list(TIME_SPLITS[1:])}"
            )
    checked = {
        s: _cutoff(cutoffs[s], f"cutoffs[{s!r}]", numeric, name)
        for s in TIME_SPLITS
        if s in cutoffs
    }
    starts = list(checked.items())
    for (early, a), (late, b) in zip(starts, starts[1:], strict=False):
        if not a < b:
            raise ValueError(
                f"cut-offs must increase in time order: {early} starts at {cutoffs[early]!r}, "
                f"not before {late} at {cutoffs[late]!r}"
            )
    return checked


def _checked_fractions(fractions: Any) -> dict[str, float]:
    if not isinstance(fractions, Mapping) or len(fractions) < 2:
        raise TypeError(
            f"fractions must be a dict of at least two splits to their shares, e.g. "
            f"{DEFAULT_FRACTIONS}, got {fractions!r}"
        )
    for split, fraction in fractions.items():
        if split not in TIME_SPLITS:
            raise ValueError(
                f"fractions: unknown split {split!r}; the splits are {list(TIME_SPLITS)}"
            )
        if not _is_number(fraction) or not 0 < fraction < 1:
            raise ValueError(f"fractions[{split!r}] = {fraction!r} must be a number in (0, 1)")
    if TIME_SPLITS[0] not in fractions:
        raise ValueError(
            f"fractions must include 'train', the earliest split, got {list(fractions)}"
        )
    total = sum(float(f) for f in fractions.values())
    if abs(total - 1) > 1e-9:
        raise ValueError(
            f"fractions must sum to 1, got {total:g} ({', '.join(f'{s}={f}' for s, f in fractions.items())})"
        )
    return {s: float(fractions[s]) for s in TIME_SPLITS if s in fractions}


def _recorded(cutoff: Any) -> Any:
    """A cut-off as JSON-ready text or number: ``'2013-10-01'`` at midnight UTC, else ISO 8601."""
    if not isinstance(cutoff, pd.Timestamp):
        return cutoff.item() if isinstance(cutoff, np.generic) else cutoff
    return cutoff.date().isoformat() if cutoff == cutoff.normalize() else cutoff.isoformat()


def _choose_cutoffs(times: pd.Series, fractions: Mapping[str, float], name: str) -> dict[str, Any]:
    counts = times.value_counts(dropna=True).sort_index()
    if len(counts) < len(fractions):
        raise ValueError(
            f"time column {name!r} has {len(counts)} distinct time(s); {len(fractions)} "
            f"splits {list(fractions)} need at least {len(fractions)}"
        )
    before = np.cumsum(counts.to_numpy()) - counts.to_numpy()  # rows strictly before each time
    targets = np.cumsum(list(fractions.values()))[:-1] * len(times.dropna())
    # each later split starts at the distinct time (never the first) whose count of earlier
    # rows is nearest its target: rows sharing a time are never cut apart
    positions = [1 + int(np.argmin(np.abs(before[1:] - target))) for target in targets]
    return {split: counts.index[i] for split, i in zip(list(fractions)[1:], positions, strict=True)}


def time_cutoffs(
    values: pd.Series | Any,
    fractions: Mapping[str, float] | None = None,
    *,
    nulls: Nulls = "raise",
) -> dict[str, Any]:
    """The cut-offs that split ``values`` into ``fractions`` of its rows, in time order.

    Each cut-off is a time of the data (the first of its split), chosen so that the
    rows before it are nearest the cumulative fraction; all rows of one time land in
    one split, so a split's share is only approximately its fraction.

    Parameters
    ----------
    values : pandas.Series or array-like
        Dates, timestamps, ISO 8601 text or numbers (see :func:`time_split`).
    fractions : dict of str to float, default ``{"train": 0.8, "valid": 0.1, "test": 0.1}``
        Shares of ``"train"`` and ``"valid"`` and/or ``"test"``, summing to 1.
    nulls : {"raise", "exclude"}
        Null times raise, or are left out (fractions then count the other rows).

    Returns
    -------
    dict
        ``{"valid": ..., "test": ...}``: ISO 8601 text (``'2013-10-01'`` at midnight
        UTC) or numbers, ready for JSON and for :func:`time_split` and
        :func:`time_split_sql_condition`.

    Raises
    ------
    ValueError
        If a split would be empty; the message names it and the cut-offs.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    name = "values" if series.name is None else str(series.name)
    fractions = _checked_fractions(DEFAULT_FRACTIONS if fractions is None else fractions)
    times = _times(series, name, nulls)
    chosen = _choose_cutoffs(times, fractions, name)
    recorded = {split: _recorded(cutoff) for split, cutoff in chosen.items()}
    starts = list(chosen.items())
    for (early, a), (late, b) in zip(starts, starts[1:], strict=False):
        if not a < b:
            raise ValueError(
                f"split {early!r} would be empty: the fractions {fractions} put its start and "
                f"{late!r}'s at the same time of column {name!r} (cut-offs {recorded}); "
                "give it a larger fraction or give cut-offs"
            )
    return recorded


def time_split(
    frame: pd.DataFrame,
    column: str,
    *,
    cutoffs: Mapping[str, Any] | None = None,
    fractions: Mapping[str, float] | None = None,
    nulls: Nulls = "raise",
) -> pd.Series:
    """The split of every row, in time order: train, then valid, then test.

    Parameters
    ----------
    frame : pandas.DataFrame
    column : str
        Dates, timestamps (naive ones are UTC, aware ones are converted to UTC), ISO
        8601 text, or numbers (a year, an epoch).
    cutoffs : dict, optional
        When ``"valid"`` and/or ``"test"`` start: a row earlier than every cut-off is
        train, a row at or after a cut-off belongs to that split (or a later one).
        Text, dates or timestamps for a time column, numbers for a numeric one.
    fractions : dict of str to float, optional
        Instead of ``cutoffs``: shares of the rows in time order, turned into cut-offs
        by :func:`time_cutoffs`. Default (neither given) ``DEFAULT_FRACTIONS``.
    nulls : {"raise", "exclude"}
        A null time raises a ValueError naming the column and the count; with
        ``"exclude"`` its split is missing (NaN), and the caller drops the row.

    Returns
    -------
    pandas.Series
        Categorical split names aligned with ``frame``, named ``"split"``; the cut-offs
        used, as :func:`time_cutoffs` records them, are in ``.attrs["cutoffs"]``.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"year": [2011, 2012, 2012, 2013, 2014]})
    >>> time_split(frame, "year", cutoffs={"valid": 2012, "test": 2014}).tolist()
    ['train', 'valid', 'valid', 'valid', 'test']
    """
    if column not in frame.columns:
        raise KeyError(
            f"time column {column!r} is not in the frame; its columns are {list(frame.columns)}"
        )
    if cutoffs is not None and fractions is not None:
        raise ValueError("give cutoffs or fractions, not both")
    times = _times(frame[column], column, nulls)
    numeric = pd.api.types.is_numeric_dtype(times)
    if cutoffs is None:
        cutoffs = time_cutoffs(times.rename(column), fractions, nulls="exclude")
    checked = _checked_cutoffs(cutoffs, numeric, column)
    codes = np.zeros(len(times), dtype=np.int64)
    for cutoff in checked.values():
        codes += (times >= cutoff).to_numpy(dtype=bool)
    codes[times.isna().to_numpy()] = -1
    names = ["train", *checked]
    recorded = {split: _recorded(cutoff) for split, cutoff in checked.items()}
    for code, split in enumerate(names):
        if not (codes == code).any():
            raise ValueError(
                f"split {split!r} is empty: no row of time column {column!r} lies in its "
                f"period (cut-offs {recorded}; the times run from {_recorded(times.min())} "
                f"to {_recorded(times.max())})"
            )
    result = pd.Series(
        pd.Categorical.from_codes(codes, categories=names), index=frame.index, name="split"
    )
    result.attrs["cutoffs"] = recorded
    return result


_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "INT64"}
_NUMERIC_TYPES = _INTEGER_TYPES | {"FLOAT", "FLOAT64", "DOUBLE", "REAL", "DECIMAL", "NUMERIC"}
_TEXT_TYPES = ("VARCHAR", "TEXT", "STRING")
_TIME_TYPES = ("DATE", "TIMESTAMP", "DATETIME", "TIMESTAMPTZ", *_TEXT_TYPES)


def _identifier(column: Any, dialect: str) -> str:
    if not isinstance(column, str) or not column:
        raise TypeError(f"column must be a non-empty column name, got {column!r}")
    if dialect == "bigquery":
        return "`" + column.replace("\\", "\\\\").replace("`", "\\`") + "`"
    return '"' + column.replace('"', '""') + '"'


def _sql_time(stamp: pd.Timestamp, field: str) -> str:
    if stamp.nanosecond:
        raise ValueError(f"{field} = {stamp.isoformat()!r}: SQL times stop at microseconds")
    return stamp.strftime("%Y-%m-%d %H:%M:%S" + (".%f" if stamp.microsecond else ""))


def _sql_literal(cutoff: Any, field: str, column_type: str, dialect: str) -> str:
    if column_type == "NUMBER":
        if isinstance(cutoff, float) and not np.isfinite(cutoff):
            raise ValueError(f"{field} = {cutoff!r} must be finite")
        return repr(cutoff)
    if column_type == "DATE":
        # a DATE is its midnight: a cut-off within a day makes the next day the first one on
        day = cutoff.normalize()
        day += pd.Timedelta(days=1) if cutoff != day else pd.Timedelta(0)
        return f"DATE '{day.date().isoformat()}'"
    text = _sql_time(cutoff, field)
    if column_type == "TIMESTAMPTZ" or (column_type in _TEXT_TYPES and dialect == "duckdb"):
        return f"TIMESTAMPTZ '{text}+00'"
    return f"{'DATETIME' if column_type == 'DATETIME' else 'TIMESTAMP'} '{text}'"


def time_split_sql_condition(
    column: str,
    split: str,
    cutoffs: Mapping[str, Any],
    *,
    column_type: str | None = None,
    dialect: str = "duckdb",
) -> str:
    """The SQL WHERE condition that selects the rows :func:`time_split` puts in ``split``.

    Parameters
    ----------
    column : str
        The time column's name; it is quoted (``"date"`` in DuckDB, `` `date` `` in BigQuery).
    split : {"train", "valid", "test"}
        One of ``"train"`` and the splits of ``cutoffs``.
    cutoffs : dict
        As for :func:`time_split`, e.g. the dict :func:`time_cutoffs` returned.
    column_type : str, optional
        The column's SQL type, which picks the literal it is compared with, so that no
        comparison depends on the session's time zone:

        ============================  =====================================================
        ``DATE``                      ``DATE '2013-10-01'`` (a cut-off within a day: the next day)
        ``TIMESTAMP``                 ``TIMESTAMP '2013-10-01 00:00:00'``: a UTC wall clock
                                      (DuckDB's naive TIMESTAMP, BigQuery's TIMESTAMP)
        ``DATETIME``                  BigQuery's naive DATETIME, as UTC: ``DATETIME '...'``
        ``TIMESTAMPTZ``               DuckDB: ``TIMESTAMPTZ '2013-10-01 00:00:00+00'``
        ``VARCHAR``, ``STRING``       ISO 8601 text: ``CAST(col AS TIMESTAMPTZ)`` in DuckDB
                                      (naive text is read in the session's ``TimeZone``:
                                      set it to ``'UTC'``), ``CAST(col AS TIMESTAMP)`` in
                                      BigQuery (UTC)
        ``None`` or a numeric type    numbers: ``year >= 2013``
        ============================  =====================================================
    dialect : {"duckdb", "bigquery"}
        Picks the identifier quoting and the text cast.

    Rows whose time is NULL satisfy no condition, like ``nulls="exclude"``.

    Examples
    --------
    >>> cutoffs = {"valid": "2013-10-01", "test": "2013-11-15"}
    >>> print(time_split_sql_condition("date", "valid", cutoffs, column_type="DATE"))
    "date" >= DATE '2013-10-01' AND "date" < DATE '2013-11-15'
    >>> print(time_split_sql_condition("date", "test", cutoffs, column_type="TIMESTAMPTZ"))
    "date" >= TIMESTAMPTZ '2013-11-15 00:00:00+00'
    >>> print(time_split_sql_condition("year", "train", {"test": 2013}, dialect="bigquery"))
    `year` < 2013
    """
    if dialect not in ("duckdb", "bigquery"):
        raise ValueError(f"dialect must be 'duckdb' or 'bigquery', got {dialect!r}")
    if not isinstance(cutoffs, Mapping) or not cutoffs:
        raise TypeError(
            f"cutoffs must be a non-empty dict of split name to its start, got {cutoffs!r}"
        )
    numeric = all(_is_number(value) for value in cutoffs.values())
    kind = "NUMBER" if column_type is None and numeric else str(column_type).upper()
    kind = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "INT64": "NUMBER"}.get(kind, kind)
    if kind in _NUMERIC_TYPES or kind.startswith(("DECIMAL(", "NUMERIC(")):
        kind = "NUMBER"
    if kind not in (*_TIME_TYPES, "NUMBER"):
        raise ValueError(
            f"column_type must be one of {list(_TIME_TYPES)} or a numeric SQL type"
            + (
                " (cut-offs that are times need it)"
                if column_type is None
                else f", got {column_type!r}"
            )
        )
    if kind == "TIMESTAMPTZ" and dialect == "bigquery":
        raise ValueError(
            "column_type 'TIMESTAMPTZ' is DuckDB's; BigQuery's absolute time is 'TIMESTAMP'"
        )
    checked = _checked_cutoffs(cutoffs, kind == "NUMBER", "")
    names = ["train", *checked]
    if split not in names:
        raise ValueError(f"split {split!r} is not one of the cut-offs' splits {names}")
    target = _identifier(column, dialect)
    if kind in _TEXT_TYPES:
        target = f"CAST({target} AS {'TIMESTAMP' if dialect == 'bigquery' else 'TIMESTAMPTZ'})"
    bounds = [_sql_literal(c, f"cutoffs[{s!r}]", kind, dialect) for s, c in checked.items()]
    position = names.index(split)
    conditions = []
    if position > 0:
        conditions.append(f"{target} >= {bounds[position - 1]}")
    if position < len(bounds):
        conditions.append(f"{target} < {bounds[position]}")
    return " AND ".join(conditions)
