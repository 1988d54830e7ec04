"""Connected Patterns (chapter 8): the graph of how the 30 patterns relate, drawn as an image.

The problem it solves: the book's chapters list the patterns one after another, yet most of them
work with, need, or stand in for others (batch serving, when distributed, needs keyed predictions;
the transform adds its artifacts to the stateless serving function). The book draws these links
as one graph; this module builds it with networkx from the catalogue and draws it with matplotlib
(nodes coloured by chapter, edges labelled with the relation), whole, for one chapter, or around
one pattern.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from mlpatterns.catalog.catalogue import Catalogue, load_catalogue

__all__ = ["GRAPH_FORMATS", "check_graph_output", "draw_pattern_graph", "pattern_graph"]

GRAPH_FORMATS = (".png", ".svg")
EDGE_LABEL_WIDTH = 36  # longer relations are shortened on a big graph's image (the catalogue keeps them whole)
SMALL_GRAPH = 12  # patterns up to which the relations are drawn whole
_CHAPTER_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#9c755f")


def _networkx() -> Any:
    try:
        import networkx
    except ImportError as error:  # pragma: no cover - networkx is in mlpatterns[plot]
        raise ImportError("the pattern graph needs networkx: pip install 'mlpatterns[plot]'") from error
    return networkx


def pattern_graph(catalogue: Catalogue | None = None, *, chapter: int | str | None = None,
                  around: str | int | None = None, depth: int = 1) -> Any:
    """The book's pattern graph as a ``networkx.DiGraph``.

    Nodes are pattern names with ``number``, ``chapter`` and ``chapter_title`` attributes; an edge
    ``a -> b`` has a ``relation`` attribute (read "a <relation> b").

    Parameters
    ----------
    catalogue : Catalogue, optional
        Default: the catalogue shipped with mlpatterns.
    chapter : int or str, optional
        Keep the chapter's patterns, their links and the patterns at the other end of them.
    around : str or int, optional
        Keep the patterns within ``depth`` links of this one (in either direction).
    depth : int
        With ``around``: how many links away (default 1).

    Raises
    ------
    ValueError
        An unknown chapter or a depth below 1; an unknown ``around`` raises
        :class:`~mlpatterns.catalog.catalogue.UnknownPatternError`.
    """
    networkx = _networkx()
    catalogue = catalogue if catalogue is not None else load_catalogue()
    graph = networkx.DiGraph()
    for pattern in catalogue:
        graph.add_node(pattern.name, number=pattern.number, chapter=pattern.chapter,
                       chapter_title=pattern.chapter_title)
    for edge in catalogue.edges():
        graph.add_edge(edge.source, edge.target, relation=edge.relation)
    if chapter is not None:
        wanted = {result.pattern.name for result in catalogue.search(chapter=chapter)}
        links = [(a, b) for a, b in graph.edges if a in wanted or b in wanted]  # not those between neighbours
        kept = graph.edge_subgraph(links).copy()
        kept.add_nodes_from((name, graph.nodes[name]) for name in wanted)
        graph = kept
    if around is not None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth: expected a whole number >= 1, got {depth!r}")
        centre = catalogue.get(around).name
        if centre not in graph:
            raise ValueError(f"around: {centre!r} is not among the patterns drawn (chapter {chapter})")
        graph = networkx.ego_graph(graph, centre, radius=depth, undirected=True).copy()
        graph.graph["around"] = centre
    return graph


def check_graph_output(output: str | Path) -> Path:
    """The output path, or a ValueError saying why it cannot be written (directory, suffix)."""
    path = Path(output)
    if path.is_dir():
        raise ValueError(f"--output: {str(path)!r} is a directory; give a file name ending in "
                         f"{' or '.join(GRAPH_FORMATS)}")
    if path.suffix.lower() not in GRAPH_FORMATS:
        raise ValueError(f"--output: expected a file name ending in {' or '.join(GRAPH_FORMATS)}, "
                         f"got {str(path)!r}")
    return path


def _label(name: str) -> str:
    return textwrap.fill(name, width=10, break_long_words=False)


def _layout(networkx: Any, graph: Any) -> dict[str, Any]:
    if graph.number_of_nodes() <= 2:
        return networkx.spring_layout(graph, seed=0)
    undirected = graph.to_undirected()
    if networkx.is_connected(undirected):
        return networkx.kamada_kawai_layout(undirected)
    return networkx.spring_layout(undirected, seed=0, k=1.8 / graph.number_of_nodes() ** 0.5, iterations=200)


def draw_pattern_graph(output: str | Path, catalogue: Catalogue | None = None, *, chapter: int | str | None = None,
                       around: str | int | None = None, depth: int = 1, title: str | None = None) -> Path:
    """Draw the pattern graph to a ``.png`` or ``.svg`` file, written atomically (temp file, rename).

    Nodes are coloured by chapter (with a legend), edges point from a pattern to the one it
    relates to and carry the relation (shortened to about 36 characters on graphs of more than 12
    patterns).

    Parameters
    ----------
    output : str or Path
        The image file; an existing one is replaced, a missing folder is created.
    catalogue, chapter, around, depth
        As :func:`pattern_graph`.
    title : str, optional
        Default: says what is drawn and how many patterns and links.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    ValueError
        ``output`` is a directory or does not end in ``.png`` or ``.svg``; a wrong filter.
    """
    path = check_graph_output(output)
    networkx = _networkx()
    catalogue = catalogue if catalogue is not None else load_catalogue()
    graph = pattern_graph(catalogue, chapter=chapter, around=around, depth=depth)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    size = max(6.0, min(20.0, 3.2 * graph.number_of_nodes() ** 0.5))
    figure = Figure(figsize=(size * 1.3, size), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_axis_off()
    positions = _layout(networkx, graph)
    chapters = sorted(catalogue.chapters)
    colour = {c: _CHAPTER_COLOURS[i % len(_CHAPTER_COLOURS)] for i, c in enumerate(chapters)}
    nodes = list(graph.nodes)
    centre = graph.graph.get("around")
    networkx.draw_networkx_edges(graph, positions, ax=axes, edge_color="#8a8a8a", width=1.0, arrows=True,
                                 arrowsize=12, node_size=3000, connectionstyle="arc3,rad=0.06")
    networkx.draw_networkx_nodes(graph, positions, ax=axes, nodelist=nodes, node_size=3000,
                                 node_color=[colour[graph.nodes[n]["chapter"]] for n in nodes],
                                 edgecolors=["black" if n == centre else "white" for n in nodes],
                                 linewidths=[3.0 if n == centre else 1.0 for n in nodes], alpha=0.92)
    networkx.draw_networkx_labels(graph, positions, ax=axes, labels={n: _label(n) for n in nodes},
                                  font_size=7, font_weight="bold")
    width = EDGE_LABEL_WIDTH if graph.number_of_nodes() > SMALL_GRAPH else 200
    edge_labels = {(a, b): textwrap.shorten(data["relation"], width=width, placeholder="...")
                   for a, b, data in graph.edges(data=True)}
    networkx.draw_networkx_edge_labels(graph, positions, ax=axes, edge_labels=edge_labels, font_size=6,
                                       font_color="#333333", label_pos=0.5, rotate=False,
                                       bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    shown = sorted({graph.nodes[n]["chapter"] for n in nodes})
    figure.legend(handles=[Patch(color=colour[c], label=f"chapter {c}: {catalogue.chapters[c]}") for c in shown],
                  loc="lower center", ncols=min(len(shown), 6), fontsize=8, frameon=False)
    if title is None:
        scope = (f"within {depth} link{'s' * (depth > 1)} of {centre}" if centre else
                 f"chapter {catalogue.chapter_number(chapter)} and its neighbours" if chapter is not None
                 else "the book's pattern graph")
        title = f"Connected patterns: {scope} ({graph.number_of_nodes()} patterns, {graph.number_of_edges()} links)"
    axes.set_title(title, fontsize=11)
    axes.margins(0.06)
    figure.tight_layout(rect=(0, 0.05, 1, 1))  # the legend below the graph
    path.parent.mkdir(parents=True, exist_ok=True)
    from matplotlib import rc_context

    from mlpatterns.atomic_files import replace_atomically

    kind = path.suffix.lower().lstrip(".")
    with rc_context({"svg.hashsalt": "mlpatterns"}):  # the same graph, the same bytes (no random ids, no date)
        replace_atomically(path, lambda temporary: figure.savefig(
            temporary, format=kind, metadata={"Date": None} if kind == "svg" else None))
    return path
