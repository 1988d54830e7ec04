"""Materialization: copy each entity's latest feature row from a view's offline source into an online store.

``materialize(store, views, start=None, end=None)`` reads each view's source with DuckDB
(through :func:`~mlpatterns.reproducibility.feature_store.offline_store.source_rows`, so
time zones, null timestamps and column checks are those of the offline join), keeps the
rows whose event timestamp lies in ``[start, end)`` (no bound when ``None``: ``start=None``
is a full load, a ``start`` an incremental one from that time), picks per entity key the
latest by (event timestamp, created timestamp, position in the source) and writes those
rows to the store. The store's guard keeps a newer row already there, so re-running a
window, or running windows out of order, leaves the same state.

The TTL is not applied here: rows are written however old, and
:meth:`OnlineStore.read(..., now=...) <mlpatterns.reproducibility.feature_store.online_store.OnlineStore.read>`
hides the expired ones. After ``materialize(store, view, end=e)``, ``store.read(view, rows,
now=t)`` for ``t < e`` no later than the next source row gives what
:func:`~mlpatterns.reproducibility.feature_store.get_historical_features` gives at ``t``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from mlpatterns.tables import quote_identifier

from .definitions import FeatureView
from .offline_store import source_rows
from .online_store import OnlineStore, to_micros

__all__ = ["materialize"]

_EPOCH = dt.datetime(1970, 1, 1)


def _bound(value: Any, name: str) -> dt.datetime | None:
    """A window bound as a naive UTC datetime (the online store's own conversion, :func:`to_micros`)."""
    if value is None:
        return None
    return _EPOCH + dt.timedelta(microseconds=to_micros(value, f"materialize: {name}"))


def materialize(
    store: OnlineStore,
    views: FeatureView | Sequence[FeatureView],
    *,
    start: Any = None,
    end: Any = None,
) -> int:
    """Write each view's latest row per entity key with event time in ``[start, end)``; the rows written.

    ``start``/``end`` are datetimes (aware ones are converted to UTC, naive ones taken as UTC)
    or ``None`` for no bound. See the module docstring for the semantics.
    """
    import duckdb

    if not isinstance(store, OnlineStore):
        raise TypeError(f"materialize: store must be an OnlineStore (open_online_store(url)), "
                        f"got {type(store).__name__}")
    views = [views] if isinstance(views, FeatureView) else list(views)
    for view in views:
        if not isinstance(view, FeatureView):
            raise TypeError(f"materialize: views must be FeatureView objects, got {type(view).__name__}")
    low, high = _bound(start, "start"), _bound(end, "end")
    if low is not None and high is not None and low >= high:
        raise ValueError(f"materialize: start {low} must be before end {high}")
    written = 0
    for view in views:
        con = duckdb.connect()
        try:
            source_rows(con, view, "__mlp_rows")
            keys = ", ".join(quote_identifier(k) for k in view.join_keys)
            features = ", ".join(quote_identifier(f) for f in view.features)
            where, params = ["TRUE"], []
            if low is not None:
                where.append("__mlp_ts >= ?")
                params.append(low)
            if high is not None:
                where.append("__mlp_ts < ?")
                params.append(high)
            not_null = " AND ".join(f"{quote_identifier(k)} IS NOT NULL" for k in view.join_keys)
            cursor = con.execute(f"""
                SELECT {keys}, __mlp_ts, __mlp_created, {features} FROM __mlp_rows
                WHERE {' AND '.join(where)} AND {not_null}
                QUALIFY row_number() OVER (PARTITION BY {keys}
                    ORDER BY __mlp_ts DESC, __mlp_created DESC NULLS LAST, __mlp_pos DESC) = 1
            """, params)
            names = [d[0] for d in cursor.description]
            rows = cursor.fetchall()  # Python values: ints stay ints, nulls None, lists lists
        finally:
            con.close()
        rename = {"__mlp_ts": view.timestamp_field, "__mlp_created": view.created_timestamp_field or "__mlp_created"}
        names = [rename.get(n, n) for n in names]
        written += store.write(view, [dict(zip(names, row, strict=True)) for row in rows])
    return written
