"""Windowed Inference (24), per-event windows: each event gets the aggregate over ``[t - width, t)``.

See the package's docstring for the semantics.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
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

_SQL = {  # {v}: the value column, {w}: the window
    "count": "COUNT({v}) OVER {w}",
    "sum": "COALESCE(SUM(CAST({v} AS DOUBLE)) OVER {w}, 0.0)",
    "mean": "AVG(CAST({v} AS DOUBLE)) OVER {w}",
    "max": "MAX(CAST({v} AS DOUBLE)) OVER {w}",
    "min": "MIN(CAST({v} AS DOUBLE)) OVER {w}",
    "std": "STDDEV_SAMP(CAST({v} AS DOUBLE)) OVER {w}",
}


def window_features_sql(
    features: Sequence[WindowFeature], source: str, *, keep: Sequence[str] = ()
) -> str:
    """The DuckDB query computing ``features`` for every row of the table or view ``source``.

    The query selects the columns ``keep`` and one column per feature, in ``source``'s
    order when ``keep`` holds a row number to sort by afterwards.
    """
    features = checked(features)
    windows: dict[tuple[str | None, str, int], str] = {}
    selects = [quote_identifier(c) for c in keep]
    for f in features:
        signature = (f.key, f.time, f.width_us)
        window = windows.setdefault(signature, f"w{len(windows)}")
        selects.append(
            f"{_SQL[f.aggregate].format(v=quote_identifier(f.column), w=window)} AS {quote_identifier(f.name)}"
        )
    clauses = []
    for (key, time, width_us), window in windows.items():
        partition = f"PARTITION BY {quote_identifier(key)} " if key is not None else ""
        clauses.append(
            f"{window} AS ({partition}ORDER BY epoch_us(CAST({quote_identifier(time)} AS TIMESTAMP)) "
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

    features = checked(features)
    frame = frame_for(data, features)
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
        self.features = checked(features)
        keys = {f.key for f in self.features}
        times = {f.time for f in self.features}
        if len(keys) > 1 or len(times) > 1:
            raise ValueError(
                f"features: one StreamWindows serves one key and one time column, got keys {sorted(map(str, keys))} "
                f"and times {sorted(times)}; use one processor per key"
            )
        self.key = keys.pop()
        self.time = times.pop()
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
        self._states: dict[Any, _KeyState] = {}
        self._seq = 0
        self.rejected = 0

    def process(self, event: Mapping[str, Any]) -> list[Scored]:
        """Take one event; return the events (this one or earlier ones) now final, with features."""
        for col in [self.time, *([self.key] if self.key is not None else []), *self.columns]:
            if col not in event:
                raise ValueError(f"event: expected a {col!r} field, got fields {sorted(event)}")
        t = time_us(event[self.time])
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
            result[f.name] = aggregate_values(
                (row[i] for row in state.rows[start:end]), f.aggregate
            )
        return result

    def held(self) -> int:
        """How many events the processor holds (all keys): its state's size."""
        return sum(len(s.times) for s in self._states.values())
