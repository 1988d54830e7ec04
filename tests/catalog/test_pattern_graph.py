"""The book's pattern graph (chapter 8): built with networkx, drawn with matplotlib, written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlpatterns.catalog.catalogue import UnknownPatternError, load_catalogue
from mlpatterns.catalog.pattern_graph import draw_pattern_graph, pattern_graph

Image = pytest.importorskip("PIL.Image")


def test_the_whole_graph():
    graph = pattern_graph()
    assert graph.number_of_nodes() == 30 and graph.number_of_edges() == 44
    assert graph.nodes["Hashed Feature"] == {"number": 1, "chapter": 2, "chapter_title": "Data Representation"}
    assert graph.has_edge("Batch Serving", "Keyed Predictions")
    assert not graph.has_edge("Keyed Predictions", "Batch Serving")  # edges keep the book's direction
    assert "distributed" in graph.edges["Batch Serving", "Keyed Predictions"]["relation"]


def test_a_chapter_and_its_neighbours():
    graph = pattern_graph(chapter=4)
    chapter_4 = {"Useful Overfitting", "Checkpoints", "Transfer Learning", "Distribution Strategy",
                 "Hyperparameter Tuning"}
    assert chapter_4 <= set(graph.nodes)
    assert set(graph.nodes) - chapter_4 == {"Cascade", "Hashed Feature", "Embeddings", "Bridged Schema"}
    assert all(a in chapter_4 or b in chapter_4 for a, b in graph.edges)


def test_around_a_pattern():
    near = pattern_graph(around="transform")
    assert set(near.nodes) == {"Transform", "Multimodal Input", "Stateless Serving Function", "Windowed Inference",
                               "Feature Store", "Workflow Pipeline"}
    assert near.graph["around"] == "Transform"
    farther = pattern_graph(around="Transform", depth=2)
    assert set(near.nodes) < set(farther.nodes) and "Batch Serving" in farther  # via the serving function
    with pytest.raises(ValueError, match="depth: expected a whole number >= 1"):
        pattern_graph(around="transform", depth=0)
    with pytest.raises(UnknownPatternError, match="did you mean 'Transform'"):
        pattern_graph(around="transfrom")
    with pytest.raises(ValueError, match="not among the patterns drawn"):
        pattern_graph(chapter=2, around="model versioning")


def _colours(path: Path) -> set[tuple[int, int, int]]:
    import numpy as np

    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
    return {tuple(int(c) for c in row) for row in np.unique(pixels, axis=0)}


def test_draws_a_png_that_is_not_blank(tmp_path):
    path = draw_pattern_graph(tmp_path / "graph.png", around="batch serving")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 500 and image.height > 400
    colours = _colours(path)
    assert len(colours) > 20  # nodes, labels, edges, legend: not a blank canvas
    resilient_serving = (0xE1, 0x57, 0x59)  # chapter 5's node colour, at the nodes' alpha over white
    assert any(max(abs(c - r) for c, r in zip(colour, resilient_serving, strict=True)) < 20 for colour in colours)
    assert [p.name for p in tmp_path.iterdir()] == ["graph.png"]  # no temporary file left behind


def test_draws_an_svg_the_same_every_time(tmp_path):
    path = draw_pattern_graph(tmp_path / "sub" / "graph.svg", chapter=7)
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    again = draw_pattern_graph(tmp_path / "again.svg", chapter=7)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("name", ["graph.jpg", "graph", "graph.png.txt"])
def test_refuses_an_unknown_suffix(tmp_path, name):
    with pytest.raises(ValueError, match=r"expected a file name ending in \.png or \.svg"):
        draw_pattern_graph(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_directory(tmp_path):
    folder = tmp_path / "graph.png"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        draw_pattern_graph(folder)
    assert list(folder.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "graph.png"
    path.write_bytes(b"old")

    def fail(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(OSError, match="disk full"):
        draw_pattern_graph(path, load_catalogue(), around="cascade")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["graph.png"]
