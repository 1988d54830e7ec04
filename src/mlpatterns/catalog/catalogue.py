"""Connected Patterns (chapter 8): the catalogue of the book's 30 patterns, as data.

The problem it solves: 30 patterns are hard to keep in mind, and the book's chapters order them
by where they sit in a workflow, not by how they connect or which fit a problem. The catalogue
holds each pattern's problem, solution, trade-offs, its edges in the book's pattern graph, its
life-cycle stages, use cases and data types, and where it lives in mlpatterns (modules, commands,
spec fields, docs page). It is read from ``patterns.yaml`` shipped with the package and checked
field by field when it loads.

>>> from mlpatterns.catalog.catalogue import get_pattern, search
>>> get_pattern("hashed feature").number
1
>>> search("cold start")[0].pattern.name
'Hashed Feature'
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "Catalogue", "CatalogueError", "Pattern", "Relation", "SearchResult", "UnknownPatternError",
    "get_pattern", "load_catalogue", "normalize_name", "patterns", "related", "search",
]

PATTERNS_FILE = Path(__file__).with_name("patterns.yaml")

# Search weights: a term in the name beats one in the problem or solution, which beats the trade-offs.
NAME_WEIGHT, TEXT_WEIGHT, TRADE_OFF_WEIGHT = 10.0, 3.0, 1.0
FIELD_WEIGHTS = {"name": NAME_WEIGHT, "problem": TEXT_WEIGHT, "solution": TEXT_WEIGHT, "trade_offs": TRADE_OFF_WEIGHT}
PHRASE_BONUS = 10.0  # the whole query as a phrase in the name (scaled by the field's weight elsewhere)
STOP_WORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how", "i", "in", "is", "it",
                        "of", "on", "or", "the", "to", "what", "when", "with"})


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the pattern and the field."""


class UnknownPatternError(KeyError):
    """No pattern has that name or number; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError's own str() would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Relation:
    """An edge of the book's pattern graph: ``source`` relates to ``target`` as ``relation`` says."""

    source: str
    target: str
    relation: str


@dataclass(frozen=True)
class Pattern:
    """One of the 30 patterns.

    Attributes
    ----------
    number, name : int, str
        The book's numbering (1-30) and name.
    aliases : tuple of str
        Other spellings accepted by :func:`get_pattern` (the book's graph writes some names differently).
    chapter, chapter_title : int, str
        The book's chapter (2-7) and its title.
    summary : str
        The problem in one line (listings).
    problem, solution : str
        What the pattern solves, and how.
    trade_offs : tuple of str
        What the solution costs.
    related : tuple of Relation
        Its outgoing edges in the book's pattern graph, read "<name> <relation> <target>"
        (:func:`related` gives both directions).
    stages, use_cases, data_types : tuple of str
        Where chapter 8 places it: life-cycle stages, common use cases and data types.
    modules : tuple of str
        Where it lives in mlpatterns: ``package.module`` or ``package.module:Name``.
    cli : tuple of str
        The ``mlpatterns`` commands that use it.
    spec : tuple of str or None
        The spec fields that declare it (``path`` or ``path=value``, ``<m>`` for a model's name);
        None when it has no spec field (Python or command line only).
    docs : str
        Its documentation page, relative to the repository root.
    """

    number: int
    name: str
    aliases: tuple[str, ...]
    chapter: int
    chapter_title: str
    summary: str
    problem: str
    solution: str
    trade_offs: tuple[str, ...]
    related: tuple[Relation, ...]
    stages: tuple[str, ...]
    use_cases: tuple[str, ...]
    data_types: tuple[str, ...]
    modules: tuple[str, ...]
    cli: tuple[str, ...]
    spec: tuple[str, ...] | None
    docs: str

    @property
    def slug(self) -> str:
        """The name as an identifier: ``hashed_feature``, ``two_phase_predictions``."""
        return normalize_name(self.name).replace(" ", "_")

    def to_dict(self) -> dict[str, Any]:
        """The pattern as JSON-able data (``--json``)."""
        data = asdict(self)
        data["related"] = [{"pattern": r.target, "relation": r.relation} for r in self.related]
        for name in ("aliases", "trade_offs", "stages", "use_cases", "data_types", "modules", "cli"):
            data[name] = list(data[name])
        data["spec"] = None if self.spec is None else list(self.spec)
        data["slug"] = self.slug
        return data


@dataclass(frozen=True)
class SearchResult:
    """A pattern found by :func:`search`: its score and the fields the query matched."""

    pattern: Pattern
    score: float
    fields: tuple[str, ...]


def _search_fields(pattern: Pattern) -> dict[str, str]:
    return {"name": " ".join((pattern.name, *pattern.aliases)).lower(), "problem": f"{pattern.summary} {pattern.problem}".lower(),
            "solution": pattern.solution.lower(), "trade_offs": " ".join(pattern.trade_offs).lower()}


def normalize_name(name: str) -> str:
    """``"Two-Phase Predictions"``, ``"two_phase_predictions"`` -> ``"two phase predictions"``."""
    return " ".join(re.sub(r"[_\-]", " ", str(name)).lower().split())


class Catalogue:
    """The patterns of one catalogue file, checked; :func:`load_catalogue` reads one."""

    def __init__(self, patterns: Sequence[Pattern], vocabulary: Mapping[str, tuple[str, ...]],
                 chapters: Mapping[int, str]) -> None:
        self.patterns: tuple[Pattern, ...] = tuple(sorted(patterns, key=lambda p: p.number))
        self.vocabulary = dict(vocabulary)
        self.chapters = dict(chapters)
        self._by_name: dict[str, Pattern] = {}
        for pattern in self.patterns:
            for name in (pattern.name, *pattern.aliases, pattern.slug):
                self._by_name[normalize_name(name)] = pattern

    def __iter__(self):
        return iter(self.patterns)

    def __len__(self) -> int:
        return len(self.patterns)

    def get(self, name_or_number: str | int) -> Pattern:
        """The pattern by name (any case, spaces, ``_`` or ``-``), alias or number."""
        key = name_or_number
        if isinstance(key, str) and key.strip().isdigit():
            key = int(key.strip())
        if isinstance(key, int) and not isinstance(key, bool):
            for pattern in self.patterns:
                if pattern.number == key:
                    return pattern
            raise UnknownPatternError(f"no pattern number {key}: the patterns are numbered "
                                      f"{self.patterns[0].number} to {self.patterns[-1].number}")
        found = self._by_name.get(normalize_name(str(key)))
        if found is not None:
            return found
        names = self.suggestions(str(key))
        hint = f"; did you mean {', '.join(repr(n) for n in names)}?" if names else \
            "; `mlpatterns patterns` lists them all"
        raise UnknownPatternError(f"no pattern named {str(key)!r}{hint}")

    def suggestions(self, text: str, n: int = 3) -> list[str]:
        """Up to ``n`` pattern names close to ``text`` (difflib), as a whole or word by word."""
        query = normalize_name(text)
        scores: dict[str, float] = {}
        for known, pattern in self._by_name.items():
            whole = difflib.SequenceMatcher(None, query, known).ratio()
            words = max((difflib.SequenceMatcher(None, q, w).ratio() for q in query.split() for w in known.split()),
                        default=0.0)
            scores[pattern.name] = max(scores.get(pattern.name, 0.0), whole, 0.95 * words if words >= 0.75 else 0.0)
        ranked = sorted((name for name, score in scores.items() if score >= 0.6), key=lambda name: -scores[name])
        return ranked[:n]

    def related(self, name_or_number: str | int) -> tuple[Relation, ...]:
        """Every edge of the pattern graph that touches the pattern: its own first, then those into it."""
        pattern = self.get(name_or_number)
        incoming = tuple(r for p in self.patterns for r in p.related if r.target == pattern.name)
        return pattern.related + incoming

    def edges(self) -> tuple[Relation, ...]:
        """Every edge of the pattern graph."""
        return tuple(r for p in self.patterns for r in p.related)

    def search(self, text: str = "", *, chapter: int | str | None = None, stage: str | None = None,
               use_case: str | None = None, data_type: str | None = None) -> list[SearchResult]:
        """The patterns matching ``text`` and the filters, best first; see :func:`search`."""
        chosen = [p for p in self.patterns if self._passes(p, chapter, stage, use_case, data_type)]
        terms = [t for t in re.findall(r"[\w']+", text.lower()) if t not in STOP_WORDS]
        if not terms:
            return [SearchResult(p, 0.0, ()) for p in chosen]
        phrase = " ".join(terms)
        bodies = {p.number: _search_fields(p) for p in self.patterns}
        found = {term: {n: [f for f, body in fields.items() if re.search(rf"\b{re.escape(term)}", body)]
                        for n, fields in bodies.items()} for term in dict.fromkeys(terms)}
        results = []
        for pattern in chosen:
            score, matched, covered = 0.0, [], 0
            for term in terms:
                hits = found[term][pattern.number]
                if hits:
                    rarity = math.log(1 + len(self.patterns) / sum(1 for h in found[term].values() if h))
                    score += max(FIELD_WEIGHTS[f] for f in hits) * rarity
                    matched.extend(h for h in hits if h not in matched)
                    covered += 1
            if not matched:
                continue
            if len(terms) > 1:
                score += max((PHRASE_BONUS * FIELD_WEIGHTS[f] / NAME_WEIGHT for f, body in
                              bodies[pattern.number].items() if phrase in normalize_name(body)), default=0.0)
            results.append((covered, SearchResult(pattern, round(score, 3), tuple(matched))))
        most = max((covered for covered, _ in results), default=0)  # every word if any pattern has them all
        return sorted((r for covered, r in results if covered == most), key=lambda r: (-r.score, r.pattern.number))

    def _passes(self, pattern: Pattern, chapter: int | str | None, stage: str | None, use_case: str | None,
                data_type: str | None) -> bool:
        if chapter is not None and pattern.chapter != self.chapter_number(chapter):
            return False
        for value, field, option in ((stage, "stages", "stage"), (use_case, "use_cases", "use_case"),
                                     (data_type, "data_types", "data_type")):
            if value is not None and self._term(value, field, option) not in getattr(pattern, field):
                return False
        return True

    def chapter_number(self, chapter: int | str) -> int:
        """A chapter's number from its number or title (``3``, ``"3"``, ``"problem representation"``)."""
        text = str(chapter).strip()
        if text.isdigit() and int(text) in self.chapters:
            return int(text)
        for number, title in self.chapters.items():
            if normalize_name(title) == normalize_name(text):
                return number
        choices = ", ".join(f"{n} ({t})" for n, t in self.chapters.items())
        raise ValueError(f"chapter: expected one of {choices}, got {chapter!r}")

    def _term(self, value: str, field: str, option: str) -> str:
        allowed = self.vocabulary[field]
        for term in allowed:
            if normalize_name(term) == normalize_name(value):
                return term
        partial = [term for term in allowed if normalize_name(value) in normalize_name(term)]
        if len(partial) == 1 and normalize_name(value):  # "vision" -> "computer vision"
            return partial[0]
        raise ValueError(f"{option}: expected one of {', '.join(allowed)}, got {value!r}")


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and check a catalogue file (default: the ``patterns.yaml`` shipped with mlpatterns).

    Raises
    ------
    CatalogueError
        The file is not valid YAML or a field is wrong; the message names the pattern and the field.
    """
    import yaml

    from mlpatterns.catalog.catalogue_schema import parse_catalogue

    path = Path(path) if path is not None else PATTERNS_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise CatalogueError(f"{path}: not valid YAML: {error}") from None
    try:
        patterns, vocabulary, chapters = parse_catalogue(raw)
    except ValueError as error:
        raise CatalogueError(f"{path}: {error}") from None
    return Catalogue(patterns, vocabulary, chapters)


@lru_cache(maxsize=1)
def _default() -> Catalogue:
    return load_catalogue()


def patterns() -> tuple[Pattern, ...]:
    """The 30 patterns, in the book's order."""
    return _default().patterns


def get_pattern(name_or_number: str | int) -> Pattern:
    """One pattern by name, alias or number.

    Parameters
    ----------
    name_or_number : str or int
        ``"hashed feature"``, ``"Hashed Feature"``, ``"hashed_feature"``, ``1`` or ``"1"``.

    Raises
    ------
    UnknownPatternError
        No such pattern; the message suggests the closest names.
    """
    return _default().get(name_or_number)


def related(name_or_number: str | int) -> tuple[Relation, ...]:
    """The edges of the book's pattern graph touching a pattern (its own first, then those into it)."""
    return _default().related(name_or_number)


def search(text: str = "", *, chapter: int | str | None = None, stage: str | None = None,
           use_case: str | None = None, data_type: str | None = None) -> list[SearchResult]:
    """Find patterns by words and filters, best first.

    Only the patterns with every word are returned (when none has them all, those with the most).
    Each word counts once per pattern, by the best field it occurs in (as a word or the start of
    one: ``hash`` finds ``hashed``): the name or an alias (10), the problem or the solution (3),
    the trade-offs (1), times its rarity (``log(1 + patterns / patterns with the word)``); the
    whole query as a phrase adds 10 in the name, 3 in the problem or solution. Ties go by number.
    Common words (``the``, ``of``, ...) are ignored.

    Parameters
    ----------
    text : str
        Words to look for; empty: every pattern that passes the filters, by number.
    chapter : int or str, optional
        A chapter number (2-7) or title.
    stage, use_case, data_type : str, optional
        A life-cycle stage, use case or data type of the catalogue's vocabulary.

    Raises
    ------
    ValueError
        A filter value outside the vocabulary; the message lists the allowed ones.
    """
    return _default().search(text, chapter=chapter, stage=stage, use_case=use_case, data_type=data_type)
