"""The monitor's plots: Continued Model Evaluation (18) that a person would rather look at than read.

Problem: a table of 180 daily windows by 8 metrics and 10 columns tells nobody at a
glance whether the model is slipping, since when, and why.

Solution: four PNGs. The metric over time per version with its confidence band, the
alert thresholds as horizontal lines and the windows that crossed them marked
(:func:`plot_metric_over_time`); a heat map of drift by feature and window
(:func:`plot_drift_heatmap`); the prediction's distribution per window as quantile bands
against the reference's quantiles (:func:`plot_prediction_distribution`); the decay fit
behind the retraining interval (:func:`plot_retraining_interval`).

matplotlib is the ``plot`` extra (``pip install 'mlpatterns[plot]'``); it is imported when
a plot is drawn, with the Agg backend, and each PNG is written to a temporary file
renamed into place, so a reader never sees half a picture.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.serving.continued_evaluation.evaluation_windows import metric_direction

__all__ = ["plot_drift_heatmap", "plot_metric_over_time", "plot_prediction_distribution", "plot_retraining_interval"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError("the monitor's plots need matplotlib: pip install 'mlpatterns[plot]'") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | os.PathLike[str]) -> Path:
    """Write the figure as a PNG next to ``path`` under a temporary name, then rename it into place."""
    from mlpatterns.atomic_files import save_figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_figure(figure, path, dpi=110)


def _thresholds(thresholds: float | Mapping[str, float] | None) -> dict[str, float]:
    if thresholds is None:
        return {}
    if isinstance(thresholds, Mapping):
        return {str(k): float(v) for k, v in thresholds.items()}
    return {"alert": float(thresholds)}


def plot_metric_over_time(windows: pd.DataFrame, path: str | os.PathLike[str], *, metric: str = "roc_auc",
                          thresholds: float | Mapping[str, float] | None = None, direction: str | None = None,
                          title: str | None = None) -> Path:
    """The metric per window and version, its confidence band, alert thresholds and the windows that crossed them.

    Parameters
    ----------
    windows : pandas.DataFrame
        :func:`~mlpatterns.serving.continued_evaluation.evaluation_windows.evaluate_windows` output.
    path : path
        The PNG to write.
    metric : str, default "roc_auc"
    thresholds : float or dict of str to float, optional
        Alert levels (e.g. ``{"warning": 0.72, "retrain": 0.68}``), drawn as horizontal lines.
    direction : {"maximize", "minimize"}, optional
        Which side of a threshold is an alert; default the metric's (:func:`metric_direction`):
        below for a metric to maximise, above for one to minimise. None marks no crossing.
    """
    plt = _pyplot()
    if metric not in windows.columns:
        raise KeyError(f"windows have no column {metric!r}; they have {list(windows.columns)}")
    if direction is None:
        try:
            direction = metric_direction(metric)
        except KeyError:  # a column of the user's own: lines, no crossings
            direction = None
    levels = _thresholds(thresholds)
    figure, axis = plt.subplots(figsize=(8, 4.2))
    group_columns = [c for c in ("model", "version") if c in windows.columns and windows[c].nunique() > 1]
    groups = windows.groupby(group_columns, sort=True) if group_columns else [((), windows)]
    for i, (name, rows) in enumerate(groups):
        rows = rows.sort_values("window_start")
        middle = rows["window_start"] + (rows["window_end"] - rows["window_start"]) / 2 \
            if "window_end" in rows.columns else rows["window_start"]
        label = ", ".join(f"{c} {n}" for c, n in zip(group_columns, name if isinstance(name, tuple) else (name,),
                                                         strict=False)) or metric
        color = f"C{i % 10}"
        if f"{metric}_low" in rows.columns:
            axis.fill_between(middle, rows[f"{metric}_low"], rows[f"{metric}_high"], color=color, alpha=0.18,
                              linewidth=0)
        axis.plot(middle, rows[metric], color=color, marker="o", markersize=3, linewidth=1.2,
                  label=f"{label}" if group_columns else metric)
        if "too_small" in rows.columns and rows["too_small"].any():
            small = rows["too_small"].to_numpy(dtype=bool)
            axis.scatter(middle[small], rows[metric][small], s=28, facecolors="white", edgecolors=color, zorder=3,
                         label="too few labels" if i == 0 else None)
        for level in levels.values():
            if direction not in ("maximize", "minimize"):
                continue
            crossed = (rows[metric] < level) if direction == "maximize" else (rows[metric] > level)
            crossed = crossed.to_numpy(dtype=bool)
            if crossed.any():
                axis.scatter(middle[crossed], rows[metric][crossed], marker="x", s=50, color="tab:red", zorder=4,
                             label="crossed a threshold" if i == 0 and level == min(levels.values()) else None)
    for (name, level), style in zip(levels.items(), ("--", ":", "-.", (0, (5, 1))), strict=False):
        axis.axhline(level, color="tab:red", linestyle=style, linewidth=1, label=f"{name} {level:g}")
    axis.set_xlabel("window (event time, UTC)")
    axis.set_ylabel(metric)
    axis.set_title(title or f"{metric} per window with its confidence band", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.autofmt_xdate()
    figure.tight_layout()
    return _save(figure, path)


def plot_drift_heatmap(drift: pd.DataFrame, path: str | os.PathLike[str], *, statistic: str = "psi",
                       threshold: float | None = 0.2, columns: Sequence[str] | None = None,
                       title: str | None = None) -> Path:
    """A heat map of drift, feature by window: colour = ``statistic`` (PSI, ``js``, ``ks``, ...).

    Cells are annotated with the value when the map is small enough to read (at most 40
    windows); values above ``threshold`` are written in bold. ``drift`` is
    :func:`~mlpatterns.serving.continued_evaluation.drift.drift_windows` output.
    """
    plt = _pyplot()
    if statistic not in drift.columns:
        raise KeyError(f"drift has no column {statistic!r}; it has {list(drift.columns)}")
    table = drift.pivot_table(index="column", columns="window_start", values=statistic, aggfunc="max", dropna=False)
    if columns is not None:
        table = table.reindex(list(columns))
    table = table.loc[table.max(axis=1).sort_values(ascending=False, na_position="last").index]  # worst on top
    values = table.to_numpy(dtype=np.float64)
    figure, axis = plt.subplots(figsize=(min(2.5 + 0.45 * table.shape[1], 18), 1.2 + 0.38 * max(table.shape[0], 1)))
    top = max(np.nanmax(values) if np.isfinite(values).any() else 0.0, (threshold or 0) * 2, 1e-9)
    image = axis.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="YlOrRd", vmin=0, vmax=top)
    figure.colorbar(image, ax=axis, label=statistic, fraction=0.04, pad=0.02)
    axis.set_yticks(range(table.shape[0]), table.index)
    labels = [pd.Timestamp(t).strftime("%Y-%m-%d" if pd.Timestamp(t).hour == 0 else "%m-%d %H:%M")
              for t in table.columns]
    step = max(1, len(labels) // 30)
    axis.set_xticks(range(0, len(labels), step), labels[::step], rotation=60, ha="right", fontsize=7)
    if table.shape[1] <= 40:
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                over = threshold is not None and value > threshold
                axis.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=6.5,
                          fontweight="bold" if over else "normal", color="white" if value > 0.6 * top else "black")
    limit = f"; bold above {threshold:g}" if threshold is not None and table.shape[1] <= 40 else ""
    axis.set_title(title or f"Drift by feature and window ({statistic}{limit})", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


def plot_prediction_distribution(window_stats: Sequence[tuple[Any, Any]], reference: Any,
                                 path: str | os.PathLike[str], *, column: str = "prediction",
                                 title: str | None = None) -> Path:
    """The prediction's distribution per window against the reference's.

    A number (``prediction``): per window the median, the 25-75 % and 5-95 % bands, with the
    reference's (the bundle's test split) as horizontal lines. A category (``predicted_label``):
    each class's share per window, stacked, with the reference's shares as a bar on the left.
    ``window_stats`` is :func:`~mlpatterns.serving.continued_evaluation.drift.window_statistics`
    output (with ``prediction_reference``); ``reference`` the bundle's prediction statistics.
    """
    plt = _pyplot()
    if column not in reference.columns:
        raise KeyError(f"the reference has no column {column!r}; it has {list(reference.columns)}")
    ref = reference.columns[column]
    stamps = [pd.Timestamp(start) for start, _ in window_stats]
    figure, axis = plt.subplots(figsize=(8, 4.2))
    if ref.numeric is not None:
        levels = (0.05, 0.25, 0.5, 0.75, 0.95)
        table = np.full((len(window_stats), len(levels)), np.nan)
        for i, (_, stats) in enumerate(window_stats):
            col = stats.columns.get(column)
            if col is not None and col.numeric is not None:
                table[i] = [col.numeric.quantile(level) for level in levels]
        axis.fill_between(stamps, table[:, 0], table[:, 4], color="C0", alpha=0.15, linewidth=0, label="5-95 %")
        axis.fill_between(stamps, table[:, 1], table[:, 3], color="C0", alpha=0.3, linewidth=0, label="25-75 %")
        axis.plot(stamps, table[:, 2], color="C0", linewidth=1.4, label="median")
        for level, style in zip(levels, (":", "--", "-", "--", ":"), strict=True):
            axis.axhline(ref.numeric.quantile(level), color="tab:gray", linestyle=style, linewidth=0.9,
                         label="reference (test split)" if level == 0.5 else None)
        axis.set_ylabel(column)
    elif ref.categories is not None:
        classes = [value for value, _ in ref.categories.values]
        for _, stats in window_stats:  # classes the reference never predicted come after its own
            col = stats.columns.get(column)
            classes += [v for v, n in (col.categories.values if col is not None and col.categories else ())
                        if n and v not in classes]
        shares = np.zeros((len(window_stats), len(classes) + 1))
        for i, (_, stats) in enumerate(window_stats):
            col = stats.columns.get(column)
            counts = col.categories.as_dict() if col is not None and col.categories is not None else {}
            total = sum(counts.values()) or 1
            shares[i, :-1] = [counts.get(c, 0) / total for c in classes]
            shares[i, -1] = 1 - shares[i, :-1].sum()
        ref_total = max(ref.count, 1)
        ref_shares = [ref.categories.as_dict().get(c, 0) / ref_total for c in classes]
        names = [str(c) for c in classes] + ["other"]
        axis.stackplot(stamps, shares.T, labels=names, alpha=0.8)
        if stamps:
            bottom = 0.0
            width = (stamps[-1] - stamps[0]) / len(stamps) if len(stamps) > 1 else pd.Timedelta("1D")
            for j, share in enumerate(ref_shares):
                axis.bar(stamps[0] - width, share, bottom=bottom, width=width * 0.8, color=f"C{j % 10}",
                         edgecolor="black", linewidth=0.5, label="reference (test split)" if j == 0 else None)
                bottom += share
        axis.set_ylabel(f"share of {column}")
        axis.set_ylim(0, 1)
    else:
        raise ValueError(f"column {column!r} of the reference is neither numeric nor categorical ({ref.kind})")
    axis.set_xlabel("window (event time, UTC)")
    axis.set_title(title or f"{column} per window against the reference", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.autofmt_xdate()
    figure.tight_layout()
    return _save(figure, path)


def plot_retraining_interval(result: Any, path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """The decay fit behind the retraining interval: the windows' metric against the model's age, the fitted
    line with the lines of the slope's interval, the training (test-split) metric and the gap at age 0 (the
    fitted start against it, with the start's interval), the tolerance and the recommended interval. The title
    names both findings: the gap and the interval.
    ``result`` is a :class:`~mlpatterns.serving.continued_evaluation.retraining_interval.RetrainingInterval`."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.4))
    ages, values = np.asarray(result.ages), np.asarray(result.values)
    axis.scatter(ages, values, s=14, color="C0", label=f"{result.metric} per window")
    if np.isfinite(result.slope_per_day):
        end = max(ages.max() if len(ages) else 1.0, result.recommended_days or 0.0) * 1.05
        span = np.linspace(0, end, 50)
        axis.plot(span, result.intercept + result.slope_per_day * span, color="C1",
                  label=f"fit: {result.slope_per_day:+.3g} per day")
        for bound in (result.slope_low, result.slope_high):
            axis.plot(span, result.intercept + bound * span, color="C1", linestyle=":", linewidth=0.9)
    gap = getattr(result, "gap", float("nan"))
    if np.isfinite(result.training_metric):
        axis.axhline(result.training_metric, color="tab:gray", linestyle=":", linewidth=1,
                     label=f"training (test split) {result.training_metric:.4g}")
    if np.isfinite(gap) and np.isfinite(getattr(result, "intercept_low", float("nan"))):
        axis.errorbar([0], [result.intercept], yerr=[[result.intercept - result.intercept_low],
                                                     [result.intercept_high - result.intercept]],
                      fmt="s", color="C3", markersize=5, capsize=3,
                      label=f"start {result.intercept:.4g}: gap {gap:+.3g}"
                            + ("" if result.gap_significant else " (not significant)"))
    reference = "its own start" if getattr(result, "relative_to", "served") == "served" else "training"
    axis.axhline(result.tolerance, color="tab:red", linestyle="--", linewidth=1,
                 label=f"tolerance {result.tolerance:.4g} (from {reference})")
    if result.recommended_days is not None:
        axis.axvline(result.recommended_days, color="tab:green", linewidth=1.2,
                     label=f"retrain every {result.recommended_days:.0f} days")
    axis.set_xlabel("model age (days since the training data ended)")
    axis.set_ylabel(result.metric)
    if not result.decay_measurable:
        verdict = "no decay measurable"
    elif result.recommended_days == 0:
        verdict = "retrain at once"
    else:
        bounds = (f"{result.days_low:.0f} to {result.days_high:.0f}" if result.days_high is not None
                  else f"at least {result.days_low:.0f}")
        verdict = f"about {result.recommended_days:.0f} days ({bounds})"
    if np.isfinite(gap):
        verdict += f"; gap at age 0 {gap:+.3g}" + ("" if result.gap_significant else " (n.s.)")
    axis.set_title(title or f"Retraining interval: {verdict}", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return _save(figure, path)
