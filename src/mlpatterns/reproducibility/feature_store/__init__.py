"""Feature Store (pattern 26): feature definitions and the offline store's point-in-time join.

:mod:`.definitions` holds :class:`Entity` and :class:`FeatureView`; :mod:`.offline_store`
holds :func:`get_historical_features` (DuckDB ``ASOF`` joins, TTL, created-timestamp
ties); :mod:`.online_store` the :class:`OnlineStore` (latest values per entity key,
SQLite by default, opened by :func:`open_online_store`) and :mod:`.materialization`
:func:`materialize`, which copies the latest rows from the offline source into it.
:mod:`.repository` reads a versioned definitions file (:func:`load_repository`) that specs
share, and :mod:`.feature_service` holds :class:`FeatureService`, the stored features of
one model, fetched offline for training and online by key for serving.

Importing this package imports none of its modules (so neither DuckDB nor pandas); each
name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "Entity": "definitions",
    "FeatureView": "definitions",
    "get_historical_features": "offline_store",
    "OnlineStore": "online_store",
    "open_online_store": "online_store",
    "materialize": "materialization",
    "FeatureRepository": "repository",
    "load_repository": "repository",
    "FeatureService": "feature_service",
    "get_online_features": "feature_service",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
