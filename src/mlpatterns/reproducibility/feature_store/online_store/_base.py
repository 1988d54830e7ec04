"""The online store's base class: the latest feature values per entity key, for serving.

A backend implements three primitives on naive-UTC microsecond timestamps
(:meth:`OnlineStore._write_records`, :meth:`OnlineStore._read_records`,
:meth:`OnlineStore._close`); this class turns DataFrames and mappings into them, checks
the view's columns, applies the TTL at read time and refuses use after :meth:`close`.

Semantics every backend keeps (checked by :mod:`mlpatterns.testing.online_store_conformance`):

* One row per entity key (the view's join keys). A write replaces the stored row only when
  its (event timestamp, created timestamp) is **not older**: a larger event timestamp wins;
  equal event timestamps are decided by the created timestamp (a missing one loses to any
  present one); a full tie goes to the later write. So writing an older row after a newer
  one changes nothing, and replaying a materialization is harmless.
* :meth:`OnlineStore.read` returns one dict per entity row, in the order given, mapping each
  asked feature to its value, or to ``None`` when the key is unknown.
* **TTL at read time** (as Feast): with ``now`` given and a view ``ttl``, a row whose event
  timestamp is older than ``now - ttl`` reads as unknown (a row exactly at ``now - ttl`` is
  still valid, as in the offline join). Without ``now`` the TTL is not applied.
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from ..definitions import FeatureView

__all__ = ["OnlineStore", "OnlineStoreError", "Record", "to_micros"]

Key = tuple[Any, ...]
# (entity key, feature values, event timestamp in µs since the epoch (naive UTC), created µs or None)
Record = tuple[Key, dict[str, Any], int, "int | None"]
_EPOCH = dt.datetime(1970, 1, 1)


class OnlineStoreError(RuntimeError):
    """An online store was used wrongly (after close, a view whose keys changed, a bad URL)."""


def to_micros(value: Any, what: str) -> int:
    """Microseconds since the epoch of a datetime / pandas Timestamp / numpy datetime64 (aware: to UTC)."""
    if hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    elif type(value).__name__ == "datetime64":
        import pandas as pd

        value = pd.Timestamp(value).to_pydatetime()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return (value - _EPOCH) // dt.timedelta(microseconds=1)
    if isinstance(value, dt.date):
        return (dt.datetime.combine(value, dt.time()) - _EPOCH) // dt.timedelta(microseconds=1)
    raise TypeError(f"{what} must be a datetime, got {type(value).__name__} {value!r}")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return False  # NaN is a float value, kept as it is
    return type(value).__name__ in ("NAType", "NaTType")


def plain(value: Any) -> Any:
    """A numpy/pandas value as the Python value it stands for (ints, floats, bools, str, lists)."""
    if _is_missing(value):
        return None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()  # numpy scalar -> Python scalar, ndarray -> list
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


class OnlineStore(ABC):
    """The latest feature values per entity key of each :class:`FeatureView` (see the module docstring)."""

    url: str

    def __init__(self) -> None:
        self._closed = False

    # -- what a backend implements -------------------------------------------------------
    @abstractmethod
    def _write_records(self, view: FeatureView, records: Sequence[Record]) -> None:
        """Upsert ``records`` in order, each only if not older than the stored row (see module)."""

    @abstractmethod
    def _read_records(self, view: FeatureView, keys: Sequence[Key]) -> list[tuple[dict[str, Any], int] | None]:
        """For each key, in order: (stored feature values, event µs), or None when unknown."""

    @abstractmethod
    def _close(self) -> None:
        """Release the backend's resources."""

    # -- the public interface -----------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise OnlineStoreError(f"online store {self.url!r} is closed; open it again with open_online_store")

    def write(self, view: FeatureView, rows: Any) -> int:
        """Write ``rows`` (a DataFrame or an iterable of mappings) of ``view``; returns how many were given.

        Each row holds the view's join keys, its ``timestamp_field``, its features and, when
        the view has one, its ``created_timestamp_field`` (a missing or null one is allowed).
        Rows are applied in order; per key the newest (event, created) timestamp is kept.
        """
        self._check_open()
        if not isinstance(view, FeatureView):
            raise TypeError(f"view must be a FeatureView, got {type(view).__name__}")
        if hasattr(rows, "to_dict") and hasattr(rows, "columns"):
            rows = rows.to_dict("records")
        owner = f"online store write of FeatureView {view.name!r}"
        records: list[Record] = []
        for row in rows:
            if not isinstance(row, Mapping):
                raise TypeError(f"{owner}: each row must be a mapping, got {type(row).__name__}")
            missing = [c for c in (*view.join_keys, view.timestamp_field, *view.features) if c not in row]
            if missing:
                raise ValueError(f"{owner}: a row lacks the column(s) {missing}; it has {sorted(row)}")
            key = tuple(plain(row[k]) for k in view.join_keys)
            if any(k is None for k in key):
                raise ValueError(f"{owner}: a row has a null join key {dict(zip(view.join_keys, key, strict=True))}")
            ts_value = row[view.timestamp_field]
            if _is_missing(ts_value):
                continue  # as in the offline store: rows without an event time are ignored
            ts = to_micros(ts_value, f"{owner}: {view.timestamp_field}")
            created = None
            if view.created_timestamp_field:
                value = row.get(view.created_timestamp_field)
                if not _is_missing(value):
                    created = to_micros(value, f"{owner}: {view.created_timestamp_field}")
            records.append((key, {f: plain(row[f]) for f in view.features}, ts, created))
        if records:
            self._write_records(view, records)
        return len(records)

    def read(
        self,
        view: FeatureView,
        entity_rows: Any,
        features: Sequence[str] | None = None,
        *,
        now: Any = None,
    ) -> list[dict[str, Any]]:
        """The stored values for each entity row (a DataFrame or mappings holding the join keys), in order.

        ``features`` (default: the view's) picks some of them. Unknown keys give ``None``
        for every feature; with ``now`` and a view ``ttl``, so does a value older than
        ``now - ttl``.
        """
        self._check_open()
        if not isinstance(view, FeatureView):
            raise TypeError(f"view must be a FeatureView, got {type(view).__name__}")
        names = list(view.features if features is None else features)
        unknown = [f for f in names if f not in view.features]
        if unknown:
            raise ValueError(f"FeatureView {view.name!r}: no feature(s) {unknown}; it has {list(view.features)}")
        if hasattr(entity_rows, "to_dict") and hasattr(entity_rows, "columns"):
            entity_rows = entity_rows.to_dict("records")
        keys: list[Key] = []
        for row in entity_rows:
            missing = [k for k in view.join_keys if k not in row]
            if missing:
                raise ValueError(f"FeatureView {view.name!r}: an entity row lacks the join key(s) {missing}")
            keys.append(tuple(plain(row[k]) for k in view.join_keys))
        oldest = None
        if now is not None and view.ttl is not None:
            oldest = to_micros(now, "now") - view.ttl // dt.timedelta(microseconds=1)
        found = self._read_records(view, keys) if keys else []
        result = []
        for item in found:
            if item is None or (oldest is not None and item[1] < oldest):
                result.append(dict.fromkeys(names))
            else:
                result.append({f: item[0].get(f) for f in names})
        return result

    def close(self) -> None:
        """Release the store; using it afterwards raises :class:`OnlineStoreError`. Closing twice is fine."""
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r}{', closed' if self._closed else ''})"


