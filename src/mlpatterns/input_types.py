"""The same types at serving as at training: each raw input converted by what training recorded.

The Stateless Serving Function (16) must read a value the way training read it, whatever
chunk it arrives in and whatever the file format: :func:`input_description` records, for
the bundle's signature, how training read a column (boolean, number, date or text; its
pandas dtype; the texts a boolean column was written with; whether an integer column is
only a category), and :func:`conform_column` converts a raw column value by value to that
type, reporting the values that do not convert. A row's conversion never depends on the
other rows of its chunk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["conform_column", "input_description", "to_boolean"]

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
    if kind not in ("boolean", "number", "text"):  # dates: parsed by the transform, which reports the bad ones
        return values, np.zeros(len(values), dtype=bool), ""
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
