"""Windowed Inference (24), sliding windows with a period: a result per key and window end.

See the package's docstring for the semantics. The batch query explodes each event into
the windows that hold it (``width / period`` of them, rounded up) and groups by key and
window end; each feature aggregates only the events of its own width (``FILTER``).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlpatterns.tables import quote_identifier

from ._common import (
    KeyedStream,
    KeyEvents,
    WindowFeature,
    checked,
    frame_for,
    grid,
)

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
    p, o = grid(features, period, origin)
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
    grid(features, period, origin)
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
class _SlidingState(KeyEvents):
    # ends: a heap of the window indexes n holding events, not yet emitted (pending: the same, as a set).
    ends: list[int] = field(default_factory=list)
    pending: set[int] = field(default_factory=set)


class StreamSlidingWindows(KeyedStream):
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

    state, name, write_through : keep the state (per key: the held events' times and values,
        the largest time seen, the pending window ends) in an online store, as for
        :class:`StreamWindows`.
    """

    def __init__(
        self,
        features: Sequence[WindowFeature],
        *,
        period: timedelta | str,
        origin: datetime = EPOCH,
        allowed_lateness: timedelta | str = timedelta(0),
        on_late: str = "drop",
        state: Any = None,
        name: str | None = None,
        write_through: bool = False,
    ) -> None:
        super().__init__(features, allowed_lateness, on_late, _SlidingState)
        self.period_us, self.origin_us = grid(self.features, period, origin)
        self._attach(state, name, write_through)

    def process(self, event: Mapping[str, Any]) -> list[Window]:
        """Take one event; return the windows (of its key) now final."""
        accepted = self._accept(event)
        if accepted is None:
            self._written_through()
            return []
        key, state, t = accepted
        p, o = self.period_us, self.origin_us
        for n in range((t - o) // p + 1, (t + self._horizon_us - o) // p + 1):
            if n not in state.pending:
                state.pending.add(n)
                heapq.heappush(state.ends, n)
        out = self._emit(key, state, state.max_time - self.lateness_us)
        self._written_through()
        return out

    def flush(self) -> list[Window]:
        """Emit every pending window (the end of the stream: nothing more will arrive)."""
        self._check_open()
        out: list[Window] = []
        for key, state in self._states.items():
            if state.ends and self._store is not None:
                self._dirty.add(key)
            out.extend(self._emit(key, state, None))
        self._written_through()
        return out

    def _declaration(self) -> dict[str, Any]:
        return {**super()._declaration(), "period_us": self.period_us, "origin_us": self.origin_us}

    def _encode_state(self, state: _SlidingState) -> dict[str, Any]:
        return {**super()._encode_state(state), "ends": sorted(state.pending)}

    def _decode_state(self, data: Mapping[str, Any]) -> _SlidingState:
        state = super()._decode_state(data)
        state.ends = list(data["ends"])  # sorted: a heap
        state.pending = set(state.ends)
        return state

    def _emit(self, key: Any, state: _SlidingState, watermark: int | None) -> list[Window]:
        import pandas as pd

        out = []
        p, o = self.period_us, self.origin_us
        while state.ends and (watermark is None or o + state.ends[0] * p <= watermark):
            n = heapq.heappop(state.ends)
            state.pending.discard(n)
            end = o + n * p
            out.append(Window(key, pd.Timestamp(end, unit="us").to_pydatetime(), self._features_before(state, end)))
        self._forget(state, watermark)
        return out
