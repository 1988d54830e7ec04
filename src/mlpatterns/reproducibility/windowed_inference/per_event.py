"""Windowed Inference (24): one declaration of a window feature, computed in batch and on a stream.

Problem: a feature that needs state over time (the mean departure delay at this airport
over the previous hour) is computed with SQL over history when the model is trained and
with hand-written code over live events when it serves; the two drift apart and the model
sees skewed features. Solution: declare each window feature once (:class:`WindowFeature`)
and compute it from that declaration both ways, with the same exact semantics:
:func:`window_features` in batch (DuckDB window functions, for training and backfill) and
:class:`StreamWindows` incrementally (a stateful per-key processor for the server).

Semantics (both ways):

* **Frame.** An event at time ``t`` gets the aggregate of the values of the events of its
  key with time in ``[t - width, t)``: the start is included, the end is not, so events
  at the same timestamp (ties, the event itself included) are *never* in its window. A
  stream cannot know the other events of the same instant when it scores one, and DuckDB's
  ``RANGE ... CURRENT ROW`` would include them; the batch SQL therefore ends its frame at
  ``1 PRECEDING`` on integer microseconds. Times are naive timestamps truncated to whole
  microseconds (DuckDB's resolution); a time zone-aware time is converted to UTC first.
* **Aggregates.** ``count`` (non-missing values), ``sum`` (0.0 over an empty window),
  ``mean``, ``max``, ``min`` (missing over an empty window) and ``std``, the *sample*
  standard deviation (``ddof=1``; missing below two values). Missing values (None/NaN) in
  the value column take no part in any aggregate but their events still get features.
* **Lateness.** :class:`StreamWindows` keeps, per key, the largest time seen ``M``. An
  event with time ``t < M - allowed_lateness`` is too late: it is rejected (counted in
  ``rejected``, or raised as :class:`LateEventError`) and changes no state. An event
  within the lateness is inserted in time order. An event's features are *emitted* once
  its key's watermark ``M - allowed_lateness`` reaches its time; from then on no event of
  ``[t - width, t)`` can still be accepted, so the emitted features are final and equal
  the batch features of the accepted events, whatever their delivery order. With
  ``allowed_lateness=0`` every accepted event is emitted as it arrives.

Not yet here: sliding windows with a period (the book's two-hour windows every ten
minutes) and session windows.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

AGGREGATES = ("count", "sum", "mean", "max", "min", "std")

_SQL = {  # {v}: the value column, {w}: the window
    "count": "COUNT({v}) OVER {w}",
    "sum": "COALESCE(SUM(CAST({v} AS DOUBLE)) OVER {w}, 0.0)",
    "mean": "AVG(CAST({v} AS DOUBLE)) OVER {w}",
    "max": "MAX(CAST({v} AS DOUBLE)) OVER {w}",
    "min": "MIN(CAST({v} AS DOUBLE)) OVER {w}",
    "std": "STDDEV_SAMP(CAST({v} AS DOUBLE)) OVER {w}",
}


def _as_width(width: Any) -> timedelta:
    if isinstance(width, str):
        import pandas as pd

        try:
            width = pd.Timedelta(width).to_pytimedelta()
        except ValueError as error:
            raise ValueError(f"width: expected a duration such as '2h', got {width!r}") from error
    if not isinstance(width, timedelta):
        raise TypeError(
            f"width: expected a datetime.timedelta or a string such as '2h', got {width!r}"
        )
    return width


@dataclass(frozen=True)
class WindowFeature:
    """A feature aggregated over the window ``[t - width, t)`` before each event, per key.

    Parameters
    ----------
    name : the output column.
    column : the value column aggregated.
    aggregate : one of :data:`AGGREGATES`.
    width : the window's length, a ``timedelta`` or a pandas duration string (``"2h"``).
    key : the column whose value partitions the events (None: one window for all).
    time : the event time column.

    Examples
    --------
    >>> WindowFeature("delay_mean_2h", "dep_delay", "mean", "2h", key="origin", time="sched_dep")
    ... # doctest: +ELLIPSIS
    WindowFeature(name='delay_mean_2h', ..., width=datetime.timedelta(seconds=7200), ...)
    """

    name: str
    column: str
    aggregate: str
    width: timedelta
    key: str | None = None
    time: str = "time"

    def __post_init__(self) -> None:
        for attr in ("name", "column", "time"):
            value = getattr(self, attr)
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"WindowFeature {attr}: expected a non-empty string, got {value!r}"
                )
        if self.key is not None and (not isinstance(self.key, str) or not self.key):
            raise ValueError(f"WindowFeature key: expected a column name or None, got {self.key!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(
                f"WindowFeature {self.name!r} aggregate: expected one of {', '.join(AGGREGATES)}, "
                f"got {self.aggregate!r}"
            )
        width = _as_width(self.width)
        if width <= timedelta(0) or width // timedelta(microseconds=1) < 1:
            raise ValueError(
                f"WindowFeature {self.name!r} width: expected a positive duration, got {width}"
            )
        object.__setattr__(self, "width", width)

    @property
    def width_us(self) -> int:
        """The width in whole microseconds, the resolution of both computations."""
        return self.width // timedelta(microseconds=1)


def _checked(features: Sequence[WindowFeature]) -> list[WindowFeature]:
    features = list(features)
    if not features:
        raise ValueError("features: expected at least one WindowFeature")
    for feature in features:
        if not isinstance(feature, WindowFeature):
            raise TypeError(f"features: expected WindowFeature declarations, got {feature!r}")
    names = [f.name for f in features]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"features: names must be unique, {duplicated} repeat")
    return features


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def window_features_sql(
    features: Sequence[WindowFeature], source: str, *, keep: Sequence[str] = ()
) -> str:
    """The DuckDB query computing ``features`` for every row of the table or view ``source``.

    The query selects the columns ``keep`` and one column per feature, in ``source``'s
    order when ``keep`` holds a row number to sort by afterwards.
    """
    features = _checked(features)
    windows: dict[tuple[str | None, str, int], str] = {}
    selects = [_quote(c) for c in keep]
    for f in features:
        signature = (f.key, f.time, f.width_us)
        window = windows.setdefault(signature, f"w{len(windows)}")
        selects.append(
            f"{_SQL[f.aggregate].format(v=_quote(f.column), w=window)} AS {_quote(f.name)}"
        )
    clauses = []
    for (key, time, width_us), window in windows.items():
        partition = f"PARTITION BY {_quote(key)} " if key is not None else ""
        clauses.append(
            f"{window} AS ({partition}ORDER BY epoch_us(CAST({_quote(time)} AS TIMESTAMP)) "
            f"RANGE BETWEEN {width_us} PRECEDING AND 1 PRECEDING)"
        )
    return f"SELECT {', '.join(selects)} FROM {source} WINDOW {', '.join(clauses)}"


def window_features(
    data: pd.DataFrame,
    features: Sequence[WindowFeature],
    *,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Compute ``features`` for every row of ``data`` in batch with DuckDB window functions.

    Returns a frame with ``data``'s index and one column per feature (``count`` as int64,
    the others float64 with NaN where missing). A bad declaration for this data (a column
    missing, a time column that is not a timestamp, a missing time) raises ``ValueError``
    naming the feature and the field.
    """
    import duckdb
    import pandas as pd

    features = _checked(features)
    frame = pd.DataFrame(index=range(len(data)))
    for f in features:
        for attr in ("column", "key", "time"):
            col = getattr(f, attr)
            if col is not None and col not in data.columns:
                raise ValueError(
                    f"WindowFeature {f.name!r} {attr}: column {col!r} is not in the data "
                    f"(columns: {', '.join(map(str, data.columns))})"
                )
            if col is not None and col not in frame.columns:
                frame[col] = data[col].to_numpy()
        times = frame[f.time]
        if not pd.api.types.is_datetime64_any_dtype(times):
            raise ValueError(
                f"WindowFeature {f.name!r} time: column {f.time!r} must hold timestamps, not {times.dtype}"
            )
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            frame[f.time] = times.dt.tz_convert("UTC").dt.tz_localize(None)
        if frame[f.time].isna().any():
            raise ValueError(f"WindowFeature {f.name!r} time: column {f.time!r} has missing times")
    frame["__row"] = range(len(frame))
    con = connection if connection is not None else duckdb.connect()
    name = "__window_source"
    con.register(name, frame)
    try:
        query = window_features_sql(features, name, keep=["__row"])
        result = con.execute(f"SELECT * FROM ({query}) ORDER BY __row").df()
    finally:
        con.unregister(name)
        if connection is None:
            con.close()
    result = result.drop(columns="__row")
    result.index = data.index
    for f in features:
        result[f.name] = result[f.name].astype("int64" if f.aggregate == "count" else "float64")
    return result


class LateEventError(ValueError):
    """An event older than its key's largest time seen minus the allowed lateness."""


def _time_us(value: Any) -> int:
    import pandas as pd

    if value is None:
        raise ValueError("time: expected a timestamp, got None")
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError("time: expected a timestamp, got a missing time")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.value // 1000


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _aggregate(values: Iterable[Any], aggregate: str) -> float | int:
    xs = [float(v) for v in values if _present(v)]
    n = len(xs)
    if aggregate == "count":
        return n
    if aggregate == "sum":
        return math.fsum(xs)
    if aggregate == "max":
        return max(xs) if n else math.nan
    if aggregate == "min":
        return min(xs) if n else math.nan
    if n == 0 or (aggregate == "std" and n < 2):
        return math.nan
    mean = math.fsum(xs) / n
    if aggregate == "mean":
        return mean
    return math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))


@dataclass
class _KeyState:
    # times: sorted microseconds, equal times in arrival order; rows: the value columns,
    # aligned with times; pending: a heap of (time, seq, event) not yet emitted.
    times: list[int] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    pending: list[tuple[int, int, Mapping[str, Any]]] = field(default_factory=list)
    max_time: int | None = None


@dataclass(frozen=True)
class Scored:
    """An event and its window features, final once emitted."""

    event: Mapping[str, Any]
    features: dict[str, float | int]


class StreamWindows:
    """The stateful per-key stream processor computing window features incrementally.

    Parameters
    ----------
    features : the declarations; they share one ``key`` and one ``time`` column.
    allowed_lateness : how far behind its key's largest time seen an event may arrive.
    on_late : ``"drop"`` (count it in ``rejected``) or ``"raise"`` (:class:`LateEventError`).

    :meth:`process` takes one event (a mapping holding the key, time and value columns)
    and returns the events whose features became final, in time order per key (see the
    module's docstring for the exact semantics); :meth:`flush` emits the rest at the end
    of a stream. State is bounded: an event is forgotten once it is older than the key's
    watermark minus the widest window. Not thread-safe: one processor per worker, or a lock.
    """

    def __init__(
        self,
        features: Sequence[WindowFeature],
        *,
        allowed_lateness: timedelta | str = timedelta(0),
        on_late: str = "drop",
    ) -> None:
        self.features = _checked(features)
        keys = {f.key for f in self.features}
        times = {f.time for f in self.features}
        if len(keys) > 1 or len(times) > 1:
            raise ValueError(
                f"features: one StreamWindows serves one key and one time column, got keys {sorted(map(str, keys))} "
                f"and times {sorted(times)}; use one processor per key"
            )
        self.key = keys.pop()
        self.time = times.pop()
        lateness = _as_width(allowed_lateness)
        if lateness < timedelta(0):
            raise ValueError(f"allowed_lateness: expected a duration >= 0, got {lateness}")
        self.lateness_us = lateness // timedelta(microseconds=1)
        if on_late not in ("drop", "raise"):
            raise ValueError(f"on_late: expected 'drop' or 'raise', got {on_late!r}")
        self.on_late = on_late
        self.columns = sorted({f.column for f in self.features})
        self._column_index = {c: i for i, c in enumerate(self.columns)}
        self._horizon_us = max(f.width_us for f in self.features)
        self._states: dict[Any, _KeyState] = {}
        self._seq = 0
        self.rejected = 0

    def process(self, event: Mapping[str, Any]) -> list[Scored]:
        """Take one event; return the events (this one or earlier ones) now final, with features."""
        for col in [self.time, *([self.key] if self.key is not None else []), *self.columns]:
            if col not in event:
                raise ValueError(f"event: expected a {col!r} field, got fields {sorted(event)}")
        t = _time_us(event[self.time])
        key = event[self.key] if self.key is not None else None
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _KeyState()
        if state.max_time is not None and t < state.max_time - self.lateness_us:
            if self.on_late == "raise":
                raise LateEventError(
                    f"event at {event[self.time]} for key {key!r} is older than the allowed lateness "
                    f"behind the key's latest time"
                )
            self.rejected += 1
            return []
        index = bisect_left(state.times, t + 1)  # after the events of the same time
        state.times.insert(index, t)
        state.rows.insert(index, tuple(event[c] for c in self.columns))
        heapq.heappush(state.pending, (t, self._seq, event))
        self._seq += 1
        if state.max_time is None or t > state.max_time:
            state.max_time = t
        return self._emit(state, state.max_time - self.lateness_us)

    def flush(self) -> list[Scored]:
        """Emit every pending event (the end of the stream: nothing more will arrive)."""
        out: list[Scored] = []
        for state in self._states.values():
            out.extend(self._emit(state, None))
        return out

    def _emit(self, state: _KeyState, watermark: int | None) -> list[Scored]:
        out = []
        while state.pending and (watermark is None or state.pending[0][0] <= watermark):
            t, _, event = heapq.heappop(state.pending)
            out.append(Scored(event, self._features_at(state, t)))
        if watermark is not None:
            cut = bisect_left(state.times, watermark - self._horizon_us)
            if cut:
                del state.times[:cut]
                del state.rows[:cut]
        return out

    def _features_at(self, state: _KeyState, t: int) -> dict[str, float | int]:
        end = bisect_left(state.times, t)
        result = {}
        for f in self.features:
            start = bisect_left(state.times, t - f.width_us, 0, end)
            i = self._column_index[f.column]
            result[f.name] = _aggregate((row[i] for row in state.rows[start:end]), f.aggregate)
        return result

    def held(self) -> int:
        """How many events the processor holds (all keys): its state's size."""
        return sum(len(s.times) for s in self._states.values())
