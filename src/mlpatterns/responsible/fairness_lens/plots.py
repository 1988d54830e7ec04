"""Fairness Lens (30): plots of metrics by slice, with their intervals, and of the mitigations' trade-off.

Numbers in a table are read one at a time; a bar per slice with its interval shows at a glance
which gap is real and which slice is too small to tell (hatched: fewer than ``min_rows`` rows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_mitigations", "plot_slices"]


def _save(figure: Any, path: Path) -> Path:
    from mlpatterns.atomic_files import save_figure

    return save_figure(figure, path, dpi=110, bbox_inches="tight")


def plot_slices(result: dict[str, Any], metrics: list[str], path: str | Path, title: str = "") -> Path:
    """One panel per sensitive column and metric: a bar per slice with its confidence interval.

    Parameters
    ----------
    result : dict
        :func:`data_balance` or :func:`model_slices` output.
    metrics : list of str
        The slice metrics to draw (e.g. ``["label_rate"]`` or ``["selection_rate", "false_negative_rate"]``).
    path : path
        The PNG to write.
    title : str
        The figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = list(result["columns"])
    figure, axes = plt.subplots(len(columns), len(metrics), figsize=(4.2 * len(metrics), 0.5 + 2.6 * len(columns)),
                                squeeze=False)
    for i, column in enumerate(columns):
        slices = result["columns"][column]["slices"]
        names = [f"{s['slice']} (n={s['rows']:,})" for s in slices]
        for j, metric in enumerate(metrics):
            axis = axes[i][j]
            values = np.array([np.nan if s.get(metric) is None else s[metric] for s in slices], dtype=float)
            low = np.array([np.nan if s.get(f"{metric}_low") is None else s[f"{metric}_low"] for s in slices])
            high = np.array([np.nan if s.get(f"{metric}_high") is None else s[f"{metric}_high"] for s in slices])
            errors = np.vstack([np.nan_to_num(values - low.astype(float)), np.nan_to_num(high.astype(float) - values)])
            positions = np.arange(len(slices))
            bars = axis.barh(positions, np.nan_to_num(values), xerr=np.clip(errors, 0, None), color="#4C72B0",
                             ecolor="#333333", capsize=3)
            for bar, item in zip(bars, slices, strict=True):
                if item["tiny"]:
                    bar.set_color("#BBBBBB")
                    bar.set_hatch("//")
            axis.set_yticks(positions, names if j == 0 else [""] * len(names), fontsize=8)
            axis.invert_yaxis()
            axis.set_title(f"{metric} by {column}", fontsize=9)
            axis.grid(axis="x", alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def plot_mitigations(table: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Each mitigation's overall accuracy against its gap between slices (upper left is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for row in table:
        if row.get("gap") is None or row.get("accuracy") is None:
            continue
        label = row["method"] if row["deterministic"] else f"{row['method']} (randomized)"
        axis.scatter(row["gap"], row["accuracy"], s=50, marker="o" if row["deterministic"] else "x", label=label)
    if axis.collections:  # a legend: the methods' points often sit close together, and labels would overlap
        axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    metric = table[0].get("gap_metric", "gap") if table else "gap"
    axis.set_xlabel(f"{metric} difference between slices (test)")
    axis.set_ylabel("overall accuracy (test; upper left is better)")
    axis.grid(alpha=0.3)
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    return _save(figure, path)
