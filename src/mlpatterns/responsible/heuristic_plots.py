"""Heuristic Benchmark (pattern 28): the models against the simple rules, drawn.

Problem: a table of every rule's valid and test metric next to each model's is read
once; where the chosen rule sits, the margin a model must clear and the share of
positives each catches are seen at a glance on a plot.

Solution: :func:`plot_heuristic_benchmark` draws the report of
:func:`~mlpatterns.responsible.heuristic_selection.select_heuristic` with each model's
:func:`~mlpatterns.responsible.heuristic_comparison.compare_with_heuristic` result. It
imports neither pandas nor scikit-learn (a cached ``mlpatterns run`` draws it again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_heuristic_benchmark"]


def plot_heuristic_benchmark(report: dict[str, Any], path: str | Path, *, title: str = "") -> Path:
    """Every heuristic's valid and test value of the primary metric next to each model's, and (binary
    classification) the share of positives each catches at the alert rate; written to ``path`` (PNG).

    ``report`` is :func:`~mlpatterns.responsible.heuristic_selection.select_heuristic`'s report with,
    under ``"models"``, :func:`compare_with_heuristic`'s result per model. The chosen heuristic's bar is
    outlined; the band above it (below, for an error) is the margin a model must clear.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlpatterns.atomic_files import save_figure

    metric, chosen = report["metric"], report["chosen"]
    heuristics = report["heuristics"]
    models = {name: c for name, c in (report.get("models") or {}).items() if c.get("model") is not None}
    caught = {name: c["model_share_caught"] for name, c in models.items() if "model_share_caught" in c}
    panels = 2 if caught else 1
    figure, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 0.45 * (len(heuristics) + len(models)) + 2.8),
                                squeeze=False)
    axis = axes[0][0]
    names = [*heuristics, *models]
    rows = np.arange(len(names))[::-1]
    for i, name in zip(rows, names, strict=True):
        if name in heuristics:
            for shift, split, colour in ((0.18, "valid", "#c9c9c9"), (-0.18, "test", "#7f7f7f")):
                value = heuristics[name][split].get(metric, np.nan)
                axis.barh(i + shift, value, height=0.34, color=colour, label=f"heuristic, {split}" if i == rows[0]
                          else None, edgecolor="black" if name == chosen else "none", linewidth=1.2)
        else:
            axis.barh(i, models[name]["model"], height=0.5, color="#4c72b0", label="model, test"
                      if name == next(iter(models)) else None)
    heuristic = heuristics[chosen]["test"][metric]
    margin = float(report.get("margin") or 0.0)
    edge = heuristic + margin if report["metric_direction"] == "maximize" else heuristic - margin
    axis.axvspan(min(heuristic, edge), max(heuristic, edge), color="#dd8452", alpha=0.25,
                 label=f"margin to clear ({margin:.3g})")
    axis.set_yticks(rows, [f"{n} (chosen)" if n == chosen else n for n in names])
    axis.set_xlabel(f"{metric} ({'higher' if report['metric_direction'] == 'maximize' else 'lower'} is better)")
    values = [heuristics[n][s].get(metric, np.nan) for n in heuristics for s in ("valid", "test")]
    values += [c["model"] for c in models.values()]
    finite = [v for v in values if np.isfinite(v)]
    if finite and report["metric_direction"] == "maximize" and min(finite) > 0.3:
        axis.set_xlim(min(finite) * 0.9, max(finite) * 1.02)  # ROC AUC lives above 0.5: show the differences
    axis.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    axis.grid(axis="x", alpha=0.3)
    if caught:
        axis = axes[0][1]
        decision = report["decision"]
        bars = {f"heuristic '{chosen}'": decision["heuristic_share_caught"], **caught}
        positions = np.arange(len(bars))[::-1]
        axis.barh(positions, list(bars.values()), color=["#7f7f7f", *["#4c72b0"] * len(caught)])
        axis.set_yticks(positions, list(bars))
        for y, share in zip(positions, bars.values(), strict=True):
            axis.text(share, y, f" {share:.1%}", va="center", fontsize=8)
        axis.set_xlim(0, min(1.0, max(bars.values()) * 1.25))
        axis.set_xlabel(f"share of {report['units']} caught flagging {decision['alert_rate']:.1%} of rows (test)")
        axis.grid(axis="x", alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path, dpi=100)
