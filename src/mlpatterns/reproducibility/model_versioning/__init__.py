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
from typing import TYPE_CHECKING, Any

from mlpatterns._lazy import lazy_exports
from mlpatterns.backends import Backend, BackendFamily, open_backend
from mlpatterns.reproducibility.model_versioning.model_uri import ModelURI, RegistryError

if TYPE_CHECKING:
    from mlpatterns.reproducibility.model_versioning._base import ModelRegistry

# The registry itself and its comparisons load on first use: a server of bundle folders parses
# models:/ references (model_uri) but opens no registry, and these modules cost it some 25 ms.
_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "TEST_PAUSE_ENV": "_base",
    "AuditEntry": "_base",
    "InterfaceChangeError": "_base",
    "ModelNotFoundError": "_base",
    "ModelRegistry": "_base",
    "ModelVersion": "_base",
    "RegisteredModel": "_base",
    "InterfaceDiff": "comparison",
    "VersionComparison": "comparison",
    "compare_versions": "comparison",
    "interface_diff": "comparison",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)

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
    from mlpatterns.reproducibility.model_versioning._base import ModelRegistry

    if isinstance(url, ModelRegistry):
        return url
    return open_backend(REGISTRY_BACKENDS, url, **options)
