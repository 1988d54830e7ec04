"""Many served rows as prediction log text at once (Continued Model Evaluation, 18).

Problem: the prediction logger's flush thread turns every logged row into JSON text (its
inputs and its outputs), a key text and a predicted label. Done a row at a time that costs
about 13 microseconds a row (flights, twelve inputs), as much as a server spends answering
a request, and the thread competes with the server's event loop for the interpreter.

Solution: encode a column at a time. Rows that are dicts with the same keys in the same
order and plain cells (text, integers, floats, booleans, None: what a JSON request holds)
are transposed into columns; each column is encoded by one C-level ``map`` (the JSON
encoder's own string escaping, ``int.__repr__``, ``float.__repr__``) and the rows are put
together by one ``%`` template. The text is byte for byte what
:func:`encode` (``json.JSONEncoder`` with compact separators, ``ensure_ascii=False``, NaN
and infinities as null) writes for each row; anything else (nested lists or dicts, NumPy
values, dates, keys that are not text, rows whose keys differ) takes :func:`encode` row by
row. :func:`key_texts` and :func:`label_texts` do the same for the key text
(``row_key_text(row, columns, separator="|")``) and ``label_text``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring
from typing import Any

from mlpatterns.reproducibility.split_keys import key_value_text
from mlpatterns.serving.continued_evaluation.prediction_log import (
    KEY_SEPARATOR,
    PredictionLogError,
    label_text,
)
from mlpatterns.serving.serving_contract import json_value

__all__ = ["encode", "encode_rows", "key_text", "key_texts", "label_texts", "number", "numbers"]

_MISSING = object()
_NONE = type(None)


def _json_default(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if tolist is not None and getattr(value, "ndim", 0):  # a NumPy array
        return tolist()
    value = json_value(value)  # NumPy scalars, NA and NaT
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return _finite(_json_default(value)) if type(value).__module__ != "builtins" else value


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)


def encode(mapping: Mapping[str, Any]) -> str:
    """A row as compact JSON text, cells as :func:`~mlpatterns.serving.serving_contract.json_value` makes them
    (NaN and infinities as null, also inside lists): the general path, one row."""
    try:
        return _ENCODER.encode(mapping if type(mapping) is dict else dict(mapping))
    except ValueError:  # a NaN or an infinity: the slow path
        return _ENCODER.encode(_finite(dict(mapping)))


def _float_text(value: float) -> str:
    return float.__repr__(value) if value - value == 0.0 else "null"  # NaN and infinities give NaN


_CELL = {str: encode_basestring, int: int.__repr__, float: _float_text, bool: lambda v: "true" if v else "false",
         _NONE: lambda v: "null"}


def _column_texts(values: Sequence[Any]) -> tuple[str, Sequence[Any]] | None:
    """A column of plain cells as (its ``%`` conversion, the values it takes): integers as ``%d`` and finite
    floats as ``%r`` (``int.__repr__`` and ``float.__repr__``, as the JSON encoder writes them), anything else
    as its JSON text; None when a cell is not plain."""
    types = set(map(type, values))
    if len(types) == 1:
        kind = next(iter(types))
        if kind is str:
            return "%s", list(map(encode_basestring, values))
        if kind is int:
            return "%d", values
        if kind is float and all(map(math.isfinite, values)):
            return "%r", values
    if not types <= _CELL.keys():
        return None
    cell = _CELL
    return "%s", [cell[type(v)](v) for v in values]


def columns_of(rows: Sequence[Any]) -> tuple[tuple[str, ...], list[tuple]] | None:
    """Rows that are dicts with the same text keys in the same order, as (names, columns); else None."""
    if not rows or type(rows[0]) is not dict:
        return None
    names = tuple(rows[0])
    if not all(type(name) is str for name in names):
        return None
    if not all(type(row) is dict and tuple(row) == names for row in rows):
        return None
    if not names:
        return names, []
    return names, list(zip(*map(dict.values, rows), strict=True))


def encode_rows(rows: Sequence[Mapping[str, Any]], columns: tuple[tuple[str, ...], list[tuple]] | None = None
                ) -> list[str]:
    """:func:`encode` of every row, a column at a time where the rows allow (see the module);
    ``columns``: :func:`columns_of` the rows when the caller has it."""
    if columns is None:
        columns = columns_of(rows)
    if columns is not None:
        names, values = columns
        if not names:
            return ["{}"] * len(rows)
        conversions, texts = [], []
        for column in values:
            column_texts = _column_texts(column)
            if column_texts is None:
                break
            conversions.append(column_texts[0])
            texts.append(column_texts[1])
        else:
            template = "{" + ",".join(encode_basestring(name).replace("%", "%%") + ":" + conversion
                                      for name, conversion in zip(names, conversions, strict=True)) + "}"
            return list(map(template.__mod__, zip(*texts, strict=True)))
    return [encode(row) for row in rows]


def key_text(row: Mapping[str, Any], columns: Sequence[str]) -> str | None:
    """``row_key_text(row, columns, separator="|")`` for one row (None if a key column is missing)."""
    texts = []
    for column in columns:
        value = row.get(column, _MISSING)
        kind = type(value)
        if kind is str or kind is int:  # the usual keys: key_value_text's text for them, without its dispatch
            texts.append(value if kind is str else int.__repr__(value))
            continue
        if value is _MISSING:
            return None
        text = key_value_text(value)
        if text is None:
            return None
        texts.append(text.decode("utf-8", "backslashreplace") if isinstance(text, bytes) else text)
    return texts[0] if len(texts) == 1 else KEY_SEPARATOR.join(texts)


def key_texts(rows: Sequence[Mapping[str, Any]], key_columns: Sequence[str],
              columns: tuple[tuple[str, ...], list[tuple]] | None = None) -> list[str | None]:
    """:func:`key_text` of every row; a column at a time when ``columns`` (:func:`columns_of`) holds every key
    column as text or integers only."""
    if columns is not None and key_columns:
        names, values = columns
        parts = []
        for column in key_columns:
            if column not in names:
                break
            part = values[names.index(column)]
            types = set(map(type, part))
            if types == {str}:
                parts.append(part)
            elif types == {int}:
                parts.append(list(map(int.__repr__, part)))
            else:
                break
        else:
            return list(parts[0]) if len(parts) == 1 else list(map(KEY_SEPARATOR.join, zip(*parts, strict=True)))
    return [key_text(row, key_columns) for row in rows]


def _label(value: Any) -> str | None:
    try:
        return label_text(value)
    except PredictionLogError:  # not a class (a list, say): no predicted label
        return None


def label_texts(values: Sequence[Any]) -> list[str | None]:
    """``label_text`` of each value (None where a value is not a class)."""
    types = set(map(type, values))
    if types == {int}:
        return list(map(int.__repr__, values))
    if types <= {str, _NONE}:
        return list(values)
    return list(map(_label, values))


def number(value: Any) -> float | None:
    """A prediction as a float (None: not a number, or NaN)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def numbers(values: Sequence[Any]) -> list[float | None]:
    """:func:`number` of each value."""
    if set(map(type, values)) == {float}:
        return [None if v != v else v for v in values]
    return list(map(number, values))
