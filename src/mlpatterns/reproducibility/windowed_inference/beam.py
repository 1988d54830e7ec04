"""Windowed Inference (24) on Apache Beam: the sliding windows of a ``WindowFeature`` declaration as a Beam pipeline.

Beam is the engine the book runs this pattern on, for a cluster (Dataflow, Flink, Spark).
It is **not** a dependency of mlpatterns: Apache Beam 2.77 pins an older pyarrow than the
project's, so installing it into the project's environment would downgrade pyarrow. Use a
separate environment::

    python -m venv /tmp/beam-venv
    /tmp/beam-venv/bin/pip install apache-beam==2.77.0
    PYTHONPATH=src /tmp/beam-venv/bin/python examples/windowed_inference_beam.py --beam ...

(or ``pip install --no-deps`` this project into it; its import needs only pandas, which
Beam brings). This module imports ``apache_beam`` only when a pipeline is built.

The translation of :func:`~.sliding.sliding_window_features` (same declarations, same
results, checked by ``examples/windowed_inference_beam.py``):

* **Event time.** Each event's Beam timestamp is its ``time`` column (naive UTC, whole
  microseconds, Beam's resolution), as in the batch and stream computations.
* **Windows.** For each distinct width ``w`` of the features, ``beam.WindowInto(
  SlidingWindows(size=w, period=period, offset=(origin + w) mod period))``. Beam's window
  is ``[start, start + size)``, start on ``offset + n * period``: its (exclusive) end lies
  on ``origin + n * period`` and it holds exactly the events of ``[end - w, end)``, the
  declaration's half-open frame.
* **Aggregates.** ``CombinePerKey`` over per-event accumulators, per value column: the
  count, the sum as exact partials (Shewchuk's, merged in any order; the result is
  ``math.fsum``'s, as the stream's), max, min and Chan's parallel ``(n, mean, M2)`` for the
  sample standard deviation (within rounding of the two-pass one). ``mean`` is the exact sum
  over the count, bit for bit the stream's. Missing values (None/NaN) take no part.
* **Rows.** Beam emits a window only when an element falls in it, which is the batch's rule
  for the widest window; the widths are joined by ``(key, window end)`` (a ``GroupByKey`` in
  fixed windows of one period ending on the grid, which the results, stamped with their
  window's last microsecond, fall into; so it runs on unbounded inputs too) and a narrower
  feature with no event reports the empty window (count 0, sum 0.0, NaN otherwise).
* **Keys.** ``key=None``: one window over all events (Beam's key is then ``None``).

What differs: Beam's watermark is global per source (not per key, as
:class:`~.sliding.StreamSlidingWindows`'), and an element behind it by more than the
window's allowed lateness (0 here) is dropped silently with the default trigger; over a
bounded input (a file) nothing is late. Per-event windows (:func:`~.per_event.window_features`)
have no built-in Beam window; they need a stateful ``DoFn`` with event-time timers (not
written here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ._common import WindowFeature, checked, grid, present, time_us
from .sliding import EPOCH

__all__ = ["INSTALL", "import_beam", "sliding_window_features_beam"]

INSTALL = (
    "Apache Beam is kept out of mlpatterns' environment (apache-beam 2.77 would downgrade "
    "pyarrow); install it in a separate one: `python -m venv /tmp/beam-venv && "
    "/tmp/beam-venv/bin/pip install apache-beam==2.77.0`, then run with that interpreter and "
    "PYTHONPATH=<the project>/src (docs/patterns/windowed_inference.md, 'Apache Beam')"
)


def import_beam() -> Any:
    """``apache_beam``, or an ``ImportError`` saying how to install it apart from the project."""
    try:
        import apache_beam
    except ImportError as error:
        raise ImportError(f"apache_beam is not installed in this environment. {INSTALL}") from error
    return apache_beam


# An accumulator per value column: (n, sum partials, max, min, mean, m2); one tuple of them per element.
_EMPTY = (0, (), None, None, 0.0, 0.0)


def _partials_add(partials: list[float], x: float) -> list[float]:
    """Shewchuk's exact summation: the non-overlapping partials of ``sum(partials) + x``."""
    out = []
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        high = x + y
        low = y - (high - x)
        if low:
            out.append(low)
        x = high
    out.append(x)
    return out


def _one(value: Any) -> tuple:
    if not present(value):
        return _EMPTY
    x = float(value)
    return (1, (x,), x, x, x, 0.0)


def _merge_two(a: tuple, b: tuple) -> tuple:
    if a[0] == 0:
        return b
    if b[0] == 0:
        return a
    n = a[0] + b[0]
    partials = list(a[1])
    for x in b[1]:
        partials = _partials_add(partials, x)
    delta = b[4] - a[4]
    mean = a[4] + delta * b[0] / n
    m2 = a[5] + b[5] + delta * delta * a[0] * b[0] / n
    return (n, tuple(partials), max(a[2], b[2]), min(a[3], b[3]), mean, m2)


def _merge(accumulators: Iterable[tuple]) -> tuple:
    """The combine function: associative and commutative over per-column accumulator tuples."""
    merged: tuple | None = None
    for acc in accumulators:
        merged = acc if merged is None else tuple(_merge_two(x, y) for x, y in zip(merged, acc, strict=True))
    return merged if merged is not None else ()


def _value(acc: tuple, aggregate: str) -> float | int:
    n, partials, high, low, _, m2 = acc
    if aggregate == "count":
        return n
    total = math.fsum(partials)
    if aggregate == "sum":
        return total
    if n == 0 or (aggregate == "std" and n < 2):
        return math.nan
    return {"mean": lambda: total / n, "max": lambda: high, "min": lambda: low,
            "std": lambda: math.sqrt(m2 / (n - 1))}[aggregate]()


def _timestamped(event: Mapping[str, Any], key: str | None, time: str, columns: Sequence[str]) -> Any:
    from apache_beam.transforms.window import TimestampedValue
    from apache_beam.utils.timestamp import Timestamp

    k = event[key] if key is not None else None
    element = (k, tuple(_one(event[c]) for c in columns))
    return TimestampedValue(element, Timestamp(micros=time_us(event[time])))


def _with_end(element: tuple, width_us: int, window: Any) -> tuple:
    key, acc = element
    return (key, window.end.micros), (width_us, acc)


def _row(element: tuple, features: Sequence[WindowFeature], columns: Sequence[str], widest: int) -> dict:
    (key, end), parts = element
    by_width = dict(parts)
    if widest not in by_width:  # cannot happen: a narrower window is inside the widest one ending there
        raise AssertionError(f"window ending {end} of key {key!r} has no widest window")
    row: dict[str, Any] = {}
    if features[0].key is not None:
        row[features[0].key] = key
    row["window_end"] = EPOCH + timedelta(microseconds=end)
    for f in features:
        acc = by_width.get(f.width_us)
        column = acc[columns.index(f.column)] if acc is not None else _EMPTY
        row[f.name] = _value(column, f.aggregate)
    return row


def sliding_window_features_beam(
    events: Any,
    features: Sequence[WindowFeature],
    *,
    period: timedelta | str,
    origin: datetime = EPOCH,
    label: str = "WindowFeatures",
) -> Any:
    """Apply ``features``' sliding windows to the PCollection ``events`` (mappings of the key, time and value columns).

    Returns a PCollection of dicts, one per key and window end whose widest window holds an
    event: the key column (unless ``key=None``), ``window_end`` (a naive datetime) and one
    value per feature: the rows :func:`~.sliding.sliding_window_features` returns. ``label``
    prefixes the transforms' labels (apply it twice in one pipeline with two labels).
    """
    beam = import_beam()
    from apache_beam.transforms.window import FixedWindows, SlidingWindows
    from apache_beam.utils.timestamp import Duration, Timestamp

    features = checked(features)
    period_us, origin_us = grid(features, period, origin)
    key, time = features[0].key, features[0].time
    columns = sorted({f.column for f in features})
    widths = sorted({f.width_us for f in features})

    def with_end(element: tuple, width_us: int, window: Any = beam.DoFn.WindowParam) -> tuple:
        return _with_end(element, width_us, window)  # Beam passes the window to a default argument only

    timed = events | f"{label}/EventTime" >> beam.Map(_timestamped, key, time, columns)
    branches = []
    for width in widths:
        windows = SlidingWindows(size=Duration(micros=width), period=Duration(micros=period_us),
                                 offset=Timestamp(micros=(origin_us + width) % period_us))
        branches.append(
            timed
            | f"{label}/Window{width}us" >> beam.WindowInto(windows)
            | f"{label}/Combine{width}us" >> beam.CombinePerKey(_merge)
            | f"{label}/End{width}us" >> beam.Map(with_end, width)
            # A result's timestamp is its window's last microsecond (end - 1): the fixed windows
            # of one period ending on the grid gather the widths of one end, on bounded and
            # unbounded inputs alike.
            | f"{label}/ByEnd{width}us" >> beam.WindowInto(
                FixedWindows(size=Duration(micros=period_us), offset=Timestamp(micros=origin_us % period_us)))
        )
    return (
        branches
        | f"{label}/Flatten" >> beam.Flatten()
        | f"{label}/JoinWidths" >> beam.GroupByKey()
        | f"{label}/Row" >> beam.Map(_row, features, columns, max(widths))
    )
