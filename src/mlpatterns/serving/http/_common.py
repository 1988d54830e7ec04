"""What both wire protocols of the HTTP Stateless Serving Function (16) share.

The served models (name, version, loaded :class:`ServingFunction`), the request limits,
the error that becomes a 4xx ``{"error": ...}`` answer, the checks of JSON values before
they reach pandas, and the conversion of a prediction frame back to JSON values.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.serving.stateless_serving_function import InputError, ServingFunction

__all__ = ["Limits", "RequestError", "ServedModel", "conform_frame", "native", "note_answer", "note_rows", "note_version",
           "predict_frame", "read_json", "scalar_problem"]

_SCALARS = (str, int, float, bool, type(None))


class RequestError(Exception):
    """A request the server refuses: answered as ``{"error": message}`` with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.status = message, status


@dataclass(frozen=True)
class Limits:
    """The largest request accepted: bytes of body and rows (instances) per request."""

    max_body_bytes: int = 10 * 1024 * 1024
    max_rows: int = 10_000

    def check_rows(self, rows: int) -> None:
        if rows > self.max_rows:
            raise RequestError(f"the request holds {rows} rows; the limit is {self.max_rows}", 413)


@dataclass(frozen=True)
class ServedModel:
    """One model the server answers for: its name, its version and the loaded bundle."""

    name: str
    version: str
    serving: ServingFunction

    @property
    def fields(self) -> list[str]:
        """The columns a request carries: the inputs, then the keys."""
        return [*self.serving.input_columns, *self.serving.key_columns]

    def key_kind(self, key: str) -> str:
        """The kind of a key column in the training data (integer, float, ...), from the bundle's statistics."""
        try:
            return str(self.serving.bundle.json("statistics.json")["columns"][key]["kind"])
        except (KeyError, TypeError, ValueError, AttributeError, OSError):
            return "unknown"


async def read_json(request: Any, limits: Limits) -> bytes:
    """The raw body (tritonclient sends no Content-Type), refused with 413 beyond the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise RequestError(f"the body holds {declared} bytes; the limit is {limits.max_body_bytes}", 413)
    body = await request.body()
    if len(body) > limits.max_body_bytes:
        raise RequestError(f"the body holds {len(body)} bytes; the limit is {limits.max_body_bytes}", 413)
    return body


def note_rows(request: Any, rows: int) -> None:
    """Record how many rows a request holds, for the access log (``request.state.rows``)."""
    request.state.rows = rows


def note_version(request: Any, model: str, version: str = "", rows_by_version: dict[str, int] | None = None) -> None:
    """Record the model and version a request was answered by, for the metrics and the access log.

    ``version`` is "" until the version is known; a request split over several versions
    records them joined by ",", and ``rows_by_version`` how many rows each answered.
    """
    request.state.model, request.state.version = model, version
    if rows_by_version is not None:
        request.state.rows_by_version = rows_by_version


def note_answer(request: Any, name: str, version: str, rows: int, used: list[str] | None) -> None:
    """Record the version(s) that answered ``rows`` rows: ``version``, or (a split) each row's in ``used``."""
    if used is None:
        note_version(request, name, version, {version: rows})
        return
    counts = Counter(used)
    note_version(request, name, ",".join(sorted(counts, key=int)), dict(counts))


def parse_json(body: bytes) -> Any:
    """The JSON document of a body, or a 400 that says where it is malformed."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RequestError(f"the body is not valid JSON: {error}") from error


def scalar_problem(value: Any) -> str | None:
    """Why a JSON value cannot be one cell of a row (None: it can)."""
    if not isinstance(value, _SCALARS):
        return f"expected a single value, got {type(value).__name__} {json.dumps(value)[:60]}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    return None


def conform_frame(model: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The rows converted to the model's input types, or a 400 naming each bad row and field."""
    try:
        conformed, problems = model.serving.conform(frame)
    except InputError as error:
        raise RequestError(str(error)) from error
    if problems:
        shown = "; ".join(f"row {p.row}, field '{p.column}': {p.problem}" for p in problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise RequestError(f"{len({p.row for p in problems})} bad row(s): {shown}{more}")
    return conformed


def predict_frame(model: ServedModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Keyed predictions for every row, or a 400 naming each bad row and field."""
    return model.serving.predict_conformed(frame, conform_frame(model, frame))


def native(value: Any) -> Any:
    """A numpy or pandas value as a JSON value (NaN and NA become null)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def column_values(frame: pd.DataFrame, column: str) -> list[Any]:
    """One column of a frame as a list of JSON values."""
    return [native(v) for v in frame[column].tolist()]
