"""The shared registry backend: PostgreSQL for the metadata, a shared folder for the bundles (Model Versioning, 27).

``postgresql+psycopg://USER:PASSWORD@HOST/DATABASE?files=/shared/models`` (``postgresql://``
is read as psycopg 3, which ``mlpatterns[registry]`` installs). The bundles live in a
folder that every machine using the registry mounts at the same path, given by the
``files`` query parameter or ``files_root=``; the registry refuses to start without one,
and refuses a folder that holds another registry's bundles. Other query parameters go
to psycopg (``?options=-csearch_path%3Dmodels`` picks a schema).

Changes run at READ COMMITTED, each locking its model's row first (``SELECT ... FOR
UPDATE``), so the next version number is read after the previous registration
committed; reads run at REPEATABLE READ, one snapshot per call. Creating the tables
takes a transaction-level advisory lock, so processes starting together do not race.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from mlpatterns.backends import BackendURL, parse_url
from mlpatterns.reproducibility.model_versioning._base import current_user
from mlpatterns.reproducibility.model_versioning._sql import SQLModelRegistry
from mlpatterns.reproducibility.model_versioning.model_uri import RegistryError

__all__ = ["PostgresModelRegistry"]

_SCHEMA_LOCK = 0x6D6C7072_65673237  # "mlpreg27": the advisory lock taken while creating the tables


class PostgresModelRegistry(SQLModelRegistry):
    """A registry in a PostgreSQL database with its bundles in a shared folder (see the module docstring)."""

    def __init__(self, url: str | BackendURL, *, files_root: str | os.PathLike[str] | None = None,
                 user: str | None = None, engine_kwargs: dict[str, Any] | None = None) -> None:
        parsed, options = parse_url(url).split_options("files")
        if parsed.scheme != "postgresql":
            raise RegistryError(f"registry: expected 'postgresql+psycopg://...', got {parsed.redacted()!r}")
        text = parsed.text if parsed.driver else "postgresql+psycopg://" + parsed.text.split("://", 1)[1]
        root = files_root or options.get("files")
        if not root:
            raise RegistryError(f"registry: {parsed.redacted()!r} needs a folder for the bundles that every "
                                "machine mounts: add ?files=/shared/folder to the URL or pass files_root=")
        self.files_root = Path(root).resolve()
        self.user = user or current_user()
        self.url = f"{text}{'&' if '?' in text else '?'}files={quote(str(self.files_root))}"
        self._engine = sa.create_engine(text, **{"pool_pre_ping": True, **(engine_kwargs or {})})
        self._writer = self._engine
        self._reader = self._engine.execution_options(isolation_level="REPEATABLE READ")
        self._open_schema()

    def _schema_lock(self, connection: sa.Connection) -> None:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})

    def _insert(self, table: sa.Table) -> Any:
        from sqlalchemy.dialects.postgresql import insert

        return insert(table)
