"""Feature Store (pattern 26): the features one model reads, fetched the same way for training and for serving.

The problem it solves: a model trained on features joined from history and served with
features computed another way sees different inputs in serving (training-serving skew),
and a training join by key alone leaks values from the future. A :class:`FeatureService`
(the name Feast gives it) is the list of stored features a model uses, and the column of
its rows that says *when* each row happens. It answers both sides from one definition:

* :meth:`FeatureService.historical` (training, batch prediction): the offline store's
  point-in-time join (:func:`~.offline_store.get_historical_features`), each row getting
  the values as they were known at its event time, within each view's TTL.
* :meth:`FeatureService.online` (online serving): the same features read by key from the
  online store (:mod:`.online_store`), where :func:`~.materialization.materialize` has
  copied the latest values; a value older than the row's event time minus the TTL reads
  as missing, as in the offline join. After ``materialize(store, views, end=t + 1 µs)`` and
  before any newer source row, both give the same values at ``t``.

The service is saved in a bundle's manifest (:meth:`to_manifest`, read back by
:meth:`from_manifest`): the views' keys, features, timestamps and TTLs, the repository
file and its digest, and the online store's URL. So a served model needs the online store,
not the training code, and a batch prediction reads the repository's sources.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .definitions import Entity, FeatureView

if TYPE_CHECKING:
    import pandas as pd

    from .online_store import OnlineStore
    from .repository import FeatureRepository

__all__ = ["FeatureService", "FeatureServiceError", "get_online_features"]


def get_online_features(store: OnlineStore, views: FeatureView | Sequence[FeatureView],
                        entity_rows: Any, *, now: Any = None) -> list[dict[str, Any]]:
    """The stored values of several views for a batch of entities: one dict per entity row, in order,
    holding its join keys and every feature of ``views`` (``None`` for an unknown key, or, with ``now``, a
    value older than the view's TTL at ``now``). One read per view. ``entity_rows`` is a DataFrame or
    mappings holding every view's join keys; a feature name in two views is refused.

    >>> import tempfile, pandas as pd
    >>> from mlpatterns.reproducibility.feature_store import materialize, open_online_store
    >>> weather = FeatureView("weather", [Entity("airport", ["origin"])], pd.DataFrame({"origin": ["EWR"],
    ...     "time_hour": [pd.Timestamp("2013-01-01 06:00")], "temp": [39.0]}), "time_hour", ["temp"])
    >>> with open_online_store(f"sqlite:///{tempfile.mkdtemp()}/online.db") as store:
    ...     _ = materialize(store, weather)
    ...     get_online_features(store, [weather], [{"origin": "EWR"}, {"origin": "JFK"}])
    [{'origin': 'EWR', 'temp': 39.0}, {'origin': 'JFK', 'temp': None}]
    """
    views = [views] if isinstance(views, FeatureView) else list(views)
    seen: dict[str, str] = {}
    for view in views:
        for feature in view.features:
            if feature in seen:
                raise ValueError(f"get_online_features: the feature {feature!r} is in the views {seen[feature]!r} "
                                 f"and {view.name!r}; select it from one (view.select(...))")
            seen[feature] = view.name
    if hasattr(entity_rows, "to_dict") and hasattr(entity_rows, "columns"):
        entity_rows = entity_rows.to_dict("records")
    rows = list(entity_rows)
    keys = list(dict.fromkeys(k for view in views for k in view.join_keys))
    result = [{k: row.get(k) for k in keys} for row in rows]
    for view in views:
        for out, values in zip(result, store.read(view, rows, now=now), strict=True):
            out.update(values)
    return result


class FeatureServiceError(ValueError):
    """Rows the service cannot complete: a missing key or event time column, a bad timestamp, a clash."""


@dataclass(frozen=True)
class FeatureService:
    """The stored features of a model: ``views`` (each limited to the features used) and the rows' event time column.

    ``repository`` (the definitions file), ``repository_sha256`` and ``online_store`` (a URL)
    say where the features come from; they are recorded in the manifest.
    """

    views: tuple[FeatureView, ...]
    event_timestamp: str
    repository: str | None = None
    repository_sha256: str | None = None
    online_store: str | None = None
    key_types: Mapping[str, str] = field(default_factory=dict)  # join key -> "integer", "number" or "text"

    def with_key_types(self, frame: pd.DataFrame) -> FeatureService:
        """The service with each join key's type as ``frame`` (the training data) holds it, so that a served
        request's key (``"42"`` for 42) is read as the stored one is."""
        import pandas as pd

        types = {}
        for key in self.join_keys:
            dtype = frame[key].dtype if key in frame.columns else None
            if dtype is not None and pd.api.types.is_integer_dtype(dtype):
                types[key] = "integer"
            elif dtype is not None and pd.api.types.is_float_dtype(dtype):
                types[key] = "number"
            else:
                types[key] = "text"
        return replace(self, key_types=types)

    @classmethod
    def from_repository(cls, repository: FeatureRepository, references: Sequence[str], event_timestamp: str,
                        where: str = "features") -> FeatureService:
        """The service of ``references`` (``view`` or ``view:feature``) in ``repository``."""
        views = tuple(repository.select(references, where))
        return cls(views, event_timestamp, None if repository.path is None else str(repository.path),
                   repository.sha256, repository.online_store)

    @property
    def features(self) -> list[str]:
        """The feature columns the service adds, in order."""
        return [f for view in self.views for f in view.features]

    @property
    def join_keys(self) -> list[str]:
        """The key columns every row must carry (all views' join keys, in order)."""
        return list(dict.fromkeys(k for view in self.views for k in view.join_keys))

    def historical(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the features appended, point in time correct at each row's event time (offline store).

        A feature column already in ``frame`` is refused (the joined table would have it twice).
        """
        from .offline_store import get_historical_features

        self._check_columns(list(frame.columns), "the data")
        clash = [f for f in self.features if f in frame.columns]
        if clash:
            raise FeatureServiceError(f"the data already has the column(s) {clash} that the feature store adds; "
                                      "rename them in the data or leave them out of the features")
        return get_historical_features(self._timed(frame), list(self.views),
                                       event_timestamp_column=self.event_timestamp)

    def _timed(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with its event time column as timestamps: ISO 8601 text and dates are read as such (a CSV's
        column the reader left as text); a value that is not a time is an error naming its row and value."""
        import pandas as pd

        column = frame[self.event_timestamp]
        if pd.api.types.is_datetime64_any_dtype(column.dtype):
            return frame
        converted = pd.to_datetime(column, errors="coerce", format="ISO8601") if column.map(
            lambda v: isinstance(v, str)).any() else pd.to_datetime(column, errors="coerce")
        bad = converted.isna() & column.notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise FeatureServiceError(
                f"the event time column {self.event_timestamp!r} must hold times (ISO 8601 text such as "
                f"'2013-01-01T06:00:00' or timestamps); row {row} holds {column.iloc[row]!r} "
                f"({int(bad.sum())} such row(s)); fix it, or declare it a null marker (data.null_values)")
        frame = frame.copy()
        frame[self.event_timestamp] = converted
        return frame

    def online(self, store: OnlineStore, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row with the stored features added, read by key from ``store`` (one read per view).

        The TTL is applied at each row's own event time (so a stale value is missing, as in
        :meth:`historical`); a row without an event time, or with a join key that cannot be the
        training data's key type (:meth:`with_key_types`), is a :class:`FeatureServiceError`.
        Rows are not changed; new dicts are returned.
        """
        if rows:
            self._check_columns(list(rows[0]), "the request")
        rows = [self._typed_keys(row, i) for i, row in enumerate(rows)]
        completed = [dict(row) for row in rows]
        times = [self._event_time(row, i) for i, row in enumerate(rows)]
        for view in self.views:  # one read per view, each row's TTL cut-off at its own event time
            for row, values in zip(completed, store.read(view, rows, now=times), strict=True):
                row.update(values)
        return completed

    def _typed_keys(self, row: Mapping[str, Any], index: int) -> Mapping[str, Any]:
        """``row`` with its join keys as the training data typed them (``"42"`` for an integer key: 42)."""
        if not self.key_types:
            return row
        typed = dict(row)
        for key, kind in self.key_types.items():
            value = row.get(key)
            if value is None or kind == "text" and isinstance(value, str):
                continue
            try:
                if kind == "integer":
                    number = float(value) if not isinstance(value, int) or isinstance(value, bool) else value
                    if isinstance(value, bool) or number != int(number):
                        raise ValueError
                    typed[key] = int(number)
                elif kind == "number":
                    typed[key] = float(value)
                else:
                    typed[key] = str(value)
            except (TypeError, ValueError, OverflowError):
                raise FeatureServiceError(f"row {index}: {key}: expected {'a whole number' if kind == 'integer' else kind}"
                                          f" (the join key's type in the training data), got {value!r}") from None
        return typed

    def _event_time(self, row: Mapping[str, Any], index: int) -> dt.datetime:
        value = row.get(self.event_timestamp)
        if value is None or (isinstance(value, float) and value != value):
            raise FeatureServiceError(f"row {index}: {self.event_timestamp}: the event time is missing; every row "
                                      "needs the time it happens (the TTL applies at it, as in training)")
        from .online_store import as_datetime

        try:
            return as_datetime(value, f"row {index}: {self.event_timestamp}")
        except ValueError as error:
            raise FeatureServiceError(str(error)) from None

    def _check_columns(self, columns: list[str], what: str) -> None:
        missing = [c for c in (*self.join_keys, self.event_timestamp) if c not in columns]
        if missing:
            raise FeatureServiceError(f"{what} lacks the column(s) {missing} that the feature store needs: the join "
                                      f"keys {self.join_keys} and the event time {self.event_timestamp!r}")

    # -- the manifest form -------------------------------------------------------------------------
    def to_manifest(self) -> dict[str, Any]:
        """The service as JSON values (what a bundle's manifest records)."""
        return {
            "event_timestamp": self.event_timestamp,
            "repository": self.repository, "repository_sha256": self.repository_sha256,
            "online_store": self.online_store, "key_types": dict(self.key_types),
            "views": [{"name": v.name, "entities": [{"name": e.name, "join_keys": list(e.join_keys)}
                                                    for e in v.entities],
                       "source": str(v.source) if isinstance(v.source, (str, Path)) else None,
                       "timestamp_field": v.timestamp_field, "created_timestamp_field": v.created_timestamp_field,
                       "ttl_seconds": None if v.ttl is None else v.ttl.total_seconds(),
                       "features": list(v.features)} for v in self.views],
        }

    @classmethod
    def from_manifest(cls, document: Mapping[str, Any], *, online_store: str | None = None) -> FeatureService:
        """The service a manifest recorded; ``online_store`` replaces the recorded URL when given.

        The views read their source from the path recorded at training (the repository's source),
        which only :meth:`historical` reads.
        """
        try:
            views = []
            for view in document["views"]:
                entities = [Entity(e["name"], e["join_keys"]) for e in view["entities"]]
                ttl = None if view["ttl_seconds"] is None else dt.timedelta(seconds=float(view["ttl_seconds"]))
                source = view["source"] or f"{view['name']}.parquet"
                views.append(FeatureView(view["name"], entities, source, view["timestamp_field"], view["features"],
                                         ttl, view.get("created_timestamp_field")))
            return cls(tuple(views), str(document["event_timestamp"]), document.get("repository"),
                       document.get("repository_sha256"), online_store or document.get("online_store"),
                       dict(document.get("key_types") or {}))
        except (KeyError, TypeError, ValueError) as error:
            raise FeatureServiceError(f"the manifest's feature_store section cannot be read "
                                      f"({type(error).__name__}: {error})") from None
