"""Where a tuning study lives (Hyperparameter Tuning, 15), chosen by a URL.

=====================================  =========================================================
``open_storage(url)``                  backend
=====================================  =========================================================
``None``, ``""`` or ``"memory"``       :class:`MemoryTuningStorage`: this process only
``sqlite:///path/study.db``            :class:`SQLiteTuningStorage`: the embedded default for
                                       worker processes on one machine
``journal:///path/study.log``          :class:`JournalTuningStorage`: an append-only file, no
                                       database (Optuna's ``JournalFileBackend``)
``postgresql://...`` or                :class:`PostgresTuningStorage`: workers on many machines
``postgresql+psycopg://...``
=====================================  =========================================================

The URL follows the project's backend convention (:mod:`mlpatterns.backends`: three
slashes then a relative path, four for an absolute one; a plain path is refused with
the URL to write). Each backend opens one of Optuna's storages (its ``BaseStorage`` is
the small set of primitives a study needs) with the settings that make several worker
processes safe; Optuna, the driver of every backend, is imported only when a storage
is first used. Where a URL is shown (:meth:`TuningStorage.describe`, ``repr``, a
study's manifest, errors), its password is hidden.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

from mlpatterns.backends import (
    Backend,
    BackendFamily,
    BackendURL,
    open_backend,
    parse_url,
    redact_url,
)

__all__ = ["STORAGE_BACKENDS", "STORAGE_KINDS", "JournalTuningStorage", "MemoryTuningStorage",
           "PostgresTuningStorage", "SQLiteTuningStorage", "TuningStorage", "open_storage"]

STORAGE_KINDS = ("memory", "sqlite", "journal", "postgresql")
SQLITE_TIMEOUT_S = 60

_MODULE = __name__
STORAGE_BACKENDS = BackendFamily(
    name="storage",
    default="memory",
    schemes={
        "memory": Backend(f"{_MODULE}:MemoryTuningStorage", requires=("optuna",), extra="tuning"),
        "none": Backend(f"{_MODULE}:MemoryTuningStorage", requires=("optuna",), extra="tuning"),
        "sqlite": Backend(f"{_MODULE}:SQLiteTuningStorage", requires=("optuna",), extra="tuning"),
        "journal": Backend(f"{_MODULE}:JournalTuningStorage", requires=("optuna",), extra="tuning"),
        "postgresql": Backend(f"{_MODULE}:PostgresTuningStorage", requires=("optuna", "psycopg"), extra="tuning"),
    },
    examples=("sqlite:///PATH.db", "journal:///PATH.log",
              "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"),
)


class TuningStorage(ABC):
    """A study storage named by a URL; see the module docstring for the backends.

    **Thread- and process-safety contract:** one :class:`TuningStorage` belongs to one
    process; a worker process opens its own from :attr:`url`, and the shared state lives
    in the file or the server, never in Python objects. SQLite gets a 60 s lock timeout
    (Optuna's own test settings), write-ahead logging so readers do not block the writer,
    and ``synchronous=NORMAL`` (a commit survives a killed process; only a power loss can
    undo the last commits), which makes a trial about 2.5 times cheaper here. SQLite's
    locking needs a local disk: on a network file system use PostgreSQL. The journal file
    is appended under a lock file next to it; PostgreSQL serialises writers itself.

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
        """The URL with any password hidden (for manifests, logs and errors)."""
        return redact_url(self.url)

    def worker_url(self) -> str:
        """The URL a worker process opens; a backend that cannot be shared refuses."""
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

    def __init__(self, url: str | BackendURL | None = None) -> None:
        super().__init__()

    def _open(self) -> Any:
        import optuna

        return optuna.storages.InMemoryStorage()


class SQLiteTuningStorage(TuningStorage):
    """An SQLite file through Optuna's ``RDBStorage``, set up for several local worker processes."""

    kind = "sqlite"

    def __init__(self, url: str | BackendURL, timeout: float = SQLITE_TIMEOUT_S) -> None:
        super().__init__()
        parsed = parse_url(url)
        self.url, self.path, self.timeout = parsed.text, parsed.path, timeout

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

    def __init__(self, url: str | BackendURL) -> None:
        super().__init__()
        parsed = parse_url(url)
        self.url, self.path = parsed.text, parsed.path

    def _open(self) -> Any:
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(self.path)))


class PostgresTuningStorage(TuningStorage):
    """A PostgreSQL database through Optuna's ``RDBStorage`` and psycopg 3: workers on many machines."""

    kind = "postgresql"

    def __init__(self, url: str | BackendURL, engine_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        parsed = parse_url(url)
        if parsed.scheme != "postgresql" or parsed.driver not in (None, "psycopg"):
            raise ValueError(f"storage: {parsed.redacted()!r} names the driver {parsed.driver!r}; PostgreSQL runs "
                             f"on psycopg 3 (expected {STORAGE_BACKENDS.expected()})")
        # SQLAlchemy's default driver is psycopg2; we ship psycopg 3
        self.url = parsed.text if parsed.driver else "postgresql+psycopg://" + parsed.text.split("://", 1)[1]
        self.engine_kwargs = {"pool_pre_ping": True, **(engine_kwargs or {})}

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


def open_storage(config: str | os.PathLike[str] | TuningStorage | None = None, **options: Any) -> TuningStorage:
    """The storage a URL names (see the module docstring); an open storage is returned as it is.

    ``options`` go to the backend (SQLite ``timeout``, PostgreSQL ``engine_kwargs``). A
    wrong URL is a ``ValueError`` that names the accepted forms, password hidden; a missing
    driver an ``ImportError`` that names the extra to install.

    Examples
    --------
    >>> open_storage(None)
    MemoryTuningStorage('memory')
    >>> open_storage("postgresql://tuner:secret@db.example.com/studies").describe()
    'postgresql+psycopg://tuner:***@db.example.com/studies'
    """
    if isinstance(config, TuningStorage):
        return config
    return open_backend(STORAGE_BACKENDS, config, **options)
