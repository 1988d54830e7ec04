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

__all__ = ["OnlineStore", "OnlineStoreError", "Record", "as_datetime", "to_micros"]

Key = tuple[Any, ...]
# (entity key, feature values, event timestamp in µs since the epoch (naive UTC), created µs or None)
Record = tuple[Key, dict[str, Any], int, "int | None"]
_EPOCH = dt.datetime(1970, 1, 1)
_PLAIN_TYPES = frozenset({int, str})  # key values that plain() would return as they are
_MAX_VIEWS = 256  # views remembered per store (see OnlineStore._know)


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


def as_datetime(value: Any, what: str) -> dt.datetime:
    """An event time as a datetime: ISO 8601 text (``'2013-06-14T08:00:00Z'``), a datetime, a pandas Timestamp
    or a date (midnight); a ValueError naming ``what`` otherwise."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what}: expected an ISO 8601 time such as '2013-06-14T08:00:00Z', "
                             f"got {value!r}") from None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if not isinstance(value, dt.datetime):
        raise ValueError(f"{what}: expected a time, got {value!r}")
    return value


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
        self._views: dict[FeatureView, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {}

    # -- what a backend implements -------------------------------------------------------
    @abstractmethod
    def _write_records(self, view: FeatureView, records: Sequence[Record]) -> None:
        """Upsert ``records`` in order, each only if not older than the stored row (see module)."""

    @abstractmethod
    def _read_records(self, view: FeatureView, keys: Sequence[Key]) -> list[tuple[dict[str, Any], int] | None]:
        """For each key, in order: (its feature values, event µs), or None when unknown.

        The values are a new dict per key (repeated keys included) holding exactly the
        view's features, in the view's order (``None`` for one the stored row lacks):
        :meth:`read` hands it to the caller as it is.
        """

    def _read_one(self, view: FeatureView, key: Key) -> tuple[dict[str, Any], int] | None:
        """:meth:`_read_records` of one key (the serving path); a backend may do it in fewer steps."""
        return self._read_records(view, [key])[0]

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
        ``now - ttl``. ``now`` may also be a list, one time per entity row (each row's own
        cut-off, in one read).
        """
        if isinstance(now, (list, tuple)):
            return self._read_at(view, entity_rows, features, now)
        # The serving path, one entity (a few microseconds): nothing that a cached lookup can skip.
        if self._closed:
            self._check_open()
        try:
            join_keys, all_names, key_name = self._views[view]
        except (KeyError, TypeError):
            join_keys, all_names, key_name = self._know(view)
        if key_name is not None and features is None and type(entity_rows) is list and len(entity_rows) == 1:
            row = entity_rows[0]
            if type(row) is dict and key_name in row:
                value = row[key_name]
                item = self._read_one(view, (value if type(value) in _PLAIN_TYPES else plain(value),))
                if item is None or (now is not None and view.ttl is not None and item[1] < self._oldest(view, now)):
                    return [dict.fromkeys(all_names)]
                return [item[0]]
        names = all_names if features is None else self._pick(view, features)
        if type(entity_rows) is not list:
            if hasattr(entity_rows, "to_dict") and hasattr(entity_rows, "columns"):
                entity_rows = entity_rows.to_dict("records")
            else:
                entity_rows = list(entity_rows)
        keys: list[Key] = []
        try:
            if len(join_keys) == 1:
                [name] = join_keys
                for row in entity_rows:
                    value = row[name]
                    keys.append((value if type(value) in _PLAIN_TYPES else plain(value),))
            else:
                for row in entity_rows:
                    keys.append(tuple([plain(row[k]) for k in join_keys]))
        except (KeyError, TypeError, IndexError):
            for row in entity_rows:
                missing = [k for k in join_keys if not isinstance(row, Mapping) or k not in row]
                if missing:
                    raise ValueError(f"FeatureView {view.name!r}: an entity row lacks the join key(s) "
                                     f"{missing}") from None
            raise
        if not keys:
            return []
        found = self._read_records(view, keys)
        if now is not None and view.ttl is not None:
            oldest = self._oldest(view, now)
            found = [None if item is None or item[1] < oldest else item for item in found]
        if names is all_names:  # the backend's dicts hold exactly the view's features: hand them out
            return [dict.fromkeys(names) if item is None else item[0] for item in found]
        return [dict.fromkeys(names) if item is None else {f: item[0].get(f) for f in names} for item in found]

    def _read_at(self, view: FeatureView, entity_rows: Any, features: Sequence[str] | None,
                 times: Sequence[Any]) -> list[dict[str, Any]]:
        """:meth:`read` with one ``now`` per row (None: no TTL for that row), in one read of the backend."""
        self._check_open()
        join_keys, all_names, _ = self._know(view)
        names = all_names if features is None else self._pick(view, features)
        if hasattr(entity_rows, "to_dict") and hasattr(entity_rows, "columns"):
            entity_rows = entity_rows.to_dict("records")
        entity_rows = list(entity_rows)
        if len(times) != len(entity_rows):
            raise ValueError(f"now: expected one time per entity row ({len(entity_rows)}), got {len(times)}")
        keys: list[Key] = []
        for row in entity_rows:
            missing = [k for k in join_keys if not isinstance(row, Mapping) or k not in row]
            if missing:
                raise ValueError(f"FeatureView {view.name!r}: an entity row lacks the join key(s) {missing}")
            keys.append(tuple(plain(row[k]) for k in join_keys))
        found = self._read_records(view, keys) if keys else []
        result = []
        for item, time in zip(found, times, strict=True):
            if item is None or (time is not None and view.ttl is not None and item[1] < self._oldest(view, time)):
                result.append(dict.fromkeys(names))
            else:
                result.append({f: item[0].get(f) for f in names})
        return result

    def _know(self, view: FeatureView) -> tuple[tuple[str, ...], tuple[str, ...], str | None]:
        """Check ``view`` once; remember its join keys, features and only key (by identity: views are frozen)."""
        if not isinstance(view, FeatureView):
            raise TypeError(f"view must be a FeatureView, got {type(view).__name__}")
        if len(self._views) >= _MAX_VIEWS:  # views made per request (view.select) must not pile up
            self._views.clear()
        keys = tuple(view.join_keys)
        known = self._views[view] = (keys, tuple(view.features), keys[0] if len(keys) == 1 else None)
        return known

    @staticmethod
    def _oldest(view: FeatureView, now: Any) -> int:
        """The oldest event µs still valid at ``now`` under the view's TTL."""
        return to_micros(now, "now") - view.ttl // dt.timedelta(microseconds=1)

    @staticmethod
    def _pick(view: FeatureView, features: Sequence[str]) -> tuple[str, ...]:
        if isinstance(features, str):
            raise TypeError(f"features must be a list of feature names, got the string {features!r}")
        names = tuple(features)
        unknown = [f for f in names if f not in view.features]
        if unknown:
            raise ValueError(f"FeatureView {view.name!r}: no feature(s) {unknown}; it has {list(view.features)}")
        return names

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


