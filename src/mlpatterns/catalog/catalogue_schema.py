"""Connected Patterns (chapter 8): the checks of the catalogue file, ``patterns.yaml``.

A malformed catalogue would show wrong advice without any error; every field is therefore checked
when the file loads, and an error names the pattern (number and name) and the field, with what was
expected and what was found.
"""

from __future__ import annotations

import re
from typing import Any

from mlpatterns.catalog.catalogue import Pattern, Relation, normalize_name

__all__ = ["PATTERN_FIELDS", "parse_catalogue"]

PATTERN_FIELDS = ("number", "name", "aliases", "chapter", "summary", "problem", "solution", "trade_offs", "related",
                  "stages", "use_cases", "data_types", "modules", "cli", "spec", "docs")
TOP_LEVEL = ("chapters", "stages", "use_cases", "data_types", "patterns")
VOCABULARIES = ("stages", "use_cases", "data_types")
SUMMARY_LENGTH = 80

_MODULE = re.compile(r"^mlpatterns(\.[a-z_][a-z0-9_]*)*(:[A-Za-z_][A-Za-z0-9_]*)?$")
_SPEC = re.compile(r"^[a-z_<>]+(\.[a-z_<>]+)*(=[A-Za-z0-9_]+)?$")
_DOCS = re.compile(r"^docs/[a-z0-9_/]+\.md$")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty text, got {_show(value)}")
    return " ".join(value.split())


def _texts(value: Any, where: str, *, allowed: tuple[str, ...] | None = None, empty: bool = True,
           pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or (not empty and not value):
        raise ValueError(f"{where}: expected a {'' if empty else 'non-empty '}list of texts, got {_show(value)}")
    items = tuple(_text(item, f"{where}[{i}]") for i, item in enumerate(value))
    for i, item in enumerate(items):
        if allowed is not None and item not in allowed:
            raise ValueError(f"{where}[{i}]: expected one of {', '.join(allowed)}, got {item!r}")
        if pattern is not None and not pattern.match(item):
            raise ValueError(f"{where}[{i}]: {item!r} is not of the form {pattern.pattern}")
    if len(set(items)) != len(items):
        raise ValueError(f"{where}: lists a value twice: {_show(list(items))}")
    return items


def _chapters(raw: Any) -> dict[int, str]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"chapters: expected a mapping of chapter number to title, got {_show(raw)}")
    chapters = {}
    for number, title in raw.items():
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"chapters: expected whole-number keys, got {number!r}")
        chapters[number] = _text(title, f"chapters.{number}")
    return chapters


def _pattern(raw: Any, index: int, chapters: dict[int, str], vocabulary: dict[str, tuple[str, ...]]
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    where = f"patterns[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping with the fields {', '.join(PATTERN_FIELDS)}, got {_show(raw)}")
    if isinstance(raw.get("number"), int) and isinstance(raw.get("name"), str):
        where = f"pattern {raw['number']} ({raw['name']})"
    unknown = sorted(set(raw) - set(PATTERN_FIELDS), key=str)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; expected {', '.join(PATTERN_FIELDS)}")
    missing = [f for f in PATTERN_FIELDS if f not in raw]
    if missing:
        raise ValueError(f"{where}: field {missing[0]!r} is missing")
    number = raw["number"]
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise ValueError(f"{where}: field 'number': expected a whole number >= 1, got {_show(number)}")
    if raw["chapter"] not in chapters or isinstance(raw["chapter"], bool):
        raise ValueError(f"{where}: field 'chapter': expected one of {sorted(chapters)}, got {_show(raw['chapter'])}")
    fields: dict[str, Any] = {"number": number, "chapter": raw["chapter"], "chapter_title": chapters[raw["chapter"]]}
    for name in ("name", "summary", "problem", "solution", "docs"):
        fields[name] = _text(raw[name], f"{where}: field {name!r}")
    if len(fields["summary"]) > SUMMARY_LENGTH:
        raise ValueError(f"{where}: field 'summary': expected at most {SUMMARY_LENGTH} characters (one line), "
                         f"got {len(fields['summary'])}")
    if not _DOCS.match(fields["docs"]):
        raise ValueError(f"{where}: field 'docs': expected a path docs/....md, got {fields['docs']!r}")
    fields["aliases"] = _texts(raw["aliases"], f"{where}: field 'aliases'")
    fields["trade_offs"] = _texts(raw["trade_offs"], f"{where}: field 'trade_offs'", empty=False)
    fields["stages"] = _texts(raw["stages"], f"{where}: field 'stages'", allowed=vocabulary["stages"], empty=False)
    fields["use_cases"] = _texts(raw["use_cases"], f"{where}: field 'use_cases'", allowed=vocabulary["use_cases"])
    fields["data_types"] = _texts(raw["data_types"], f"{where}: field 'data_types'", allowed=vocabulary["data_types"],
                                  empty=False)
    fields["modules"] = _texts(raw["modules"], f"{where}: field 'modules'", empty=False, pattern=_MODULE)
    fields["cli"] = _texts(raw["cli"], f"{where}: field 'cli'")
    bad_cli = [c for c in fields["cli"] if not c.startswith("mlpatterns ")]
    if bad_cli:
        raise ValueError(f"{where}: field 'cli': expected commands starting 'mlpatterns ', got {bad_cli[0]!r}")
    fields["spec"] = None if raw["spec"] is None else _texts(raw["spec"], f"{where}: field 'spec'", empty=False,
                                                             pattern=_SPEC)
    related = raw["related"]
    if not isinstance(related, list):
        raise ValueError(f"{where}: field 'related': expected a list of {{pattern, relation}}, got {_show(related)}")
    for i, edge in enumerate(related):
        if not isinstance(edge, dict) or set(edge) != {"pattern", "relation"}:
            raise ValueError(f"{where}: field 'related'[{i}]: expected {{pattern: NAME, relation: TEXT}}, "
                             f"got {_show(edge)}")
        _text(edge["pattern"], f"{where}: field 'related'[{i}].pattern")
        _text(edge["relation"], f"{where}: field 'related'[{i}].relation")
    return fields, related


def parse_catalogue(raw: Any) -> tuple[list[Pattern], dict[str, tuple[str, ...]], dict[int, str]]:
    """Check a catalogue read from YAML; return its patterns, vocabularies and chapters.

    Raises
    ------
    ValueError
        A wrong or missing field, naming the pattern and the field.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"expected a mapping with {', '.join(TOP_LEVEL)}, got {_show(raw)}")
    unknown = sorted(set(raw) - set(TOP_LEVEL), key=str)
    if unknown:
        raise ValueError(f"unknown top-level field {unknown[0]!r}; expected {', '.join(TOP_LEVEL)}")
    missing = [f for f in TOP_LEVEL if f not in raw]
    if missing:
        raise ValueError(f"top-level field {missing[0]!r} is missing")
    chapters = _chapters(raw["chapters"])
    vocabulary = {name: _texts(raw[name], name, empty=False) for name in VOCABULARIES}
    if not isinstance(raw["patterns"], list) or not raw["patterns"]:
        raise ValueError(f"patterns: expected a non-empty list, got {_show(raw['patterns'])}")
    parsed = [_pattern(item, i, chapters, vocabulary) for i, item in enumerate(raw["patterns"])]
    names: dict[str, str] = {}
    numbers: set[int] = set()
    for fields, _ in parsed:
        where = f"pattern {fields['number']} ({fields['name']})"
        if fields["number"] in numbers:
            raise ValueError(f"{where}: field 'number': {fields['number']} is used twice")
        numbers.add(fields["number"])
        for name in (fields["name"], *fields["aliases"]):
            key = normalize_name(name)
            if key in names:
                raise ValueError(f"{where}: field 'name': {name!r} is also the name or alias of {names[key]}")
            names[key] = fields["name"]
    if numbers != set(range(1, len(parsed) + 1)):
        gaps = sorted(set(range(1, len(parsed) + 1)) - numbers)
        raise ValueError(f"patterns: expected numbers 1 to {len(parsed)}, number {gaps[0]} is missing")
    patterns = []
    for fields, related in parsed:
        where = f"pattern {fields['number']} ({fields['name']})"
        edges = []
        for i, edge in enumerate(related):
            target = names.get(normalize_name(edge["pattern"]))
            if target is None:
                raise ValueError(f"{where}: field 'related'[{i}].pattern: no pattern named {edge['pattern']!r}")
            if target == fields["name"]:
                raise ValueError(f"{where}: field 'related'[{i}].pattern: a pattern cannot relate to itself")
            edges.append(Relation(fields["name"], target, " ".join(edge["relation"].split())))
        if len({e.target for e in edges}) != len(edges):
            raise ValueError(f"{where}: field 'related': lists a pattern twice")
        patterns.append(Pattern(related=tuple(edges), **fields))
    return patterns, vocabulary, chapters
