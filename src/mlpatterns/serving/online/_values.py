"""One raw value converted to the type it was trained on, as :func:`mlpatterns.input_types.conform_column`
converts a column, without pandas.

``conform_column`` converts value by value (a row never depends on the other rows of its
chunk), so the same rules applied to one value give the same result: a boolean input
takes booleans, 0/1 and the texts training read; an integer input whole numbers (an
integer read only as a category keeps any other value as it is); another number input
numbers and numeric text; a text input anything, cast as BigQuery casts it. The values
are what JSON carries (str, int, float, bool, None); a float NaN counts as null.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from mlpatterns.hashing import to_bigquery_string

__all__ = ["Converter", "converter", "is_null"]

# a converter returns (the conformed value, None) or (None, what the value should have been)
Converter = Callable[[Any], tuple[Any, str | None]]

_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
_INTEGER_DTYPE = re.compile(r"u?int(8|16|32|64)?", re.IGNORECASE)


def is_null(value: Any) -> bool:
    """A null as pandas' ``notna`` sees a JSON value: None or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _to_boolean(value: Any, texts: Mapping[str, bool]) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        return _BOOLEANS.get(text, texts.get(text))
    return None


def _number_text(text: str) -> str | None:
    text = text.strip()
    return None if "_" in text else text  # Python reads "1_000"; a CSV reader does not


def _real_number(value: Any) -> float | None:
    try:
        real = float(_number_text(value) if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if math.isnan(real) else real


def _whole_number(value: Any) -> int | None:
    if isinstance(value, int):  # bool too: True is 1
        number = int(value)
    else:
        number = None
        if isinstance(value, str):
            try:
                number = int(_number_text(value))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                number = None
        if number is None:
            real = _real_number(value)
            if real is None or not (math.isfinite(real) and real.is_integer()):
                return None
            number = int(real)
    return number if -(1 << 63) <= number < (1 << 63) else None


def _text(value: Any) -> Any:
    return value if isinstance(value, str) else to_bigquery_string(value)


def converter(description: Mapping[str, Any]) -> tuple[Converter, str]:
    """The converter of one signature input, and what it calls the conformed value's kind:
    ``boolean``, ``integer``, ``number``, ``category`` (an integer read only as a category),
    ``text`` or ``raw`` (dates and other inputs the transform reads as they come)."""
    kind, dtype = description["type"], str(description.get("dtype", ""))
    if kind == "boolean":
        trues, falses = description.get("true_values", []), description.get("false_values", [])
        texts = {str(t).strip().lower(): True for t in trues} | {str(t).strip().lower(): False for t in falses}
        extra = [t for t in [*trues, *falses] if str(t).strip().lower() not in _BOOLEANS]
        expected = "true or false" + (f" (or {', '.join(map(repr, extra))})" if extra else "")

        def boolean(value: Any) -> tuple[Any, str | None]:
            converted = _to_boolean(value, texts)
            return (converted, None) if converted is not None else (None, expected)

        return boolean, "boolean"
    if kind == "number" and _INTEGER_DTYPE.fullmatch(dtype) and description.get("categorical"):
        def category(value: Any) -> tuple[Any, str | None]:
            whole = _whole_number(value)
            return (value if whole is None else whole), None

        return category, "category"
    if kind == "number" and _INTEGER_DTYPE.fullmatch(dtype):
        def integer(value: Any) -> tuple[Any, str | None]:
            whole = _whole_number(value)
            return (whole, None) if whole is not None else (None, "a whole number")

        return integer, "integer"
    if kind == "number":
        def number(value: Any) -> tuple[Any, str | None]:
            real = _real_number(value)
            return (real, None) if real is not None else (None, "a number")

        return number, "number"
    if kind == "text" and (dtype in ("str", "object") or dtype.startswith("string")):
        return (lambda value: (_text(value), None)), "text"
    return (lambda value: (value, None)), "raw"
