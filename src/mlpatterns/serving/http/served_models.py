"""The versions an HTTP Stateless Serving Function (16) serves: labels, a split, reloads.

Problem: one bundle per name makes every new version a new name for the clients, a
canary impossible, and following the registry (Model Versioning, 27) a restart that
drops the requests in flight.

Solution: :class:`ServedModels`, a table of ``name -> {version: model}``, as TensorFlow
Serving keeps it. A bundle folder is version 1 unless given one; a registered version
keeps its registry number. Every registry alias of a served version is a *label*
(``models:/flights@champion`` served: ``/labels/champion``), and labels may be given.
The latest (highest) version answers a request without version, unless the name has a
:class:`~mlpatterns.serving.http.traffic_split.TrafficSplit`. :meth:`ServedModels.reload`
re-resolves every ``models:/NAME@ALIAS`` source: a version the alias now points at is
loaded and verified (off the event loop, :meth:`ServedModels.watch`), then the table is
swapped for a new immutable snapshot in one assignment, so requests in flight finish
on the version they started with; a bundle that fails verification is refused (logged,
counted) and the old version keeps serving.

A request of few rows takes the online path (:class:`Route`), split or not: the rows of a
split are sent to their versions by :meth:`TrafficSplit.assign_rows
<mlpatterns.serving.http.traffic_split.TrafficSplit.assign_rows>`, the buckets of the batch
path without pandas, and each version answers its rows with its own online path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpatterns.bundles.format import Bundle, BundleError, read_bundle
from mlpatterns.reproducibility.model_versioning.model_uri import (
    ModelURI,
    RegistryError,
    check_alias,
)
from mlpatterns.serving.http._common import (
    ONLINE_MAX_ROWS,
    RequestError,
    ServedModel,
    bad_rows_message,
    column_values,
    conform_frame,
    frame_of,
)
from mlpatterns.serving.http.model_sources import (
    ModelLoadError,
    ModelSource,
    model_sources,
    positive_version,
)
from mlpatterns.serving.http.precomputed_model import PrecomputedServing
from mlpatterns.serving.http.traffic_split import SplitError, Target, TrafficSplit
from mlpatterns.serving.online import InputError, OnlinePredictor

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LOGGER", "ModelLoadError", "ModelSource", "NotServedError", "ReloadEvent", "Route", "ServedModels",
           "model_sources"]

LOGGER = "mlpatterns.serving.http.models"
_logger = logging.getLogger(LOGGER)


class NotServedError(LookupError):
    """No such model, version or label (``version``/``label`` say which was asked for)."""

    def __init__(self, name: str, *, version: Any = None, label: str | None = None) -> None:
        super().__init__(f"{name}: version {version}" if version is not None else f"{name}: label {label}"
                         if label is not None else name)
        self.name, self.version, self.label = name, version, label


@dataclass(frozen=True)
class ReloadEvent:
    """What one reload did for one source: ``outcome`` is ``"loaded"`` or ``"refused"``."""

    source: ModelSource
    outcome: str
    old_version: int
    new_version: int | None
    message: str


@dataclass(frozen=True)
class Route:
    """Where a request for one model goes: ``model`` (the version asked for, or the latest), or a split.

    With a split, ``model`` reads the request (every version of a split has the same fields).
    :meth:`predict_json` answers a request of few rows on the online path, any other on the
    batch path (:meth:`predict`), with the same JSON either way. A split takes the online path
    when each of its versions has one (a bundle, not a table of precomputed predictions) that
    reads rows and names outputs as ``model``'s does (the same signature inputs, date
    columns, task and outputs: then the batch path, which conforms every row with ``model``
    and predicts each version's rows from those, gives the same answer as each version's
    online path would); any other split takes the batch path.
    """

    name: str
    model: ServedModel
    split: TrafficSplit | None = None
    versions: Mapping[int, ServedModel] = field(default_factory=dict)
    labels: Mapping[str, int] = field(default_factory=dict)
    on_answer: Callable[..., None] | None = field(default=None, compare=False)

    def version_of(self, target: Target) -> int:
        return self.labels[target] if isinstance(target, str) else int(target)

    def answers_inline(self, count: int) -> bool:
        """Whether ``count`` rows take the online path, fast enough to run on the event loop; the batch
        path (large requests, splits without an online path, and its loading on first use) runs in a
        worker thread."""
        if self.split is None:
            return self.model.answers_online(count)
        return all(m.answers_online(count) and _online_alike(m, self.model) for m in self._split_models())

    def _split_models(self) -> list[ServedModel]:
        assert self.split is not None
        return [self.versions[self.version_of(t)] for t in self.split.targets]

    async def answer_json(self, rows: Sequence[Mapping[str, Any]] | None, columns: Mapping[str, Sequence[Any]] | None,
                          count: int) -> tuple[dict[str, list[Any]], list[str] | None]:
        """:meth:`predict_json`, on the event loop for the online path (one model call with the other
        requests ready at once, when the model scores rows independently), else in a worker thread.

        Once answered, ``on_answer(route, rows, columns, count, answer)`` sees the request and its
        answer (:class:`~mlpatterns.serving.http.prediction_logging.PredictionRecorder`: the prediction
        log, Continued Model Evaluation, 18); it must be cheap and never raise."""
        if not self.answers_inline(count):
            from starlette.concurrency import run_in_threadpool

            answer = await run_in_threadpool(self._predict_batch, rows, columns)
        elif getattr(self.model.online, "does_io", False):  # reads a store (26, 24): off the event loop
            from starlette.concurrency import run_in_threadpool

            answer = await run_in_threadpool(self.predict_json, rows, columns, count)
        else:
            rows = self._rows_of(rows, columns, count)
            if self.split is None:
                answer = await self.model.predict_online_together(rows), None
            else:
                answer = self._predict_split_online(rows)
        if self.on_answer is not None:
            self.on_answer(self, rows, columns, count, answer)
        return answer

    def predict_json(self, rows: Sequence[Mapping[str, Any]] | None, columns: Mapping[str, Sequence[Any]] | None,
                     count: int) -> tuple[dict[str, list[Any]], list[str] | None]:
        """The predictions of ``count`` checked rows of JSON values, given as ``rows`` (objects with
        every field) or ``columns`` (a list per field), as JSON columns: the keys, then the outputs;
        and (with a split) the version that made each one. A bad row is a 400 naming row and field."""
        if self.answers_inline(count):
            rows = self._rows_of(rows, columns, count)
            if self.split is None:
                return self.model.predict_online(rows), None
            return self._predict_split_online(rows)
        return self._predict_batch(rows, columns)

    def _predict_batch(self, rows: Sequence[Mapping[str, Any]] | None,
                       columns: Mapping[str, Sequence[Any]] | None) -> tuple[dict[str, list[Any]], list[str] | None]:
        """:meth:`predict_json` on the batch path (pandas), decided by the caller."""
        model = self.model
        if columns is None:
            columns = {f: [row[f] for row in rows] for f in dict.fromkeys(model.fields)}
        result, used = self.predict(frame_of(model.fields, columns))
        return {c: column_values(result, c) for c in result.columns}, used

    def _rows_of(self, rows: Sequence[Mapping[str, Any]] | None, columns: Mapping[str, Sequence[Any]] | None,
                 count: int) -> Sequence[Mapping[str, Any]]:
        if rows is not None:
            return rows
        assert columns is not None
        fields = list(dict.fromkeys(self.model.fields))
        return [{f: columns[f][i] for f in fields} for i in range(count)]

    def _predict_split_online(self, rows: Sequence[Mapping[str, Any]]) -> tuple[dict[str, list[Any]], list[str]]:
        """:meth:`predict` of a split on the online path, step for step: every row conformed by ``model``
        (a bad row is the same 400), each row's version by its key's bucket, each version's rows
        predicted in ascending version order, and the answers put back in the rows' order."""
        model = self.model
        assert self.split is not None and isinstance(model.online, OnlinePredictor)
        try:
            _, problems = model.online.conform_rows(rows)
        except InputError as error:
            raise RequestError(str(error)) from error
        if problems:
            raise RequestError(bad_rows_message(problems))
        versions = [self.version_of(t) for t in self.split.assign_rows(rows, model.key_columns)]
        if not versions:
            return model.predict_online(rows), []
        groups: dict[int, list[int]] = {}
        for row, version in enumerate(versions):
            groups.setdefault(version, []).append(row)
        result: dict[str, list[Any]] = {}
        for version in sorted(groups):
            chosen = groups[version]
            part = self.versions[version].predict_online([rows[i] for i in chosen])
            for name, values in part.items():
                column = result.setdefault(name, [None] * len(rows))
                for row, value in zip(chosen, values, strict=True):
                    column[row] = value
        return result, [str(v) for v in versions]

    def predict(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str] | None]:
        """The predictions of every row by the batch path, and (with a split) the version that made each one."""
        import numpy as np
        import pandas as pd

        conformed = conform_frame(self.model, frame)
        if self.split is None:
            return self.model.serving.predict_conformed(frame, conformed), None
        targets = self.split.assign(frame, self.model.key_columns)
        versions = np.array([self.version_of(t) for t in targets], dtype=np.int64)
        parts = []
        for version in np.unique(versions):
            rows = np.flatnonzero(versions == version)
            part = self.versions[int(version)].serving.predict_conformed(
                frame.iloc[rows].reset_index(drop=True), conformed.iloc[rows].reset_index(drop=True))
            part.index = rows
            parts.append(part)
        result = pd.concat(parts).sort_index().reset_index(drop=True) if parts else \
            self.model.serving.predict_conformed(frame, conformed)
        return result, [str(v) for v in versions]


def _online_alike(model: ServedModel, other: ServedModel) -> bool:
    """Whether two versions have online paths (bundles) that conform rows alike and give the same
    outputs, so that a split over them answers on the online path as its batch path does."""
    a, b = model.online, other.online
    if not isinstance(a, OnlinePredictor) or not isinstance(b, OnlinePredictor):
        return False
    return a is b or (a.signature["inputs"], a.transform.date_columns, a.task, a.signature["outputs"]) == (
        b.signature["inputs"], b.transform.date_columns, b.task, b.signature["outputs"])


@dataclass(frozen=True)
class _Snapshot:
    models: tuple[ServedModel, ...]  # one per source
    versions: Mapping[str, Mapping[int, ServedModel]]
    labels: Mapping[str, Mapping[str, int]]


class ServedModels:
    """The served versions of every model, their labels and traffic splits; reloads aliases.

    ``models``: see :func:`model_sources`. ``registry``: a URL or an open
    :class:`~mlpatterns.reproducibility.model_versioning.ModelRegistry` for ``models:/``
    sources (a URL is opened here and closed by :meth:`close`). ``labels``: ``{name:
    {label: version}}``, over the registry's aliases. ``split``: ``{name: "3:90,4:10"}``
    (or a mapping, or a :class:`TrafficSplit`); its versions must be served and share
    their input and key columns, and the model needs key columns. ``on_reload(event)``
    is called for each :class:`ReloadEvent`. Every problem raises :class:`ModelLoadError`.
    ``online_rows``: requests of at most this many rows take each bundle's online path, a
    split's too (see :class:`Route` and :class:`~mlpatterns.serving.http._common.ServedModel`;
    0: never). ``on_answer``, when set, is given to every :class:`Route` (the prediction log).
    ``online_store``: the URL of the online store that bundles trained on stored features read
    them from (Feature Store, 26; default: the one their feature repository names), see
    :mod:`~mlpatterns.serving.feature_store_serving`; ``window_state``: the online store URL where bundles
    with window features (Windowed Inference, 24) keep their stream's state (default: in memory), see
    :mod:`~mlpatterns.serving.windowed_serving`.

    Thread safety: readers (:meth:`find`, :meth:`route`) read one immutable snapshot
    without a lock; :meth:`reload` runs one at a time and replaces the snapshot at once.
    """

    def __init__(self, models: Any, *, registry: Any = None, labels: Mapping[str, Mapping[str, Any]] | None = None,
                 split: Mapping[str, Any] | None = None, on_reload: Callable[[ReloadEvent], None] | None = None,
                 online_rows: int = ONLINE_MAX_ROWS, online_store: str | None = None,
                 window_state: str | None = None) -> None:
        self.online_rows = online_rows
        self.online_store, self.window_state = online_store, window_state
        self.sources = model_sources(models)
        if not self.sources:
            raise ModelLoadError("no model to serve; give at least one NAME=BUNDLE")
        self.on_reload = on_reload
        self.on_answer: Callable[..., None] | None = None
        self.reloads: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        names = {s.name for s in self.sources}
        self._labels = self._given_labels(labels or {}, names)
        self._splits = self._given_splits(split or {}, names)
        seen: dict[str, ModelSource] = {}
        for source in self.sources:
            text = f"{source.name}={source.source}"
            if text in seen and source.version == seen[text].version:
                raise ModelLoadError(f"model '{source.name}' is given twice: {source}")
            seen[text] = source
        self._tables: list[Any] = []  # tables and online stores opened here, closed by close()
        self._registry, self._owns_registry = self._open_registry(registry)
        try:
            aliases = self._read_aliases()
            loaded = tuple(self._load(source, self._wanted(source, aliases)) for source in self.sources)
            self._snapshot = self._build(loaded, aliases)
        except Exception:
            self.close()
            raise
        self.ready = True  # every version above is loaded and verified

    # -- configuration -------------------------------------------------------------------------------
    @staticmethod
    def _given_labels(labels: Mapping[str, Mapping[str, Any]], names: set[str]) -> dict[str, dict[str, int]]:
        given: dict[str, dict[str, int]] = {}
        for name, table in labels.items():
            if name not in names:
                raise ModelLoadError(f"label of '{name}': no model '{name}' is served; served: {sorted(names)}")
            for label, version in table.items():
                try:
                    check_alias(label)  # a label starts with a letter: never mistaken for a version
                except RegistryError as error:
                    raise ModelLoadError(f"label '{name}/{label}': {error}") from None
                given.setdefault(name, {})[label] = positive_version(version, f"label '{name}/{label}'")
        return given

    @staticmethod
    def _given_splits(split: Mapping[str, Any], names: set[str]) -> dict[str, TrafficSplit]:
        splits = {}
        for name, value in split.items():
            if name not in names:
                raise ModelLoadError(f"split of '{name}': no model '{name}' is served; served: {sorted(names)}")
            try:
                splits[name] = TrafficSplit.of(value)
            except SplitError as error:
                raise ModelLoadError(f"split of '{name}': {error}") from None
        return splits

    def _open_registry(self, registry: Any) -> tuple[Any, bool]:
        needs = [s for s in self.sources if s.uri is not None]
        if not needs:
            return None, False
        if registry is None:
            raise ModelLoadError(f"model '{needs[0].name}': {needs[0].source} needs a registry: pass registry=URL "
                                 "(mlpatterns serve: --registry)")
        from mlpatterns.reproducibility.model_versioning import ModelRegistry, open_registry

        if isinstance(registry, ModelRegistry):
            return registry, False
        try:
            return open_registry(registry), True
        except (RegistryError, ValueError, OSError) as error:
            raise ModelLoadError(f"registry {registry!r}: {error}") from error

    def _read_aliases(self) -> dict[str, dict[str, int]]:
        """Every alias of every registered model a source names, as it points now."""
        names = sorted({s.uri.name for s in self.sources if s.uri is not None})
        try:
            return {name: dict(self._registry.get_model(name).aliases) for name in names}
        except RegistryError as error:
            raise ModelLoadError(str(error)) from error

    @staticmethod
    def _wanted(source: ModelSource, aliases: Mapping[str, Mapping[str, int]]) -> int:
        uri = source.uri
        if uri is None:
            return source.version or 1
        if uri.version is not None:
            return uri.version
        version = aliases.get(uri.name, {}).get(uri.alias)
        if version is None:
            raise ModelLoadError(f"model '{source.name}': {uri}: {uri.name} has no alias {uri.alias!r}")
        return version

    def _load(self, source: ModelSource, version: int) -> ServedModel:
        """Load and verify one version (a registered one resolved by number, so an alias moving meanwhile is no race).

        A bundle is read and verified, and its online path loaded; its ServingFunction (and
        pandas) only when a request needs it (see :class:`ServedModel`).
        """
        uri = source.uri
        try:
            if uri is None and not isinstance(source.source, (str, os.PathLike)):  # a loaded ServingFunction or table
                serving = source.source
            elif uri is not None:
                serving = read_bundle(self._registry.resolve(ModelURI(uri.name, version=version)))
            elif source.precomputed:  # Batch Serving (17): answered by key from a table
                serving = PrecomputedServing.open(source.source)
                self._tables.append(serving)
            else:
                serving = read_bundle(Path(source.source))
            if isinstance(serving, Bundle) and ("feature_store" in serving.manifest or "windows" in serving.manifest):
                # inputs the server completes: stored features (26), window features (24)
                from mlpatterns.serving.completed_inputs import completed_serving

                serving = completed_serving(serving, online_store=self.online_store, window_state=self.window_state)
                self._tables.append(serving)
            model = ServedModel(source.name, str(version), serving, online_rows=self.online_rows)
            if uri is not None:
                model.registered = (uri.name, str(version))
            return model
        except (BundleError, RegistryError, OSError, ValueError) as error:
            what = "table of precomputed predictions" if source.precomputed else "bundle"
            where = f"{uri.name} version {version}" if uri is not None else f"the {what} {source.source}"
            raise ModelLoadError(f"model '{source.name}': {where} cannot be served: {error}") from error

    def _shared(self, first: ModelSource, second: ModelSource) -> bool:
        """Two sources of one registered model: the same version is the same bundle, served once."""
        return first.uri is not None and second.uri is not None and first.uri.name == second.uri.name

    def _build(self, models: tuple[ServedModel, ...], aliases: Mapping[str, Mapping[str, int]]) -> _Snapshot:
        """The table of ``models`` (one per source), checked: versions, labels, splits."""
        versions: dict[str, dict[int, ServedModel]] = {}
        owners: dict[tuple[str, int], ModelSource] = {}
        for source, model in zip(self.sources, models, strict=True):
            key = (source.name, int(model.version))
            if key in owners and not self._shared(owners[key], source):
                raise ModelLoadError(f"model '{source.name}' version {key[1]} is given twice: {owners[key]} and {source}")
            owners.setdefault(key, source)
            versions.setdefault(source.name, {}).setdefault(key[1], model)
        labels: dict[str, dict[str, int]] = {name: {} for name in versions}
        for source, model in zip(self.sources, models, strict=True):  # the alias a source follows
            if source.follows_alias:
                labels[source.name].setdefault(source.uri.alias, int(model.version))
        for source, model in zip(self.sources, models, strict=True):  # then every alias of a served version
            if source.uri is not None:
                for alias, version in sorted(aliases.get(source.uri.name, {}).items()):
                    if version == int(model.version):
                        labels[source.name].setdefault(alias, version)
        for name, given in self._labels.items():
            for label, version in given.items():
                if version not in versions[name]:
                    raise ModelLoadError(f"label '{name}/{label}': version {version} of '{name}' is not served; "
                                         f"served: {sorted(versions[name])}")
                labels[name][label] = version
        for name, split in self._splits.items():
            self._check_split(name, split, versions[name], labels[name])
        return _Snapshot(models, versions, labels)

    @staticmethod
    def _check_split(name: str, split: TrafficSplit, versions: Mapping[int, ServedModel],
                     labels: Mapping[str, int]) -> None:
        chosen = []
        for target in split.targets:
            version = labels.get(target) if isinstance(target, str) else target
            if version not in versions:
                what = f"label '{target}'" if isinstance(target, str) else f"version {target}"
                raise ModelLoadError(f"split of '{name}' ({split}): {what} is not served; served versions "
                                     f"{sorted(versions)}, labels {sorted(labels)}")
            chosen.append(versions[version])
        first = chosen[0]
        if not first.key_columns:
            raise ModelLoadError(f"split of '{name}': the model has no key columns; a traffic split sends each row "
                                 "to a version by its key (train it with 'keys:')")
        for other in chosen[1:]:
            if (other.fields, other.key_columns) != (first.fields, first.key_columns):
                raise ModelLoadError(f"split of '{name}': versions {first.version} and {other.version} differ in "
                                     f"their inputs or keys ({first.fields} vs {other.fields})")

    # -- reading -------------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return sorted(self._snapshot.versions)

    def versions(self, name: str) -> dict[int, ServedModel]:
        """The served versions of ``name``, by version (raises :class:`NotServedError`)."""
        found = self._snapshot.versions.get(name)
        if found is None:
            raise NotServedError(name)
        return dict(sorted(found.items()))

    def labels(self, name: str) -> dict[str, int]:
        self.versions(name)
        return dict(sorted(self._snapshot.labels[name].items()))

    def split(self, name: str) -> TrafficSplit | None:
        return self._splits.get(name)

    def find(self, name: str, version: Any = None, label: str | None = None) -> ServedModel:
        """One served version: the one asked for, the one ``label`` names, or the latest."""
        return self._find(self._snapshot, name, version, label)

    @staticmethod
    def _find(snapshot: _Snapshot, name: str, version: Any, label: str | None) -> ServedModel:
        served = snapshot.versions.get(name)
        if served is None:
            raise NotServedError(name)
        if label is not None:
            number = snapshot.labels[name].get(label)
            if number is None:
                raise NotServedError(name, label=label)
        elif version is not None:
            text = str(version)
            number = int(text) if text.isascii() and text.isdigit() else -1
        else:
            number = max(served)
        model = served.get(number)
        if model is None:
            raise NotServedError(name, version=version)
        return model

    def route(self, name: str, version: Any = None, label: str | None = None) -> Route:
        """Where a request goes: a version, a label's version, or (neither given) the split or the latest."""
        snapshot = self._snapshot
        split = self._splits.get(name) if version is None and label is None else None
        if split is None:
            return Route(name, self._find(snapshot, name, version, label), on_answer=self.on_answer)
        labels = snapshot.labels[name]
        chosen = [labels[t] if isinstance(t, str) else t for t in split.targets]
        return Route(name, snapshot.versions[name][max(chosen)], split, snapshot.versions[name], labels,
                     on_answer=self.on_answer)

    # -- reloading -----------------------------------------------------------------------------------
    def reload(self) -> list[ReloadEvent]:
        """Re-resolve every ``models:/NAME@ALIAS`` source and swap in the versions that changed.

        Blocking (it loads and verifies bundles): run it in a thread, as :meth:`watch` does.
        A version that cannot be loaded or verified, or that would break a label or a split,
        is refused: logged as an error, counted, and the old version keeps serving.
        """
        if self._registry is None:
            return []
        with self._lock:
            old = self._snapshot
            following = [i for i, s in enumerate(self.sources) if s.follows_alias]
            try:
                aliases = self._read_aliases()
            except Exception as error:  # noqa: BLE001 - a registry that cannot be read keeps every version serving
                return self._report([ReloadEvent(self.sources[i], "refused", int(old.models[i].version), None,
                                                 f"the registry cannot be read: {error}") for i in following])
            models, events = list(old.models), []
            for i in following:
                source, current = self.sources[i], int(old.models[i].version)
                uri = source.uri
                wanted = aliases.get(uri.name, {}).get(uri.alias)
                if wanted is None:
                    events.append(ReloadEvent(source, "refused", current, None, f"{uri.name} has no alias "
                                              f"{uri.alias!r} any more; version {current} keeps serving"))
                    continue
                if wanted == current:
                    continue
                shared = [m for j, m in enumerate(models) if self.sources[j].uri is not None
                          and self.sources[j].uri.name == uri.name and int(m.version) == wanted]
                try:
                    models[i] = shared[0] if shared else self._load(source, wanted)
                except ModelLoadError as error:
                    events.append(ReloadEvent(source, "refused", current, wanted,
                                              f"{error}; version {current} keeps serving"))
                    continue
                events.append(ReloadEvent(source, "loaded", current, wanted, f"{uri} moved from version {current} "
                                          f"to {wanted}; now serving version {wanted}"))
            try:
                new = self._build(tuple(models), aliases)
            except ModelLoadError as error:
                return self._report([ReloadEvent(e.source, "refused", e.old_version, e.new_version,
                                                 f"{error}; version {e.old_version} keeps serving")
                                     if e.outcome == "loaded" else e for e in events])
            self._snapshot = new  # one assignment: a request holds the snapshot it started with
            return self._report(events)

    def _report(self, events: list[ReloadEvent]) -> list[ReloadEvent]:
        for event in events:
            self.reloads[(event.source.name, event.outcome)] += 1
            if event.outcome == "loaded":
                _logger.info("model '%s': %s", event.source.name, event.message)
            else:
                _logger.error("model '%s': reload refused: %s", event.source.name, event.message)
            if self.on_reload is not None:
                self.on_reload(event)
        return events

    async def watch(self, interval: float) -> None:
        """Call :meth:`reload` in a thread every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(self.reload)
            except Exception:  # a failed poll must not end the polling
                _logger.exception("reloading the served models failed")

    @property
    def polls_registry(self) -> bool:
        """Whether :meth:`reload` has anything to do: a source is a ``models:/`` reference."""
        return any(source.uri is not None for source in self.sources)

    def close(self) -> None:
        """Close the registry opened from a URL, and the tables of precomputed predictions and the online stores
        opened here."""
        if self._owns_registry and self._registry is not None:
            self._registry.close()
            self._registry = None
        while self._tables:
            self._tables.pop().close()

    def __repr__(self) -> str:
        shown = {n: sorted(v) for n, v in self._snapshot.versions.items()}
        return f"ServedModels({shown})"


def load_models(models: Any, **options: Any) -> ServedModels:
    """Load and verify every version (see :class:`ServedModels`)."""
    return ServedModels(models, **options)

