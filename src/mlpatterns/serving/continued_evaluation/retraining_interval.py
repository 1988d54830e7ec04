"""How often to retrain: the retraining interval of Continued Model Evaluation (18).

Problem: retraining too rarely serves a stale model; retraining too often costs compute
and risks shipping a worse model for nothing. The book estimates the interval from how
fast the model's evaluation metric decays as the data it serves moves away from the
data it learned from.

Solution: take the metric per window (:func:`~mlpatterns.serving.continued_evaluation.
evaluation_windows.evaluate_windows`) against the age of the model, days since its
training data ended, and fit a line (ordinary least squares over the windows that are not
``too_small``; the slope's and the intercept's intervals from Student's t with n - 2 degrees
of freedom). Sliding windows (a step shorter than the window, e.g. weekly windows every day)
share most of their rows, so their residuals are correlated and n points carry the information
of only about ``n * step / window`` independent ones: the line is fitted on all the points, but
the standard errors are inflated by ``sqrt(window / step)`` and the t has ``n_eff - 2`` degrees
of freedom with ``n_eff = n * step / window`` (``effective_windows`` in the result; n when the
windows do not overlap). The fit separates two findings:

- the *gap* at age 0: the fitted intercept against the training (test-split) metric. A
  model often serves worse than its test split promised from the first day (the test split
  was other days, other traffic); that is a gap between test and serving, not decay, and
  retraining sooner does not close it;
- the *decay*: the slope. The interval recommended is the age at which the line has
  worsened by ``drop`` (2 %) from its own starting level, the intercept
  (``relative_to="served"``, the default), with the bounds from the slope's interval. The
  older definition, the age at which the line crosses the training metric worsened by
  ``drop``, is ``relative_to="training"`` (0 days when serving starts beyond it).

When the slope's interval holds 0, or the metric improves, no decay is measurable and no
interval is recommended: the reasoning says so and how long the windows cover.

Examples
--------
>>> import pandas as pd
>>> windows = pd.DataFrame({"window_start": pd.date_range("2013-07-01", periods=6, freq="30D"),
...                         "roc_auc": [0.80, 0.79, 0.785, 0.77, 0.765, 0.75], "too_small": False})
>>> result = estimate_retraining_interval(windows, trained_at="2013-07-01", training_metric=0.83, window="30d")
>>> round(result.slope_per_day * 30, 4), round(result.gap, 4), result.gap_significant, round(result.recommended_days)
(-0.0097, -0.0242, True, 50)
>>> round(estimate_retraining_interval(windows, trained_at="2013-07-01", training_metric=0.83, window="30d",
...                                    relative_to="training").recommended_days)
0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.serving.continued_evaluation.evaluation_windows import (
    as_utc_naive,
    metric_direction,
    parse_window,
)

__all__ = ["DEFAULT_DROP", "RetrainingInterval", "estimate_retraining_interval", "retraining_interval"]

DEFAULT_DROP = 0.02  # tolerance: the served starting level (or the training metric) 2 % worse
RELATIVE_TO = ("served", "training")


@dataclass(frozen=True)
class RetrainingInterval:
    """The fitted decay of a metric with the model's age, and the interval it recommends.

    Attributes
    ----------
    metric, direction : str
        The metric and whether higher (``"maximize"``) or lower (``"minimize"``) is better.
    slope_per_day, slope_low, slope_high : float
        The fitted change of the metric per day of age and its confidence interval (NaN with fewer than 3 windows).
    intercept : float
        The fitted metric at age 0 (the end of the training data): the level serving starts at.
    training_metric : float
        The metric at training time (the bundle's test metric), NaN when not given.
    tolerance : float
        The level not to cross: the intercept (``relative_to="served"``) or the training
        metric (``"training"``) worsened by ``drop``, or the level given.
    decay_measurable : bool
        Whether the slope's interval lies entirely on the worsening side of 0.
    recommended_days : float or None
        The age at which the fitted line crosses the tolerance (0 when it starts beyond it,
        possible only with ``relative_to="training"`` or a tolerance given); None when no
        decay is measurable.
    days_low, days_high : float or None
        The same crossing for the slope's pessimistic and optimistic bounds (days_high is
        None when that bound shows no decay).
    reasoning : str
        The recommendation in words, with the figures it rests on.
    ages, values : tuple of float
        The points fitted (age in days at each window's middle, metric).
    gap, intercept_low, intercept_high : float
        ``intercept - training_metric`` (negative: serving starts below a metric to maximize),
        NaN without a training metric; the intercept's confidence interval.
    gap_significant : bool
        Whether the intercept's interval excludes the training metric.
    relative_to : {"served", "training"}
        What the default tolerance was measured from.
    effective_windows : float
        How many independent windows the intervals rest on: ``n * step / window`` for sliding
        windows, n for tumbling ones (NaN when nothing was fitted).
    """

    metric: str
    direction: str
    slope_per_day: float
    slope_low: float
    slope_high: float
    intercept: float
    training_metric: float
    tolerance: float
    decay_measurable: bool
    recommended_days: float | None
    days_low: float | None
    days_high: float | None
    reasoning: str
    confidence: float = 0.95
    ages: tuple[float, ...] = field(default=(), repr=False)
    values: tuple[float, ...] = field(default=(), repr=False)
    gap: float = math.nan
    intercept_low: float = math.nan
    intercept_high: float = math.nan
    gap_significant: bool = False
    relative_to: str = "served"
    effective_windows: float = math.nan


def estimate_retraining_interval(windows: pd.DataFrame, *, trained_at: Any, metric: str = "roc_auc",
                        training_metric: float | None = None, tolerance: float | None = None,
                        drop: float = DEFAULT_DROP, version: str | None = None, window: str | timedelta | None = None,
                        confidence: float = 0.95, include_small: bool = False,
                        relative_to: str = "served", step: str | timedelta | None = None) -> RetrainingInterval:
    """Fit the metric's decay with age and recommend the retraining interval.

    Parameters
    ----------
    windows : pandas.DataFrame
        :func:`evaluate_windows` output (``window_start``, the metric, ``too_small``; ``window_end``
        or ``window`` for the windows' middles; ``version`` when several versions are there).
    trained_at : datetime or str
        When the model's training data ended (UTC): age 0.
    metric : str, default "roc_auc"
        A column of ``windows`` with a direction (:func:`metric_direction`).
    training_metric : float, optional
        The metric at training time (e.g. the bundle's test metric): the gap at age 0 is measured
        against it (``relative_to="training"`` needs it; without it that falls back to the intercept).
    tolerance : float, optional
        The level the metric must not cross; default the starting level worsened by ``drop``.
    drop : float, default 0.02
        Relative worsening that defines the default tolerance (0.02: 2 % of the starting level).
    version : str, optional
        The version to fit when ``windows`` holds several.
    window : str or timedelta, optional
        Window length, when ``windows`` has no ``window_end`` column.
    confidence : float, default 0.95
        Level of the slope's interval.
    include_small : bool, default False
        Fit windows flagged ``too_small`` as well.
    relative_to : {"served", "training"}, default "served"
        The starting level the default tolerance is measured from: the fitted intercept, the
        level serving actually starts at (the interval measures decay only; a gap between the
        test split and serving is reported apart, as ``gap``), or ``training_metric`` (the
        older definition: a gap counts as decay, and serving that starts beyond the tolerance
        recommends 0 days).
    step : str or timedelta, optional
        Distance between window starts; default the most common distance between the starts in
        ``windows``. With ``step < window`` the windows overlap and the intervals rest on
        ``n * step / window`` effective windows (see the module's docstring).

    Returns
    -------
    RetrainingInterval
    """
    from scipy import stats

    direction = metric_direction(metric)
    if direction is None:
        raise ValueError(f"metric {metric!r} has no better direction; choose one such as roc_auc, accuracy or rmse")
    if metric not in windows.columns or "window_start" not in windows.columns:
        raise KeyError(f"windows need the columns window_start and {metric!r}; they have {list(windows.columns)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie between 0 and 1, not {confidence!r}")
    if not (isinstance(drop, (int, float)) and 0 <= drop < 1):
        raise ValueError(f"drop must be a share between 0 and 1 (0.02 = 2 %), not {drop!r}")
    if relative_to not in RELATIVE_TO:
        raise ValueError(f"relative_to must be one of {', '.join(RELATIVE_TO)}, not {relative_to!r}")
    rows = windows
    if "version" in rows.columns and rows["version"].nunique() > 1:
        if version is None:
            raise ValueError(f"windows hold versions {sorted(rows['version'].unique())}: name one with version=")
        rows = rows[rows["version"] == version]
    elif version is not None and "version" in rows.columns:
        rows = rows[rows["version"] == version]
    starts = np.sort(pd.to_datetime(rows["window_start"]).unique())
    if step is not None:
        step_days = pd.Timedelta(parse_window(step, name="step")) / pd.Timedelta(days=1)
    elif len(starts) > 1:
        gaps = pd.Series(np.diff(starts) / pd.Timedelta(days=1))
        step_days = float(gaps[gaps > 0].mode().min())
    else:
        step_days = math.nan
    if not include_small and "too_small" in rows.columns:
        rows = rows[~rows["too_small"].astype(bool)]
    rows = rows[np.isfinite(rows[metric].to_numpy(dtype=np.float64, na_value=np.nan))]
    start = pd.to_datetime(rows["window_start"])
    if "window_end" in rows.columns:
        length = pd.to_datetime(rows["window_end"]) - start
        middle = start + length / 2
        window_days = float((length / pd.Timedelta(days=1)).median()) if len(rows) else math.nan
    elif window is not None:
        middle = start + pd.Timedelta(parse_window(window)) / 2
        window_days = pd.Timedelta(parse_window(window)) / pd.Timedelta(days=1)
    else:
        raise KeyError("windows have no window_end column: pass window= (their length)")
    # overlap: each row sits in about window / step windows, so n points are worth n * step / window
    overlap = window_days / step_days if np.isfinite(step_days) and step_days > 0 and np.isfinite(window_days) else 1.0
    overlap = max(float(overlap), 1.0)
    trained = pd.Timestamp(as_utc_naive(trained_at, "trained_at"))
    ages = ((middle - trained) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64)
    values = rows[metric].to_numpy(dtype=np.float64)
    better = 1.0 if direction == "maximize" else -1.0
    nan = math.nan

    effective = len(values) / overlap
    if len(values) < 3 or effective < 3 or np.ptp(ages) == 0:
        slope = low = high = intercept = intercept_low = intercept_high = nan
        if len(values):
            intercept = float(values.mean())
    else:
        fit = stats.linregress(ages, values)
        slope, intercept = float(fit.slope), float(fit.intercept)
        inflate = math.sqrt(overlap)  # the residuals of overlapping windows are correlated
        t = float(stats.t.ppf(0.5 + confidence / 2, effective - 2))
        low, high = slope - t * inflate * float(fit.stderr), slope + t * inflate * float(fit.stderr)
        intercept_low = intercept - t * inflate * float(fit.intercept_stderr)
        intercept_high = intercept + t * inflate * float(fit.intercept_stderr)
    trained = float(training_metric) if training_metric is not None else nan
    gap = intercept - trained
    gap_significant = bool(np.isfinite(trained) and np.isfinite(intercept_low)
                           and not intercept_low <= trained <= intercept_high)
    from_training = relative_to == "training" and training_metric is not None
    base = trained if from_training else intercept
    level = float(tolerance) if tolerance is not None else base - better * drop * abs(base)
    measurable = bool(np.isfinite(slope) and min(-better * low, -better * high) > 0)

    def crossing(rate: float) -> float | None:
        if not np.isfinite(rate) or better * rate >= 0:
            return None
        return max((level - intercept) / rate, 0.0)

    days = crossing(slope) if measurable else None
    pessimistic = crossing(low if better > 0 else high) if measurable else None
    optimistic = crossing(high if better > 0 else low) if measurable else None
    span = f"{len(values)} windows, ages {ages.min():.0f} to {ages.max():.0f} days" if len(values) else "no windows"
    if len(values) and overlap > 1:
        span += (f"; overlapping, {window_days:g}-day windows every {step_days:g} days, worth {effective:.1f} "
                 "independent ones")
    if tolerance is not None:
        rule = f"tolerance {level:.4g}"
    elif from_training:
        rule = f"tolerance {level:.4g} (the training {metric} {trained:.4g} worsened by {drop:.0%})"
    else:
        rule = f"tolerance {level:.4g} (its own start worsened by {drop:.0%})"
    if not np.isfinite(slope):
        reasoning = (f"Too few windows to fit a decay ({span}; at least 3 independent ones at different ages are "
                     "needed): "
                     f"no interval recommended yet.")
    elif not measurable:
        trend = "improves" if better * slope > 0 else "worsens"
        reasoning = (f"No decay of {metric} is measurable over {span}: it {trend} by {abs(slope):.3g} per day, and the "
                     f"{confidence:.0%} interval {low:+.3g} to {high:+.3g} holds 0. No interval is recommended from "
                     f"the metric alone; retrain at least every {ages.max():.0f} days (the span observed) or when a "
                     "drift or metric alert fires.")
    else:
        bounds = f"{pessimistic:.0f} to {optimistic:.0f}" if optimistic is not None else f"at least {pessimistic:.0f}"
        fast, slow = sorted([-better * low, -better * high], reverse=True)
        reasoning = (f"{metric} worsens by {-better * slope:.3g} per day ({confidence:.0%} interval {slow:.3g} to "
                     f"{fast:.3g}) over {span}. "
                     + (f"The fitted line ({intercept:.4g} at age 0) starts beyond the {rule}: retrain at once."
                        if days == 0 else
                        f"The fitted line ({intercept:.4g} at age 0) crosses the {rule} after {days:.0f} days "
                        f"({bounds} days for the slope's interval): retrain about every {days:.0f} days."))
    if np.isfinite(gap):
        worse = better * gap < 0
        reasoning += (f" At age 0 serving starts at {intercept:.4g} ({confidence:.0%} interval {intercept_low:.4g} to "
                      f"{intercept_high:.4g}) against {trained:.4g} on the test split: "
                      + (f"a gap of {gap:+.3g} ({gap / abs(trained):+.1%}), "
                         + ("worse" if worse else "better") + " from the start"
                         + (", a difference between the test split and what is served (other days, other "
                            "traffic), not decay: retraining more often does not close it, a test split closer to "
                            "serving measures it" if worse else "")
                         + "." if gap_significant else f"no significant gap ({gap:+.3g})."))
    return RetrainingInterval(
        metric=metric, direction=direction, slope_per_day=slope, slope_low=low, slope_high=high, intercept=intercept,
        training_metric=trained, tolerance=level, decay_measurable=measurable, recommended_days=days,
        days_low=pessimistic, days_high=optimistic, reasoning=reasoning, confidence=confidence,
        ages=tuple(float(a) for a in ages), values=tuple(float(v) for v in values), gap=gap,
        intercept_low=intercept_low, intercept_high=intercept_high, gap_significant=gap_significant,
        relative_to=relative_to, effective_windows=float(effective) if len(values) else nan)


# The module's own name: the package exports the function as estimate_retraining_interval, since a package
# attribute named like its submodule would be replaced by the submodule once that is imported.
retraining_interval = estimate_retraining_interval
