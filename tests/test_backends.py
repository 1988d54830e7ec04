"""The backend convention: URLs, a family's schemes, lazy imports, clear errors, hidden passwords."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlpatterns.backends import (
    Backend,
    BackendFamily,
    BackendURL,
    open_backend,
    parse_url,
    redact_url,
)


class Recorder:
    """A stand-in backend class: keeps what open_backend passed."""

    def __init__(self, url: BackendURL, **options):
        self.url, self.options = url, options


FAMILY = BackendFamily(
    name="widgets",
    default="sqlite:///widgets/widgets.db",
    schemes={
        "sqlite": Backend(f"{__name__}:Recorder"),
        "postgresql": Backend(f"{__name__}:Recorder"),
        "memory": Backend(f"{__name__}:Recorder"),
        "redis": Backend("mlpatterns_no_such_module:Store", requires=("mlpatterns_no_such_driver",),
                         extra="widgets"),
    },
    examples=("sqlite:///PATH.db", "postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"),
)


@pytest.mark.parametrize(
    ("url", "scheme", "driver", "path"),
    [
        ("sqlite:///relative.db", "sqlite", None, Path("relative.db")),
        ("sqlite:///sub/dir/r.db", "sqlite", None, Path("sub/dir/r.db")),
        ("sqlite:////abs/r.db", "sqlite", None, Path("/abs/r.db")),
        ("journal:///study.log", "journal", None, Path("study.log")),
        ("file:///srv/models", "file", None, Path("/srv/models")),
        ("file://localhost/srv/models", "file", None, Path("/srv/models")),
        ("postgresql://u:pw@db:5432/models", "postgresql", None, None),
        ("postgresql+psycopg://u:pw@db/models", "postgresql", "psycopg", None),
        ("POSTGRESQL+PSYCOPG://u@db/models", "postgresql", "psycopg", None),
        ("redis://localhost:6379/0", "redis", None, None),
        ("memory", "memory", None, None),
    ],
)
def test_parse_url(url, scheme, driver, path):
    parsed = parse_url(url)
    assert (parsed.text, parsed.scheme, parsed.driver, parsed.path) == (url, scheme, driver, path)
    assert parse_url(parsed) is parsed


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///", "sqlite://host/x.db", "file://host/x"])
def test_malformed_file_urls_are_refused(url):
    with pytest.raises(ValueError, match="expected"):
        parse_url(url)


def test_query_parameters_are_options_a_backend_takes_out():
    parsed = parse_url("postgresql+psycopg://u:pw@db/models?files=/srv/m&options=-csearch_path%3Dx")
    assert parsed.query == {"files": "/srv/m", "options": "-csearch_path=x"}
    rest, taken = parsed.split_options("files")
    assert taken == {"files": "/srv/m"}
    assert rest.query == {"options": "-csearch_path=x"}
    assert rest.text.startswith("postgresql+psycopg://u:pw@db/models?options=")
    assert (rest.scheme, rest.driver) == ("postgresql", "psycopg")
    bare, none = parse_url("sqlite:///r.db").split_options("files")
    assert (bare.text, none) == ("sqlite:///r.db", {})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://tuner:secret@db.example.com/studies", "postgresql://tuner:***@db.example.com/studies"),
        ("postgresql+psycopg://u:p%40ss@db:5432/m?files=/srv", "postgresql+psycopg://u:***@db:5432/m?files=/srv"),
        ("redis://:secret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgresql://u@db/m?password=secret&sslmode=require", "postgresql://u@db/m?password=***&sslmode=require"),
        ("postgresql://u@db/m", "postgresql://u@db/m"),
        ("sqlite:///registry/registry.db", "sqlite:///registry/registry.db"),
        ("memory", "memory"),
    ],
)
def test_redact_url_hides_passwords(url, shown):
    assert redact_url(url) == shown
    assert parse_url(url).redacted() == shown


def test_open_backend_picks_the_class_by_scheme_and_passes_options():
    backend = open_backend(FAMILY, "postgresql+psycopg://u:pw@db/w", pool_size=3)
    assert isinstance(backend, Recorder)
    assert (backend.url.scheme, backend.options) == ("postgresql", {"pool_size": 3})
    assert open_backend(FAMILY, "memory").url.scheme == "memory"


@pytest.mark.parametrize("url", [None, ""])
def test_none_means_the_embedded_default(url):
    backend = open_backend(FAMILY, url)
    assert backend.url.text == "sqlite:///widgets/widgets.db"
    assert backend.url.path == Path("widgets/widgets.db")


def test_unknown_scheme_lists_the_expected_forms():
    with pytest.raises(ValueError) as error:
        open_backend(FAMILY, "mysql://u:secret@db/w")
    message = str(error.value)
    assert message.startswith("widgets: unknown scheme 'mysql'")
    assert "secret" not in message and "mysql://u:***@db/w" in message
    assert "none (the embedded default 'sqlite:///widgets/widgets.db')" in message
    assert "'postgresql+psycopg://USER:PASSWORD@HOST/DATABASE'" in message


@pytest.mark.parametrize("url", ["registry.db", "/srv/models/registry.db", Path("registry.db")])
def test_a_plain_path_is_refused_with_the_url_to_write(url):
    with pytest.raises(ValueError, match=r"widgets: .*'sqlite:///(/srv/models/)?registry.db'"):
        open_backend(FAMILY, url)


def test_a_malformed_url_names_the_family():
    with pytest.raises(ValueError, match="widgets: sqlite:///: .*three slashes"):
        open_backend(FAMILY, "sqlite:///")


def test_a_missing_driver_names_the_module_and_the_extra():
    with pytest.raises(ImportError, match=r"widgets: the redis backend needs mlpatterns_no_such_driver "
                                          r"\(pip install 'mlpatterns\[widgets\]'\)"):
        open_backend(FAMILY, "redis://localhost:6379/0")


def test_backend_modules_are_imported_only_when_chosen():
    family = BackendFamily("lazy", "memory", {"memory": Backend(f"{__name__}:Recorder"),
                                              "redis": Backend("mlpatterns_lazy_probe:Store")})
    open_backend(family, None)
    assert "mlpatterns_lazy_probe" not in sys.modules
    with pytest.raises(ModuleNotFoundError, match="mlpatterns_lazy_probe"):
        open_backend(family, "redis://localhost")
