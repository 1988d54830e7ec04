"""Chapter 8, connected patterns: the catalogue of the book's 30 patterns and the pattern advisor.

:mod:`mlpatterns.catalog.catalogue` loads the 30 patterns (problem, solution, trade-offs,
related patterns, lifecycle stages, use cases, where each lives in mlpatterns and in the spec)
from the ``patterns.yaml`` shipped with the package; :mod:`mlpatterns.catalog.pattern_graph`
draws the graph of how they connect. Importing this package stays light: the YAML is read on
first use and networkx/matplotlib are imported only when a graph is drawn.

>>> from mlpatterns.catalog import get_pattern
>>> get_pattern("repeatable splitting").number
22
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "Catalogue": "catalogue", "CatalogueError": "catalogue", "Pattern": "catalogue", "Relation": "catalogue",
    "SearchResult": "catalogue", "UnknownPatternError": "catalogue", "get_pattern": "catalogue",
    "load_catalogue": "catalogue", "patterns": "catalogue", "related": "catalogue", "search": "catalogue",
    "draw_pattern_graph": "pattern_graph",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
