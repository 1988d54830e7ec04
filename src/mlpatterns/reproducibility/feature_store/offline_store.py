"""Feature Store (pattern 26): the offline store, point-in-time-correct training data on DuckDB.

:func:`get_historical_features` takes an entity table (join keys and an event timestamp
per row: the moment a label or a prediction refers to) and joins each feature view's
value *as it was known then*. A plain join on the key would hand a training row values
written after its event: leakage from the future, and a model that looks better in
training than it can be in serving.

Semantics, for one entity row with event time ``t`` and one view:

* **As of.** Among the view's rows with the same join keys and event timestamp ``ts <= t``
  (inclusive: a value stamped exactly at ``t`` is known at ``t``), the one with the largest
  ``ts`` is taken. This is a DuckDB ``ASOF LEFT JOIN ... ON keys AND t >= ts``, one per view.
* **TTL.** If the view has a ``ttl``, the value is kept only when ``ts >= t - ttl``; a row
  exactly at ``t - ttl`` is still valid (as in Feast, whose offline templates test
  ``timestamp >= entity_timestamp - ttl``). An older value gives null, not the older value
  (there is none newer within the TTL, since the as-of row is the newest at or before ``t``).
* **Ties.** Rows with the same keys and the same event timestamp are resolved by the
  largest created timestamp (``created_timestamp_field``; a null created timestamp loses to
  any non-null one), as Feast does. When created timestamps also tie (or the view has none),
  the row that comes **last in the source** wins (a file's row order, a DataFrame's
  position): the source is deduplicated on (keys, timestamp) before the join, so the
  answer is deterministic.
* **Missing.** Entity rows whose keys the view does not have, or whose event time or keys
  are null, get nulls. Source rows with a null event timestamp are ignored.
* **Time zones.** Time-zone-aware timestamps (pandas ``datetime64[ns, tz]``, DuckDB
  ``TIMESTAMP WITH TIME ZONE``) are converted to UTC and the zone dropped; naive timestamps
  are taken as they are (so naive timestamps must already be in one convention, UTC
  preferred). ``DATE`` columns count as midnight. All comparisons are at microsecond
  precision (DuckDB ``TIMESTAMP``).

The result is the entity table itself (same rows, same order, same index, its columns
first) with one column per feature, named ``feature`` or, with ``full_feature_names=True``,
``view__feature``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from mlpatterns.tables import quote_identifier

from .definitions import FeatureView

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["get_historical_features", "source_rows"]

_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE")
_TZ_TYPES = ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ")


def _timestamp_expression(owner: str, field: str, column: str, duckdb_type: str) -> str:
    """SQL turning ``column`` into a naive UTC ``TIMESTAMP``, or a TypeError naming the field."""
    kind = duckdb_type.upper()
    if kind in _TZ_TYPES:
        return f"timezone('UTC', {quote_identifier(column)})"
    if kind in _TIMESTAMP_TYPES:
        return f"CAST({quote_identifier(column)} AS TIMESTAMP)"
    raise TypeError(
        f"{owner}: {field} column {column!r} must hold timestamps (TIMESTAMP, "
        f"TIMESTAMP WITH TIME ZONE or DATE), got {duckdb_type}"
    )


def _load_source(con, view: FeatureView, table: str) -> dict[str, str]:
    """Copy the view's source into a temporary table (its rowid is the source order); column -> type."""
    source = view.source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(
                f"FeatureView {view.name!r}: source file {str(path)!r} does not exist"
            )
        reader = "read_parquet" if path.suffix.lower() == ".parquet" else "read_csv"
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {reader}(?)", [str(path)])
    else:
        con.register(f"{table}_df", source)
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {table}_df")
        con.unregister(f"{table}_df")
    return {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}


def source_rows(con, view: FeatureView, table: str) -> None:
    """Create the temp table ``table`` with the view's rows, ready for time queries.

    Its columns: the join keys, ``__mlp_ts`` (the event timestamp as naive UTC
    ``TIMESTAMP``), ``__mlp_created`` (the created timestamp likewise, or NULL),
    the features, and ``__mlp_pos`` (the row's position in the source). Rows with a null
    event timestamp are left out. ``con`` is a DuckDB connection; the view's columns and
    timestamp types are checked (ValueError / TypeError naming the view). Shared by the
    offline join and :func:`~mlpatterns.reproducibility.feature_store.materialize`.
    """
    owner = f"FeatureView {view.name!r}"
    raw = f"{table}__raw"
    columns = _load_source(con, view, raw)
    for role, names in [
        ("join key", view.join_keys),
        ("feature", view.features),
        ("timestamp_field", [view.timestamp_field]),
        (
            "created_timestamp_field",
            [view.created_timestamp_field] if view.created_timestamp_field else [],
        ),
    ]:
        for name in names:
            if name not in columns:
                raise ValueError(
                    f"{owner}: {role} {name!r} is not a column of its source; "
                    f"the source has {sorted(columns)}"
                )
    ts = _timestamp_expression(
        owner, "timestamp_field", view.timestamp_field, columns[view.timestamp_field]
    )
    created = "CAST(NULL AS TIMESTAMP)"
    if view.created_timestamp_field:
        created = _timestamp_expression(
            owner,
            "created_timestamp_field",
            view.created_timestamp_field,
            columns[view.created_timestamp_field],
        )
    keys = ", ".join(quote_identifier(k) for k in view.join_keys)
    features = ", ".join(quote_identifier(f) for f in view.features)
    con.execute(f"""
        CREATE TEMP TABLE {table} AS
        SELECT * FROM (
            SELECT {keys}, {ts} AS __mlp_ts, {created} AS __mlp_created, {features}, rowid AS __mlp_pos
            FROM {raw}
        )
        WHERE __mlp_ts IS NOT NULL
    """)
    con.execute(f"DROP TABLE {raw}")


def _prepare_view(con, view: FeatureView, raw: str, prepared: str) -> None:
    """Dedupe the source on (keys, event time): largest created timestamp, then last in source order."""
    source_rows(con, view, raw)
    keys = ", ".join(quote_identifier(k) for k in view.join_keys)
    features = ", ".join(quote_identifier(f) for f in view.features)
    con.execute(f"""
        CREATE TEMP TABLE {prepared} AS
        SELECT {keys}, __mlp_ts, {features} FROM {raw}
        QUALIFY row_number() OVER (
            PARTITION BY {keys}, __mlp_ts ORDER BY __mlp_created DESC NULLS LAST, __mlp_pos DESC) = 1
    """)


def _entity_timestamps(entity_df: pd.DataFrame, column: str) -> pd.Series:
    import pandas as pd

    if column not in entity_df.columns:
        raise ValueError(
            f"entity_df has no event timestamp column {column!r} (event_timestamp_column); "
            f"its columns are {list(entity_df.columns)}"
        )
    values = entity_df[column]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(values.dtype):
        raise TypeError(
            f"entity_df column {column!r} (event_timestamp_column) must be datetime64 "
            f"(naive or time-zone aware), got {values.dtype}; convert it with pd.to_datetime"
        )
    return values.astype("datetime64[us]").reset_index(drop=True)


def _normalize_views(views: FeatureView | Sequence[FeatureView]) -> list[FeatureView]:
    if isinstance(views, FeatureView):
        return [views]
    views = list(views)
    if not views:
        raise ValueError("get_historical_features needs at least one FeatureView, got none")
    for view in views:
        if not isinstance(view, FeatureView):
            raise TypeError(
                f"views must be FeatureView objects (use view.select(...) for some of a view's "
                f"features), got {type(view).__name__}"
            )
    names = [v.name for v in views]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"views: feature view(s) {duplicates} given more than once")
    return views


def get_historical_features(
    entity_df: pd.DataFrame,
    views: FeatureView | Sequence[FeatureView],
    *,
    event_timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> pd.DataFrame:
    """Point-in-time-correct feature values for each row of ``entity_df`` (semantics: module docstring).

    ``entity_df`` holds every view's join keys and ``event_timestamp_column`` (datetime64).
    ``views`` is a :class:`FeatureView` or a list of them; ``view.select("a", "b")`` asks for
    some of a view's features. Returns a copy of ``entity_df`` with the feature columns
    appended in the order of the views and their features.

    >>> import pandas as pd
    >>> from datetime import timedelta
    >>> from mlpatterns.reproducibility.feature_store import Entity, FeatureView
    >>> weather = pd.DataFrame({"origin": ["EWR", "EWR", "JFK"],
    ...     "time_hour": pd.to_datetime(["2013-01-01 06:00", "2013-01-01 07:00", "2013-01-01 06:00"]),
    ...     "temp": [39.0, 39.9, 41.0]})
    >>> view = FeatureView("weather", [Entity("airport", ["origin"])], weather, "time_hour", ["temp"],
    ...                    ttl=timedelta(hours=3))
    >>> flights = pd.DataFrame({"origin": ["EWR", "EWR", "JFK", "LGA"],
    ...     "event_timestamp": pd.to_datetime(["2013-01-01 06:59", "2013-01-01 07:00",
    ...                                        "2013-01-01 09:01", "2013-01-01 07:00"])})
    >>> get_historical_features(flights, [view])["temp"].tolist()
    [39.0, 39.9, nan, nan]
    """
    import duckdb
    import pandas as pd

    if not isinstance(entity_df, pd.DataFrame):
        raise TypeError(f"entity_df must be a pandas DataFrame, got {type(entity_df).__name__}")
    views = _normalize_views(views)
    timestamps = _entity_timestamps(entity_df, event_timestamp_column)

    outputs: list[tuple[FeatureView, str, str]] = []  # (view, feature, output column)
    seen: dict[str, str] = {}
    for view in views:
        for key in view.join_keys:
            if key not in entity_df.columns:
                raise ValueError(
                    f"entity_df has no column {key!r}, a join key of FeatureView {view.name!r}; "
                    f"its columns are {list(entity_df.columns)}"
                )
        for feature in view.features:
            out = f"{view.name}__{feature}" if full_feature_names else feature
            if out in entity_df.columns:
                raise ValueError(
                    f"FeatureView {view.name!r}: output column {out!r} is already a column of "
                    "entity_df; rename it or pass full_feature_names=True"
                )
            if out in seen:
                raise ValueError(
                    f"FeatureView {view.name!r}: output column {out!r} also comes from view "
                    f"{seen[out]!r}; pass full_feature_names=True"
                )
            seen[out] = view.name
            outputs.append((view, feature, out))

    key_columns = list(dict.fromkeys(k for v in views for k in v.join_keys))
    entities = entity_df[key_columns].reset_index(drop=True).copy()
    entities.columns = [f"__mlp_key_{i}" for i in range(len(key_columns))]
    key_alias = {k: f"__mlp_key_{i}" for i, k in enumerate(key_columns)}
    entities["__mlp_ts"] = timestamps
    entities["__mlp_row"] = range(len(entities))

    result = entity_df.copy()
    con = duckdb.connect()
    try:
        con.register("__mlp_entities_df", entities)
        con.execute(
            "CREATE TEMP TABLE __mlp_entities AS "
            "SELECT * REPLACE (CAST(__mlp_ts AS TIMESTAMP) AS __mlp_ts) FROM __mlp_entities_df"
        )
        for i, view in enumerate(views):
            _prepare_view(con, view, f"__mlp_raw_{i}", f"__mlp_view_{i}")
            conditions = " AND ".join(f"e.{key_alias[k]} = v.{quote_identifier(k)}" for k in view.join_keys)
            valid = "v.__mlp_ts IS NOT NULL"
            if view.ttl is not None:
                micros = view.ttl // timedelta(microseconds=1)
                valid = f"v.__mlp_ts >= e.__mlp_ts - to_microseconds(CAST({micros} AS BIGINT))"
            selected = ", ".join(
                f"CASE WHEN {valid} THEN v.{quote_identifier(f)} END AS {quote_identifier(out)}"
                for v_, f, out in outputs
                if v_ is view
            )
            query = (
                f"SELECT e.__mlp_row, {selected} FROM __mlp_entities e "
                f"ASOF LEFT JOIN __mlp_view_{i} v ON {conditions} AND e.__mlp_ts >= v.__mlp_ts "
                "ORDER BY e.__mlp_row"
            )
            try:
                joined = con.execute(query).df()
            except duckdb.Error as error:
                raise TypeError(
                    f"FeatureView {view.name!r}: the point-in-time join on {list(view.join_keys)} "
                    f"failed (do entity_df's key types match the source's?): {error}"
                ) from error
            if len(joined) != len(entities):  # an ASOF LEFT JOIN keeps each left row exactly once
                raise AssertionError(
                    f"FeatureView {view.name!r}: join returned {len(joined)} rows "
                    f"for {len(entities)} entity rows"
                )
            for v_, _feature, out in outputs:
                if v_ is view:
                    result[out] = joined[out].to_numpy()
    finally:
        con.close()
    return result
