"""Explainable Predictions (29): global importance of each raw input column, and its plot.

Problem: local attributions answer "why this prediction?"; a model's owner also asks which
inputs the model leans on overall, in the columns the data has.

Solution: the mean absolute attribution of each raw column over a bounded sample of rows
(:func:`global_importance`), sorted, and a horizontal bar chart of it
(:func:`plot_global_importance`, matplotlib with the Agg backend, written to a temporary
file and renamed into place).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["global_importance", "importance_unit", "plot_global_importance"]


def global_importance(attributions: pd.DataFrame) -> dict[str, float]:
    """Mean ``|attribution|`` per column, largest first."""
    means = attributions.abs().mean(axis=0) if len(attributions) else pd.Series(0.0, index=attributions.columns)
    return {str(c): float(v) for c, v in means.sort_values(ascending=False, kind="stable").items()}


def plot_global_importance(importance: dict[str, float], path: str | os.PathLike[str], *, title: str,
                           unit: str) -> Path:
    """A bar per column of ``importance`` (largest on top) saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlpatterns.atomic_files import save_figure

    path = Path(path)
    names = list(importance)[::-1]
    values = np.array([importance[n] for n in names])
    figure, axes = plt.subplots(figsize=(6.4, 0.45 * len(names) + 1.4))
    try:
        axes.barh(names, values, color="#4C72B0")
        axes.set_xlabel(f"mean |attribution| ({unit})")
        axes.set_title(title, fontsize=10)
        for y, value in enumerate(values):
            axes.text(value, y, f" {value:.3g}", va="center", fontsize=8)
        axes.set_xlim(0, max(float(values.max(initial=0.0)) * 1.2, 1e-12))
        figure.tight_layout()
    except BaseException:
        plt.close(figure)
        raise
    return save_figure(figure, path, dpi=110)


def importance_unit(space: Any) -> str:
    """How an attribution is measured in ``space`` (for labels)."""
    return "log-odds" if space == "log_odds" else "target units"
