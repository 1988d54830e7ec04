"""One convention for pluggable backends: a family of stores chosen by a URL.

Every backend family (tuning storage, model registry, feature store, prediction log) is
opened the same way: ``open_<family>(url, **options)`` reads the URL's scheme, imports the
backend's module only when it is chosen (so its driver is needed only by whoever uses it)
and calls the backend class with the parsed URL and the options.

=====================================  ===============================================
URL                                    meaning
=====================================  ===============================================
``None`` or ``""``                     the family's embedded default URL
``sqlite:///relative/path.db``         a file relative to the current directory
``sqlite:////absolute/path.db``        an absolute path (SQLAlchemy's convention)
``postgresql://USER:PW@HOST/DB``       a server; ``postgresql+psycopg://`` names the
                                       driver (``scheme`` is ``postgresql`` either way)
``redis://HOST:6379/0``                a server
``file:///absolute/folder``            a folder (RFC 8089: three slashes, absolute)
``NAME`` (no ``://``)                  only a word the family declares (``memory``)
=====================================  ===============================================

A plain path (``registry.db``, ``/srv/models``) is refused: it could mean an SQLite file,
a folder or a word, so the error shows the URL to write instead. Query parameters are
options of the backend (``postgresql://.../db?files=/shared/models``); a backend takes its
own out with :meth:`BackendURL.split_options` before handing the rest to its driver.
:func:`redact_url` hides a password for logs and manifests.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["Backend", "BackendFamily", "BackendURL", "open_backend", "parse_url", "redact_url"]

_SQLALCHEMY_PATHS = ("sqlite", "journal")  # scheme:///relative, scheme:////absolute


@dataclass(frozen=True)
class BackendURL:
    """A parsed backend URL: ``scheme`` without the driver, ``driver``, ``path`` (for files), ``query``."""

    text: str
    scheme: str
    driver: str | None = None
    path: Path | None = None
    query: Mapping[str, str] = field(default_factory=dict)

    def split_options(self, *names: str) -> tuple[BackendURL, dict[str, str]]:
        """This URL without the query parameters ``names``, and their values."""
        base, _, query = self.text.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True)
        taken = {key: value for key, value in pairs if key in names}
        rest = urlencode([(key, value) for key, value in pairs if key not in names])
        return parse_url(f"{base}?{rest}" if rest else base), taken

    def redacted(self) -> str:
        return redact_url(self.text)


def parse_url(url: str | BackendURL) -> BackendURL:
    """Parse a backend URL; a text without ``scheme://`` is a bare word (see the module docstring).

    >>> parse_url("sqlite:///registry/registry.db").path
    PosixPath('registry/registry.db')
    >>> parse_url("postgresql+psycopg://u:pw@db/models?files=/srv/m").query
    {'files': '/srv/m'}
    """
    if isinstance(url, BackendURL):
        return url
    if "://" not in url:
        return BackendURL(text=url, scheme=url)
    parts = urlsplit(url)
    scheme, _, driver = parts.scheme.lower().partition("+")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = None
    if scheme in _SQLALCHEMY_PATHS:
        if parts.netloc or not parts.path.removeprefix("/"):
            raise ValueError(f"{redact_url(url)}: expected {scheme}:///relative/path or "
                             f"{scheme}:////absolute/path (three slashes, then the path)")
        path = Path(parts.path[1:])
    elif scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{redact_url(url)}: expected file:///absolute/path")
        path = Path(parts.path)
    return BackendURL(text=url, scheme=scheme, driver=driver or None, path=path, query=query)


def redact_url(url: str | BackendURL) -> str:
    """The URL with its password (and a ``password`` query parameter) shown as ``***``.

    >>> redact_url("postgresql://tuner:secret@db.example.com/studies")
    'postgresql://tuner:***@db.example.com/studies'
    """
    text = url.text if isinstance(url, BackendURL) else url
    if "://" not in text:
        return text
    scheme, _, rest = text.partition("://")
    base, question, query = rest.partition("?")
    netloc, slash, path = base.partition("/")
    user, at, host = netloc.rpartition("@")
    if at and ":" in user:
        netloc = f"{user.split(':', 1)[0]}:***@{host}"
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key.lower() == "password" for key, _ in pairs):
        query = urlencode([(k, "***" if k.lower() == "password" else v) for k, v in pairs], safe="/*")
    return f"{scheme}://{netloc}{slash}{path}{question}{query}"


@dataclass(frozen=True)
class Backend:
    """Where a scheme's backend lives (``"package.module:Class"``) and the modules it needs."""

    target: str
    requires: tuple[str, ...] = ()
    extra: str | None = None  # the pip extra that installs ``requires``


@dataclass(frozen=True)
class BackendFamily:
    """A family of backends: its name (for errors), default URL, schemes and example URLs."""

    name: str
    default: str
    schemes: Mapping[str, Backend]
    examples: tuple[str, ...] = ()

    def expected(self) -> str:
        forms = [f"none (the embedded default {self.default!r})", *(repr(e) for e in self.examples)]
        return ", ".join(forms)


def open_backend(family: BackendFamily, url: str | os.PathLike[str] | None, **options: Any) -> Any:
    """Open the backend of ``family`` that ``url`` names: ``Class(parsed_url, **options)``.

    Errors name the family, the URL (password hidden) and the expected forms; a backend
    whose driver is missing names the module and the extra to install.
    """
    if url is not None and not isinstance(url, str):
        url = os.fspath(url)
        raise ValueError(f"{family.name}: got the path {url!r}; write a URL such as 'sqlite:///{url}' "
                         f"(expected {family.expected()})")
    text = url or family.default
    try:
        parsed = parse_url(text)
    except ValueError as error:
        raise ValueError(f"{family.name}: {error}") from None
    backend = family.schemes.get(parsed.scheme)
    if backend is None and "://" not in text:
        raise ValueError(f"{family.name}: {text!r} is not a URL, and a plain path is ambiguous; write a URL "
                         f"such as 'sqlite:///{text}' (expected {family.expected()})")
    if backend is None:
        raise ValueError(f"{family.name}: unknown scheme {parsed.scheme!r} in {redact_url(text)!r}; "
                         f"expected {family.expected()}")
    missing = [m for m in backend.requires if importlib.util.find_spec(m) is None]
    if missing:
        hint = f" (pip install 'mlpatterns[{backend.extra}]')" if backend.extra else ""
        raise ImportError(f"{family.name}: the {parsed.scheme} backend needs {', '.join(missing)}{hint}")
    module_name, _, class_name = backend.target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)(parsed, **options)
