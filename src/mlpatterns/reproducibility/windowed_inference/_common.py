"""What both computations of Windowed Inference share: the declaration, checks, the aggregates.

Private to :mod:`mlpatterns.reproducibility.windowed_inference`; import from the package.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
