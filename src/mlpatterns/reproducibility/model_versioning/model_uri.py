"""Names in the model registry (Model Versioning, 27) and the URIs that address a version.

``models:/NAME/VERSION`` names one immutable version; ``models:/NAME@ALIAS`` names
whatever version an alias (``champion``, ``challenger``) points at when it is resolved.
The ``models:/`` prefix is MLflow's convention: a URI is never mistaken for a path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PREFIX", "ModelURI", "RegistryError", "check_alias", "check_name"]

PREFIX = "models:/"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,127}")


class RegistryError(ValueError):
    """A registry operation that cannot be done; the message names the model and the problem."""


def check_name(name: object, what: str = "model name") -> str:
    """``name`` if it is a plain name (letters, digits, ``-_.``; no ``/``, no ``..``), else an error.

    >>> check_name("flights-delay_v2.gbm")
    'flights-delay_v2.gbm'
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        raise RegistryError(f"{what}: expected 1 to 128 letters, digits, '-', '_' or '.', starting with a "
                            f"letter or digit and without '..', got {name!r}")
    return name


def check_alias(alias: object) -> str:
    """``alias`` if it is a valid alias: a name that starts with a letter (so never a version number)."""
    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias) or ".." in alias:
        raise RegistryError(f"alias: expected 1 to 128 letters, digits, '-', '_' or '.', starting with a "
                            f"letter and without '..', got {alias!r}")
    return alias


@dataclass(frozen=True)
class ModelURI:
    """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS``: a validated address of a model version.

    >>> ModelURI.parse("models:/flights@champion")
    ModelURI(name='flights', version=None, alias='champion')
    >>> str(ModelURI("flights", version=3))
    'models:/flights/3'
    """

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if (self.version is None) == (self.alias is None):
            raise RegistryError(f"model URI: give a version or an alias of {self.name!r}, not both or neither")
        if self.alias is not None:
            check_alias(self.alias)
        elif isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise RegistryError(f"model URI: a version is a positive integer, got {self.version!r}")

    @classmethod
    def parse(cls, text: str | ModelURI) -> ModelURI:
        if isinstance(text, ModelURI):
            return text
        expected = "expected 'models:/NAME/VERSION' or 'models:/NAME@ALIAS'"
        if not isinstance(text, str) or not text.startswith(PREFIX):
            raise RegistryError(f"model URI: {expected}, got {text!r}")
        rest = text.removeprefix(PREFIX)
        name, at, alias = rest.partition("@")
        if at:
            return cls(name, alias=alias)
        name, slash, version = rest.partition("/")
        if not slash or not version.isascii() or not version.isdigit() or version.startswith("0"):
            raise RegistryError(f"model URI: {expected} (a version is 1, 2, 3...), got {text!r}")
        return cls(name, version=int(version))

    def __str__(self) -> str:
        return f"{PREFIX}{self.name}@{self.alias}" if self.alias else f"{PREFIX}{self.name}/{self.version}"
