"""Where a tuning study lives (Hyperparameter Tuning, 15), chosen by a config string.

=====================================  =========================================================
config                                 backend
=====================================  =========================================================
``None``, ``""`` or ``"memory"``       :class:`MemoryTuningStorage`: this process only
``sqlite:///path/study.db``            :class:`SQLiteTuningStorage`: the embedded default for
                                       worker processes on one machine
``journal:///path/study.log``          :class:`JournalTuningStorage`: an append-only file, no
                                       database (Optuna's ``JournalFileBackend``)
``postgresql://...`` or                :class:`PostgresTuningStorage`: workers on many machines
``postgresql+psycopg://...``
=====================================  =========================================================

Each backend opens one of Optuna's storages (its ``BaseStorage`` is the small set of
primitives that a study needs) with the settings that make several worker processes
safe. **Thread-safety contract:** one :class:`TuningStorage` belongs to one process;
a worker process opens its own from :attr:`TuningStorage.url`, and the shared state
lives in the file or the server, never in Python objects. SQLite gets a 60 s lock
timeout (Optuna's own test settings), write-ahead logging so readers do not block the
writer, and ``synchronous=NORMAL`` (a commit survives a killed process; only a power
loss can undo the last commits), which makes a trial about 2.5 times cheaper here.
SQLite's locking needs a local disk: on a network file system use PostgreSQL.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

__all__ = ["STORAGE_KINDS", "JournalTuningStorage", "MemoryTuningStorage", "PostgresTuningStorage",
           "SQLiteTuningStorage", "TuningStorage", "open_storage"]

STORAGE_KINDS = ("memory", "sqlite", "journal", "postgresql")
SQLITE_TIMEOUT_S = 60


class TuningStorage(ABC):
    """A study storage named by a config string; see the module docstring for the backends.

    Subclasses implement :meth:`_open` (the Optuna storage for this process) and set
    :attr:`kind`, :attr:`url` and :attr:`shared` (whether worker processes can open the
    same studies from :attr:`url`).
    """

    kind: str
    url: str
    shared: bool = True

    def __init__(self) -> None:
        self._storage: Any = None

    @abstractmethod
    def _open(self) -> Any:
        """A new ``optuna.storages.BaseStorage`` for this process."""

    def optuna_storage(self) -> Any:
        """The Optuna storage of this process, opened once."""
        if self._storage is None:
            self._storage = self._open()
        return self._storage

    def describe(self) -> str:
        """The config string with any password hidden (for manifests and logs)."""
        return self.url

    def worker_url(self) -> str:
        """The config string a worker process opens; a backend that cannot be shared refuses."""
        if not self.shared:
            raise NotImplementedError(
                f"{type(self).__name__} keeps trials inside one process, so worker processes cannot share "
                "its studies; use storage 'sqlite:///tuning.db', 'journal:///tuning.log' or 'postgresql://...'")
        return self.url

    def study_names(self) -> list[str]:
        return [s.study_name for s in self.optuna_storage().get_all_studies()]

    def delete_study(self, study_name: str) -> None:
        import optuna

        optuna.delete_study(study_name=study_name, storage=self.optuna_storage())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"


class MemoryTuningStorage(TuningStorage):
    """Trials in this process's memory: the default for one process, gone when it exits."""

    kind, url, shared = "memory", "memory", False

    def _open(self) -> Any:
        import optuna

        return optuna.storages.InMemoryStorage()


class SQLiteTuningStorage(TuningStorage):
    """An SQLite file through Optuna's ``RDBStorage``, set up for several local worker processes."""

    kind = "sqlite"

    def __init__(self, url: str, timeout: float = SQLITE_TIMEOUT_S) -> None:
        super().__init__()
        self.url, self.timeout = url, timeout
        self.path = Path(url.removeprefix("sqlite:///"))

    def _open(self) -> Any:
        import sqlite3

        import optuna
        from sqlalchemy import event

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(self.path, timeout=self.timeout) as connection:  # a file setting: set once
            connection.execute("PRAGMA journal_mode=WAL")
        connection.close()
        storage = optuna.storages.RDBStorage(
            self.url, engine_kwargs={"connect_args": {"timeout": self.timeout}})

        @event.listens_for(storage.engine, "connect")
        def _per_connection(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        storage.engine.dispose()  # the connections opened so far lack the setting
        return storage


class JournalTuningStorage(TuningStorage):
    """An append-only log file (Optuna's ``JournalStorage``): no database, safe for local workers."""

    kind = "journal"

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.path = Path(url.removeprefix("journal:///"))

    def _open(self) -> Any:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(self.path)))


class PostgresTuningStorage(TuningStorage):
    """A PostgreSQL database through Optuna's ``RDBStorage`` and psycopg 3: workers on many machines."""

    kind = "postgresql"

    def __init__(self, url: str, engine_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if url.startswith("postgresql://"):  # SQLAlchemy's default driver is psycopg2; we ship psycopg 3
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self.url = url
        self.engine_kwargs = {"pool_pre_ping": True, **(engine_kwargs or {})}

    def describe(self) -> str:
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    def _open(self) -> Any:
        import optuna
        from sqlalchemy.exc import IntegrityError, ProgrammingError

        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(self.url, engine_kwargs=dict(self.engine_kwargs))
            except (IntegrityError, ProgrammingError):  # two processes creating the tables at once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def open_storage(config: str | os.PathLike[str] | TuningStorage | None) -> TuningStorage:
    """The storage a config string names (see the module docstring); errors say what is expected.

    Examples
    --------
    >>> open_storage(None)
    MemoryTuningStorage('memory')
    >>> open_storage("postgresql://tuner:secret@db.example.com/studies").describe()
    'postgresql+psycopg://tuner:***@db.example.com/studies'
    """
    if isinstance(config, TuningStorage):
        return config
    text = "" if config is None else os.fspath(config)
    if text in ("", "memory", "none"):
        return MemoryTuningStorage()
    if text.startswith("sqlite:///") and len(text) > len("sqlite:///"):
        return SQLiteTuningStorage(text)
    if text.startswith("journal:///") and len(text) > len("journal:///"):
        return JournalTuningStorage(text)
    if text.startswith(("postgresql://", "postgresql+psycopg://")):
        return PostgresTuningStorage(text)
    raise ValueError(f"storage: expected none (in memory), 'sqlite:///PATH.db', 'journal:///PATH.log' or "
                     f"'postgresql+psycopg://USER:PASSWORD@HOST/DATABASE', got {text!r}")
