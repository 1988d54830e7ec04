"""What both computations of Windowed Inference share: the declaration, checks, the aggregates.

Private to :mod:`mlpatterns.reproducibility.windowed_inference`; import from the package.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
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


class LateEventError(ValueError):
    """An event older than its key's largest time seen minus the allowed lateness."""


def time_us(value: Any) -> int:
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
    arrival order), ``rows`` the value columns aligned with them, ``max_time`` the largest time seen."""

    times: list[int] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    max_time: int | None = None


class KeyedStream:
    """What both stream processors share: one key and one time column, the allowed lateness, each key's
    events in time order, the aggregates over ``[end - width, end)`` and forgetting what no window needs."""

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

    def _accept(self, event: Mapping[str, Any]) -> tuple[Any, Any, int] | None:
        """Hold ``event`` in its key's state: ``(key, state, time)``; None when it is too late (dropped)."""
        for col in [self.time, *([self.key] if self.key is not None else []), *self.columns]:
            if col not in event:
                raise ValueError(f"event: expected a {col!r} field, got fields {sorted(event)}")
        t = time_us(event[self.time])
        key = event[self.key] if self.key is not None else None
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = self._state_type()
        if state.max_time is not None and t < state.max_time - self.lateness_us:
            if self.on_late == "raise":
                raise LateEventError(
                    f"event at {event[self.time]} for key {key!r} is older than the allowed lateness "
                    f"behind the key's latest time"
                )
            self.rejected += 1
            return None
        index = bisect_left(state.times, t + 1)  # after the events of the same time
        state.times.insert(index, t)
        state.rows.insert(index, tuple(event[c] for c in self.columns))
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

    def held(self) -> int:
        """How many events the processor holds (all keys): its state's size."""
        return sum(len(s.times) for s in self._states.values())
