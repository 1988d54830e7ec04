"""The shared registry backend (PostgreSQL + a shared folder) passes the conformance suite.

Runs where ``MLPATTERNS_TEST_POSTGRES_URL`` names a database (``.ci/run`` sets it); each
test gets a schema of its own (``?options=-csearch_path=...`` in the registry's URL, so
worker processes open the same one), dropped afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from mlpatterns.reproducibility.model_versioning import RegistryError, open_registry
from mlpatterns.reproducibility.model_versioning.postgresql import PostgresModelRegistry
from mlpatterns.testing.postgres import fresh_schema_url
from mlpatterns.testing.registry import ModelRegistryConformance, make_bundle

POSTGRES_URL = os.environ.get("MLPATTERNS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not POSTGRES_URL, reason="MLPATTERNS_TEST_POSTGRES_URL is not set")


@pytest.fixture
def schema_url():
    """A URL of the test database whose connections use a fresh schema."""
    with fresh_schema_url(POSTGRES_URL, "registry") as url:
        yield url


@pytest.fixture
def registry(schema_url, tmp_path):
    with open_registry(f"{schema_url}&files={tmp_path}/shared") as registry:
        yield registry


class TestPostgresRegistry(ModelRegistryConformance):
    pass


def test_the_url_carries_the_folder_and_hides_the_password(registry, tmp_path):
    assert isinstance(registry, PostgresModelRegistry)
    assert registry.files_root == tmp_path / "shared"
    assert registry.url.endswith(f"files={quote(str(tmp_path / 'shared'))}")
    url = registry._engine.url
    if url.password:
        secret = f"{url.username}:{url.password}@"
        assert secret in registry.url
        assert secret not in registry.describe() and secret not in repr(registry)
        assert f"{url.username}:***@" in registry.describe()


def test_postgresql_scheme_means_psycopg_3(schema_url, tmp_path):
    plain = "postgresql://" + schema_url.split("://", 1)[1]
    with open_registry(plain, files_root=tmp_path / "shared") as registry:
        assert registry._engine.dialect.driver == "psycopg"
        registry.register(make_bundle(tmp_path / "b"), "flights")


def test_another_database_cannot_share_the_folder(schema_url, tmp_path):
    with open_registry(f"sqlite:///{tmp_path}/local.db?files={tmp_path}/shared"):
        pass
    with pytest.raises(RegistryError, match="holds the bundles of another registry"):
        open_registry(schema_url, files_root=tmp_path / "shared")


def test_processes_creating_the_tables_at_once(schema_url, tmp_path):
    url = f"{schema_url}&files={tmp_path}/shared"
    code = "import sys; from mlpatterns.reproducibility.model_versioning import open_registry; open_registry(sys.argv[1]).close()"
    workers = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * 4, errors
    with open_registry(url) as registry:
        assert registry.list_models() == []
