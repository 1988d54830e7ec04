"""The embedded registry backend: an SQLite file and a folder of bundles (Model Versioning, 27).

``sqlite:///registry/registry.db``, the default, keeps the metadata in
``registry/registry.db`` and the bundles in ``bundles/`` beside it
(``registry/bundles/NAME/VERSION/``); ``?files=PATH`` or ``files_root=`` puts them
elsewhere. For processes on one machine: the file uses write-ahead logging (readers do
not wait for the writer), ``synchronous=NORMAL`` (a commit survives a killed process),
foreign keys, and a 60 s busy timeout; every change starts with ``BEGIN IMMEDIATE``,
which takes the file's write lock before reading, so registrations run one at a time.
SQLite's locks need a local disk: across machines use the PostgreSQL backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event

from mlpatterns.backends import BackendURL, parse_url
from mlpatterns.reproducibility.model_versioning._base import current_user
from mlpatterns.reproducibility.model_versioning._sql import SQLModelRegistry
from mlpatterns.reproducibility.model_versioning.model_uri import RegistryError

__all__ = ["DEFAULT_URL", "SQLiteModelRegistry"]

DEFAULT_URL = "sqlite:///registry/registry.db"
TIMEOUT_S = 60.0
_WRITE = "mlpatterns_write"


class SQLiteModelRegistry(SQLModelRegistry):
    """A registry in an SQLite file with its bundles in a local folder (see the module docstring)."""

    def __init__(self, url: str | BackendURL = DEFAULT_URL, *, files_root: str | os.PathLike[str] | None = None,
                 user: str | None = None, timeout: float = TIMEOUT_S) -> None:
        parsed, options = parse_url(url).split_options("files")
        if parsed.scheme != "sqlite" or parsed.path is None or str(parsed.path) == ":memory:":
            raise RegistryError(f"registry: expected 'sqlite:///PATH.db', got {parsed.redacted()!r}")
        if parsed.query:
            raise RegistryError(f"registry: unknown option(s) {sorted(parsed.query)} in {parsed.redacted()!r}; "
                                "expected files=PATH")
        root = files_root or options.get("files")
        self.path = parsed.path.resolve()
        self.files_root = Path(root).resolve() if root else self.path.parent / "bundles"
        self.user = user or current_user()
        self.url = f"sqlite:///{self.path}" + (f"?files={quote(str(self.files_root))}" if root else "")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(f"sqlite:///{self.path}", connect_args={"timeout": timeout})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # the driver leaves BEGIN to us (below)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
                dbapi_connection.execute(f"PRAGMA {pragma}")

        @event.listens_for(engine, "begin")
        def _begin(connection: sa.Connection) -> None:
            immediate = connection.get_execution_options().get(_WRITE)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        self._engine, self._reader = engine, engine
        self._writer = engine.execution_options(**{_WRITE: True})
        self._open_schema()

    def _insert(self, table: sa.Table) -> Any:
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)
