"""What an HTTP Stateless Serving Function (16) is asked to serve: one source per version.

Problem: a server of several versions takes them in several forms (a bundle folder, a
loaded function, a fixed registry version, an alias that moves), and a mistake in one of
them should be named before anything loads.

Solution: :class:`ModelSource`, a small validated value (``flights/7=runs/a/bundles/gbm``,
``flights=models:/flights@champion``, ``flights=scores.sqlite``), and :func:`model_sources`,
which reads the forms ``create_app`` accepts into a list of them. A path ending in
``.sqlite`` or ``.db`` that is not a folder is a table of precomputed predictions (Batch
Serving, 17), answered by key (:mod:`~mlpatterns.serving.http.precomputed_model`).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from mlpatterns.reproducibility.model_versioning.model_uri import PREFIX, ModelURI, RegistryError

if TYPE_CHECKING:  # not imported here: a server loads pandas only when a request needs it
    from mlpatterns.serving.http.precomputed_model import PrecomputedServing
    from mlpatterns.serving.stateless_serving_function import ServingFunction

__all__ = ["TABLE_SUFFIXES", "ModelLoadError", "ModelSource", "Source", "model_sources", "positive_version"]

Source: TypeAlias = "str | os.PathLike[str] | ServingFunction | PrecomputedServing | ModelURI"
TABLE_SUFFIXES = (".sqlite", ".db")  # a file of precomputed predictions, as `mlpatterns predict` writes it


class ModelLoadError(RuntimeError):
    """A bundle or a configuration that cannot be served: the server does not start."""


def positive_version(value: Any, where: str) -> int:
    """``value`` (a whole number, or its digits) as a version, or an error that says ``where``."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and not value.startswith("0"):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:  # numpy's integers too
        raise ModelLoadError(f"{where}: a version is a positive whole number (1, 2, 3...), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class ModelSource:
    """One version to serve: under ``name``, from a bundle folder, a table of precomputed
    predictions (``.sqlite``, ``.db``), a loaded :class:`ServingFunction` or
    :class:`PrecomputedServing`, or a ``models:/``
    reference; ``version`` for all but the last (default 1)."""

    name: str
    source: Source
    version: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "/" in self.name or ":" in self.name:
            raise ModelLoadError(f"model name {self.name!r}: use letters, digits, '-', '_' or '.' (no '/' or ':')")
        if self.version is not None:
            object.__setattr__(self, "version", positive_version(self.version, f"model '{self.name}'"))
        uri = self.uri
        if uri is not None and self.version is not None and uri.version != self.version:
            raise ModelLoadError(f"model '{self.name}': {uri} has its version from the registry; "
                                 f"give it without a version (not {self.version})")

    @property
    def uri(self) -> ModelURI | None:
        """The registry reference, or None for a folder or a loaded function."""
        if isinstance(self.source, ModelURI):
            return self.source
        if isinstance(self.source, str) and self.source.startswith(PREFIX):
            try:
                return ModelURI.parse(self.source)
            except RegistryError as error:
                raise ModelLoadError(f"model '{self.name}': {error}") from None
        return None

    @property
    def precomputed(self) -> bool:
        """Whether the source is a table of precomputed predictions: a path ending in ``.sqlite`` or
        ``.db`` that is not a folder (Batch Serving, 17)."""
        if not isinstance(self.source, (str, os.PathLike)) or self.uri is not None:
            return False
        path = os.fspath(self.source)
        return path.lower().endswith(TABLE_SUFFIXES) and not os.path.isdir(path)

    @property
    def follows_alias(self) -> bool:
        uri = self.uri
        return uri is not None and uri.alias is not None

    def __str__(self) -> str:
        loaded = not isinstance(self.source, (str, os.PathLike, ModelURI))  # a ServingFunction or a table
        source = f"<{type(self.source).__name__}>" if loaded else str(self.source)
        return f"{self.name}{'' if self.version is None else f'/{self.version}'}={source}"


def model_sources(models: Any) -> list[ModelSource]:
    """The sources ``create_app`` accepts, as a list of :class:`ModelSource`.

    ``{"sales": "runs/a/bundles/linear"}`` (version 1), ``{"sales": "scores.sqlite"}`` (a
    table of precomputed predictions, version 1), ``{"flights": {3: path3, 4: path4}}``
    (explicit versions), ``{"flights": ["models:/flights/3", "models:/flights@champion"]}``
    (registry versions), or a sequence of :class:`ModelSource`.
    """
    if isinstance(models, ModelSource):
        return [models]
    if not isinstance(models, Mapping):
        items = list(models)
        if not all(isinstance(m, ModelSource) for m in items):
            raise ModelLoadError("models: expected a mapping of names to bundles or a list of ModelSource")
        return items
    sources = []
    for name, value in models.items():
        if isinstance(value, ModelSource):
            sources.append(value)
        elif isinstance(value, Mapping):
            sources += [ModelSource(name, source, positive_version(v, f"model '{name}'")) for v, source in value.items()]
        elif isinstance(value, (list, tuple)):
            sources += [s if isinstance(s, ModelSource) else ModelSource(name, s) for s in value]
        else:
            sources.append(ModelSource(name, value))
    return sources
