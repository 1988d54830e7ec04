"""Calendar parts of one date value, as the Transform's ``parse_dates`` (pandas' ISO 8601 parser, UTC) reads it.

The usual spellings (``2013-01-01``, ``2013-01-01T05:00``, ``2013-01-01 05:00:00.5``,
with ``Z``, ``+05``, ``+0530`` or ``-05:30``) are parsed here, with the same answer as
pandas, invalid fields included (``2013-02-30``, hour 24, second 60 and an offset minute
of 60 are no date to either). A text without a digit is no date, except ``now`` and
``today``. Every other value (``20130101``, ``2013/01/01``, ``now``, a datetime object,
year 0, more than 6 digits of fraction) goes to the batch path's own parser, imported on
first need, so that the answer is always the batch path's.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

__all__ = ["DateParts", "date_parts", "fallback_count"]

DateParts = tuple[int, int, int, int, int, int]  # year, month, day, dayofweek (Monday 0), dayofyear, hour

_ISO = re.compile(
    r"[ \t\n\r\f\v]*([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?(?:(Z)|([+-])([0-9]{2})(?::?([0-9]{2}))?)?)?"
)
_DIGIT = re.compile(r"[0-9]")
_fallbacks = 0


def fallback_count() -> int:
    """How many values this process sent to the batch path's parser (and so imported pandas)."""
    return _fallbacks


def _parts(stamp: dt.datetime) -> DateParts:
    return (stamp.year, stamp.month, stamp.day, stamp.weekday(), stamp.timetuple().tm_yday, stamp.hour)


def _strict(match: re.Match[str]) -> DateParts | None:
    year, month, day, hour, minute, second, fraction, zulu, sign, off_hours, off_minutes = match.groups()
    try:
        stamp = dt.datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        if int(year) == 0:
            raise  # pandas has a year 0; Python does not
        return None
    if sign is not None:
        hours, minutes = int(off_hours), int(off_minutes or 0)
        if hours > 23 or minutes > 59:
            return None
        offset = dt.timedelta(hours=hours, minutes=minutes)
        stamp = stamp - offset if sign == "+" else stamp + offset  # OverflowError: the fallback
    return _parts(stamp)


def _batch_parse(value: Any) -> DateParts | None:
    global _fallbacks
    # imports pandas: only unusual spellings come here
    from mlpatterns.reproducibility.transform import parse_dates

    _fallbacks += 1
    stamp = parse_dates([value]).iloc[0]
    if stamp != stamp:  # NaT
        return None
    return (int(stamp.year), int(stamp.month), int(stamp.day), int(stamp.day_of_week), int(stamp.day_of_year),
            int(stamp.hour))


def date_parts(value: Any) -> DateParts | None:
    """The UTC calendar parts of a non-null value, or None when it is no date."""
    if not isinstance(value, str):
        if isinstance(value, (bool, int, float)):
            value = str(value)  # as parse_dates casts it
        else:
            return _batch_parse(value)
    match = _ISO.fullmatch(value)
    if match is not None:
        try:
            return _strict(match)
        except (ValueError, OverflowError):
            return _batch_parse(value)
    if _DIGIT.search(value) is None and "now" not in value and "today" not in value:
        return None
    return _batch_parse(value)
