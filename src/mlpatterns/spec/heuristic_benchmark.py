"""The spec's ``baseline:`` section: the Heuristic Benchmark (28) a run's models are compared with.

``levels`` are the segments of the lookup heuristic, from finest to coarsest;
``min_count`` the fewest training rows a segment needs; ``statistic`` mean or median.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.spec._checks import expect, mapping, positive_int, string_list

__all__ = ["parse_baseline"]


def parse_baseline(raw: Any) -> dict[str, Any]:
    """Check the ``baseline:`` section; every mistake names its field."""
    baseline = mapping(raw or {}, "baseline", ("levels", "min_count", "statistic"))
    if "min_count" in baseline:
        positive_int(baseline["min_count"], "baseline.min_count")
    expect(baseline.get("statistic", "mean") in ("mean", "median"), "baseline.statistic",
           f"expected 'mean' or 'median', got {baseline.get('statistic')!r}")
    if "levels" in baseline:
        expect(isinstance(baseline["levels"], list), "baseline.levels", "expected a list of column lists")
        baseline["levels"] = [string_list(level, f"baseline.levels[{i}]") for i, level in enumerate(baseline["levels"])]
    return baseline
