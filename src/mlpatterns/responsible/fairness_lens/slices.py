"""Fairness Lens (30): metrics by sensitive slice, before training (the data) and after (the model).

One overall metric hides who the model fails: a classifier can be 86 % accurate overall and
miss twice as many of the high earners among women as among men. The lens measures the data
and the model per slice of each sensitive column (and, on request, their intersections) with
fairlearn's :class:`~fairlearn.metrics.MetricFrame`, gives every value its count and a
confidence interval (Wilson for rates, Student-t for regression means), flags slices with
fewer than ``min_rows`` rows as tiny (their values are noise: reported with their interval,
left out of the gaps) and reports the gaps between slices (difference and ratio).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["MISSING_SLICE", "data_balance", "mean_interval", "model_slices", "sensitive_slices", "wilson_interval"]

#: the slice of rows whose sensitive value is missing (blank codes are a slice of their own, never dropped)
MISSING_SLICE = "(missing)"


def wilson_interval(successes: Any, rows: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``successes / rows`` (NaN where ``rows`` is 0).

    Parameters
    ----------
    successes, rows : array-like
        Counts per slice.
    confidence : float
        Two-sided confidence level.

    Returns
    -------
    low, high : ndarray
    """
    from scipy.stats import norm

    k, n = np.asarray(successes, dtype=np.float64), np.asarray(rows, dtype=np.float64)
    z = norm.ppf(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def mean_interval(values: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of a mean (NaN with fewer than two values)."""
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return math.nan, math.nan
    half = t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def _label(value: Any) -> str:
    """A slice's name: the value as text, a whole float without its ``.0`` (a code read as a float), missing as
    :data:`MISSING_SLICE`."""
    import pandas as pd

    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return MISSING_SLICE
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def sensitive_slices(frame: Any, columns: list[str], intersections: bool = False) -> dict[str, np.ndarray]:
    """Each sensitive column's slice label per row (text; a missing value is :data:`MISSING_SLICE`).

    With ``intersections`` and more than one column, the combined slice of all columns is
    added under the key ``"a & b"`` (labels ``"x & y"``).
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"sensitive column(s) {missing} not in the data; it has {list(frame.columns)}")
    labels = {c: np.asarray([_label(v) for v in frame[c].tolist()], dtype=object) for c in columns}
    if intersections and len(columns) > 1:
        combined = labels[columns[0]]
        for c in columns[1:]:
            combined = np.char.add(np.char.add(combined.astype(str), " & "), labels[c].astype(str))
        labels[" & ".join(columns)] = combined.astype(object)
    return labels


def _clean(value: Any) -> Any:
    """A JSON-able number: NaN and infinities become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _gaps(frame: Any, tiny: dict[str, bool], counted: dict[str, dict[str, int]] | None = None,
          min_rows: int = 0) -> dict[str, dict[str, Any]]:
    """Difference (largest - smallest) and ratio (smallest / largest) of each metric over the slices that are
    not tiny, read from the MetricFrame's ``by_group`` table (fairlearn's own ``difference``/``ratio`` would
    count the tiny slices too). A rate over part of a slice's rows (the false negative rate counts its
    positives) also leaves out the slices where that part has fewer than ``min_rows`` rows (``counted``)."""
    kept = [name for name, is_tiny in tiny.items() if not is_tiny]
    gaps: dict[str, dict[str, Any]] = {}
    if len(kept) < 2:
        return gaps
    by_group = frame.by_group.loc[kept]
    for metric in by_group.columns:
        column = by_group[metric].astype(float)
        if counted and metric in counted:
            column = column[[counted[metric][str(name)] >= min_rows for name in column.index]]
        column = column.dropna()
        if len(column) < 2:
            continue
        low, high = column.min(), column.max()
        ratio = None if low < 0 else (_clean(low / high) if high != 0 else 1.0)  # no ratio of signed values
        gaps[metric] = {"difference": _clean(high - low), "ratio": ratio,
                        "lowest": str(column.idxmin()), "highest": str(column.idxmax())}
    return gaps


def _metric_frame(metrics: dict[str, Any], y_true: Any, y_pred: Any, labels: np.ndarray, **options: Any) -> Any:
    from fairlearn.metrics import MetricFrame

    return MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=labels, **options)


def data_balance(sensitive: dict[str, np.ndarray], y: Any, task: str, *, min_rows: int = 30,
                 confidence: float = 0.95) -> dict[str, Any]:
    """Before training: the rows, share and label rate (or target mean) of each sensitive slice.

    Parameters
    ----------
    sensitive : dict
        Column name to slice labels per row (:func:`sensitive_slices`).
    y : array-like
        The target: 0/1 (classification) or values (regression).
    task : {"classification", "regression"}
    min_rows : int
        Slices with fewer rows are flagged ``tiny`` and left out of the gaps.
    confidence : float
        Level of the intervals: Wilson for shares and label rates, Student-t for target means.

    Returns
    -------
    dict
        ``{"task", "rows", "min_rows", "confidence", "columns": {column: {"slices": [...], "gaps": {...}}}}``;
        each slice has ``rows``, ``share`` (with ``share_low``/``share_high``), ``label_rate`` or
        ``target_mean`` (with ``_low``/``_high``), ``positives`` (classification) and ``tiny``.
    """
    from fairlearn.metrics import count

    y = np.asarray(y, dtype=np.float64)
    name = "label_rate" if task == "classification" else "target_mean"
    result: dict[str, Any] = {"stage": "data", "task": task, "rows": int(len(y)), "min_rows": min_rows,
                              "confidence": confidence, "columns": {}}
    for column, labels in sensitive.items():
        frame = _metric_frame({"rows": count, name: lambda t, p: float(np.mean(t))}, y, y, labels)
        table = frame.by_group
        slices = []
        for label, row in table.iterrows():
            rows = int(row["rows"])
            values = y[labels == label]
            share_low, share_high = wilson_interval(rows, len(y), confidence)
            item = {"slice": str(label), "rows": rows, "share": rows / len(y), "share_low": float(share_low),
                    "share_high": float(share_high), name: _clean(row[name]), "tiny": rows < min_rows}
            if task == "classification":
                positives = int(values.sum())
                low, high = wilson_interval(positives, rows, confidence)
                item.update(positives=positives, label_rate_low=_clean(low), label_rate_high=_clean(high))
            else:
                low, high = mean_interval(values, confidence)
                item.update(target_mean_low=_clean(low), target_mean_high=_clean(high))
            slices.append(item)
        slices.sort(key=lambda s: -s["rows"])
        tiny = {s["slice"]: s["tiny"] for s in slices}
        gaps = _gaps(frame, tiny)
        result["columns"][column] = {"slices": slices, "gaps": {name: gaps[name]} if name in gaps else {},
                                     "tiny_slices": [s["slice"] for s in slices if s["tiny"]]}
    return result


def _classification_metrics() -> dict[str, Any]:
    from fairlearn.metrics import count, false_negative_rate, false_positive_rate, selection_rate
    from sklearn.metrics import accuracy_score

    return {"rows": count, "positives": lambda t, p: int(np.sum(t == 1)), "negatives": lambda t, p: int(np.sum(t == 0)),
            "selection_rate": selection_rate, "accuracy": accuracy_score,
            "error_rate": lambda t, p: 1.0 - accuracy_score(t, p),
            "false_positive_rate": lambda t, p: false_positive_rate(t, p, pos_label=1) if np.any(t == 0) else np.nan,
            "false_negative_rate": lambda t, p: false_negative_rate(t, p, pos_label=1) if np.any(t == 1) else np.nan}


def _roc_auc(t: np.ndarray, s: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(t, s)) if 0 < np.sum(t == 1) < len(t) else math.nan


def _auc_interval(auc: float, positives: int, negatives: int, confidence: float) -> tuple[float, float]:
    """Hanley and McNeil's (1982) standard error of an ROC AUC, as a normal interval clipped to [0, 1]."""
    from scipy.stats import norm

    if not math.isfinite(auc) or positives == 0 or negatives == 0:
        return math.nan, math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) \
        / (positives * negatives)
    half = norm.ppf(0.5 + confidence / 2) * math.sqrt(max(variance, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def _regression_metrics() -> dict[str, Any]:
    from fairlearn.metrics import count

    return {"rows": count, "mae": lambda t, p: float(np.mean(np.abs(p - t))),
            "rmse": lambda t, p: float(np.sqrt(np.mean((p - t) ** 2))),
            "mean_prediction": lambda t, p: float(np.mean(p)), "mean_target": lambda t, p: float(np.mean(t)),
            "mean_error": lambda t, p: float(np.mean(p - t))}


def model_slices(sensitive: dict[str, np.ndarray], y_true: Any, y_pred: Any, task: str, *, y_score: Any = None,
                 min_rows: int = 30, confidence: float = 0.95) -> dict[str, Any]:
    """After training: the model's metrics per sensitive slice, with counts, intervals and the gaps.

    Parameters
    ----------
    sensitive : dict
        Column name to slice labels per row (:func:`sensitive_slices`).
    y_true : array-like
        The target (0/1 or values).
    y_pred : array-like
        The served decisions (0/1, at the bundle's threshold) or predicted values.
    task : {"classification", "regression"}
    y_score : array-like, optional
        P(positive) per row, for ROC AUC per slice (slices with both classes and at least
        ``min_rows`` rows).
    min_rows : int
        Slices with fewer rows are flagged ``tiny`` and left out of the gaps.
    confidence : float
        Level of the intervals: Wilson for rates (over the rows, the negatives for the false
        positive rate, the positives for the false negative rate), Hanley-McNeil for ROC AUC,
        Student-t for the regression means (MAE is the mean absolute error; RMSE's interval is
        the square root of the mean squared error's).

    Returns
    -------
    dict
        ``{"stage": "model", "task", "rows", "overall": {...}, "columns": {column: {"slices", "gaps",
        "tiny_slices"}}}``; each slice has its metrics with ``<metric>_low``/``_high``, its counts and
        ``tiny``; ``gaps[metric]`` has ``difference``, ``ratio``, ``lowest``, ``highest``.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    classification = task == "classification"
    metrics = _classification_metrics() if classification else _regression_metrics()
    result: dict[str, Any] = {"stage": "model", "task": task, "rows": int(len(y_true)), "min_rows": min_rows,
                              "confidence": confidence, "columns": {}}
    for column, labels in sensitive.items():
        frame = _metric_frame(metrics, y_true, y_pred, labels)
        if "overall" not in result:
            result["overall"] = {k: _clean(v) for k, v in frame.overall.items()}
        slices = []
        for label, row in frame.by_group.iterrows():
            item: dict[str, Any] = {"slice": str(label), "rows": int(row["rows"]), "tiny": int(row["rows"]) < min_rows}
            for metric in metrics:
                if metric in ("positives", "negatives"):
                    item[metric] = int(row[metric])
                elif metric != "rows":
                    item[metric] = _clean(row[metric])
            if classification:
                denominators = {"selection_rate": "rows", "accuracy": "rows", "error_rate": "rows",
                                "false_positive_rate": "negatives", "false_negative_rate": "positives"}
                for metric, denominator in denominators.items():
                    n = int(row[denominator])
                    value = row[metric]
                    low, high = wilson_interval(value * n if math.isfinite(value) else math.nan, n, confidence)
                    item[f"{metric}_low"], item[f"{metric}_high"] = _clean(low), _clean(high)
                    item[f"{metric}_rows"] = n
            else:
                mask = labels == label
                errors = y_pred[mask] - y_true[mask]
                for metric, values in (("mae", np.abs(errors)), ("mean_prediction", y_pred[mask]),
                                       ("mean_target", y_true[mask]), ("mean_error", errors)):
                    low, high = mean_interval(values, confidence)
                    if metric == "mae" and math.isfinite(low):
                        low = max(low, 0.0)  # an absolute error is never negative
                    item[f"{metric}_low"], item[f"{metric}_high"] = _clean(low), _clean(high)
                low, high = mean_interval(errors ** 2, confidence)  # the interval of the mean squared error
                item["rmse_low"] = _clean(math.sqrt(max(low, 0.0))) if math.isfinite(low) else None
                item["rmse_high"] = _clean(math.sqrt(high)) if math.isfinite(high) else None
            slices.append(item)
        if classification and y_score is not None:
            score = np.asarray(y_score, dtype=np.float64)
            for item in slices:
                mask = labels == item["slice"]
                auc = _roc_auc(y_true[mask], score[mask]) if mask.sum() >= min_rows else math.nan
                low, high = _auc_interval(auc, int(np.sum(y_true[mask] == 1)), int(np.sum(y_true[mask] == 0)),
                                          confidence)
                item.update(roc_auc=_clean(auc), roc_auc_low=_clean(low), roc_auc_high=_clean(high),
                            roc_auc_rows=min(item["positives"], item["negatives"]))  # both classes count
            result["overall"]["roc_auc"] = _clean(_roc_auc(y_true, score))
        slices.sort(key=lambda s: -s["rows"])
        tiny = {s["slice"]: s["tiny"] for s in slices}
        table_metrics = [m for m in metrics if m not in ("rows", "positives", "negatives")]
        counted = {m: {s["slice"]: s[f"{m}_rows"] for s in slices} for m in ("false_positive_rate",
                                                                            "false_negative_rate")} \
            if classification else None
        gaps = _gaps(frame, tiny, counted, min_rows)
        gaps = {m: g for m, g in gaps.items() if m in table_metrics}
        if classification and y_score is not None:
            aucs = {s["slice"]: s["roc_auc"] for s in slices if not s["tiny"] and s["roc_auc"] is not None
                    and min(s["positives"], s["negatives"]) >= min_rows}  # both classes counted enough
            if len(aucs) >= 2:
                low, high = min(aucs, key=aucs.__getitem__), max(aucs, key=aucs.__getitem__)
                gaps["roc_auc"] = {"difference": aucs[high] - aucs[low], "ratio": aucs[low] / aucs[high],
                                   "lowest": low, "highest": high}
        result["columns"][column] = {"slices": slices, "gaps": gaps,
                                     "tiny_slices": [s["slice"] for s in slices if s["tiny"]]}
    return result
