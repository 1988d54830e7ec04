"""Feature Store (26) in serving: the stored features of a bundle read by key from the online store.

Problem: a model trained on features joined from history (the point-in-time join of
``data.feature_store``) needs the same features when it serves. Asking clients to send
them moves the feature computation into every client, where it drifts from training;
computing them in the server a second way is training-serving skew by construction.

Solution: :class:`StoredFeatures`, a completer of
:class:`~mlpatterns.serving.completed_inputs.CompletedInputsServing`. A request carries
each feature view's join keys and the event time of the row; the stored features are read
from the online store by key (:meth:`FeatureService.online
<mlpatterns.reproducibility.feature_store.feature_service.FeatureService.online>`: one
read per view, the TTL applied at each row's own event time). :func:`with_stored_features`
is the batch counterpart (``mlpatterns predict``): the offline store's join as of each
row's event time, as in training.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpatterns.bundles.format import Bundle, BundleError
from mlpatterns.reproducibility.feature_store.feature_service import (
    FeatureService,
    FeatureServiceError,
)
from mlpatterns.reproducibility.feature_store.online_store import (
    OnlineStoreError,
    open_online_store,
)
from mlpatterns.serving.online import InputError

__all__ = ["StoredFeatures", "feature_service_of", "with_stored_features"]


def feature_service_of(bundle: Bundle, *, online_store: str | None = None) -> FeatureService | None:
    """The :class:`FeatureService` a bundle was trained with (its manifest's ``feature_store``), or None."""
    section = bundle.manifest.get("feature_store")
    if section is None:
        return None
    try:
        return FeatureService.from_manifest(section, online_store=online_store)
    except FeatureServiceError as error:
        raise BundleError(f"{bundle.path}: {error}") from None


class StoredFeatures:
    """Completes rows with a bundle's stored features, read from the online store (``online_store``: its URL,
    instead of the one the feature repository names). Each thread reads through its own connection."""

    def __init__(self, bundle: Bundle, *, online_store: str | None = None) -> None:
        service = feature_service_of(bundle, online_store=online_store)
        if service is None:
            raise BundleError(f"{bundle.path}: the bundle was not trained on stored features (no feature_store)")
        if service.online_store is None:
            raise BundleError(f"{bundle.path}: the model reads stored features {service.features}, but neither its "
                              "feature repository nor the server names an online store: give --online-store URL")
        self.bundle, self.service = bundle, service
        self.supplied = service.features
        self.row_independent = True
        kinds = {"integer": {"type": "number", "dtype": "int64"}, "number": {"type": "number"}}
        self.required = [*({"name": key, **kinds.get(service.key_types.get(key, "text"), {"type": "text"})}
                           for key in service.join_keys),
                         {"name": service.event_timestamp, "type": "date"}]
        self._local = threading.local()
        self._stores: list[Any] = []
        self._lock = threading.Lock()
        self._store()  # opened now: a bad URL fails before the server is ready

    def _store(self) -> Any:
        store = getattr(self._local, "store", None)
        if store is None:
            try:
                store = open_online_store(self.service.online_store, create=False)  # never an empty new one
            except OnlineStoreError as error:
                raise BundleError(f"{self.bundle.path}: {error}, or give --online-store URL") from None
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def complete(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row with the stored features read by key; a bad event time is an :class:`InputError`."""
        try:
            return self.service.online(self._store(), rows)
        except FeatureServiceError as error:
            raise InputError(str(error)) from None

    def close(self) -> None:
        with self._lock:
            while self._stores:
                self._stores.pop().close()

    def __repr__(self) -> str:
        return f"StoredFeatures({self.service.features}, online store {self.service.online_store!r})"


def with_stored_features(bundle: Bundle, frame: Any) -> Any:
    """Batch prediction's input: ``frame`` with the bundle's stored features joined as of each row's event time
    (the offline store, reading the repository's sources, as in training); ``frame`` itself without any."""
    service = feature_service_of(bundle)
    if service is None:
        return frame
    for view in service.views:
        if not Path(view.source).is_file():
            raise InputError(f"the source of feature view {view.name!r} is missing: no such file "
                             f"{str(view.source)!r} (the feature repository {service.repository})")
    try:
        return service.historical(frame)
    except (TypeError, ValueError) as error:
        raise InputError(str(error)) from None
