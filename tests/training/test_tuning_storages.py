"""Every tuning storage backend passes the same conformance suite (Hyperparameter Tuning, 15).

PostgreSQL runs where ``MLPATTERNS_TEST_POSTGRES_URL`` names a database (``.ci/run``
always sets it); every PostgreSQL-backed test of the tuning code lives in this file,
so one pytest worker creates Optuna's tables. Optuna's own storage test case
(``optuna.testing.pytest_storages.StorageTestCase``) also runs against the storages
as we open them, marked slow (about 100 s).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import uuid
from pathlib import Path

import pytest

from mlpatterns.testing.tuning_storage import TuningStorageConformance
from mlpatterns.training.hyperparameter_tuning.storage import (
    STORAGE_BACKENDS,
    STORAGE_KINDS,
    JournalTuningStorage,
    MemoryTuningStorage,
    PostgresTuningStorage,
    SQLiteTuningStorage,
    TuningStorage,
    open_storage,
)

POSTGRES_URL = os.environ.get("MLPATTERNS_TEST_POSTGRES_URL")
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="MLPATTERNS_TEST_POSTGRES_URL is not set")
BACKENDS = ["memory", "sqlite", "journal", pytest.param("postgresql", marks=needs_postgres)]


def config_for(kind: str, tmp_path) -> str | None:
    return {"memory": None, "sqlite": f"sqlite:///{tmp_path}/study.db", "journal": f"journal:///{tmp_path}/study.log",
            "postgresql": POSTGRES_URL}[kind]


@pytest.fixture(params=BACKENDS)
def storage_config(request, tmp_path):
    return config_for(request.param, tmp_path)


class TestTuningStorages(TuningStorageConformance):
    pass


def test_urls_choose_the_backend(tmp_path):
    assert isinstance(open_storage(None), MemoryTuningStorage)
    assert isinstance(open_storage(""), MemoryTuningStorage)
    assert isinstance(open_storage("memory"), MemoryTuningStorage)
    assert isinstance(open_storage(f"sqlite:///{tmp_path}/a.db"), SQLiteTuningStorage)
    assert open_storage(f"sqlite:///{tmp_path}/a.db").path == tmp_path / "a.db"  # four slashes: absolute
    assert open_storage("sqlite:///runs/a.db").path == Path("runs/a.db")
    assert isinstance(open_storage(f"journal:///{tmp_path}/a.log"), JournalTuningStorage)
    postgres = open_storage("postgresql://u:pw@localhost/db")
    assert isinstance(postgres, PostgresTuningStorage)
    assert postgres.url.startswith("postgresql+psycopg://")  # psycopg 3, not SQLAlchemy's default psycopg2
    assert open_storage("postgresql+psycopg://u:pw@localhost/db").url == "postgresql+psycopg://u:pw@localhost/db"
    stored = open_storage(f"sqlite:///{tmp_path}/a.db")
    assert open_storage(stored) is stored


def test_the_family_follows_the_backend_convention():
    assert STORAGE_BACKENDS.name == "storage" and STORAGE_BACKENDS.default == "memory"
    assert set(STORAGE_KINDS) <= set(STORAGE_BACKENDS.schemes)
    for kind in STORAGE_KINDS:
        module, _, name = STORAGE_BACKENDS.schemes[kind].target.partition(":")
        backend = getattr(importlib.import_module(module), name)
        assert issubclass(backend, TuningStorage) and backend.kind == kind


def test_options_go_to_the_backend(tmp_path):
    assert open_storage(f"sqlite:///{tmp_path}/a.db", timeout=5).timeout == 5
    engine_kwargs = {"pool_size": 2}
    postgres = open_storage("postgresql://u:pw@localhost/db", engine_kwargs=engine_kwargs)
    assert postgres.engine_kwargs == {"pool_pre_ping": True, "pool_size": 2}


@pytest.mark.parametrize("url", ["mysql://u:secret@localhost/db", "sqlite:///", "sqlite://host/a.db",
                                 "postgresql+psycopg2://u:secret@localhost/db"])
def test_a_wrong_url_names_the_accepted_forms_and_hides_the_password(url):
    with pytest.raises(ValueError) as error:
        open_storage(url)
    message = str(error.value)
    assert message.startswith("storage: ") and "secret" not in message
    assert "sqlite:///" in message and ("postgresql" in message or "three slashes" in message)


def test_an_unknown_scheme_lists_every_backend():
    with pytest.raises(ValueError, match="storage: unknown scheme 'mysql'") as error:
        open_storage("mysql://u:secret@localhost/db")
    for form in ("none (the embedded default 'memory')", "'sqlite:///PATH.db'", "'journal:///PATH.log'",
                 "'postgresql+psycopg://USER:PASSWORD@HOST/DATABASE'", "'mysql://u:***@localhost/db'"):
        assert form in str(error.value)


@pytest.mark.parametrize("path", ["study.db", "/srv/tuning/study.db", Path("study.db")])
def test_a_plain_path_is_refused_with_the_url_to_write(path):
    with pytest.raises(ValueError, match=r"storage: .*'sqlite:///(/srv/tuning/)?study\.db'"):
        open_storage(path)


def test_a_missing_driver_names_the_extra(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else find_spec(name, *a))
    with pytest.raises(ImportError, match=r"storage: the postgresql backend needs psycopg "
                                          r"\(pip install 'mlpatterns\[tuning\]'\)"):
        open_storage("postgresql://u:pw@localhost/db")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://tuner:secret@db.example.com/studies", "postgresql+psycopg://tuner:***@db.example.com/studies"),
    ("postgresql+psycopg://u:p%40ss@db:5432/s?sslmode=require", "postgresql+psycopg://u:***@db:5432/s?sslmode=require"),
    ("postgresql://u@db/s?password=secret", "postgresql+psycopg://u@db/s?password=***"),
])
def test_a_password_is_never_shown(url, shown):
    storage = open_storage(url)
    assert storage.describe() == shown
    assert repr(storage) == f"PostgresTuningStorage({shown!r})"


def test_sqlite_is_set_up_for_several_processes(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/sub/dir/study.db")  # the folder is created
    engine = storage.optuna_storage().engine
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000


# -- Optuna's own storage tests against our storages (slow) -------------------------------------------
@pytest.fixture(params=["sqlite", "journal", pytest.param("postgresql", marks=needs_postgres)])
def storage(request, tmp_path):
    if request.param != "postgresql":
        yield open_storage(config_for(request.param, tmp_path)).optuna_storage()
        return
    import sqlalchemy

    schema = f"optuna_{uuid.uuid4().hex[:12]}"  # Optuna's tests expect an empty storage each
    admin = sqlalchemy.create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.exec_driver_sql(f"CREATE SCHEMA {schema}")
    backend = PostgresTuningStorage(POSTGRES_URL, {"connect_args": {"options": f"-csearch_path={schema}"}})
    try:
        yield backend.optuna_storage()
    finally:
        backend.optuna_storage().engine.dispose()
        with admin.begin() as connection:
            connection.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


try:
    from optuna.testing.pytest_storages import StorageTestCase
except ImportError:  # pragma: no cover - Optuna moved its test helpers
    StorageTestCase = None

if StorageTestCase is not None:
    @pytest.mark.slow
    class TestOptunaStorageCase(StorageTestCase):
        pass
