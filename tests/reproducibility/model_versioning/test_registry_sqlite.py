"""The embedded registry backend (SQLite file + local folder) passes the conformance suite."""

from __future__ import annotations

import pytest

from mlpatterns.reproducibility.model_versioning import RegistryError, open_registry
from mlpatterns.reproducibility.model_versioning.sqlite import SQLiteModelRegistry
from mlpatterns.testing.registry import ModelRegistryConformance, make_bundle


@pytest.fixture
def registry(tmp_path):
    with open_registry(f"sqlite:///{tmp_path}/registry/registry.db") as registry:
        yield registry


class TestSQLiteRegistry(ModelRegistryConformance):
    pass


def test_the_default_is_a_registry_folder_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_registry() as registry:
        assert isinstance(registry, SQLiteModelRegistry)
        assert registry.path == tmp_path / "registry" / "registry.db"
        assert registry.files_root == tmp_path / "registry" / "bundles"
        assert registry.url == f"sqlite:///{tmp_path}/registry/registry.db"  # absolute: any directory opens it
        registry.register(make_bundle(tmp_path / "b"), "flights")
    assert (tmp_path / "registry" / "bundles" / "flights" / "1" / "manifest.json").is_file()


def test_files_can_live_elsewhere(tmp_path):
    url = f"sqlite:///{tmp_path}/meta/registry.db?files={tmp_path}/shared%20models"
    with open_registry(url) as registry:
        assert registry.files_root == tmp_path / "shared models"
        registry.register(make_bundle(tmp_path / "b"), "flights")
        with open_registry(registry.url) as again:
            assert again.files_root == registry.files_root
            assert again.resolve("models:/flights/1").is_relative_to(tmp_path / "shared models")
    with open_registry(f"sqlite:///{tmp_path}/meta/registry.db", files_root=tmp_path / "shared models") as same:
        assert same.get_model("flights").latest_version == 1


def test_a_folder_of_another_registry_is_refused(tmp_path):
    with open_registry(f"sqlite:///{tmp_path}/a/registry.db?files={tmp_path}/files"):
        pass
    with pytest.raises(RegistryError, match="holds the bundles of another registry"):
        open_registry(f"sqlite:///{tmp_path}/b/registry.db?files={tmp_path}/files")


def test_unknown_options_and_memory_databases_are_refused(tmp_path):
    with pytest.raises(RegistryError, match=r"unknown option\(s\) \['timeout'\]"):
        open_registry(f"sqlite:///{tmp_path}/r.db?timeout=3")
    with pytest.raises(RegistryError, match="expected 'sqlite:///PATH.db'"):
        open_registry("sqlite:///:memory:")


def test_sqlite_is_set_up_for_several_processes(registry):
    with registry._engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60_000


def test_a_signed_bundle_keeps_its_signature(registry, tmp_path):
    pytest.importorskip("cryptography")
    from mlpatterns.serving.bundle_signing import generate_signing_key, sign_bundle

    private, public = generate_signing_key(tmp_path / "keys" / "k.pem", tmp_path / "keys" / "k.pub")
    other = generate_signing_key(tmp_path / "other" / "k.pem", tmp_path / "other" / "k.pub")[1]
    signed = make_bundle(tmp_path / "signed")
    sign_bundle(signed, private)
    registry.register(signed, "flights")
    registry.register(make_bundle(tmp_path / "unsigned", seed=1), "flights")
    assert registry.resolve("models:/flights/1", public_key=public) == registry.version_path("flights", 1)
    with pytest.raises(RegistryError, match="fails verification"):
        registry.resolve("models:/flights/1", public_key=other)
    with pytest.raises(RegistryError, match="fails verification"):
        registry.resolve("models:/flights/2", public_key=public)
