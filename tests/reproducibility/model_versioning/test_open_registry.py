"""open_registry follows the backend convention: the URL picks the backend, errors list the forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpatterns.reproducibility.model_versioning import REGISTRY_BACKENDS, open_registry


def test_an_open_registry_passes_through(tmp_path):
    with open_registry(f"sqlite:///{tmp_path}/r.db") as registry:
        assert open_registry(registry) is registry
        assert repr(registry) == f"SQLiteModelRegistry('sqlite:///{tmp_path}/r.db')"


@pytest.mark.parametrize("url", ["mysql://u:secret@db/models", "redis://localhost"])
def test_an_unknown_scheme_lists_the_forms(url):
    with pytest.raises(ValueError, match="registry: unknown scheme") as error:
        open_registry(url)
    assert "secret" not in str(error.value)
    assert "'postgresql+psycopg://USER:PASSWORD@HOST/DATABASE?files=/shared/folder'" in str(error.value)
    assert "none (the embedded default 'sqlite:///registry/registry.db')" in str(error.value)


@pytest.mark.parametrize("url", ["registry.db", Path("registry")])
def test_a_plain_path_is_refused(url):
    with pytest.raises(ValueError, match="registry: .*write a URL such as 'sqlite:///registry"):
        open_registry(url)


def test_postgresql_needs_a_folder_for_the_bundles():
    with pytest.raises(ValueError, match=r"needs a folder for the bundles .*\?files=/shared/folder") as error:
        open_registry("postgresql://u:secret@127.0.0.1:1/models")
    assert "secret" not in str(error.value)


def test_the_backends_are_declared():
    assert set(REGISTRY_BACKENDS.schemes) == {"sqlite", "postgresql"}
