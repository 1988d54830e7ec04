"""Windowed Inference (24), per-event windows: each event gets the aggregate over ``[t - width, t)``.

See the package's docstring for the semantics.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlpatterns.tables import quote_identifier

from ._common import (
    KeyedStream,
    KeyEvents,
    WindowFeature,
    checked,
    frame_for,
)

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
class _KeyState(KeyEvents):
    # pending: a heap of (time, seq, event) not yet emitted; encoded: seq -> the event as stored
    # (only with state=: encoded once, when the event arrives).
    pending: list[tuple[int, int, Mapping[str, Any]]] = field(default_factory=list)
    encoded: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scored:
    """An event and its window features, final once emitted."""

    event: Mapping[str, Any]
    features: dict[str, float | int]


class StreamWindows(KeyedStream):
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

    state, name, write_through : keep the state in an online store so that a new processor
        continues exactly where this one stopped (:meth:`checkpoint`, :meth:`close`; the
        restart contract is in the docstring of ``KeyedStream`` and in
        docs/patterns/windowed_inference.md). The pending events are stored whole, so their
        fields must be storable (numbers, strings, datetimes, ...; else ``TypeError``).
    """

    def __init__(
        self,
        features: Sequence[WindowFeature],
        *,
        allowed_lateness: timedelta | str = timedelta(0),
        on_late: str = "drop",
        state: Any = None,
        name: str | None = None,
        write_through: bool = False,
    ) -> None:
        super().__init__(features, allowed_lateness, on_late, _KeyState)
        self._seq = 0
        self._attach(state, name, write_through)

    def process(self, event: Mapping[str, Any]) -> list[Scored]:
        """Take one event; return the events (this one or earlier ones) now final, with features."""
        encoded = None
        if self._store is not None:
            from ._state import encode

            encoded = encode(event, "event")  # before any change: an event that cannot be kept changes nothing
        accepted = self._accept(event)
        if accepted is None:
            self._written_through()
            return []
        _, state, t = accepted
        heapq.heappush(state.pending, (t, self._seq, event))
        if encoded is not None:
            state.encoded[self._seq] = encoded
        self._seq += 1
        out = self._emit(state, state.max_time - self.lateness_us)
        self._written_through()
        return out

    def flush(self) -> list[Scored]:
        """Emit every pending event (the end of the stream: nothing more will arrive)."""
        self._check_open()
        out: list[Scored] = []
        for key, state in self._states.items():
            if state.pending and self._store is not None:
                self._dirty.add(key)
            out.extend(self._emit(state, None))
        self._written_through()
        return out

    def _emit(self, state: _KeyState, watermark: int | None) -> list[Scored]:
        out = []
        while state.pending and (watermark is None or state.pending[0][0] <= watermark):
            t, seq, event = heapq.heappop(state.pending)
            state.encoded.pop(seq, None)
            out.append(Scored(event, self._features_before(state, t)))
        self._forget(state, watermark)
        return out

    def _encode_state(self, state: _KeyState) -> dict[str, Any]:
        data = super()._encode_state(state)
        data["pending"] = [[t, seq, state.encoded[seq]] for t, seq, _ in sorted(state.pending)]
        return data

    def _decode_state(self, data: Mapping[str, Any]) -> _KeyState:
        from ._state import decode

        state = super()._decode_state(data)
        state.pending = [(t, seq, decode(event)) for t, seq, event in data["pending"]]  # sorted: a heap
        state.encoded = {seq: event for _, seq, event in data["pending"]}
        return state

    def _after_restore(self) -> None:
        # New events must sort after the restored ones of the same time: a larger sequence number.
        self._seq = 1 + max((seq for s in self._states.values() for _, seq, _ in s.pending), default=-1)
