"""Fairness Lens (30): mitigations of a gap between slices, compared in one table with their cost.

Finding a gap is half the work; the other half is choosing what to give up to close it. Each
mitigation here is measured on the same test rows as the served model: its overall accuracy,
the cost in accuracy against the served model, the gap it leaves (the difference of the
equalized metric between the slices that are not tiny) and how much of the gap it removes.

* ``slice_thresholds``: the served scores with one decision threshold per slice, chosen on
  the validation split so that each slice's metric (e.g. false negative rate) equals the
  served model's overall value there. Deterministic, but serving must know the sensitive
  column: it has to be an input of the bundle's signature (the table says so).
* ``reweighting``: a copy of the model retrained with Kamiran and Calders' reweighing:
  each (slice, label) cell weighted ``P(slice) P(label) / P(slice, label)``, so that in the
  weighted training rows the label is independent of the slice while every slice keeps its
  share and the label its overall rate. The copy is a scikit-learn HistGradientBoostingClassifier on the
  bundle's transformed features, compared with the same learner unweighted (the
  ``unweighted_reference`` row), so the weights' own effect is visible.
* ``exponentiated_gradient``: fairlearn's reductions approach
  (:class:`~fairlearn.reductions.ExponentiatedGradient`) with the constraint matching the
  equalized metric. Its ``predict`` draws each decision at random from a mixture of models,
  which a stateless serving function must not do; here the decision is made deterministic
  (the mixture's weighted vote, positive when it reaches 0.5) and the row is for analysis
  only.
* ``threshold_optimizer``: fairlearn's :class:`~fairlearn.postprocessing.ThresholdOptimizer`
  on the served scores, fitted on the validation split. Its decisions are randomized between
  two thresholds per slice: the table gives them with a fixed seed (repeatable) and counts
  the test decisions that another seed changes. Analysis only; ``slice_thresholds`` is its
  deterministic counterpart.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["EQUALIZED_METRICS", "MITIGATIONS", "THRESHOLD_CONSTRAINTS", "compare_mitigations", "reweighting_weights", "slice_thresholds"]

#: the methods compare_mitigations knows
MITIGATIONS = ("slice_thresholds", "threshold_optimizer", "reweighting", "exponentiated_gradient")

#: the metric a mitigation equalizes -> the fairlearn ThresholdOptimizer constraint that bounds its gap
THRESHOLD_CONSTRAINTS = {"false_negative_rate": "true_positive_rate_parity", "selection_rate": "demographic_parity",
                         "false_positive_rate": "false_positive_rate_parity"}

#: the metric a mitigation equalizes -> the fairlearn reductions constraint that bounds its gap
EQUALIZED_METRICS = {"false_negative_rate": "TruePositiveRateParity", "selection_rate": "DemographicParity",
                     "false_positive_rate": "FalsePositiveRateParity"}


def _rows_of(metric: str, y: np.ndarray) -> np.ndarray:
    """The rows the metric is a rate over: the positives (FNR), the negatives (FPR), all rows (selection)."""
    if metric == "false_negative_rate":
        return y == 1
    if metric == "false_positive_rate":
        return y == 0
    return np.ones(len(y), dtype=bool)


def _rate(metric: str, y: np.ndarray, decision: np.ndarray) -> float:
    rows = _rows_of(metric, y)
    if not rows.any():
        return math.nan
    if metric == "false_negative_rate":
        return float(np.mean(decision[rows] == 0))
    return float(np.mean(decision[rows] == 1))


def slice_thresholds(scores: Any, y: Any, slices: Any, threshold: float, metric: str = "false_negative_rate",
                     min_rows: int = 30) -> tuple[dict[str, float], float]:
    """One decision threshold per slice that gives each slice the overall ``metric`` of ``threshold``.

    Parameters
    ----------
    scores, y, slices : array-like
        Validation scores (P(positive)), 0/1 labels and slice labels.
    threshold : float
        The served threshold; its overall ``metric`` on these rows is the target of every slice.
    metric : {"false_negative_rate", "selection_rate", "false_positive_rate"}
    min_rows : int
        A slice with fewer rows that the metric counts keeps ``threshold``.

    Returns
    -------
    thresholds : dict
        Slice label to its threshold (a deterministic rule: positive when score >= threshold).
    target : float
        The overall metric every slice is brought to.
    """
    scores, y, slices = np.asarray(scores, dtype=np.float64), np.asarray(y), np.asarray(slices, dtype=object)
    target = _rate(metric, y, (scores >= threshold).astype(int))
    chosen = {}
    for name in sorted(set(slices.tolist())):
        mask = (slices == name) & _rows_of(metric, y)
        if mask.sum() < min_rows:
            chosen[name] = float(threshold)
            continue
        values = np.sort(scores[mask])
        # FNR: the share of the slice's positives below the threshold; FPR/selection: the share at or above it
        share_below = target if metric == "false_negative_rate" else 1 - target
        chosen[name] = float(np.quantile(values, min(max(share_below, 0.0), 1.0), method="inverted_cdf")) \
            if 0 < share_below < 1 else float(threshold)
    return chosen, target


def _score_column() -> Any:
    """A fitted classifier whose P(positive) is its input's first column: the served scores, for fairlearn's
    post-processing (a private adapter, not an estimator to fit)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class ScoreColumn(ClassifierMixin, BaseEstimator):
        def fit(self, X: Any, y: Any = None) -> Any:
            self.classes_ = np.array([0, 1])
            return self

        def predict_proba(self, X: Any) -> np.ndarray:
            scores = np.asarray(X, dtype=np.float64)[:, 0]
            return np.column_stack([1 - scores, scores])

    return ScoreColumn().fit(None)


def _threshold_optimizer_row(y_valid: Any, scores_valid: Any, sensitive_valid: Any, y_test: np.ndarray,
                             scores_test: np.ndarray, s_test: np.ndarray, metric: str, min_rows: int,
                             random_state: int) -> dict[str, Any]:
    from fairlearn.postprocessing import ThresholdOptimizer

    optimizer = ThresholdOptimizer(estimator=_score_column(), constraints=THRESHOLD_CONSTRAINTS[metric],
                                   objective="accuracy_score", prefit=True, predict_method="predict_proba")
    optimizer.fit(np.asarray(scores_valid, dtype=np.float64).reshape(-1, 1), np.asarray(y_valid, dtype=np.int64),
                  sensitive_features=np.asarray(sensitive_valid, dtype=object))
    scores = scores_test.reshape(-1, 1)
    decided = np.asarray(optimizer.predict(scores, sensitive_features=s_test, random_state=random_state))
    again = np.asarray(optimizer.predict(scores, sensitive_features=s_test, random_state=random_state + 1))
    changed = int(np.sum(decided != again))
    row = _measure("threshold_optimizer", y_test, decided.astype(int), s_test, metric, min_rows)
    row.update(deterministic=False, needs_sensitive_at_serving=True, servable=False, randomized_decisions=changed,
               note=f"fairlearn ThresholdOptimizer ({THRESHOLD_CONSTRAINTS[metric]}) on the served scores, fitted "
                    f"on valid; randomized: another seed changes {changed} of {len(decided)} test decisions "
                    f"(seed {random_state} here); analysis only")
    return row


def reweighting_weights(y: Any, slices: Any) -> np.ndarray:
    """Kamiran and Calders' reweighing: each row of cell (s, y) weighs ``P(s) P(y) / P(s, y)``.

    In the weighted rows every slice has the overall label rate (the label is independent of
    the slice), each slice keeps its share of the rows and each label its overall rate; the
    weights sum to the row count.

    >>> reweighting_weights([1, 0, 0, 0, 1, 1, 1, 0], ["a", "a", "a", "a", "b", "b", "b", "b"]).round(3).tolist()
    [2.0, 0.667, 0.667, 0.667, 0.667, 0.667, 0.667, 2.0]
    """
    y, slices = np.asarray(y), np.asarray(slices, dtype=object)
    _, slice_of, slice_counts = np.unique(slices, return_inverse=True, return_counts=True)
    _, label_of, label_counts = np.unique(y, return_inverse=True, return_counts=True)
    cell = slice_of * len(label_counts) + label_of
    cell_counts = np.bincount(cell, minlength=len(slice_counts) * len(label_counts))
    return slice_counts[slice_of] * label_counts[label_of] / (len(y) * cell_counts[cell])


def _measure(method: str, y: np.ndarray, decision: np.ndarray, slices: np.ndarray, metric: str,
             min_rows: int) -> dict[str, Any]:
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    frame = MetricFrame(metrics={"accuracy": accuracy_score,
                                 metric: lambda t, p: _rate(metric, np.asarray(t), np.asarray(p))},
                        y_true=y, y_pred=decision, sensitive_features=slices)
    counted = {name: int(_rows_of(metric, y[slices == name]).sum()) for name in frame.by_group.index}
    by_slice = {str(name): float(value) for name, value in frame.by_group[metric].items()
                if counted[name] >= min_rows and math.isfinite(value)}
    gap = max(by_slice.values()) - min(by_slice.values()) if len(by_slice) >= 2 else None
    return {"method": method, "accuracy": float(frame.overall["accuracy"]), "gap": gap, "gap_metric": metric,
            "by_slice": by_slice, "selection_rate": float(np.mean(decision))}


def _hist_gradient_boosting(random_state: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=random_state)


def _retrained_rows(methods: tuple[str, ...], X_train: Any, y_train: Any, sensitive_train: Any, X_test: Any,
                    y_test: np.ndarray, s_test: np.ndarray, metric: str, min_rows: int, random_state: int,
                    log: Any) -> list[dict[str, Any]]:
    """The rows of the mitigations that retrain a copy of the model, with their unweighted reference."""
    rows: list[dict[str, Any]] = []
    if not any(m in ("reweighting", "exponentiated_gradient") for m in methods):
        return rows
    X_train, X_test = np.asarray(X_train, dtype=np.float64), np.asarray(X_test, dtype=np.float64)
    y_train, s_train = np.asarray(y_train, dtype=np.int64), np.asarray(sensitive_train, dtype=object)
    log("fairness: retraining the unweighted reference (HistGradientBoosting)")
    reference = _hist_gradient_boosting(random_state).fit(X_train, y_train)
    row = _measure("unweighted_reference", y_test, reference.predict(X_test), s_test, metric, min_rows)
    row.update(deterministic=True, needs_sensitive_at_serving=False, servable=False,
               note="HistGradientBoosting on the bundle's transformed features, no weights (the reference "
                    "of the retrained rows)")
    rows.append(row)
    if "reweighting" in methods:
        log("fairness: retraining with Kamiran-Calders weights (the label independent of the slice)")
        weights = reweighting_weights(y_train, s_train)
        model = _hist_gradient_boosting(random_state).fit(X_train, y_train, sample_weight=weights)
        row = _measure("reweighting", y_test, model.predict(X_test), s_test, metric, min_rows)
        row.update(deterministic=True, needs_sensitive_at_serving=False, servable=False,
                   note="HistGradientBoosting retrained with Kamiran-Calders weights P(slice) P(label) / "
                        "P(slice, label): the label independent of the slice")
        rows.append(row)
    if "exponentiated_gradient" in methods:
        import fairlearn.reductions as reductions

        log(f"fairness: ExponentiatedGradient with {EQUALIZED_METRICS[metric]}")
        reduction = reductions.ExponentiatedGradient(
            _hist_gradient_boosting(random_state).set_params(max_iter=50),
            getattr(reductions, EQUALIZED_METRICS[metric])(), eps=0.01, max_iter=50)
        reduction.fit(X_train, y_train, sensitive_features=s_train)
        votes = sum(weight * predictor.predict(X_test)
                    for weight, predictor in zip(reduction.weights_, reduction.predictors_, strict=True) if weight > 0)
        row = _measure("exponentiated_gradient", y_test, (np.asarray(votes) >= 0.5).astype(int), s_test, metric,
                       min_rows)
        row.update(deterministic=True, needs_sensitive_at_serving=False, servable=False,
                   note=f"{EQUALIZED_METRICS[metric]} reduction; the weighted vote of its "
                        f"{int(np.sum(reduction.weights_ > 0))} models at 0.5 instead of its randomized predict; "
                        "analysis only")
        rows.append(row)
    return rows


def compare_mitigations(*, y_test: Any, scores_test: Any, sensitive_test: Any, threshold: float,
                        methods: tuple[str, ...] = MITIGATIONS, metric: str = "false_negative_rate",
                        y_valid: Any = None, scores_valid: Any = None, sensitive_valid: Any = None,
                        X_train: Any = None, y_train: Any = None, sensitive_train: Any = None, X_test: Any = None,
                        min_rows: int = 30, random_state: int = 0, n_threads: int | None = 1,
                        log: Any = None) -> dict[str, Any]:
    """Each mitigation's accuracy and gap on the test rows, against the served model, in one table.

    Parameters
    ----------
    y_test, scores_test, sensitive_test : array-like
        Test labels (0/1), the served model's scores and each row's slice.
    threshold : float
        The served decision threshold.
    methods : tuple of str
        Some of :data:`MITIGATIONS`.
    metric : str
        The metric whose gap is closed (a key of :data:`EQUALIZED_METRICS`).
    y_valid, scores_valid, sensitive_valid : array-like
        Validation rows, where ``slice_thresholds`` chooses its thresholds (and
        ``threshold_optimizer`` fits).
    X_train, y_train, sensitive_train, X_test : array-like
        Transformed features and labels, for the retrained copies (``reweighting``,
        ``exponentiated_gradient``).
    min_rows : int
        Slices with fewer counted rows stay out of the gap.
    random_state : int
        Seed of the retrained learners (their results are repeatable).
    n_threads : int or None
        OpenMP threads of the retrained learners (None: the library's default). One by
        default: on a shared 2-core machine, HistGradientBoosting's threads waiting on each
        other made one fit 60 times slower (26 s instead of 0.4 s on Adult).
    log : callable, optional
        Progress messages.

    Returns
    -------
    dict
        ``{"metric", "served_threshold", "rows": [...]}`` (and a ``message`` when no gap can be measured,
        naming each slice's count): one row per method (the served model first) with ``accuracy``,
        ``accuracy_cost``, ``gap``, ``gap_reduction``, ``by_slice``, ``deterministic``,
        ``needs_sensitive_at_serving``, ``servable`` and a ``note``.
    """
    if metric not in EQUALIZED_METRICS:
        raise ValueError(f"metric must be one of {list(EQUALIZED_METRICS)}, got {metric!r}")
    unknown = [m for m in methods if m not in MITIGATIONS]
    if unknown:
        raise ValueError(f"unknown mitigation(s) {unknown}; expected some of {list(MITIGATIONS)}")
    log = log or (lambda *_: None)
    y_test, scores_test = np.asarray(y_test, dtype=np.int64), np.asarray(scores_test, dtype=np.float64)
    s_test = np.asarray(sensitive_test, dtype=object)
    served = _measure("served_model", y_test, (scores_test >= threshold).astype(int), s_test, metric, min_rows)
    served.update(deterministic=True, needs_sensitive_at_serving=False, servable=True,
                  note=f"the bundle's own decisions at its threshold {threshold:.4g}")
    rows = [served]
    if "slice_thresholds" in methods:
        chosen, target = slice_thresholds(scores_valid, y_valid, sensitive_valid, threshold, metric, min_rows)
        per_row = np.asarray([chosen.get(s, threshold) for s in s_test.tolist()], dtype=np.float64)
        row = _measure("slice_thresholds", y_test, (scores_test >= per_row).astype(int), s_test, metric, min_rows)
        row.update(deterministic=True, needs_sensitive_at_serving=True, servable=False, thresholds=chosen,
                   note=f"served scores, one threshold per slice chosen on valid for {metric} {target:.3f}; "
                        "serving needs the sensitive column as a bundle input")
        rows.append(row)
    if "threshold_optimizer" in methods:
        rows.append(_threshold_optimizer_row(y_valid, scores_valid, sensitive_valid, y_test, scores_test, s_test,
                                             metric, min_rows, random_state))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_threads):  # OpenMP threads fighting over shared cores cost 50x here
        rows += _retrained_rows(methods, X_train, y_train, sensitive_train, X_test, y_test, s_test, metric,
                                min_rows, random_state, log)
    for row in rows:
        row["accuracy_cost"] = served["accuracy"] - row["accuracy"]
        row["gap_reduction"] = (served["gap"] - row["gap"]) if served["gap"] is not None and row["gap"] is not None \
            else None
    result = {"metric": metric, "served_threshold": float(threshold), "rows": rows}
    if served["gap"] is None:  # say why every gap is empty rather than leave a table of nulls
        counted = {str(name): int(_rows_of(metric, y_test[s_test == name]).sum()) for name in np.unique(s_test)}
        result["message"] = (f"no {metric} gap measured: fewer than two slices have {min_rows} test rows counted "
                             f"for it ({', '.join(f'{k}: {v}' for k, v in counted.items())}); lower min_rows or "
                             "test on more rows")
        log(result["message"])
    return result
