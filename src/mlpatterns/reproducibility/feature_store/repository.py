"""Feature Store (pattern 26): the feature repository, one versioned definitions file that several specs share.

The problem it solves: when each training spec declares its own joins, two models that
use "the temperature at the origin" compute it twice and drift apart. A repository file
declares the entities and feature views once; specs (``data.feature_store.repository``)
and the online store read the same definitions, and a bundle records the file's digest.

The file, YAML (``version`` is the format's version, 1)::

    version: 1
    online_store: sqlite:///online_store.db   # optional; a relative SQLite path is relative to this file
    entities:
      airport: {join_keys: [origin]}
    feature_views:
      weather:
        entities: [airport]
        source: weather.parquet              # .parquet or .csv, relative to this file
        timestamp_field: time_hour
        created_timestamp_field: loaded_at   # optional
        ttl: 3h                              # s, m, h, d or w; a number of seconds; or null (no limit)
        features: [temp, humid, wind_speed]

Every mistake is a :class:`RepositoryError` naming the file and the field
(``feature_views.weather.ttl``) and what was expected. :meth:`FeatureRepository.select`
turns references (``weather`` for every feature of the view, ``weather:temp`` for one)
into :class:`~.definitions.FeatureView` objects limited to those features.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "features.yaml").write_text('''
... version: 1
... entities: {airport: {join_keys: [origin]}}
... feature_views:
...   weather: {entities: [airport], source: weather.csv, timestamp_field: time_hour, ttl: 3h,
...             features: [temp, humid]}
... ''')
>>> repository = load_repository(folder / "features.yaml")
>>> [(v.name, v.features, v.ttl) for v in repository.select(["weather:temp"])]
[('weather', ('temp',), datetime.timedelta(seconds=10800))]
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from .definitions import Entity, FeatureView

__all__ = ["FORMAT_VERSION", "FeatureRepository", "RepositoryError", "load_repository", "parse_duration",
           "parse_repository"]

FORMAT_VERSION = 1
_TOP = ("version", "online_store", "entities", "feature_views", "description")
_VIEW = ("entities", "source", "timestamp_field", "created_timestamp_field", "ttl", "features", "description")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


class RepositoryError(ValueError):
    """A feature repository file is wrong; the message names the file, the field and what was expected."""


def parse_duration(value: Any, where: str) -> timedelta | None:
    """A TTL: ``None`` (no limit), a positive number of seconds, or text such as ``90m``, ``3h``, ``7d``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise RepositoryError(f"{where}: expected a duration such as '3h', '90m', '7d' or a number of seconds "
                              f"(or null for no limit), got {value!r}")
    if not seconds > 0:
        raise RepositoryError(f"{where}: expected a positive duration, got {value!r}")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class FeatureRepository:
    """The entities and feature views of one definitions file (see the module docstring)."""

    entities: Mapping[str, Entity]
    views: Mapping[str, FeatureView]
    online_store: str | None = None
    path: Path | None = None
    sha256: str | None = field(default=None, compare=False)

    def view(self, name: str) -> FeatureView:
        """The view called ``name``; a :class:`RepositoryError` listing the views otherwise."""
        try:
            return self.views[name]
        except KeyError:
            raise RepositoryError(f"{self._where()}: no feature view {name!r}; it defines "
                                  f"{sorted(self.views)}") from None

    def select(self, references: Sequence[str], where: str = "features") -> list[FeatureView]:
        """Views limited to the referenced features, in first-reference order: ``view`` takes all of a
        view's features, ``view:feature`` one of them. A feature named twice (by two views, or twice in
        one) is refused, since the joined table would have two columns of that name."""
        if isinstance(references, str) or not isinstance(references, Sequence) or not references:
            raise RepositoryError(f"{where}: expected a non-empty list of 'view' or 'view:feature' references, "
                                  f"got {references!r}")
        chosen: dict[str, list[str]] = {}
        for i, reference in enumerate(references):
            if not isinstance(reference, str) or reference.count(":") > 1 or not reference.strip(":"):
                raise RepositoryError(f"{where}[{i}]: expected 'view' or 'view:feature', got {reference!r}")
            name, _, feature = reference.partition(":")
            view = self.view(name)
            if feature and feature not in view.features:
                raise RepositoryError(f"{where}[{i}]: feature view {name!r} has no feature {feature!r}; "
                                      f"it has {list(view.features)}")
            names = chosen.setdefault(name, [])
            for one in [feature] if feature else view.features:
                if one in names:
                    raise RepositoryError(f"{where}[{i}]: {name}:{one} is referenced twice")
                names.append(one)
        owners: dict[str, str] = {}
        for name, names in chosen.items():
            for one in names:
                if one in owners:
                    raise RepositoryError(f"{where}: the feature {one!r} is in the views {owners[one]!r} and "
                                          f"{name!r}; reference it from one of them")
                owners[one] = name
        return [self.views[name].select(*names) for name, names in chosen.items()]

    def _where(self) -> str:
        return str(self.path) if self.path is not None else "feature repository"


def load_repository(path: str | os.PathLike[str]) -> FeatureRepository:
    """Read and check a definitions file (see the module docstring); sources are resolved against its folder."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise RepositoryError(f"feature repository: no such file {str(path)!r}")
    content = path.read_bytes()
    try:
        document = yaml.safe_load(content)
    except yaml.YAMLError as error:
        raise RepositoryError(f"{path}: not valid YAML ({error})") from None
    repository = parse_repository(document, base=path.parent.resolve(), where=str(path))
    return FeatureRepository(repository.entities, repository.views, repository.online_store, path.resolve(),
                             hashlib.sha256(content).hexdigest())


def parse_repository(document: Any, *, base: Path, where: str = "feature repository") -> FeatureRepository:
    """A repository from its parsed YAML; relative sources and SQLite paths are taken from ``base``."""
    top = _mapping(document, where, "the file", _TOP)
    version = top.get("version")
    if version != FORMAT_VERSION:
        raise RepositoryError(f"{where}: version: expected {FORMAT_VERSION} (the definitions format this "
                              f"mlpatterns reads), got {version!r}")
    entities: dict[str, Entity] = {}
    for name, body in _mapping(top.get("entities"), where, "entities").items():
        body = _mapping(body, where, f"entities.{name}", ("join_keys", "description"))
        if "join_keys" not in body:
            raise RepositoryError(f"{where}: entities.{name}: missing field 'join_keys'")
        entities[name] = _build(where, f"entities.{name}", Entity, name, body["join_keys"])
    views: dict[str, FeatureView] = {}
    for name, body in _mapping(top.get("feature_views"), where, "feature_views").items():
        at = f"feature_views.{name}"
        body = _mapping(body, where, at, _VIEW)
        for required in ("entities", "source", "timestamp_field", "features"):
            if required not in body:
                raise RepositoryError(f"{where}: {at}: missing field {required!r}")
        names = body["entities"]
        if isinstance(names, str) or not isinstance(names, list):
            raise RepositoryError(f"{where}: {at}.entities: expected a list of entity names, got {names!r}")
        unknown = [e for e in names if e not in entities]
        if unknown:
            raise RepositoryError(f"{where}: {at}.entities: no entity {unknown[0]!r}; the file defines "
                                  f"{sorted(entities)}")
        source = body["source"]
        if not isinstance(source, str) or not source.strip():
            raise RepositoryError(f"{where}: {at}.source: expected the path of a .parquet or .csv file, got {source!r}")
        source_path = Path(source) if Path(source).is_absolute() else base / source
        ttl = parse_duration(body.get("ttl"), f"{where}: {at}.ttl")
        views[name] = _build(where, at, FeatureView, name, [entities[e] for e in names], source_path,
                             body["timestamp_field"], body["features"], ttl, body.get("created_timestamp_field"))
    return FeatureRepository(entities, views, _online_url(top.get("online_store"), base, where))


def _online_url(url: Any, base: Path, where: str) -> str | None:
    if url is None:
        return None
    if not isinstance(url, str) or "://" not in url:
        raise RepositoryError(f"{where}: online_store: expected a URL such as 'sqlite:///online_store.db' or "
                              f"'redis://127.0.0.1:6379/0', got {url!r}")
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url[len("sqlite:///"):]
        if relative and relative != ":memory:" and not Path(relative).is_absolute():
            return f"sqlite:///{base / relative}"
    return url


def _mapping(value: Any, where: str, at: str, allowed: Sequence[str] | None = None) -> dict[str, Any]:
    if value is None and at in ("entities", "feature_views"):
        raise RepositoryError(f"{where}: missing field {at!r}")
    if not isinstance(value, dict):
        raise RepositoryError(f"{where}: {at}: expected a mapping, got {type(value).__name__} {value!r}")
    if allowed is not None:
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise RepositoryError(f"{where}: {at}: unknown field {unknown[0]!r}; expected one of {list(allowed)}")
    for key in value:
        if not isinstance(key, str):
            raise RepositoryError(f"{where}: {at}: expected text keys, got {key!r}")
    return value


def _build(where: str, at: str, kind: Any, *args: Any) -> Any:
    """An Entity or FeatureView, its own checks' messages prefixed with the file and field."""
    try:
        return kind(*args)
    except (TypeError, ValueError) as error:
        raise RepositoryError(f"{where}: {at}: {error}") from None
