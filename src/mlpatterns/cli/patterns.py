"""``mlpatterns patterns``: the catalogue of the 30 patterns and their graph (Connected Patterns, chapter 8).

* ``patterns`` (or ``patterns list``): a table of the 30 patterns: number, name, chapter, problem.
* ``patterns search [TEXT] [--chapter N] [--stage S] [--use-case U] [--data-type T]``: the patterns
  matching the words (name first, then problem and solution, then trade-offs) and the filters.
* ``patterns show NAME|NUMBER``: everything about one pattern: problem, solution, trade-offs,
  related patterns both ways, life-cycle stages, use cases, and where it lives in mlpatterns, its
  commands, the spec and the docs.
* ``patterns graph [--output FILE.png|FILE.svg] [--force] [--chapter N] [--around NAME --depth K]``: draw the
  book's pattern graph (networkx and matplotlib: ``mlpatterns[plot]``).

``--json`` on list, search and show prints the same as JSON, for programs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_patterns_command"]

_EPILOG = """\
examples:
  mlpatterns patterns
  mlpatterns patterns search "cold start"
  mlpatterns patterns search --use-case "computer vision" --stage development
  mlpatterns patterns show "hashed feature"
  mlpatterns patterns show 22 --json
  mlpatterns patterns graph --output patterns.svg
  mlpatterns patterns graph --around transform --depth 2 --output transform.png

The catalogue and the graph: docs/catalog.md
"""


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=120)  # a pipe or file: 120 columns


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _table(rows: list[tuple[Any, Any]], *, scored: bool) -> Any:
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("pattern", no_wrap=True, style="bold")
    table.add_column("chapter", no_wrap=True, max_width=24, overflow="ellipsis")
    if scored:
        table.add_column("score", justify="right")
        table.add_column("matched in")
    table.add_column("problem")
    for pattern, result in rows:
        cells = [str(pattern.number), pattern.name, f"{pattern.chapter} {pattern.chapter_title}"]
        if scored:
            cells += [f"{result.score:.1f}", ", ".join(f.replace("_", "-") for f in result.fields)]
        table.add_row(*cells, pattern.summary)
    return table


def _list(args: argparse.Namespace) -> int:
    from mlpatterns.catalog.catalogue import patterns

    found = patterns()
    if args.json:
        _print_json([p.to_dict() for p in found])
        return 0
    console = _console()
    console.print(_table([(p, None) for p in found], scored=False))
    console.print(f"{len(found)} patterns. `mlpatterns patterns show NAME` for one, "
                  "`mlpatterns patterns graph` for how they connect.")
    return 0


def _search(args: argparse.Namespace) -> int:
    from mlpatterns.catalog.catalogue import search

    results = search(args.text, chapter=args.chapter, stage=args.stage, use_case=args.use_case,
                     data_type=args.data_type)
    if args.json:
        _print_json([{**r.pattern.to_dict(), "score": r.score, "matched": list(r.fields)} for r in results])
        return 0
    console = _console()
    filters = ", ".join(f"{name.replace('_', '-')} {value!r}" for name, value in
                        (("chapter", args.chapter), ("stage", args.stage), ("use_case", args.use_case),
                         ("data_type", args.data_type)) if value is not None)
    query = " and ".join(part for part in (f"{args.text!r}" if args.text else "", filters) if part)
    if not results:
        console.print(f"no pattern matches {query or 'the search'}; `mlpatterns patterns` lists all 30")
        return 0
    console.print(_table([(r.pattern, r) for r in results], scored=bool(args.text)))
    many = len(results) != 1
    console.print(f"{len(results)} pattern{'s' * many} match{'es' * (not many)} {query or 'the search'}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from mlpatterns.catalog.catalogue import get_pattern, related

    pattern = get_pattern(args.pattern)
    incoming = [r for r in related(pattern.name) if r.target == pattern.name]
    if args.json:
        _print_json({**pattern.to_dict(), "related_from": [{"pattern": r.source, "relation": r.relation}
                                                           for r in incoming]})
        return 0
    from rich.markup import escape

    console = _console()
    console.print(f"[bold]{pattern.number}. {escape(pattern.name)}[/bold]  (chapter {pattern.chapter}: "
                  f"{escape(pattern.chapter_title)})")
    if pattern.aliases:
        console.print(f"also called: {escape(', '.join(pattern.aliases))}")
    for title, text in (("Problem", pattern.problem), ("Solution", pattern.solution)):
        console.print(f"\n[bold]{title}[/bold]\n{escape(text)}")
    console.print("\n[bold]Trade-offs[/bold]")
    for item in pattern.trade_offs:
        console.print(f"- {escape(item)}")
    console.print("\n[bold]Related patterns[/bold] (the book's graph)")
    for edge in (*pattern.related, *incoming):
        arrow = "->" if edge.source == pattern.name else "<-"
        console.print(f"{arrow} {escape(edge.source)} {escape(edge.relation)} {escape(edge.target)}")
    if not pattern.related and not incoming:
        console.print("(none)")
    console.print("\n[bold]Where the book places it[/bold]")
    console.print(f"life-cycle stages: {', '.join(pattern.stages)}")
    console.print(f"use cases: {', '.join(pattern.use_cases) or '(not tied to one)'}")
    console.print(f"data types: {', '.join(pattern.data_types)}")
    console.print("\n[bold]In mlpatterns[/bold]")
    console.print(f"python: {escape(', '.join(pattern.modules))}")
    if pattern.cli:
        console.print(f"commands: {escape(', '.join(pattern.cli))}")
    spec = ", ".join(pattern.spec) if pattern.spec else "(no spec field: Python or the commands only)"
    console.print(f"spec: {escape(spec)}")
    console.print(f"docs: {escape(pattern.docs)}")
    return 0


def _graph(args: argparse.Namespace) -> int:
    from mlpatterns.catalog.catalogue import load_catalogue
    from mlpatterns.catalog.pattern_graph import (
        check_graph_output,
        draw_pattern_graph,
        pattern_graph,
    )

    output = check_graph_output(args.output)  # before loading anything: a wrong path fails fast
    if output.exists() and not args.force:
        raise FileExistsError(f"--output: {output} exists; pass --force to replace it")
    if args.depth is not None and args.around is None:
        raise ValueError("--depth: only with --around NAME")
    depth = 1 if args.depth is None else args.depth
    catalogue = load_catalogue()
    graph = pattern_graph(catalogue, chapter=args.chapter, around=args.around, depth=depth)
    draw_pattern_graph(output, catalogue, chapter=args.chapter, around=args.around, depth=depth)
    print(f"wrote {output} ({graph.number_of_nodes()} patterns, {graph.number_of_edges()} links)")
    return 0


def add_patterns_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``patterns`` and its subcommands (list, search, show, graph) to the ``mlpatterns`` parser."""
    patterns = subparsers.add_parser("patterns", help="the catalogue of the 30 patterns: list, search, show one, "
                                     "draw how they connect", description="The catalogue of the book's 30 patterns and the graph of how "
                                     "they connect (Connected Patterns, chapter 8).",
                                     epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    patterns.add_argument("--json", action="store_true", help="print the list as JSON")
    patterns.set_defaults(handler=_list)
    commands = patterns.add_subparsers(dest="patterns_command", required=False, metavar="{list,search,show,graph}")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(handler=handler)
        return parser

    listing = command("list", _list, "a table of the 30 patterns (the default)")
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print as JSON")
    search = command("search", _search, "find patterns by words and filters, best match first")
    search.add_argument("text", nargs="?", default="", help="words to look for (none: every pattern that passes "
                        "the filters)")
    search.add_argument("--chapter", metavar="N", help="a chapter number (2-7) or title")
    search.add_argument("--stage", metavar="S", help="discovery, development, deployment or monitoring")
    search.add_argument("--use-case", metavar="U", help="computer vision, natural language, predictive analytics, "
                        "recommender systems, fraud and anomaly detection")
    search.add_argument("--data-type", metavar="T", help="tabular, text, image, time series, audio")
    search.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print as JSON (with each match's score)")
    show = command("show", _show, "everything about one pattern")
    show.add_argument("pattern", metavar="NAME|NUMBER", help="a name (any case, spaces, '_' or '-') or number")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print as JSON")
    graph = command("graph", _graph, "draw the graph of how the patterns relate (mlpatterns[plot])")
    graph.add_argument("--output", type=Path, default=Path("patterns_graph.png"), metavar="FILE",
                       help="a .png or .svg file (default: patterns_graph.png); an existing file only with --force")
    graph.add_argument("--force", action="store_true", help="replace the --output file if it exists")
    graph.add_argument("--chapter", metavar="N", help="only the chapter's patterns and those they link to")
    graph.add_argument("--around", metavar="NAME", help="only the patterns near this one")
    graph.add_argument("--depth", type=int, metavar="K", help="with --around: links away (default 1)")
    return patterns
