"""The checks every section of a spec shares: :class:`SpecError` and the field checks that raise it.

Each check names the field (``features.categorical.tailnum``) and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SpecError", "check_plain_name", "expect", "mapping", "positive_int", "string_list"]


class SpecError(ValueError):
    """A spec that cannot be run; the message names the field and what was expected."""


def expect(condition: bool, where: str, message: str) -> None:
    """Raise :class:`SpecError` ``"<where>: <message>"`` unless ``condition`` holds."""
    if not condition:
        raise SpecError(f"{where}: {message}")


def check_plain_name(name: Any, where: str) -> None:
    """A model or run name becomes a folder name: never a path, never hidden, no control characters."""
    ok = isinstance(name, str) and name.strip() != "" and name not in (".", "..") and len(name) <= 100 \
        and not name.startswith(".") and not any(c in "/\\:" or ord(c) < 32 for c in name)
    expect(ok, where, f"expected a plain name (no '/', '\\' or ':', no leading '.', at most 100 characters), "
           f"got {name!r}")


def mapping(value: Any, where: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``value`` as a dict; with ``allowed``, no other field."""
    expect(isinstance(value, Mapping), where, f"expected a mapping, got {type(value).__name__}")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        expect(not unknown, where, f"unknown field(s) {unknown}; expected some of {list(allowed)}")
    return dict(value)


def string_list(value: Any, where: str) -> list[str]:
    """One column name or a list of them, as a list."""
    if isinstance(value, str):
        value = [value]
    expect(isinstance(value, list) and all(isinstance(v, str) for v in value), where,
           f"expected a column name or a list of column names, got {value!r}")
    return list(value)


def positive_int(value: Any, where: str, least: int = 1) -> None:
    """A whole number (not a bool) of at least ``least``."""
    expect(isinstance(value, int) and not isinstance(value, bool) and value >= least, where,
           f"expected a whole number of at least {least}, got {value!r}")
