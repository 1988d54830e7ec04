"""What both computations of Windowed Inference share: the declaration, checks, the aggregates.

Private to :mod:`mlpatterns.reproducibility.windowed_inference`; import from the package.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

AGGREGATES = ("count", "sum", "mean", "max", "min", "std")


def as_width(width: Any, field: str = "width") -> timedelta:
    if isinstance(width, str):
        import pandas as pd

        try:
            width = pd.Timedelta(width).to_pytimedelta()
        except ValueError as error:
            raise ValueError(f"{field}: expected a duration such as '2h', got {width!r}") from error
    if not isinstance(width, timedelta):
        raise TypeError(
            f"{field}: expected a datetime.timedelta or a string such as '2h', got {width!r}"
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
        width = as_width(self.width)
        if width <= timedelta(0) or width // timedelta(microseconds=1) < 1:
            raise ValueError(
                f"WindowFeature {self.name!r} width: expected a positive duration, got {width}"
            )
        object.__setattr__(self, "width", width)

    @property
    def width_us(self) -> int:
        """The width in whole microseconds, the resolution of both computations."""
        return self.width // timedelta(microseconds=1)


def checked(features: Sequence[WindowFeature]) -> list[WindowFeature]:
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


def frame_for(data: pd.DataFrame, features: Sequence[WindowFeature]) -> pd.DataFrame:
    """The columns of ``data`` the features read, checked, times as naive UTC, a 0..n-1 index.

    A bad declaration for this data (a column missing, a time column that is not a
    timestamp, a missing time) raises ``ValueError`` naming the feature and the field.
    """
    import pandas as pd

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
                frame[col] = data[col].reset_index(drop=True)  # keeps the dtype (a time zone too)
        times = frame[f.time]
        if not pd.api.types.is_datetime64_any_dtype(times):
            raise ValueError(
                f"WindowFeature {f.name!r} time: column {f.time!r} must hold timestamps, not {times.dtype}"
            )
        if isinstance(times.dtype, pd.DatetimeTZDtype):
            frame[f.time] = times.dt.tz_convert("UTC").dt.tz_localize(None)
        if frame[f.time].isna().any():
            raise ValueError(f"WindowFeature {f.name!r} time: column {f.time!r} has missing times")
    return frame


def grid(features: Sequence[WindowFeature], period: Any, origin: Any) -> tuple[int, int]:
    """The sliding windows' period and origin in microseconds, checked (and one key and time for all)."""
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


class LateEventError(ValueError):
    """An event older than its key's largest time seen minus the allowed lateness."""


def time_us(value: Any) -> int:
    """An event time as microseconds since the epoch (naive UTC; an aware time converted to UTC first)."""
    import pandas as pd

    if value is None:
        raise ValueError("time: expected a timestamp, got None")
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        raise ValueError("time: expected a timestamp, got a missing time")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.value // 1000


def present(value: Any) -> bool:
    """A value that takes part in an aggregate: not None, NaN of any float type, ``pd.NA`` or ``pd.NaT``."""
    if value is None:
        return False
    try:
        return bool(value == value)  # False for every NaN and NaT
    except TypeError:  # pd.NA: its comparison is NA, which has no truth value
        return False


def aggregate(values: Iterable[Any], aggregate: str) -> float | int:
    xs = [float(v) for v in values if present(v)]
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
class KeyEvents:
    """One key's events held by a stream processor: ``times`` sorted (microseconds; equal times in
    arrival order), ``rows`` the value columns aligned with them (floats, None when missing),
    ``max_time`` the largest time seen."""

    times: list[int] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    max_time: int | None = None


class KeyedStream:
    """What both stream processors share: one key and one time column, the allowed lateness, each key's
    events in time order, the aggregates over ``[end - width, end)``, forgetting what no window needs,
    and keeping the state in an online store (``state=``) so that it outlives the process.

    **State that outlives the process.** With ``state`` (an online store URL such as
    ``"sqlite:///state.db"`` or ``"redis://..."``, or an open
    :class:`~mlpatterns.reproducibility.feature_store.online_store.OnlineStore`) and ``name``
    (an identifier: the feature view holding the state), the processor keeps everything it
    needs to continue exactly, per key (the held events' times and values, the largest time
    seen, the pending events or window ends) plus the declaration, the keys, ``rejected`` and
    a source position, in that store, through its public ``write``/``read`` only. A new
    processor built with the same ``state``, ``name`` and declaration *restores* it
    (``restored`` is True) and continues with exactly the values an uninterrupted processor
    gives. A stored state of a different declaration (processor type, key, time column,
    allowed lateness, period, origin, or any feature's name, column, aggregate or width) is
    refused with a ``ValueError`` naming what differs. One processor per ``name`` at a time.

    *Checkpoints* (the default, ``write_through=False``): :meth:`checkpoint` writes the keys
    changed since the last one, each to the slot the stored meta does not name, then the meta
    row that commits them, with the caller's ``position`` (the source offset of the last event
    processed, any JSON-able value; None records none). One row is atomic on every backend, so
    a checkpoint cut short leaves the previous one intact. :meth:`close` checkpoints too;
    leaving a ``with`` block by an exception releases the store without a checkpoint (as a
    crash would). The contract: after a restart the source
    must deliver **exactly the events after the checkpoint's position** (``position`` is
    restored), each once, in any order the allowed lateness allows. Events processed after the
    last checkpoint are lost with the process and must be replayed: their results (emitted
    before the crash) are emitted again, with the same values (at-least-once output,
    deterministic). An event replayed that the checkpoint already holds would be counted twice:
    the store cannot tell it from a new one.

    *Write-through* (``write_through=True``): every :meth:`process` and :meth:`flush` ends by
    writing the rows it changed (the event's key, and the meta when a key is new or an event
    was rejected) in one ``write`` call: once ``process(event)`` returns, the event is durable,
    and after a crash the source resumes at the first event whose ``process`` had not returned.
    Durable per event, and slower (figures in docs/patterns/windowed_inference.md).

    **Late events across a restart** are judged exactly as without one: a key's largest time
    seen and ``rejected`` are restored, so an event older than the restored watermark's
    allowed lateness is rejected, and one within it is inserted in time order; events already
    emitted or forgotten before the checkpoint stay so.
    """

    def __init__(self, features: Sequence[WindowFeature], allowed_lateness: timedelta | str, on_late: str,
                 state: type[KeyEvents]) -> None:
        self.features = checked(features)
        keys = {f.key for f in self.features}
        times = {f.time for f in self.features}
        if len(keys) > 1 or len(times) > 1:
            raise ValueError(
                f"features: one {type(self).__name__} serves one key and one time column, got keys "
                f"{sorted(map(str, keys))} and times {sorted(times)}; use one processor per key"
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
        self._state_type = state
        self._states: dict[Any, Any] = {}
        self.rejected = 0
        # Persistence (see the class docstring); _attach sets it up once the subclass is built.
        self._store: Any = None
        self.name: str | None = None
        self.write_through = False
        self.position: Any = None
        self.restored = False
        self._key_texts: dict[Any, str] = {}
        self._dirty: set[Any] = set()
        self._meta_dirty = False
        self._slots: dict[Any, int] = {}  # key -> the slot of its row the stored meta names
        self._closed = False

    # -- persistence ----------------------------------------------------------------------
    def _declaration(self) -> dict[str, Any]:
        """What a stored state must have been declared with to be restored (JSON-able)."""
        return {
            "processor": type(self).__name__,
            "key": self.key,
            "time": self.time,
            "allowed_lateness_us": self.lateness_us,
            "features": {f.name: {"column": f.column, "aggregate": f.aggregate, "width_us": f.width_us}
                         for f in self.features},
        }

    def _encode_state(self, state: Any) -> dict[str, Any]:
        return {"times": state.times, "rows": state.rows, "max_time": state.max_time}

    def _decode_state(self, data: Mapping[str, Any]) -> Any:
        state = self._state_type()
        state.times = list(data["times"])
        state.rows = [tuple(row) for row in data["rows"]]
        state.max_time = data["max_time"]
        return state

    def _after_restore(self) -> None:
        """Rebuild what the subclass derives from the restored states."""

    def _attach(self, state: Any, name: str | None, write_through: bool) -> None:
        """Open the state store and restore the stored state; called at the end of a subclass's __init__."""
        if state is None:
            if name is not None or write_through:
                raise ValueError("name and write_through need a state store: pass state='sqlite:///PATH.db' "
                                 "(or another online store URL)")
            return
        import json

        from ._state import StateStore, decode

        if name is None:
            raise ValueError(f"name: a {type(self).__name__} with state= needs a name (an identifier: "
                             "the feature view holding its state)")
        store = StateStore(state, name, type(self).__name__)
        try:
            loaded = store.load(self._declaration())
            if loaded is not None:
                meta, states = loaded
                for text, data in states.items():
                    key = decode(json.loads(text))
                    self._states[key] = self._decode_state(data)
                    self._key_texts[key] = text
                    self._slots[key] = meta["keys"][text]
                self.rejected = meta["rejected"]
                self.position = decode(meta["position"])
                self.restored = True
            store.generation = (loaded[0]["generation"] if loaded is not None else 0) + 1
        except BaseException:
            store.close()
            raise
        self._store = store
        self.name = name
        self.write_through = bool(write_through)
        self._after_restore()

    def _meta(self, slots: Mapping[Any, int]) -> dict[str, Any]:
        from ._state import encode

        # The keys in the order they first came (the order flush() visits them), with their slots.
        return {"declaration": self._declaration(),
                "keys": {text: slots[k] for k, text in self._key_texts.items() if k in slots},
                "rejected": self.rejected, "position": encode(self.position, "position")}

    def _save(self, meta: bool) -> None:
        """Write the changed keys, then the meta that makes them the state a restart restores.

        Checkpoint mode writes each changed key to the slot the stored meta does *not* name and
        commits them all with the meta row, written last (one row: atomic on every backend), so
        a checkpoint interrupted half-way leaves the previous one intact. Write-through writes a
        key in place (one row per event: atomic), and the meta after it when it changed.
        """
        slots = {}
        for key in self._dirty:
            old = self._slots.get(key)
            slots[key] = 0 if old is None else old if self.write_through else 1 - old
        self._store.save([(self._key_texts[k], slot, self._encode_state(self._states[k])) for k, slot in slots.items()])
        if meta or self._meta_dirty:
            self._store.save_meta(self._meta({**self._slots, **slots}))
            self._meta_dirty = False
        self._slots.update(slots)  # committed: the stored meta names them
        self._dirty.clear()

    def _written_through(self) -> None:
        """After process/flush: with ``write_through``, write what changed."""
        if self._store is not None and self.write_through and (self._dirty or self._meta_dirty):
            self._save(meta=False)

    def checkpoint(self, position: Any = None) -> None:
        """Write the state changed since the last checkpoint, then the meta row that commits it with ``position``.

        ``position`` (any JSON-able value, e.g. the source offset of the last event processed;
        None records none) is what a restored processor reads back as ``position``; the source
        must then deliver exactly the events after it (see the class docstring). Without
        ``state=`` this does nothing.
        """
        if self._store is None:
            return
        self._check_open()
        from ._state import encode

        encode(position, "position")
        self.position = position
        self._save(meta=True)

    def close(self, position: Any = None) -> None:
        """Checkpoint (with ``position``) and release the state store; the processor is then unusable."""
        if self._closed:
            return
        if self._store is not None:
            try:
                self.checkpoint(position)
            finally:
                self._store.close()
        self._closed = True

    def __enter__(self) -> KeyedStream:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self.close()
        else:  # no checkpoint of a state an exception may have cut short: as a crash
            if self._store is not None and not self._closed:
                self._store.close()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{type(self).__name__} {self.name!r} is closed; build a new one on the same state")

    def _accept(self, event: Mapping[str, Any]) -> tuple[Any, Any, int] | None:
        """Hold ``event`` in its key's state: ``(key, state, time)``; None when it is too late (dropped)."""
        for col in [self.time, *([self.key] if self.key is not None else []), *self.columns]:
            if col not in event:
                raise ValueError(f"event: expected a {col!r} field, got fields {sorted(event)}")
        self._check_open()
        t = time_us(event[self.time])
        key = event[self.key] if self.key is not None else None
        state = self._states.get(key)
        if state is None:
            if self._store is not None:
                from ._state import key_text

                self._key_texts[key] = key_text(key)
                self._meta_dirty = True
            state = self._states[key] = self._state_type()
        if state.max_time is not None and t < state.max_time - self.lateness_us:
            if self.on_late == "raise":
                raise LateEventError(
                    f"event at {event[self.time]} for key {key!r} is older than the allowed lateness "
                    f"behind the key's latest time"
                )
            self.rejected += 1
            self._meta_dirty = True
            return None
        if self._store is not None:
            self._dirty.add(key)
        # Held as the aggregates read them (a float, or None when missing): what the store keeps too.
        row = tuple(float(v) if present(v) else None for v in (event[c] for c in self.columns))
        index = bisect_left(state.times, t + 1)  # after the events of the same time
        state.times.insert(index, t)
        state.rows.insert(index, row)
        if state.max_time is None or t > state.max_time:
            state.max_time = t
        return key, state, t

    def _features_before(self, state: KeyEvents, end: int) -> dict[str, float | int]:
        """Each feature over the key's events in ``[end - width, end)``."""
        stop = bisect_left(state.times, end)
        result = {}
        for f in self.features:
            start = bisect_left(state.times, end - f.width_us, 0, stop)
            i = self._column_index[f.column]
            result[f.name] = aggregate((row[i] for row in state.rows[start:stop]), f.aggregate)
        return result

    def _forget(self, state: KeyEvents, watermark: int | None) -> None:
        """Drop the events no window still to come can hold (older than the watermark minus the widest)."""
        if watermark is not None:
            cut = bisect_left(state.times, watermark - self._horizon_us)
            if cut:
                del state.times[:cut]
                del state.rows[:cut]

    def oldest_accepted_us(self, key: Any) -> int | None:
        """The earliest time (microseconds since the epoch, naive UTC) an event of ``key`` may have and still be
        accepted now: the key's largest time seen minus the allowed lateness; None when any time is."""
        state = self._states.get(key)
        if state is None or state.max_time is None:
            return None
        return state.max_time - self.lateness_us

    def held(self) -> int:
        """How many events the processor holds (all keys): its state's size."""
        return sum(len(s.times) for s in self._states.values())
