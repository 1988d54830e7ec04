"""Rebalancing (pattern 10): a very rare class reframed as anomaly detection.

When positives are too few to learn from, learn what normal looks like instead: fit an
outlier detector (an isolation forest by default) on the majority class, read its
anomaly score as the positive-class score, and choose the threshold on labelled rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.metrics import precision_recall_curve
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["AnomalyClassifier"]


class AnomalyClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A binary classifier that scores the rare class by how anomalous a row looks.

    Parameters
    ----------
    detector : outlier detector, default=None
        Any scikit-learn outlier detector with ``score_samples`` (lower means more
        abnormal) or ``decision_function``: ``IsolationForest``,
        ``LocalOutlierFactor(novelty=True)``, ``OneClassSVM``, ``EllipticEnvelope``.
        ``None`` means ``IsolationForest(random_state=random_state)``.
    train_on : {"majority", "all"}, default="majority"
        Fit the detector on the majority-class rows only (novelty detection: it learns
        normal) or on all rows, labels unused (outlier detection).
    threshold : "f1" or float, default="f1"
        ``"f1"`` picks the anomaly score that maximises F1 on the training rows; a float
        is a fixed anomaly-score threshold.
    pos_label : label or None, default=None
        The rare, positive class; ``None`` means the less frequent class.
    random_state : int, RandomState or None, default=None
        Seed of the default isolation forest.

    Attributes
    ----------
    detector_ : outlier detector
        The fitted detector.
    threshold_ : float
        Anomaly scores above it are predicted positive.
    scale_ : float
        Spread of the training anomaly scores, used by ``predict_proba``.
    pos_label_ : label
        The positive class.
    classes_ : ndarray of shape (2,)
        The class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Notes
    -----
    ``predict_proba`` is ``sigmoid((score - threshold_) / scale_)``: monotone in the
    anomaly score and 0.5 at the threshold, so it ranks and decides like
    ``decision_function``, but it is not calibrated; wrap the model in
    ``CalibratedClassifierCV`` for probabilities.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(size=(500, 2)), rng.normal(4, 1, size=(10, 2))])
    >>> y = np.r_[np.zeros(500), np.ones(10)].astype(int)
    >>> model = AnomalyClassifier(random_state=0).fit(X, y)
    >>> int(model.predict(X[-10:]).sum()) >= 8, model.predict_proba(X[:2]).shape
    (True, (2, 2))
    """

    def __init__(self, detector=None, train_on="majority", threshold="f1", pos_label=None,
                 random_state=None) -> None:
        self.detector = detector
        self.train_on = train_on
        self.threshold = threshold
        self.pos_label = pos_label
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def fit(self, X, y):
        """Fit the detector, then choose the anomaly-score threshold on ``(X, y)``."""
        if self.train_on not in ("majority", "all"):
            raise ValueError(f"train_on must be 'majority' or 'all', got {self.train_on!r}")
        if not (self.threshold == "f1" or (isinstance(self.threshold, (int, float))
                                           and not isinstance(self.threshold, bool))):
            raise ValueError(f"threshold must be 'f1' or a number, got {self.threshold!r}")
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        target_type = type_of_target(y, input_name="y")
        if target_type != "binary":
            raise ValueError("Only binary classification is supported. The type of the target "
                             f"is {target_type}.")
        self.classes_, counts = np.unique(y, return_counts=True)
        if len(self.classes_) != 2:
            raise ValueError("AnomalyClassifier needs 2 classes in y to choose a threshold, "
                             f"got 1 class ({self.classes_[0]!r})")
        if self.pos_label is None:
            self.pos_label_ = self.classes_[1] if counts[0] >= counts[1] else self.classes_[0]
        elif self.pos_label in self.classes_:
            self.pos_label_ = self.pos_label
        else:
            raise ValueError(f"pos_label={self.pos_label!r} is not a class of y "
                             f"({self.classes_.tolist()})")
        positive = y == self.pos_label_
        if self.detector is None:
            from sklearn.ensemble import IsolationForest

            self.detector_ = IsolationForest(random_state=self.random_state)
        else:
            self.detector_ = clone(self.detector)
        self.detector_.fit(X[~positive] if self.train_on == "majority" else X)
        scores = self._anomaly_score(X)
        if self.threshold == "f1":
            precision, recall, thresholds = precision_recall_curve(positive, scores)
            f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
            # just below the best score, so that rows scoring exactly it come out positive
            self.threshold_ = float(np.nextafter(thresholds[np.argmax(f1[:-1])], -np.inf))
        else:
            self.threshold_ = float(self.threshold)
        spread = float(np.std(scores))
        self.scale_ = spread if spread > 0 else 1.0
        return self

    def _anomaly_score(self, X):
        if hasattr(self.detector_, "score_samples"):
            return -np.asarray(self.detector_.score_samples(X), dtype=np.float64)
        return -np.asarray(self.detector_.decision_function(X), dtype=np.float64)

    def anomaly_score(self, X):
        """How anomalous each row looks to the detector: higher is more abnormal."""
        check_is_fitted(self, "detector_")
        return self._anomaly_score(validate_data(self, X, reset=False))

    def decision_function(self, X):
        """Signed distance to the threshold; positive means ``classes_[1]``."""
        margin = self.anomaly_score(X) - self.threshold_
        return margin if self.pos_label_ == self.classes_[1] else -margin

    def predict_proba(self, X):
        """A monotone map of the anomaly score to ``[0, 1]``, 0.5 at the threshold."""
        proba_1 = 1.0 / (1.0 + np.exp(-self.decision_function(X) / self.scale_))
        return np.column_stack([1.0 - proba_1, proba_1])

    def predict(self, X):
        """The positive class where the anomaly score is above ``threshold_``."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(int)]
