"""Model Versioning (27): a registry of named models with immutable versions, aliases and an audit trail.

Updating a model in place breaks the clients that relied on its behaviour. The registry
keeps every version of a model as its own verified bundle, addressable as
``models:/NAME/VERSION`` (fixed) or ``models:/NAME@ALIAS`` (``champion``, moved
deliberately), records lineage, metrics and who changed what, and refuses a new version
whose interface (inputs, outputs, classes, keys) differs: that is a new model.

>>> from mlpatterns.reproducibility.model_versioning import ModelURI
>>> ModelURI.parse("models:/flights/2")
ModelURI(name='flights', version=2, alias=None)

=============================================================  ===========================
``open_registry(url)``                                          backend
=============================================================  ===========================
``None``: ``sqlite:///registry/registry.db``                    :class:`SQLiteModelRegistry`,
``sqlite:///PATH.db[?files=FOLDER]``                            bundles in ``PATH/bundles``
``postgresql+psycopg://USER:PW@HOST/DB?files=/shared/folder``   :class:`PostgresModelRegistry`
=============================================================  ===========================
"""

from __future__ import annotations

import os
from typing import Any

from mlpatterns.backends import Backend, BackendFamily, open_backend
from mlpatterns.reproducibility.model_versioning._base import (
    TEST_PAUSE_ENV,
    AuditEntry,
    InterfaceChangeError,
    ModelNotFoundError,
    ModelRegistry,
    ModelVersion,
    RegisteredModel,
)
from mlpatterns.reproducibility.model_versioning.comparison import (
    InterfaceDiff,
    VersionComparison,
    compare_versions,
    interface_diff,
)
from mlpatterns.reproducibility.model_versioning.model_uri import ModelURI, RegistryError

__all__ = [
    "REGISTRY_BACKENDS", "TEST_PAUSE_ENV", "AuditEntry", "InterfaceChangeError", "InterfaceDiff", "ModelNotFoundError",
    "ModelRegistry", "ModelURI", "ModelVersion", "RegisteredModel", "RegistryError", "VersionComparison",
    "compare_versions", "interface_diff", "open_registry",
]

_PACKAGE = "mlpatterns.reproducibility.model_versioning"
REGISTRY_BACKENDS = BackendFamily(
    name="registry",
    default="sqlite:///registry/registry.db",
    schemes={
        "sqlite": Backend(f"{_PACKAGE}.sqlite:SQLiteModelRegistry"),
        "postgresql": Backend(f"{_PACKAGE}.postgresql:PostgresModelRegistry", requires=("psycopg",),
                              extra="registry"),
    },
    examples=("sqlite:///PATH.db", "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE?files=/shared/folder"),
)


def open_registry(url: str | os.PathLike[str] | ModelRegistry | None = None, **options: Any) -> ModelRegistry:
    """The registry ``url`` names (see the table above); ``options`` go to the backend
    (``files_root``, ``user``; SQLite ``timeout``; PostgreSQL ``engine_kwargs``).

    An open registry is returned as it is.
    """
    if isinstance(url, ModelRegistry):
        return url
    return open_backend(REGISTRY_BACKENDS, url, **options)
