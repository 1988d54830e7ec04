"""Feature Store (26) in serving: a bundle trained on stored features, served with those features read by key.

Problem: a model trained on features joined from history (the point-in-time join of
``data.feature_store``) needs the same features when it serves. Asking clients to send
them moves the feature computation into every client, where it drifts from training;
computing them in the server a second way is training-serving skew by construction.

Solution: :class:`StoredFeatureServing` wraps the bundle. A request carries what the
client knows (the other inputs, each feature view's join keys and the event time of the
row); the wrapper reads the stored features from the online store by key
(:meth:`FeatureService.online
<mlpatterns.reproducibility.feature_store.feature_service.FeatureService.online>`, the TTL
applied at the row's event time) and hands complete rows to the bundle's own online path
(:class:`~mlpatterns.serving.online.OnlinePredictor`) or batch path
(:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction`). Its signature is
the bundle's without the stored features, plus the join keys and the event time, so the
HTTP server (:mod:`mlpatterns.serving.http`) checks requests against what a client sends.
:meth:`StoredFeatureServing.historical` is the batch counterpart (``mlpatterns predict``):
the offline store's join at each row's event time. A feature a request sends itself is
replaced by the stored value: the store is the one source of these features.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlpatterns.bundles.format import Bundle, BundleError
from mlpatterns.reproducibility.feature_store.feature_service import (
    FeatureService,
    FeatureServiceError,
)
from mlpatterns.reproducibility.feature_store.online_store import (
    OnlineStoreError,
    open_online_store,
)
from mlpatterns.serving.online import InputError, OnlinePathUnsupported, OnlinePredictor, RowProblem

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["StoredFeatureServing", "feature_service_of", "with_stored_features"]


def feature_service_of(bundle: Bundle, *, online_store: str | None = None) -> FeatureService | None:
    """The :class:`FeatureService` a bundle was trained with (its manifest's ``feature_store``), or None."""
    section = bundle.manifest.get("feature_store")
    if section is None:
        return None
    try:
        return FeatureService.from_manifest(section, online_store=online_store)
    except FeatureServiceError as error:
        raise BundleError(f"{bundle.path}: {error}") from None


class StoredFeatureServing:
    """A bundle with stored features, served with them read from the online store (see the module docstring).

    ``online_store``: the store's URL, instead of the one the feature repository names.
    Each thread reads through its own connection. :meth:`close` closes them.
    """

    def __init__(self, bundle: Bundle, *, online_store: str | None = None) -> None:
        service = feature_service_of(bundle, online_store=online_store)
        if service is None:
            raise BundleError(f"{bundle.path}: the bundle was not trained on stored features (no feature_store)")
        if service.online_store is None:
            raise BundleError(f"{bundle.path}: the model reads stored features {service.features}, but neither its "
                              "feature repository nor the server names an online store: give --online-store URL")
        self.bundle, self.service = bundle, service
        self._local = threading.local()
        self._stores: list[Any] = []
        self._lock = threading.Lock()
        self._store()  # opened now: a bad URL fails before the server is ready
        try:
            self._online: OnlinePredictor | None = OnlinePredictor(bundle)
        except OnlinePathUnsupported:
            self._online = None
        self._batch: Any = None
        inner = self._online.signature if self._online is not None else self._serving().signature
        self.name = str(bundle.manifest["name"])
        self.task = bundle.manifest["task"]
        self.row_independent = bool(getattr(self._online, "row_independent", False))
        stored = set(service.features)
        inputs = [item for item in inner["inputs"] if item["name"] not in stored]
        given = {item["name"] for item in inputs} | set(inner.get("keys", []))
        inputs += [{"name": key, "type": "text"} for key in service.join_keys if key not in given]
        if service.event_timestamp not in given:
            inputs.append({"name": service.event_timestamp, "type": "date"})
        self.signature = {**inner, "inputs": inputs,
                          "stored_features": {"features": service.features, "join_keys": service.join_keys,
                                              "event_timestamp": service.event_timestamp}}

    @property
    def input_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["inputs"]]

    @property
    def key_columns(self) -> list[str]:
        return list(self.signature.get("keys", []))

    @property
    def output_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["outputs"]]

    @property
    def null_values(self) -> list[str] | None:
        return self.signature.get("null_values")

    def _store(self) -> Any:
        store = getattr(self._local, "store", None)
        if store is None:
            try:
                store = open_online_store(self.service.online_store)
            except OnlineStoreError as error:
                raise BundleError(f"{self.bundle.path}: {error}") from None
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def _serving(self) -> Any:
        if self._batch is None:
            from mlpatterns.serving.stateless_serving_function import ServingFunction

            self._batch = ServingFunction(self.bundle)
        return self._batch

    def complete_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row with its stored features read from the online store; a bad event time is an InputError."""
        missing = [(i, [c for c in self.input_columns if c not in row]) for i, row in enumerate(rows)]
        missing = [(i, names) for i, names in missing if names]
        if missing:
            i, names = missing[0]
            raise InputError(f"row {i}: missing field(s) {names}; the model '{self.name}' expects inputs "
                             f"{self.input_columns} and keys {self.key_columns}")
        try:
            return self.service.online(self._store(), rows)
        except FeatureServiceError as error:
            raise InputError(str(error)) from None

    # -- the online path: rows of JSON values ------------------------------------------------------
    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[RowProblem]]:
        """The bundle's predictions of the rows completed with their stored features (as OnlinePredictor's)."""
        completed = self.complete_rows(rows)
        if self._online is not None:
            return self._online.predict_rows(completed)
        import pandas as pd

        result, problems = self._serving().predict(pd.DataFrame(completed))
        return result.to_dict("records"), problems

    # -- the batch path: DataFrames ------------------------------------------------------------------
    def conform(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowProblem]]:
        """The frame completed from the online store, then conformed by the bundle's ServingFunction."""
        import pandas as pd

        completed = self.complete_rows(frame.to_dict("records"))
        return self._serving().conform(pd.DataFrame(completed, index=frame.index, columns=list(
            dict.fromkeys([*frame.columns, *self.service.features]))))

    def predict_conformed(self, raw: pd.DataFrame, conformed: pd.DataFrame, **options: Any) -> pd.DataFrame:
        return self._serving().predict_conformed(raw, conformed, **options)

    def historical(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Batch prediction's input: ``frame`` with the stored features as of each row's event time (offline)."""
        try:
            return self.service.historical(frame)
        except (TypeError, ValueError) as error:
            raise InputError(str(error)) from None

    def close(self) -> None:
        with self._lock:
            while self._stores:
                self._stores.pop().close()

    def __repr__(self) -> str:
        return f"StoredFeatureServing({self.name!r}, {self.service.features}, online store {self.service.online_store!r})"


def with_stored_features(bundle: Bundle, input_path: Any, folder: Any) -> Any:
    """Batch prediction's input for a bundle with stored features: the file at ``input_path`` read (CSV or
    Parquet, with the bundle's null markers), the stored features joined as of each row's event time
    (the offline store, as in training), written as ``folder/<input name>.parquet``; that path is returned.

    The join reads the whole input at once (DuckDB), not chunk by chunk.
    """
    from pathlib import Path

    from mlpatterns.tables import read_frame

    service = feature_service_of(bundle)
    if service is None:
        return Path(input_path)
    input_path = Path(input_path)
    frame = read_frame(input_path, null_values=bundle.manifest["signature"].get("null_values"))
    try:
        joined = service.historical(frame)
    except (TypeError, ValueError) as error:
        raise InputError(f"{input_path}: {error}") from None
    path = Path(folder) / f"{input_path.stem.split('.')[0]}.parquet"
    joined.to_parquet(path, index=False)
    return path

