"""A stream processor's state kept in an online store, so that it outlives the process.

Private to :mod:`mlpatterns.reproducibility.windowed_inference`; the contract is in the
docstring of :class:`~._common.KeyedStream` (``state=``, :meth:`checkpoint`, ``write_through``).

Layout, through the online store's public ``write``/``read`` only: one
:class:`~mlpatterns.reproducibility.feature_store.FeatureView` named after the processor
(``name``), join key ``stream_key``, timestamp ``updated``, one feature ``state`` holding a
JSON text.

* Each key of the stream has two rows, *slots* ``0`` and ``1`` (``stream_key`` = the key
  as JSON text and the slot: ``"JFK"#0``, with the quotes). A checkpoint writes a changed
  key to the slot the stored meta does not name; write-through rewrites the named slot.
* The row ``stream_key = "*"`` (never a JSON text) is the *meta*: the declaration it was
  built from, each key's current slot, ``rejected``, the caller's source position and the
  writer's generation. Written last, in one row, it commits a checkpoint: a checkpoint cut
  short leaves the previous meta naming the previous rows, intact, on any backend whose
  one-row write is atomic (SQLite, Redis).
* ``updated`` is the writer's *generation* (1 for the first processor on this state, then
  one more per restart), as microseconds after the epoch: a version, not an event time.
  Every write of a run is at least as new as every row a previous run wrote (ties go to the
  later write), so the store's "the newer row wins" rule never keeps a stale row.
"""

from __future__ import annotations

import datetime as dt
import json
import numbers
from collections.abc import Mapping
from typing import Any

FORMAT = 1
META_KEY = "*"
KEY_COLUMN = "stream_key"
TIME_COLUMN = "updated"
STATE_FEATURE = "state"
_EPOCH = dt.datetime(1970, 1, 1)


def encode(value: Any, where: str) -> Any:
    """``value`` as JSON-able data that :func:`decode` turns back into an equal value.

    Plain JSON values pass; datetimes, dates, timedeltas, pandas Timestamps (time zone
    kept), ``pd.NA``/``pd.NaT``, numpy scalars, tuples and mappings are tagged. Anything
    else raises ``TypeError`` naming ``where`` (the event field).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, float):
        return value  # NaN and infinities too: the text is written with allow_nan=True
    if isinstance(value, numbers.Integral) and type(value).__module__ == "builtins":
        return value
    kind = type(value).__name__
    module = type(value).__module__.split(".")[0]
    if kind == "NAType":
        return {"$na": 1}
    if kind == "NaTType":
        return {"$nat": 1}
    if kind == "Timestamp" and module == "pandas":
        tz = value.tzinfo
        return {"$ts": int(value.value), "tz": None if tz is None else str(tz),
                "off": None if tz is None else value.utcoffset().total_seconds()}
    if module == "numpy":
        if kind.startswith("datetime64"):
            import pandas as pd

            return encode(pd.Timestamp(value), where)
        if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            return encode(value.item(), where)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, dt.datetime):
        zone = getattr(value.tzinfo, "key", None)  # a zoneinfo.ZoneInfo keeps its name
        return {"$dt": value.isoformat(), "zone": zone}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"$td": value // dt.timedelta(microseconds=1)}
    if isinstance(value, list):
        return [encode(v, where) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, where) for v in value]}
    if isinstance(value, Mapping):
        return {"$map": [[encode(k, where), encode(v, where)] for k, v in value.items()]}
    raise TypeError(
        f"{where}: a {type(value).__name__} value cannot be kept in the state store; "
        "events of a processor with state= may hold numbers, strings, bools, None, datetimes, "
        "dates, timedeltas, pandas Timestamps, numpy scalars and lists, tuples or mappings of them"
    )


def decode(data: Any) -> Any:
    """The value :func:`encode` encoded."""
    if isinstance(data, list):
        return [decode(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "$map" in data:
        return {decode(k): decode(v) for k, v in data["$map"]}
    if "$tuple" in data:
        return tuple(decode(v) for v in data["$tuple"])
    if "$ts" in data:
        import pandas as pd

        stamp = pd.Timestamp(data["$ts"], unit="ns")
        if data["tz"] is None:
            return stamp
        stamp = stamp.tz_localize("UTC")
        try:
            return stamp.tz_convert(data["tz"])
        except Exception:  # a fixed offset's name ("UTC+02:00") is no zone name
            return stamp.tz_convert(dt.timezone(dt.timedelta(seconds=data["off"])))
    if "$dt" in data:
        value = dt.datetime.fromisoformat(data["$dt"])
        if data.get("zone"):
            from zoneinfo import ZoneInfo

            value = value.astimezone(ZoneInfo(data["zone"]))
        return value
    if "$date" in data:
        return dt.date.fromisoformat(data["$date"])
    if "$td" in data:
        return dt.timedelta(microseconds=data["$td"])
    if "$na" in data:
        import pandas as pd

        return pd.NA
    if "$nat" in data:
        import pandas as pd

        return pd.NaT
    raise ValueError(f"state store: cannot decode {data!r}")


def key_text(key: Any) -> str:
    """The stream key as the store's join key: its JSON text (never ``"*"``)."""
    return json.dumps(encode(key, "key"), allow_nan=True, separators=(",", ":"))


def row_key(text: str, slot: int) -> str:
    """The join key of a stream key's row: its JSON text and its slot (0 or 1), ``"JFK"#1``."""
    return f"{text}#{slot}"


def as_datetime(micros: int) -> dt.datetime:
    """Microseconds after the epoch as a naive datetime."""
    return _EPOCH + dt.timedelta(microseconds=micros)


def _duration(micros: int) -> str:
    return str(dt.timedelta(microseconds=micros))


def differences(stored: Mapping[str, Any], declared: Mapping[str, Any]) -> list[str]:
    """What differs between two declarations (see ``KeyedStream._declaration``), in words."""
    out = []
    for field, show in (("processor", str), ("key", repr), ("time", repr),
                        ("allowed_lateness_us", _duration), ("period_us", _duration),
                        ("origin_us", lambda us: str(as_datetime(us)))):
        if stored.get(field) != declared.get(field):
            name = field.removesuffix("_us")
            old, new = stored.get(field), declared.get(field)
            out.append(f"{name}: stored {'-' if old is None else show(old)}, "
                       f"declared {'-' if new is None else show(new)}")
    old, new = stored.get("features", {}), declared.get("features", {})
    gone = sorted(set(old) - set(new))
    added = sorted(set(new) - set(old))
    if gone:
        out.append(f"feature(s) {gone} stored but not declared")
    if added:
        out.append(f"feature(s) {added} declared but not stored")
    for name in sorted(set(old) & set(new)):
        for field in ("column", "aggregate", "width_us"):
            a, b = old[name].get(field), new[name].get(field)
            if a != b:
                show = _duration if field == "width_us" else repr
                out.append(f"feature {name!r} {field.removesuffix('_us')}: stored {show(a)}, declared {show(b)}")
    return out


class StateStore:
    """One processor's rows in an online store (see the module docstring)."""

    def __init__(self, store: Any, name: str, processor: str) -> None:
        import pandas as pd

        from mlpatterns.reproducibility.feature_store import Entity, FeatureView
        from mlpatterns.reproducibility.feature_store.online_store import (
            OnlineStore,
            open_online_store,
        )

        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(
                f"name: expected the processor's name, a Python identifier not starting with '_' "
                f"(the feature view holding its state), got {name!r}"
            )
        self.generation = 1  # this run's; set from the stored meta by the processor
        self.owned = not isinstance(store, OnlineStore)
        self.store = open_online_store(store)
        self.name = name
        self.processor = processor
        self.view = FeatureView(
            name,
            entities=[Entity("window_state", [KEY_COLUMN])],
            source=pd.DataFrame({KEY_COLUMN: [], TIME_COLUMN: pd.Series([], dtype="datetime64[us]"),
                                 STATE_FEATURE: []}),
            timestamp_field=TIME_COLUMN,
            features=[STATE_FEATURE],
        )

    def where(self) -> str:
        return f"{self.processor} {self.name!r} (feature view {self.name!r} in {self.store.url})"

    def load(self, declaration: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The stored meta and each key's stored state (by key text), or None when nothing is stored.

        Raises ``ValueError`` when the stored declaration differs from ``declaration`` (what
        differs named), or when a row the meta names is missing.
        """
        (found,) = self.store.read(self.view, [{KEY_COLUMN: META_KEY}])
        if found[STATE_FEATURE] is None:
            return None
        meta = json.loads(found[STATE_FEATURE])
        if meta.get("format") != FORMAT:
            raise ValueError(f"{self.where()}: stored state has format {meta.get('format')!r}, "
                             f"this version reads format {FORMAT}")
        diff = differences(meta["declaration"], declaration)
        if diff:
            raise ValueError(
                f"{self.where()}: the stored state was written by a different declaration "
                f"({'; '.join(diff)}); restoring it would give windows of another declaration. "
                "Declare the processor as stored, or give it another name for a fresh state."
            )
        keys = meta["keys"]
        rows = self.store.read(self.view, [{KEY_COLUMN: row_key(t, s)} for t, s in keys.items()]) if keys else []
        states = {}
        for (text, slot), row in zip(keys.items(), rows, strict=True):
            if row[STATE_FEATURE] is None:
                raise ValueError(f"{self.where()}: the meta names the row {row_key(text, slot)} but it is "
                                 "missing; the state is damaged, replay the stream from its start")
            states[text] = json.loads(row[STATE_FEATURE])
        return meta, states

    def save(self, rows: list[tuple[str, int, Any]]) -> None:
        """Write keys' states, each ``(key text, slot, state)``, in one ``write`` call."""
        if rows:
            self.store.write(self.view, [
                {KEY_COLUMN: row_key(text, slot), TIME_COLUMN: as_datetime(self.generation),
                 STATE_FEATURE: json.dumps(state, allow_nan=True, separators=(",", ":"))}
                for text, slot, state in rows
            ])

    def save_meta(self, meta: Mapping[str, Any]) -> None:
        """Write the meta row (one row: atomic on every backend); it names the key rows a restore reads."""
        text = json.dumps({"format": FORMAT, "generation": self.generation, **meta}, allow_nan=True,
                          separators=(",", ":"))
        self.store.write(self.view, [{KEY_COLUMN: META_KEY, TIME_COLUMN: as_datetime(self.generation),
                                      STATE_FEATURE: text}])

    def close(self) -> None:
        if self.owned:
            self.store.close()
