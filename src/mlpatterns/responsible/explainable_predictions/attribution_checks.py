"""Explainable Predictions (29): the checks an attribution must pass before anyone reads it.

Problem: an explainer can be wrong without saying so. SHAP 0.51's trees for a
HistGradientBoosting model with native categorical splits disagree with the model by up to
5 logits, silently; a sampled explainer can give a different answer on every call.

Solution: two checks, both against what the bundle serves.

* Completeness (:func:`completeness_errors`, :func:`check_completeness`): the baseline's
  score plus the row's attributions must give the bundle's own served output, not the
  explainer's base value. Attributions of a classifier are in log-odds; the check takes the
  logistic of the sum and compares it with the served probability (a comparison that stays
  well conditioned near 0 and 1). A regression's value is compared as it is. The error must
  stay within ``tolerance x max(1, |served|)``; beyond it :class:`CompletenessError` is raised,
  naming the worst row.
* Stability (:func:`stability`): the largest difference between the attributions of the
  same rows explained twice with the same seed (it must be 0) and with different seeds
  (the sampling error of the permutation explainer; TreeSHAP is exact, so 0 too).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["CompletenessError", "check_completeness", "completeness_errors", "stability"]


class CompletenessError(ValueError):
    """Attributions plus the baseline's score do not give the served output within the tolerance."""


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def completeness_errors(attributions: np.ndarray, baseline_score: float, served: np.ndarray,
                        space: str) -> np.ndarray:
    """Per row, ``|link^-1(baseline_score + sum of attributions) - served|``.

    ``space`` is ``"log_odds"`` (``served`` is a probability) or ``"value"``.
    """
    total = baseline_score + np.asarray(attributions, dtype=np.float64).sum(axis=1)
    served = np.asarray(served, dtype=np.float64)
    if space == "log_odds":
        return np.abs(_logistic(total) - served)
    if space == "value":
        return np.abs(total - served)
    raise ValueError(f"space must be 'log_odds' or 'value', got {space!r}")


def check_completeness(attributions: np.ndarray, baseline_score: float, served: np.ndarray, space: str,
                       tolerance: float, *, what: str = "the explanation") -> float:
    """The largest error of :func:`completeness_errors` scaled by ``max(1, |served|)``; raises past ``tolerance``."""
    errors = completeness_errors(attributions, baseline_score, served, space)
    if not len(errors):
        return 0.0
    scaled = errors / np.maximum(1.0, np.abs(np.asarray(served, dtype=np.float64)))
    worst = int(np.argmax(scaled))
    if not np.isfinite(scaled[worst]) or scaled[worst] > tolerance:
        raise CompletenessError(
            f"{what}: attributions plus the baseline's score do not give the served output: row {worst} is off by "
            f"{errors[worst]:.3g} (served {float(np.asarray(served)[worst]):.6g}; tolerance {tolerance:g} x "
            f"max(1, |served|)). The explainer does not compute what the bundle serves; do not use these "
            "attributions")
    return float(scaled.max())


def stability(explain: Any, rows: Any, seeds: tuple[int, int] = (0, 1)) -> dict[str, float]:
    """How much the attributions of ``rows`` move between calls.

    ``explain(rows, seed)`` returns attributions (rows x columns). Returns the largest
    absolute difference between two calls with ``seeds[0]`` (``same_seed``) and between
    ``seeds[0]`` and ``seeds[1]`` (``other_seed``), and the mean absolute attribution for
    scale (``mean_abs``).
    """
    first = np.asarray(explain(rows, seeds[0]), dtype=np.float64)
    again = np.asarray(explain(rows, seeds[0]), dtype=np.float64)
    other = np.asarray(explain(rows, seeds[1]), dtype=np.float64)
    return {"same_seed": float(np.max(np.abs(first - again), initial=0.0)),
            "other_seed": float(np.max(np.abs(first - other), initial=0.0)),
            "mean_abs": float(np.mean(np.abs(first))) if first.size else 0.0}
