"""Columns that leak the target: known only after the outcome, or computed from it.

Problem: a table handed over for training often holds what happened after the event the
model must predict (a flight's departure delay and arrival time when the question is
whether it will arrive late). A model trained with them scores near perfectly on held-out
rows and is useless in serving, where those columns do not exist yet.

Solution: four content-based tests, each on a held-out part of a row sample (the models
never score the rows they were fitted on), never on column names:

1. **Alone**: a column whose one-feature gradient-boosted model reaches a held-out score
   of at least ``threshold`` (ROC AUC for a class, R² for a value; 0.95 by default).
2. **Copy**: a numeric column that is the numeric target in its own units plus noise: a
   least-squares line ``target ~ column`` with slope in [0.8, 1.25] and R² >= 0.6 (the
   same quantity measured at an earlier stage of the outcome, such as a departure delay
   for an arrival delay).
3. **Derived**: a column of at most 20 categories (or 0/1) that the numeric target alone
   predicts with a held-out ROC AUC of at least 0.99: a band or flag computed from the
   outcome (a low-birth-weight flag next to the birth weight).
4. **Pair**: two numeric columns that together predict the target at least as well as
   the weakest leak found by 1-3 (less 0.05), or ``threshold`` when none was, and better
   than either alone by at least 0.15: the target (or a leak) is a function of the two
   (an arrival delay from the arrival time and the scheduled arrival time). Of the two,
   the one that predicts the target better alone is left out, and the test repeats.

The single-column scores are kept: the spec writer picks the Heuristic Benchmark's (28)
segments from them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlpatterns.catalog.advisor.profiling import TableProfile, apply_positive_when

__all__ = ["ALONE_THRESHOLD", "COPY_MIN_R2", "COPY_SLOPE", "DERIVED_THRESHOLD", "PAIR_MIN_GAIN", "Leak", "LeakReport",
           "find_leaks"]

ALONE_THRESHOLD = 0.95
COPY_SLOPE = (0.8, 1.25)
COPY_MIN_R2 = 0.6
PAIR_MIN_GAIN = 0.15  # and at least this above either alone: an interaction, not two strong columns adding up
PAIR_BELOW_LEAK = 0.05  # a pair within this of a leak's score rebuilds the leak
DERIVED_THRESHOLD = 0.99  # the target predicts a few-valued column this well: the column is computed from it
DERIVED_MAX_VALUES = 20
PAIR_CANDIDATES = 8  # pairs among the numeric columns with the best single scores
_CANDIDATE_KINDS = ("numeric", "categorical", "boolean", "time")


@dataclass(frozen=True)
class Leak:
    """A column left out, the test that caught it, its held-out score and the reason in words."""

    column: str
    rule: str  # alone, copy, derived or pair
    score: float
    reason: str


@dataclass
class LeakReport:
    """Each candidate column's one-feature held-out score, and the leaks found."""

    metric: str
    rows: int
    scores: dict[str, float] = field(default_factory=dict)
    leaks: list[Leak] = field(default_factory=list)

    @property
    def leaked(self) -> set[str]:
        return {leak.column for leak in self.leaks}


def _labels(frame: pd.DataFrame, profile: TableProfile) -> tuple[np.ndarray, np.ndarray | None]:
    """The target as the model sees it (0/1, class codes or values) and the raw number when there is one."""
    target = profile.target
    values = frame[target.name]
    if target.positive_when is not None:
        return apply_positive_when(values, target.positive_when), values.to_numpy(dtype=float)
    if target.task == "regression":
        numbers = values.to_numpy(dtype=float)
        return numbers, numbers
    return pd.Categorical(values.astype(str), categories=target.classes).codes.astype(np.int64), None


def _encoded(values: pd.Series, kind: str, y: np.ndarray, fit: np.ndarray, task: str) -> np.ndarray:
    """One column as numbers: times as epoch seconds, categories by their mean target on the fit rows."""
    if kind == "time":
        times = pd.to_datetime(values.astype(str) if values.dtype == object else values, utc=True,
                               errors="coerce", format="ISO8601")
        return (times - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
    if kind == "numeric":
        return values.to_numpy(dtype=float, na_value=np.nan)
    codes, uniques = pd.factorize(values.astype(str).where(values.notna(), None))
    if task == "multiclass":  # frequency rank on the fit rows
        counts = np.bincount(codes[fit & (codes >= 0)], minlength=len(uniques)).astype(float)
        rank = np.argsort(np.argsort(-counts)).astype(float)
        return np.where(codes >= 0, rank[np.maximum(codes, 0)], np.nan)
    sums = np.bincount(codes[fit & (codes >= 0)], weights=y[fit & (codes >= 0)], minlength=len(uniques))
    counts = np.bincount(codes[fit & (codes >= 0)], minlength=len(uniques))
    means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    encoded = np.where(codes >= 0, means[np.maximum(codes, 0)], np.nan)
    return encoded


def _score(x: np.ndarray, y: np.ndarray, fit: np.ndarray, task: str, seed: int) -> float:
    """The held-out score of a small gradient-boosted model on the columns of ``x``."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import r2_score, roc_auc_score

    held = ~fit
    params = {"max_iter": 40, "max_leaf_nodes": 15, "max_bins": 63, "early_stopping": False, "random_state": seed}
    if task == "regression":
        model = HistGradientBoostingRegressor(**params).fit(x[fit], y[fit])
        return float(r2_score(y[held], model.predict(x[held])))
    if len(np.unique(y[fit])) < 2 or len(np.unique(y[held])) < 2:
        return float("nan")
    model = HistGradientBoostingClassifier(**params).fit(x[fit], y[fit])
    proba = model.predict_proba(x[held])
    if task == "classification":
        return float(roc_auc_score(y[held], proba[:, 1]))
    import warnings

    with warnings.catch_warnings():  # a class absent from the held-out rows: undefined, NaN
        warnings.simplefilter("ignore")
        try:
            return float(roc_auc_score(y[held], proba, multi_class="ovr", labels=model.classes_))
        except ValueError:
            return float("nan")


def _derived_score(values: pd.Series, raw: np.ndarray, fit: np.ndarray, seed: int) -> float | None:
    """How well the numeric target alone predicts a column of few categories (held-out ROC AUC), or None."""
    present = values.notna().to_numpy() & np.isfinite(raw)
    codes, uniques = pd.factorize(values.astype(str).where(values.notna(), None))
    if not 2 <= len(uniques) <= DERIVED_MAX_VALUES or present.sum() < 50:
        return None
    task = "classification" if len(uniques) == 2 else "multiclass"
    score = _score(raw[present][:, None], codes[present], fit[present], task, seed)
    return None if np.isnan(score) else round(score, 4)


def _copy_fit(x: np.ndarray, raw: np.ndarray) -> tuple[float, float] | None:
    both = np.isfinite(x) & np.isfinite(raw)
    if both.sum() < 30 or np.std(x[both]) == 0:
        return None
    slope, _ = np.polyfit(x[both], raw[both], 1)
    r = np.corrcoef(x[both], raw[both])[0, 1]
    return float(slope), float(r * r)


def find_leaks(frame: pd.DataFrame, profile: TableProfile, *, sample_rows: int = 20_000, seed: int = 0,
               threshold: float = ALONE_THRESHOLD, exclude: Iterable[str] = ()) -> LeakReport:
    """Test every candidate column of ``frame`` for leaking the target.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table (its target column included).
    profile : TableProfile
        From :func:`~mlpatterns.catalog.advisor.profiling.profile_table` on ``frame``.
    sample_rows : int
        Rows (with a target value) the tests use, drawn with ``seed``; 70 % fit the
        one- and two-column models, 30 % score them.
    threshold : float
        The held-out score (ROC AUC, or R² for a value) from which one column alone is a leak.
    exclude : iterable of str
        Columns not to test (the caller's keys, for instance).

    Returns
    -------
    LeakReport
    """
    import sklearn.ensemble  # noqa: F401  (loads OpenMP, so that the limit below reaches it)
    from threadpoolctl import threadpool_limits

    # one thread: OpenMP's start-up costs more than these small fits (measured 20x slower on 2 busy cores)
    with threadpool_limits(1):
        return _find_leaks(frame, profile, sample_rows=sample_rows, seed=seed, threshold=threshold, exclude=exclude)


def _find_leaks(frame: pd.DataFrame, profile: TableProfile, *, sample_rows: int, seed: int, threshold: float,
                exclude: Iterable[str]) -> LeakReport:
    task = profile.target.task
    rows = frame[frame[profile.target.name].notna()]
    if len(rows) > sample_rows:
        rows = rows.sample(sample_rows, random_state=seed)
    y, raw = _labels(rows, profile)
    fit = np.random.default_rng(seed).random(len(rows)) < 0.7
    skip = set(exclude)
    candidates = {n: c for n, c in profile.columns.items() if c.kind in _CANDIDATE_KINDS and n not in skip}
    report = LeakReport(metric="R²" if task == "regression" else "ROC AUC", rows=len(rows))
    encoded = {n: _encoded(rows[n], c.kind, y, fit, task) for n, c in candidates.items()}
    for name, x in encoded.items():
        report.scores[name] = round(_score(x[:, None], y, fit, task, seed), 4)
    for name, score in report.scores.items():
        if score >= threshold:
            report.leaks.append(Leak(name, "alone", score, f"alone predicts the target with held-out "
                                     f"{report.metric} {score:.3f} >= {threshold}: known only with the outcome"))
            continue
        copy = _copy_fit(encoded[name], raw) if raw is not None and candidates[name].kind == "numeric" else None
        if copy is not None and COPY_SLOPE[0] <= copy[0] <= COPY_SLOPE[1] and copy[1] >= COPY_MIN_R2:
            report.leaks.append(Leak(name, "copy", score, f"the target in its own units (slope {copy[0]:.2f}, "
                                     f"R² {copy[1]:.2f}): the outcome measured at an earlier stage; held-out "
                                     f"{report.metric} alone {score:.3f}"))
            continue
        derived = _derived_score(rows[name], raw, fit, seed) if raw is not None else None
        if derived is not None and derived >= DERIVED_THRESHOLD:
            report.leaks.append(Leak(name, "derived", derived, f"the target alone predicts it with held-out ROC AUC "
                                     f"{derived:.3f} >= {DERIVED_THRESHOLD}: computed from the outcome (a band or "
                                     f"flag of the target); {report.metric} alone {score:.3f}"))
    _pair_leaks(report, encoded, candidates, y, fit, task, seed, threshold)
    return report


def _pair_leaks(report: LeakReport, encoded: Mapping[str, np.ndarray], candidates: Mapping[str, object],
                y: np.ndarray, fit: np.ndarray, task: str, seed: int, threshold: float) -> None:
    bar = min([threshold] + [leak.score - PAIR_BELOW_LEAK for leak in report.leaks])
    scored: dict[tuple[str, str], float] = {}
    while True:
        numeric = [n for n in encoded if candidates[n].kind in ("numeric", "time") and n not in report.leaked
                   and np.isfinite(report.scores[n])]
        top = sorted(numeric, key=lambda n: -report.scores[n])[:PAIR_CANDIDATES]
        found = None
        for a, b in itertools.combinations(top, 2):
            if (a, b) not in scored:
                scored[(a, b)] = round(_score(np.column_stack([encoded[a], encoded[b]]), y, fit, task, seed), 4)
            together, best_alone = scored[(a, b)], max(report.scores[a], report.scores[b])
            rebuilds = together >= bar and together - best_alone >= PAIR_MIN_GAIN
            if rebuilds and (found is None or together > found[2]):
                found = (a, b, together)
        if found is None:
            return
        a, b, together = found
        drop, keep = (a, b) if report.scores[a] >= report.scores[b] else (b, a)
        report.leaks.append(Leak(drop, "pair", together, f"with {keep} predicts the target with held-out "
                                 f"{report.metric} {together:.3f} (alone {report.scores[drop]:.3f}, {keep} alone "
                                 f"{report.scores[keep]:.3f}): the target is a function of the two; {drop}, the "
                                 f"stronger alone, is left out"))
