"""Neutral Class (pattern 9): a third class for the examples whose binary label is arbitrary.

Problem: for a band of examples the yes/no label is a coin toss (a birth weight of
5.4 lb is "low", 5.6 lb is not; two experts disagree), and a binary classifier is
forced to learn that noise, which blurs its decisions everywhere.

Solution: label those examples *neutral* and train and serve a three-class model
(negative / neutral / positive). The model learns where it should not decide, and
its decisive predictions become more precise. :class:`NeutralClassClassifier` wraps
any scikit-learn classifier (``estimator=``) and builds the three classes either
from a ``band`` on the continuous score the label was cut from, or from a
sample-level ``neutral_mask`` given to ``fit`` (for example, labeler disagreement).
:func:`decisive_report` measures the precision of the decisive predictions and the
share left undecided.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(600, 2))
>>> score = X[:, 0] + 0.5 * rng.normal(size=600)
>>> model = NeutralClassClassifier(band=(-0.5, 0.5)).fit(X, score)
>>> model.classes_
array([-1,  0,  1])
>>> report = decisive_report(np.where(score < 0, -1, 1), model.predict(X))
>>> bool(report["accuracy"] > 0.9), bool(0 < report["undecided_share"] < 0.5)
(True, True)
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

__all__ = ["NeutralClassClassifier", "band_codes", "decisive_report"]

NEGATIVE, NEUTRAL, POSITIVE = -1, 0, 1


def band_codes(score, band) -> np.ndarray:
    """-1 below the band, 1 above it, 0 (neutral) inside it, edges included.

    >>> band_codes([4.0, 5.0, 5.5, 6.0, 7.0], (5.0, 6.0))
    array([-1,  0,  0,  0,  1])
    """
    low, high = _check_band(band)
    score = np.asarray(score, dtype=np.float64)
    if not np.all(np.isfinite(score)):
        raise ValueError("y contains NaN or infinity; a band needs a finite continuous score")
    return np.where(score < low, NEGATIVE, np.where(score > high, POSITIVE, NEUTRAL))


def _check_band(band) -> tuple[float, float]:
    try:
        low, high = band
        ok = all(isinstance(v, Real) and not isinstance(v, bool) and np.isfinite(v)
                 for v in (low, high)) and low <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"band must be a pair of finite numbers (low, high) with low <= high, "
                         f"got {band!r}")
    return float(low), float(high)


class NeutralClassClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """Train and serve a binary problem as negative / neutral / positive.

    Parameters
    ----------
    estimator : classifier, default=None
        Any scikit-learn multiclass classifier; ``None`` means
        ``HistGradientBoostingClassifier()``.
    band : (low, high), default=None
        ``y`` is then the continuous score the binary label was derived from:
        ``y < low`` is negative (-1), ``y > high`` positive (1), the rest neutral (0).
    neutral_label : object, default=None
        Only with ``neutral_mask`` and no ``band``: the label of the neutral class
        among ``y``'s own labels. ``None`` codes the classes -1 (the lower of ``y``'s
        two labels), 0 (neutral) and 1 (the higher; see :attr:`decisive_classes_`).

    Attributes
    ----------
    estimator_ : classifier
        The fitted three-class classifier.
    classes_ : ndarray
        The labels ``predict`` returns: ``[-1, 0, 1]`` with a band or coded mask,
        ``y``'s labels and ``neutral_label`` otherwise (the classes present in fit).
    decisive_classes_ : ndarray or None
        ``y``'s (negative, positive) labels behind the codes -1 and 1 with a mask.
    neutral_share_ : float
        Share of the training rows put in the neutral class.

    Notes
    -----
    Without ``band`` and ``neutral_mask`` the model is its ``estimator`` fitted on
    ``y`` as given: the baseline that the pattern is compared against.
    """

    def __init__(self, estimator=None, band=None, neutral_label: Any = None) -> None:
        self.estimator = estimator
        self.band = band
        self.neutral_label = neutral_label

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X, y, neutral_mask=None):
        """Fit the classifier on the three classes.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            The continuous score with ``band``, otherwise the binary labels (their
            value is ignored where ``neutral_mask`` is true).
        neutral_mask : array-like of bool, shape (n_samples,), default=None
            Rows whose label is arbitrary; with ``band``, added to the band's rows.
        """
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=None)
        X = np.asarray(X, dtype=np.float64)
        y = column_or_1d(y)
        mask = None
        if neutral_mask is not None:
            mask = np.asarray(neutral_mask)
            if mask.shape != (len(y),) or mask.dtype != bool:
                raise ValueError(f"neutral_mask must be a boolean array of shape ({len(y)},), "
                                 f"got dtype {mask.dtype} and shape {mask.shape}")
        self.decisive_classes_ = None
        if self.band is not None:
            if self.neutral_label is not None:
                raise ValueError("neutral_label applies to a neutral_mask without band; "
                                 "a band always codes the classes -1, 0, 1")
            target = band_codes(y, self.band)
            if mask is not None:
                target[mask] = NEUTRAL
        elif mask is not None:
            target = self._masked_target(y, mask)
        else:
            check_classification_targets(y)
            target = y
        self.neutral_share_ = float(np.mean(target == self._neutral())) if (
            self.band is not None or mask is not None) else 0.0
        from sklearn.ensemble import HistGradientBoostingClassifier

        base = self.estimator if self.estimator is not None else HistGradientBoostingClassifier()
        self.estimator_ = clone(base).fit(X, target)
        self.classes_ = self.estimator_.classes_
        return self

    def _neutral(self) -> Any:
        return NEUTRAL if self.neutral_label is None or self.band is not None else self.neutral_label

    def _masked_target(self, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
        decisive = y[~mask]
        check_classification_targets(decisive)
        labels = np.unique(decisive)
        if len(labels) != 2:
            raise ValueError(f"with a neutral_mask, the rows outside it must carry exactly two "
                             f"labels, got {len(labels)}: {labels[:5].tolist()}")
        if self.neutral_label is None:
            self.decisive_classes_ = labels
            return np.where(mask, NEUTRAL, np.where(y == labels[1], POSITIVE, NEGATIVE))
        if np.any(labels == self.neutral_label):
            raise ValueError(f"neutral_label={self.neutral_label!r} is already a label of y; "
                             f"pass another")
        numeric = y.dtype.kind in "iuf" and isinstance(self.neutral_label, (Real, np.number))
        target = y.astype(np.result_type(y, self.neutral_label) if numeric else object)
        target[mask] = self.neutral_label
        return target

    def predict_proba(self, X) -> np.ndarray:
        """Probability of each class, columns following :attr:`classes_`."""
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return self.estimator_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        """The most probable class: -1 / 0 / 1 (or ``y``'s labels and ``neutral_label``)."""
        check_is_fitted(self, "estimator_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        return self.estimator_.predict(X)


def decisive_report(y_true, y_pred, neutral: Any = NEUTRAL) -> dict:
    """How good the decisive predictions are, and how many are left undecided.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        The binary truth (for example, the label cut at the middle of the band).
    y_pred : array-like of shape (n_samples,)
        Predictions, where ``neutral`` means undecided; a binary model has none.
    neutral : object, default=0
        The neutral label in ``y_pred``.

    Returns
    -------
    dict
        ``precision`` (per decisive predicted class: the share of its predictions
        that are right), ``macro_precision``, ``accuracy`` (over decided rows),
        ``n_decided`` and ``undecided_share``.

    >>> decisive_report([-1, 1, 1, -1], [-1, 0, 1, 1])["precision"]
    {-1: 1.0, 1: 0.5}
    """
    y_true, y_pred = column_or_1d(y_true), column_or_1d(y_pred)
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true and y_pred differ in length: {len(y_true)} and {len(y_pred)}")
    decided = y_pred != neutral
    precision = {}
    for label in np.unique(y_pred[decided]):
        chosen = y_pred == label
        key = label.item() if isinstance(label, np.generic) else label
        precision[key] = float(np.mean(y_true[chosen] == label))
    return {
        "precision": precision,
        "macro_precision": float(np.mean(list(precision.values()))) if precision else float("nan"),
        "accuracy": float(np.mean(y_true[decided] == y_pred[decided])) if decided.any()
        else float("nan"),
        "n_decided": int(decided.sum()),
        "undecided_share": float(1 - decided.mean()) if len(y_pred) else 0.0,
    }
