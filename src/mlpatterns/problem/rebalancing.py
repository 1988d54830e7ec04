"""Rebalancing (pattern 10): learn a rare class that the common class swamps.

Problem: when one class is rare (fraud, defects, late flights), a model that ignores it
is already very accurate, so accuracy says nothing and the default 0.5 threshold
almost never predicts the rare class.

Solution: measure with precision, recall, F1 and PR-AUC (:func:`imbalance_report`);
then change what the model sees or how it decides:

- resample the training rows (:class:`ResampledClassifier`: downsample the majority,
  upsample the minority by duplication or SMOTE, with imbalanced-learn's samplers);
- train an ensemble of models, each on all minority rows and a different majority
  downsample, and average their probabilities (:class:`DownsampledEnsembleClassifier`,
  over imbalanced-learn's ``BalancedBaggingClassifier``);
- weight the classes in the loss: scikit-learn's ``class_weight="balanced"`` or
  ``sample_weight=compute_sample_weight("balanced", y)``; nothing to add here;
- move the decision threshold: scikit-learn's ``TunedThresholdClassifierCV``, with
  :func:`recall_at_precision_scorer` for "most recall at a precision of at least p";
- start a network's output bias at the log prior (:func:`init_output_bias`);
- for a very rare class, reframe as anomaly detection (:class:`AnomalyClassifier`).

Resampling happens only on the rows given to ``fit``; prediction never resamples.

Examples
--------
>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(1000, 2))
>>> y = (X[:, 0] + rng.normal(size=1000) > 2.3).astype(int)
>>> plain = LogisticRegression().fit(X, y)
>>> downsampled = ResampledClassifier(LogisticRegression(), random_state=0).fit(X, y)
>>> recall = lambda model: imbalance_report(y, model.predict_proba(X)[:, 1])["recall"]
>>> bool(recall(downsampled) > recall(plain))
True
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from mlpatterns.problem.rebalancing_anomaly import AnomalyClassifier
from mlpatterns.problem.rebalancing_bias import init_output_bias
from mlpatterns.problem.rebalancing_metrics import (
    imbalance_report,
    recall_at_precision,
    recall_at_precision_scorer,
)

__all__ = [
    "AnomalyClassifier",
    "DownsampledEnsembleClassifier",
    "ResampledClassifier",
    "imbalance_report",
    "init_output_bias",
    "recall_at_precision",
    "recall_at_precision_scorer",
]

SAMPLERS = ("downsample", "upsample", "smote")


def _default_classifier():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression()


def make_sampler(sampler, sampling_strategy, random_state):
    """An imbalanced-learn sampler from a name (``"downsample"``, ``"upsample"``, ``"smote"``), or a clone
    of the sampler given; used by :class:`ResampledClassifier` and the spec's networks."""
    if isinstance(sampler, str):
        from imblearn.over_sampling import SMOTE, RandomOverSampler
        from imblearn.under_sampling import RandomUnderSampler

        classes = {"downsample": RandomUnderSampler, "upsample": RandomOverSampler,
                   "smote": SMOTE}
        if sampler not in classes:
            raise ValueError(f"sampler must be one of {SAMPLERS} or an imbalanced-learn "
                             f"sampler, got {sampler!r}")
        return classes[sampler](sampling_strategy=sampling_strategy, random_state=random_state)
    if not hasattr(sampler, "fit_resample"):
        raise TypeError(f"sampler must be one of {SAMPLERS} or an object with fit_resample "
                        f"(an imbalanced-learn sampler), got {type(sampler).__name__}")
    return clone(sampler)


def _inner_has(method):
    """Whether the inner (fitted, else given, else default) classifier has ``method``."""

    def check(self):
        inner = getattr(self, "estimator_", None)
        if inner is None:
            inner = self.estimator if self.estimator is not None else _default_classifier()
        return hasattr(inner, method)

    return check


class ResampledClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """A classifier trained on resampled rows: the majority downsampled or the minority upsampled.

    Parameters
    ----------
    estimator : classifier, default=None
        The classifier trained on the resampled rows; ``None`` means
        ``LogisticRegression()``.
    sampler : {"downsample", "upsample", "smote"} or imbalanced-learn sampler, default="downsample"
        ``"downsample"`` is ``RandomUnderSampler``, ``"upsample"`` is ``RandomOverSampler``
        (duplication), ``"smote"`` is ``SMOTE`` (interpolated minority rows, numeric
        features only); any object with ``fit_resample`` is cloned and used as is
        (``sampling_strategy`` and ``random_state`` then do not apply).
    sampling_strategy : float, str or dict, default="auto"
        Passed to the named sampler: ``"auto"`` balances the classes fully; a float is
        the minority/majority ratio wanted after resampling (binary only).
    random_state : int, RandomState or None, default=None
        Seed of the named sampler.

    Attributes
    ----------
    sampler_ : imbalanced-learn sampler
        The fitted sampler.
    estimator_ : classifier
        The classifier fitted on the resampled rows.
    classes_ : ndarray
        The class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    DownsampledEnsembleClassifier : several downsampled models, averaged.
    sklearn.model_selection.TunedThresholdClassifierCV : move the threshold instead.

    Notes
    -----
    Resampling changes the class prior the model learns, so its probabilities
    overstate the minority class: rank with them, or recalibrate on untouched rows.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 2))
    >>> y = (X[:, 0] > 1.6).astype(int)
    >>> model = ResampledClassifier(sampler="upsample", random_state=0).fit(X, y)
    >>> _, y_resampled = model.sampler_.fit_resample(X, y)
    >>> np.bincount(y).tolist(), np.bincount(y_resampled).tolist()
    ([573, 27], [573, 573])
    """

    def __init__(self, estimator=None, sampler="downsample", sampling_strategy="auto",
                 random_state=None) -> None:
        self.estimator = estimator
        self.sampler = sampler
        self.sampling_strategy = sampling_strategy
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def fit(self, X, y):
        """Resample ``(X, y)`` once, then fit a clone of ``estimator`` on the result."""
        X, y = validate_data(self, X, y, accept_sparse=["csr", "csc"])
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        self.sampler_ = make_sampler(self.sampler, self.sampling_strategy, self.random_state)
        X_resampled, y_resampled = self.sampler_.fit_resample(X, y)
        base = self.estimator if self.estimator is not None else _default_classifier()
        self.estimator_ = clone(base).fit(X_resampled, y_resampled)
        return self

    def _checked(self, X):
        check_is_fitted(self, "estimator_")
        return validate_data(self, X, reset=False, accept_sparse=["csr", "csc"])

    def predict(self, X):
        """Class labels from the resampled model."""
        X = self._checked(X)
        return self.estimator_.predict(X)

    @available_if(_inner_has("predict_proba"))
    def predict_proba(self, X):
        """Class probabilities of the resampled model (columns follow ``classes_``)."""
        X = self._checked(X)
        return self.estimator_.predict_proba(X)

    @available_if(_inner_has("decision_function"))
    def decision_function(self, X):
        """The inner model's decision function, where it has one."""
        X = self._checked(X)
        return self.estimator_.decision_function(X)


class DownsampledEnsembleClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """An ensemble whose members each see all minority rows and a different majority downsample.

    A thin wrapper over imbalanced-learn's ``BalancedBaggingClassifier`` with
    ``bootstrap=False`` and ``max_samples=1.0``: every member starts from all rows, then a
    ``RandomUnderSampler`` with its own seed keeps all of the minority and a fresh subset
    of the majority. ``predict_proba`` averages the members' probabilities. Together the
    members see most majority rows, where a single downsampled model throws them away.

    Parameters
    ----------
    estimator : classifier, default=None
        The member model; ``None`` means ``LogisticRegression()``.
    n_estimators : int, default=10
        Number of members, each on its own majority downsample.
    sampling_strategy : float, str or dict, default="auto"
        The ``RandomUnderSampler`` strategy of each member (``"auto"``: balanced).
    n_jobs : int or None, default=None
        Members fitted in parallel.
    random_state : int, RandomState or None, default=None
        Seed of the downsamples.

    Attributes
    ----------
    ensemble_ : imblearn.ensemble.BalancedBaggingClassifier
        The fitted ensemble; ``ensemble_.estimators_`` are the members.
    classes_ : ndarray
        The class labels.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 2))
    >>> y = (X[:, 0] > 1.6).astype(int)
    >>> model = DownsampledEnsembleClassifier(n_estimators=5, random_state=0).fit(X, y)
    >>> len(model.ensemble_.estimators_), model.predict_proba(X[:2]).shape
    (5, (2, 2))
    """

    def __init__(self, estimator=None, n_estimators=10, sampling_strategy="auto", n_jobs=None,
                 random_state=None) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.sampling_strategy = sampling_strategy
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y):
        """Fit ``n_estimators`` members, each on all minority rows and a majority downsample."""
        from imblearn.ensemble import BalancedBaggingClassifier
        from imblearn.under_sampling import RandomUnderSampler

        if isinstance(self.n_estimators, bool) or not isinstance(self.n_estimators,
                                                                 numbers.Integral) \
                or self.n_estimators < 1:
            raise ValueError(f"n_estimators must be a positive integer, got {self.n_estimators!r}")
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        base = self.estimator if self.estimator is not None else _default_classifier()
        self.ensemble_ = BalancedBaggingClassifier(
            estimator=clone(base), n_estimators=self.n_estimators, max_samples=1.0,
            bootstrap=False, sampler=RandomUnderSampler(sampling_strategy=self.sampling_strategy),
            n_jobs=self.n_jobs, random_state=self.random_state,
        ).fit(X, y)
        return self

    def _checked(self, X):
        check_is_fitted(self, "ensemble_")
        return validate_data(self, X, reset=False)

    def predict(self, X):
        """The class with the highest averaged probability."""
        X = self._checked(X)
        return self.ensemble_.predict(X)

    def predict_proba(self, X):
        """The members' probabilities, averaged (columns follow ``classes_``)."""
        X = self._checked(X)
        return self.ensemble_.predict_proba(X)
