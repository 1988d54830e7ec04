"""The spec's ``data.feature_store``: features joined from a feature repository (Feature Store, 26).

::

    data:
      path: flights.parquet
      feature_store:
        repository: features.yaml      # the definitions file (relative to the working directory, else the spec)
        event_timestamp: scheduled     # the data's column saying when each row happens
        features: [weather, planes:seats]   # 'view' (all its features) or 'view:feature'

``mlpatterns run`` joins the referenced features to the data point in time correct (the
offline store) before the split, so they are columns like any other: declare them in
``features.numeric`` / ``features.categorical``. The bundle records the service
(:class:`~mlpatterns.reproducibility.feature_store.FeatureService`); ``mlpatterns serve``
reads the same features from the online store by key, and ``mlpatterns predict`` joins
them from the repository's sources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlpatterns.spec._checks import SpecError, expect, mapping

__all__ = ["FIELDS", "feature_service", "parse_feature_store", "repository_path", "store_sources"]

FIELDS = ("repository", "event_timestamp", "features")


def parse_feature_store(value: Any) -> dict[str, Any]:
    """The section's fields checked for shape (the repository is read when the data is loaded)."""
    where = "data.feature_store"
    section = mapping(value, where, FIELDS)
    for required in FIELDS:
        expect(required in section, where, f"missing field {required!r}")
    expect(isinstance(section["repository"], str) and section["repository"].strip() != "", f"{where}.repository",
           f"expected the path of a feature repository file (YAML), got {section['repository']!r}")
    expect(isinstance(section["event_timestamp"], str) and section["event_timestamp"] != "",
           f"{where}.event_timestamp", f"expected the data's column of event times, got "
           f"{section['event_timestamp']!r}")
    features = section["features"]
    features = [features] if isinstance(features, str) else features
    expect(isinstance(features, list) and bool(features) and all(isinstance(f, str) for f in features),
           f"{where}.features", f"expected a list of 'view' or 'view:feature' references, got {section['features']!r}")
    section["features"] = list(features)
    return section


def repository_path(spec: Any) -> Path:
    """The repository file the spec names (relative to the working directory, else to the spec)."""
    path = Path(spec.data["feature_store"]["repository"])
    if not path.is_absolute() and spec.source is not None and not path.exists():
        path = spec.source.parent / path
    if not path.is_file():
        raise SpecError(f"data.feature_store.repository: no such file {str(path)!r}")
    return path


def feature_service(spec: Any, path: Path | None = None) -> Any:
    """The spec's :class:`~mlpatterns.reproducibility.feature_store.FeatureService` (``path``: the repository)."""
    from mlpatterns.reproducibility.feature_store.feature_service import FeatureService
    from mlpatterns.reproducibility.feature_store.repository import RepositoryError, load_repository

    section = spec.data["feature_store"]
    try:
        repository = load_repository(path if path is not None else repository_path(spec))
        return FeatureService.from_repository(repository, section["features"], section["event_timestamp"],
                                              where="data.feature_store.features")
    except RepositoryError as error:
        raise SpecError(f"data.feature_store: {error}") from None


def store_sources(spec: Any) -> dict[str, Path]:
    """The files the stored features come from (the repository and each used view's source), for the cache key."""
    if "feature_store" not in spec.data:
        return {}
    path = repository_path(spec)
    service = feature_service(spec, path)
    sources = {"feature_repository": path}
    for view in service.views:
        source = Path(view.source)
        if not source.is_file():
            raise SpecError(f"data.feature_store: the source of feature view {view.name!r} is missing: "
                            f"no such file {str(source)!r}")
        sources[f"feature_source.{view.name}"] = source
    return sources
