"""Every tuning storage backend passes the same conformance suite (Hyperparameter Tuning, 15).

PostgreSQL runs where ``MLPATTERNS_TEST_POSTGRES_URL`` names a database (``.ci/run``
always sets it); every PostgreSQL-backed test of the tuning code lives in this file,
so one pytest worker creates Optuna's tables. Optuna's own storage test case
(``optuna.testing.pytest_storages.StorageTestCase``) also runs against the storages
as we open them, marked slow (about 100 s).
"""

from __future__ import annotations

import os
import uuid

import pytest

from mlpatterns.testing.tuning_storage import TuningStorageConformance
from mlpatterns.training.hyperparameter_tuning.storage import (
    JournalTuningStorage,
    MemoryTuningStorage,
    PostgresTuningStorage,
    SQLiteTuningStorage,
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


def test_config_strings_choose_the_backend(tmp_path):
    assert isinstance(open_storage(None), MemoryTuningStorage)
    assert isinstance(open_storage("memory"), MemoryTuningStorage)
    assert isinstance(open_storage(f"sqlite:///{tmp_path}/a.db"), SQLiteTuningStorage)
    assert isinstance(open_storage(f"journal:///{tmp_path}/a.log"), JournalTuningStorage)
    postgres = open_storage("postgresql://u:pw@localhost/db")
    assert isinstance(postgres, PostgresTuningStorage)
    assert postgres.url.startswith("postgresql+psycopg://")  # psycopg 3, not SQLAlchemy's default psycopg2
    assert "pw" not in postgres.describe()
    with pytest.raises(ValueError, match="storage: expected none"):
        open_storage("mysql://u@localhost/db")
    with pytest.raises(ValueError, match="sqlite:///PATH.db"):
        open_storage("sqlite:///")


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
