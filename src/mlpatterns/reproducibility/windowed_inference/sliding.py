"""Windowed Inference (24), sliding windows with a period: a result per key and window end.

See the package's docstring for the semantics. The batch query explodes each event into
the windows that hold it (``width / period`` of them, rounded up) and groups by key and
window end; each feature aggregates only the events of its own width (``FILTER``).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlpatterns.tables import quote_identifier

from ._common import (
    LateEventError,
    WindowFeature,
    as_width,
    checked,
    frame_for,
    time_us,
)
from ._common import aggregate as aggregate_values

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

EPOCH = datetime(1970, 1, 1)

_SQL = {  # {v}: the value column, {f}: the filter keeping the feature's own width
    "count": "COUNT({v}) FILTER ({f})",
    "sum": "COALESCE(SUM(CAST({v} AS DOUBLE)) FILTER ({f}), 0.0)",
    "mean": "AVG(CAST({v} AS DOUBLE)) FILTER ({f})",
    "max": "MAX(CAST({v} AS DOUBLE)) FILTER ({f})",
    "min": "MIN(CAST({v} AS DOUBLE)) FILTER ({f})",
    "std": "STDDEV_SAMP(CAST({v} AS DOUBLE)) FILTER ({f})",
}


def _grid(features: Sequence[WindowFeature], period: Any, origin: Any) -> tuple[int, int]:
    """The period and origin in microseconds, checked."""
    period = as_width(period, "period")
    period_us = period // timedelta(microseconds=1)
    if period_us < 1:
        raise ValueError(f"period: expected a positive duration, got {period}")
    if not isinstance(origin, datetime):
        raise TypeError(f"origin: expected a datetime, got {origin!r}")
    keys = {f.key for f in features}
    times = {f.time for f in features}
    if len(keys) > 1 or len(times) > 1:
        raise ValueError(
            f"features: sliding windows share one key and one time column, got keys "
            f"{sorted(map(str, keys))} and times {sorted(times)}; compute each key apart"
        )
    return period_us, time_us(origin)


def sliding_window_features_sql(
    features: Sequence[WindowFeature],
    source: str,
    *,
    period: timedelta | str,
    origin: datetime = EPOCH,
) -> str:
    """The DuckDB query computing ``features`` over sliding windows for the table ``source``.

    One row per key (column ``key``'s name, absent for ``key=None``) and window end
    (column ``window_end``), ordered by key and end.
    """
    features = checked(features)
    p, o = _grid(features, period, origin)
    key, time = features[0].key, features[0].time
    widest = max(f.width_us for f in features)
    columns = sorted({f.column for f in features})
    key_select = f"{quote_identifier(key)} AS __key, " if key is not None else "NULL AS __key, "
    values = ", ".join(f"{quote_identifier(c)} AS {quote_identifier('v_' + c)}" for c in columns)
    # n: the index of a window end o + n * p; an event at t lies in the windows with
    # t < end <= t + width, i.e. n from floor((t - o) / p) + 1 to floor((t + widest - o) / p).
    # DuckDB's // truncates toward zero, so the floor is written as (a - mod(a)) // p.
    floor = "((({a}) - ((({a}) % {p}) + {p}) % {p}) // {p})"
    first = floor.format(a=f"__t - {o}", p=p)
    last = floor.format(a=f"__t + {widest} - {o}", p=p)
    selects = []
    for f in features:
        keep = f"WHERE __t >= {o} + __n * {p} - {f.width_us}"
        expression = _SQL[f.aggregate].format(v=quote_identifier("v_" + f.column), f=keep)
        selects.append(f"{expression} AS {quote_identifier(f.name)}")
    key_out = f"__key AS {quote_identifier(key)}, " if key is not None else ""
    return (
        f"WITH __events AS (SELECT {key_select}"
        f"epoch_us(CAST({quote_identifier(time)} AS TIMESTAMP)) AS __t, {values} FROM {source}), "
        f"__exploded AS (SELECT *, unnest(range({first} + 1, {last} + 1)) AS __n FROM __events) "
        f"SELECT {key_out}make_timestamp(CAST({o} + __n * {p} AS BIGINT)) AS window_end, "
        f"{', '.join(selects)} FROM __exploded GROUP BY __key, __n ORDER BY __key, __n"
    )


def sliding_window_features(
    data: pd.DataFrame,
    features: Sequence[WindowFeature],
    *,
    period: timedelta | str,
    origin: datetime = EPOCH,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Compute ``features`` over sliding windows, every ``period``, in batch with DuckDB.

    Returns one row per key and window end ``e = origin + n * period`` whose widest
    window ``[e - width, e)`` holds at least one event of the key: the key column (unless
    ``key=None``), ``window_end`` and one column per feature (``count`` as int64, the
    others float64), ordered by key and end, on a 0..n-1 index.
    """
    import duckdb

    features = checked(features)
    _grid(features, period, origin)
    frame = frame_for(data, features)
    con = connection if connection is not None else duckdb.connect()
    name = "__sliding_source"
    con.register(name, frame)
    try:
        query = sliding_window_features_sql(features, name, period=period, origin=origin)
        result = con.execute(query).df()
    finally:
        con.unregister(name)
        if connection is None:
            con.close()
    result["window_end"] = result["window_end"].astype("datetime64[us]")
    for f in features:
        result[f.name] = result[f.name].astype("int64" if f.aggregate == "count" else "float64")
    return result


@dataclass(frozen=True)
class Window:
    """One sliding window's features, final once emitted: ``[end - width, end)`` per feature."""

    key: Any
    end: datetime
    features: dict[str, float | int]


@dataclass
class _SlidingState:
    # times: sorted microseconds; rows: the value columns aligned with times;
    # ends: a heap of the window indexes n holding events, not yet emitted (set: no repeats).
    times: list[int] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    pending: set[int] = field(default_factory=set)
    max_time: int | None = None


class StreamSlidingWindows:
    """The stream processor for sliding windows: emits each key's windows once final.

    Parameters
    ----------
    features : the declarations; they share one ``key`` and one ``time`` column.
    period : the distance between window ends (``"10min"``); ends lie on
        ``origin + n * period``.
    origin : the grid's anchor, the Unix epoch by default.
    allowed_lateness, on_late : as for :class:`StreamWindows`.

    :meth:`process` takes one event and returns the :class:`Window` results that became
    final (their end at or before the key's watermark), in end order per key;
    :meth:`flush` emits the rest at the end of a stream. Not thread-safe.
    """

    def __init__(
        self,
        features: Sequence[WindowFeature],
        *,
        period: timedelta | str,
        origin: datetime = EPOCH,
        allowed_lateness: timedelta | str = timedelta(0),
        on_late: str = "drop",
    ) -> None:
        self.features = checked(features)
        self.period_us, self.origin_us = _grid(self.features, period, origin)
        self.key = self.features[0].key
        self.time = self.features[0].time
        lateness = as_width(allowed_lateness, "allowed_lateness")
        if lateness < timedelta(0):
            raise ValueError(f"allowed_lateness: expected a duration >= 0, got {lateness}")
        self.lateness_us = lateness // timedelta(microseconds=1)
        if on_late not in ("drop", "raise"):
            raise ValueError(f"on_late: expected 'drop' or 'raise', got {on_late!r}")
        self.on_late = on_late
        self.columns = sorted({f.column for f in self.features})
        self._column_index = {c: i for i, c in enumerate(self.columns)}
        self._horizon_us = max(f.width_us for f in self.features)
        self._states: dict[Any, _SlidingState] = {}
        self.rejected = 0

    def process(self, event: Mapping[str, Any]) -> list[Window]:
        """Take one event; return the windows (of its key) now final."""
        for col in [self.time, *([self.key] if self.key is not None else []), *self.columns]:
            if col not in event:
                raise ValueError(f"event: expected a {col!r} field, got fields {sorted(event)}")
        t = time_us(event[self.time])
        key = event[self.key] if self.key is not None else None
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _SlidingState()
        if state.max_time is not None and t < state.max_time - self.lateness_us:
            if self.on_late == "raise":
                raise LateEventError(
                    f"event at {event[self.time]} for key {key!r} is older than the allowed lateness "
                    f"behind the key's latest time"
                )
            self.rejected += 1
            return []
        index = bisect_left(state.times, t + 1)
        state.times.insert(index, t)
        state.rows.insert(index, tuple(event[c] for c in self.columns))
        p, o = self.period_us, self.origin_us
        for n in range((t - o) // p + 1, (t + self._horizon_us - o) // p + 1):
            if n not in state.pending:
                state.pending.add(n)
                heapq.heappush(state.ends, n)
        if state.max_time is None or t > state.max_time:
            state.max_time = t
        return self._emit(key, state, state.max_time - self.lateness_us)

    def flush(self) -> list[Window]:
        """Emit every pending window (the end of the stream: nothing more will arrive)."""
        out: list[Window] = []
        for key, state in self._states.items():
            out.extend(self._emit(key, state, None))
        return out

    def _emit(self, key: Any, state: _SlidingState, watermark: int | None) -> list[Window]:
        import pandas as pd

        out = []
        p, o = self.period_us, self.origin_us
        while state.ends and (watermark is None or o + state.ends[0] * p <= watermark):
            n = heapq.heappop(state.ends)
            state.pending.discard(n)
            end = o + n * p
            stop = bisect_left(state.times, end)
            features = {}
            for f in self.features:
                start = bisect_left(state.times, end - f.width_us, 0, stop)
                i = self._column_index[f.column]
                features[f.name] = aggregate_values(
                    (row[i] for row in state.rows[start:stop]), f.aggregate
                )
            out.append(Window(key, pd.Timestamp(end, unit="us").to_pydatetime(), features))
        if watermark is not None:
            cut = bisect_left(state.times, watermark - self._horizon_us)
            if cut:
                del state.times[:cut]
                del state.rows[:cut]
        return out

    def held(self) -> int:
        """How many events the processor holds (all keys): its state's size."""
        return sum(len(s.times) for s in self._states.values())
