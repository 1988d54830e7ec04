"""The catalogue of the 30 patterns (chapter 8): complete, true to the book's graph and to the code."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import re
from pathlib import Path

import pytest
import yaml

from mlpatterns.catalog.catalogue import (
    PATTERNS_FILE,
    CatalogueError,
    Pattern,
    UnknownPatternError,
    get_pattern,
    load_catalogue,
    normalize_name,
    patterns,
    related,
    search,
)

ROOT = Path(__file__).resolve().parents[2]
BOOK_GRAPH = Path(__file__).with_name("data") / "book_pattern_graph.csv"  # the book's edges, committed
SHARED_GRAPH = ROOT.parent / "shared" / "data" / "connected_patterns.csv"  # where they came from (not in a clone)
IN_PROGRESS_SPEC = {"explain", "fairness"}  # their sections are being documented in docs/spec.md by the lead

BOOK = {  # number: (name, chapter), from the book's table of contents
    1: ("Hashed Feature", 2), 2: ("Embeddings", 2), 3: ("Feature Cross", 2), 4: ("Multimodal Input", 2),
    5: ("Reframing", 3), 6: ("Multilabel", 3), 7: ("Ensembles", 3), 8: ("Cascade", 3), 9: ("Neutral Class", 3),
    10: ("Rebalancing", 3), 11: ("Useful Overfitting", 4), 12: ("Checkpoints", 4), 13: ("Transfer Learning", 4),
    14: ("Distribution Strategy", 4), 15: ("Hyperparameter Tuning", 4), 16: ("Stateless Serving Function", 5),
    17: ("Batch Serving", 5), 18: ("Continued Model Evaluation", 5), 19: ("Two-Phase Predictions", 5),
    20: ("Keyed Predictions", 5), 21: ("Transform", 6), 22: ("Repeatable Splitting", 6), 23: ("Bridged Schema", 6),
    24: ("Windowed Inference", 6), 25: ("Workflow Pipeline", 6), 26: ("Feature Store", 6),
    27: ("Model Versioning", 6), 28: ("Heuristic Benchmark", 7), 29: ("Explainable Predictions", 7),
    30: ("Fairness Lens", 7),
}


def test_the_30_patterns_of_the_book_with_their_chapters():
    found = patterns()
    assert [p.number for p in found] == list(range(1, 31))
    assert {p.number: (p.name, p.chapter) for p in found} == BOOK
    assert {p.chapter_title for p in found if p.chapter == 7} == {"Responsible AI"}
    for pattern in found:
        assert pattern.problem and pattern.solution and pattern.trade_offs and pattern.stages
        assert len(pattern.summary) <= 80 and "\n" not in pattern.summary


def _edges(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(line for line in handle if not line.startswith("#")))


def test_every_edge_of_the_books_graph_is_in_the_catalogue():
    rows = _edges(BOOK_GRAPH)
    assert len(rows) == 44
    if SHARED_GRAPH.is_file():  # the committed copy is the source's edge list
        assert [(r["from_pattern"], r["to_pattern"]) for r in _edges(SHARED_GRAPH)] == \
            [(r["from_pattern"], r["to_pattern"]) for r in rows]
    edges = {(r.source, r.target) for p in patterns() for r in p.related}
    book = {(get_pattern(row["from_pattern"]).name, get_pattern(row["to_pattern"]).name) for row in rows}
    assert book - edges == set()
    assert edges - book == set()  # the graph is the book's, nothing added
    assert all(r.relation for p in patterns() for r in p.related)


def test_every_module_and_name_imports():
    for pattern in patterns():
        for entry in pattern.modules:
            module, _, name = entry.partition(":")
            imported = importlib.import_module(module)
            if name:
                assert hasattr(imported, name), f"pattern {pattern.number}: {entry}"


def test_every_docs_page_exists():
    missing = {p.docs for p in patterns() if not (ROOT / p.docs).is_file()}
    assert missing == set()
    assert get_pattern(28).docs == "docs/patterns/heuristic_benchmark.md"
    assert (ROOT / get_pattern(28).docs).is_file()


def test_spec_fields_are_real_fields():
    from mlpatterns.spec import Spec

    top_level = {f.name for f in dataclasses.fields(Spec)}
    spec_doc = (ROOT / "docs" / "spec.md").read_text()
    for pattern in patterns():
        for entry in pattern.spec or ():
            path, _, value = entry.partition("=")
            parts = [part for part in path.split(".") if part != "<m>"]
            assert parts[0] in top_level, f"pattern {pattern.number}: {entry}"
            if parts[0] in IN_PROGRESS_SPEC:
                continue
            for part in [*parts, value] if value else parts:
                assert f"`{part}`" in spec_doc or f"{part}:" in spec_doc, f"pattern {pattern.number}: {entry}"
    assert get_pattern("stateless serving function").spec is None  # every run bundles: no field of its own


def test_cli_commands_named_by_the_catalogue_exist():
    from mlpatterns.cli import build_parser

    commands = build_parser()._subparsers._group_actions[0].choices
    for pattern in patterns():
        for command in pattern.cli:
            words = command.split()
            assert words[1] in commands, f"pattern {pattern.number}: {command}"
            options = {o for action in commands[words[1]]._actions for o in action.option_strings}
            assert all(w in options for w in words[2:] if w.startswith("--")), f"pattern {pattern.number}: {command}"


@pytest.mark.parametrize("key", ["hashed feature", "Hashed Feature", "hashed_feature", "HASHED-FEATURE", 1, "1", " 1 "])
def test_get_pattern_by_name_or_number(key):
    assert get_pattern(key).name == "Hashed Feature"


def test_get_pattern_by_the_books_graph_spellings_and_slug():
    assert get_pattern("two phase prediction").number == 19
    assert get_pattern("distributed training").name == "Distribution Strategy"
    assert get_pattern("two_phase_predictions").slug == "two_phase_predictions"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownPatternError, match=r"no pattern named 'hashd'; did you mean 'Hashed Feature'\?"):
        get_pattern("hashd")
    with pytest.raises(UnknownPatternError, match="Model Versioning"):
        get_pattern("model versoning")
    with pytest.raises(KeyError, match="lists them all"):
        get_pattern("quantum annealing")
    with pytest.raises(UnknownPatternError, match="numbered 1 to 30"):
        get_pattern(31)


def test_search_ranks_the_name_before_the_problem_before_the_trade_offs():
    hits = search("hash")
    assert hits[0].pattern.name == "Hashed Feature" and "name" in hits[0].fields
    assert {h.pattern.name for h in hits[1:]} >= {"Repeatable Splitting", "Feature Cross"}  # in their solutions
    assert all(h.score < hits[0].score for h in hits[1:])
    only_trade_offs = [h for h in search("collide") if h.fields == ("trade_offs",)]
    assert only_trade_offs and only_trade_offs[0].pattern.name == "Hashed Feature"
    body = search("drift")[0]
    assert body.pattern.name == "Continued Model Evaluation" and body.fields == ("problem",)
    assert search("drift")[0].score < search("cascade")[0].score  # a name hit outweighs a problem hit


def test_search_wants_every_word_and_finds_the_books_problems():
    assert search("training serving skew")[0].pattern.name == "Transform"
    assert search("cold start")[0].pattern.name == "Hashed Feature"
    assert search("class imbalance")[0].pattern.name == "Rebalancing"
    assert search("edge device")[0].pattern.name == "Two-Phase Predictions"
    assert [h.pattern.name for h in search("model versioning")][:1] == ["Model Versioning"]
    assert search("xyzzy quux") == []


def test_search_filters():
    vision = search(use_case="computer vision")  # the book's list for computer vision
    assert {h.pattern.name for h in vision} == {"Reframing", "Neutral Class", "Multimodal Input", "Transfer Learning",
                                               "Embeddings", "Multilabel", "Cascade", "Two-Phase Predictions"}
    assert [h.pattern.number for h in search(chapter=7)] == [28, 29, 30]
    assert [h.pattern.number for h in search(chapter="responsible ai")] == [28, 29, 30]
    assert {h.pattern.name for h in search(stage="monitoring")} >= {"Continued Model Evaluation"}
    assert all("time series" in h.pattern.data_types for h in search(data_type="time series"))
    assert [h.pattern.name for h in search("window", data_type="time series")][0] == "Windowed Inference"
    assert search("hash", chapter=3) == []
    assert search(use_case="vision") == vision  # a unique part of a use case is enough
    with pytest.raises(ValueError, match="stage: expected one of discovery, development, deployment, monitoring"):
        search(stage="production")
    with pytest.raises(ValueError, match="chapter: expected one of 2 .Data Representation."):
        search(chapter=9)


def test_related_goes_both_ways():
    edges = related("cascade")
    assert {e.source for e in edges} == {"Reframing", "Multilabel", "Rebalancing", "Useful Overfitting",
                                        "Transfer Learning", "Bridged Schema"}
    assert all(e.target == "Cascade" for e in edges)
    transform = related("transform")
    assert [e.source for e in transform[:5]] == ["Transform"] * 5  # its own edges first
    assert {e.target for e in transform} >= {"Stateless Serving Function", "Feature Store", "Workflow Pipeline"}


def test_pattern_is_frozen_and_serialisable():
    pattern = get_pattern(22)
    with pytest.raises(dataclasses.FrozenInstanceError):
        pattern.name = "x"  # type: ignore[misc]
    data = pattern.to_dict()
    assert data["related"] == [{"pattern": "Hashed Feature", "relation": pattern.related[0].relation}]
    assert data["spec"] == ["split", "data.sample_fraction"] and data["slug"] == "repeatable_splitting"
    assert isinstance(pattern, Pattern) and normalize_name("Two-Phase_Predictions") == "two phase predictions"


def _corrupt(tmp_path: Path, change) -> Path:
    raw = yaml.safe_load(PATTERNS_FILE.read_text())
    change(raw)
    path = tmp_path / "patterns.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw["patterns"][6].update(trade_offs="costly"),
     r"pattern 7 \(Ensembles\): field 'trade_offs': expected a non-empty list of texts, got 'costly'"),
    (lambda raw: raw["patterns"][9].update(stages=["production"]),
     r"pattern 10 \(Rebalancing\): field 'stages'\[0\]: expected one of discovery, .*got 'production'"),
    (lambda raw: raw["patterns"][0]["related"].append({"pattern": "Hashd Feature", "relation": "x"}),
     r"pattern 1 \(Hashed Feature\): field 'related'\[2\].pattern: no pattern named 'Hashd Feature'"),
    (lambda raw: raw["patterns"][20].pop("solution"), r"pattern 21 \(Transform\): field 'solution' is missing"),
    (lambda raw: raw["patterns"][3].update(chapter=9), r"pattern 4 \(Multimodal Input\): field 'chapter'"),
    (lambda raw: raw["patterns"][4].update(modules=["sklearn.linear_model"]),
     r"pattern 5 \(Reframing\): field 'modules'\[0\]: 'sklearn.linear_model' is not of the form"),
    (lambda raw: raw["patterns"][1].update(number=3), r"pattern 3 \(Feature Cross\): field 'number': 3 is used twice"),
    (lambda raw: raw["patterns"][2].update(colour="red"), r"pattern 3 \(Feature Cross\): unknown field 'colour'"),
    (lambda raw: raw["patterns"][5].update(summary="x" * 81), r"pattern 6 \(Multilabel\): field 'summary'"),
])
def test_a_corrupt_catalogue_names_the_pattern_and_the_field(tmp_path, change, message):
    with pytest.raises(CatalogueError, match=message) as error:
        load_catalogue(_corrupt(tmp_path, change))
    assert str(tmp_path) in str(error.value)


def test_a_catalogue_that_is_not_yaml(tmp_path):
    path = tmp_path / "patterns.yaml"
    path.write_text("patterns: [unclosed\n")
    with pytest.raises(CatalogueError, match="not valid YAML"):
        load_catalogue(path)


def test_the_shipped_file_is_the_one_loaded_and_importing_stays_light():
    assert PATTERNS_FILE.name == "patterns.yaml" and PATTERNS_FILE.is_file()
    assert len(load_catalogue()) == 30
    source = (ROOT / "src" / "mlpatterns" / "catalog" / "catalogue.py").read_text()
    top = source.split('__all__', 1)[0]
    assert not re.search(r"^import (yaml|networkx|matplotlib)", top, re.M)


def test_the_docstring_examples():
    import doctest

    import mlpatterns.catalog
    import mlpatterns.catalog.catalogue

    for module in (mlpatterns.catalog, mlpatterns.catalog.catalogue):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
