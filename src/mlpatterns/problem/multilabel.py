"""Multilabel (pattern 6): one sigmoid output per label, parsed by tuned thresholds.

Problem: an example can carry several labels at once (a movie is a comedy *and* a
romance). A softmax over labels forces them to compete and ``argmax`` keeps one; one
yes/no model per label with the default 0.5 cut-off predicts almost nothing for rare
labels.

Solution: score every label independently (a sigmoid per label, trained with binary
cross-entropy) and parse the scores with a threshold per label, chosen on validation
data. :class:`MultilabelClassifier` does it with any scikit-learn binary classifier
(``estimator=``, one clone per label); ``MultilabelHead`` is the same output layer for a
PyTorch network (imported lazily, so this module does not import torch);
:func:`multilabel_report` scores the result per label and over the label sets.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(400, 3))
>>> Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 1, X[:, 0] + X[:, 2] > 0]).astype(int)
>>> model = MultilabelClassifier().fit(X, Y)
>>> model.predict(X[:2]).shape, model.predict_proba(X[:2]).shape
((2, 3), (2, 3))
>>> bool(multilabel_report(Y, model.predict(X))["macro_f1"] > 0.8)
True
"""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.metrics import (
    f1_score,
    hamming_loss,
    precision_recall_curve,
    precision_recall_fscore_support,
)
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

# MultilabelHead is built on first access (see __getattr__), so torch loads only then.
__all__ = [  # noqa: F822
    "MultilabelClassifier", "MultilabelHead", "best_f1_threshold", "multilabel_report"]


def best_f1_threshold(y_true, scores) -> float:
    """The cut-off on ``scores`` that maximises the F1 of the positive class.

    Returns 0.5 when ``y_true`` has no positive, where F1 is undefined.

    >>> best_f1_threshold([0, 0, 1, 1], [0.1, 0.3, 0.35, 0.8])
    0.35
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    if not np.any(y_true == 1):
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


class MultilabelClassifier(MetaEstimatorMixin, ClassifierMixin, BaseEstimator):
    """One binary classifier per label, each parsed by its own threshold.

    Parameters
    ----------
    estimator : classifier, default=None
        A binary classifier with ``predict_proba``, cloned once per label; ``None``
        means ``LogisticRegression(max_iter=1000)``.
    threshold_strategy : "f1" or float, default="f1"
        ``"f1"`` picks, per label, the cut-off that maximises F1 on a validation
        part of the training rows; a number in (0, 1) is one fixed cut-off for every
        label (0.5 is the usual default of one-model-per-label).
    validation_fraction : float, default=0.2
        Share of the training rows held out to tune the thresholds. The rows are
        picked by a permutation seeded with ``random_state``, so the split repeats;
        pass rows in a repeatable order (for example, sorted by key) to make it
        independent of the data's order too.
    refit : bool, default=True
        After tuning, refit every label's model on all training rows (the thresholds
        stay as tuned). ``False`` keeps the models fitted on the training part.
    random_state : int, default=0
        Seed of the validation split.

    Attributes
    ----------
    estimators_ : list of classifiers
        One fitted classifier per label; ``None`` for a label that is constant in
        the training rows (its probability is then that constant).
    thresholds_ : ndarray of shape (n_labels_,)
        The cut-off of every label: ``predict`` is ``predict_proba >= thresholds_``.
    n_labels_ : int
        Number of labels (columns of ``Y``; 1 for a 1-d ``y``).
    classes_ : list of ndarray, or ndarray
        ``[0, 1]`` for every label; for a 1-d ``y``, its classes.
    multilabel_ : bool
        Whether ``Y`` was a 2-d indicator matrix (else a 1-d binary ``y``).

    See Also
    --------
    sklearn.multioutput.MultiOutputClassifier : one model per label at 0.5.
    """

    def __init__(self, estimator=None, threshold_strategy: Any = "f1",
                 validation_fraction: float = 0.2, refit: bool = True,
                 random_state: int = 0) -> None:
        self.estimator = estimator
        self.threshold_strategy = threshold_strategy
        self.validation_fraction = validation_fraction
        self.refit = refit
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_class = False
        return tags

    def _check_params(self) -> None:
        strategy = self.threshold_strategy
        fixed = isinstance(strategy, Real) and not isinstance(strategy, bool)
        if not (strategy == "f1" if isinstance(strategy, str) else fixed and 0 < strategy < 1):
            raise ValueError(f"threshold_strategy must be 'f1' or a number in (0, 1), "
                             f"got {strategy!r}")
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 < fraction < 1:
            raise ValueError(f"validation_fraction must be a number in (0, 1), got {fraction!r}")

    def fit(self, X, Y):
        """Fit one classifier per column of the 0/1 indicator matrix ``Y``.

        A 1-d binary ``y`` is one label, with its two classes kept as they are.
        """
        self._check_params()
        X, Y = validate_data(self, X, Y, multi_output=True, ensure_all_finite="allow-nan")
        self.multilabel_ = Y.ndim == 2
        if self.multilabel_:
            if not np.isin(Y, (0, 1)).all():
                raise ValueError("Y must be a 0/1 label indicator matrix of shape "
                                 "(n_samples, n_labels)")
            Y = Y.astype(np.int64)
            self.classes_ = [np.array([0, 1]) for _ in range(Y.shape[1])]
        else:
            check_classification_targets(Y)
            if type_of_target(Y) == "multiclass":
                raise ValueError("Only binary classification is supported for a 1-d y; pass "
                                 "several labels as a 0/1 indicator matrix of shape "
                                 "(n_samples, n_labels)")
            self.classes_ = np.unique(Y)
            Y = (self.classes_[-1] == Y).astype(np.int64)[:, None]
        self.n_labels_ = Y.shape[1]
        if self.threshold_strategy == "f1":
            order = np.random.default_rng(self.random_state).permutation(len(X))
            n_valid = int(round(self.validation_fraction * len(X)))
            valid, train = order[:n_valid], order[n_valid:]
            if n_valid == 0 or len(train) == 0:
                raise ValueError(f"validation_fraction={self.validation_fraction} leaves an "
                                 f"empty training or validation part of n_samples={len(X)}")
            self._fit_labels(X[train], Y[train])
            proba = self._label_proba(X[valid])
            self.thresholds_ = np.array([best_f1_threshold(Y[valid, j], proba[:, j])
                                         for j in range(self.n_labels_)])
            if self.refit:
                self._fit_labels(X, Y)
        else:
            self._fit_labels(X, Y)
            self.thresholds_ = np.full(self.n_labels_, float(self.threshold_strategy))
        return self

    def _fit_labels(self, X: np.ndarray, Y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        base = self.estimator if self.estimator is not None else LogisticRegression(max_iter=1000)
        self.estimators_, self.constant_proba_ = [], np.zeros(Y.shape[1])
        for j in range(Y.shape[1]):
            if np.unique(Y[:, j]).size == 1:
                self.estimators_.append(None)
                self.constant_proba_[j] = float(Y[0, j])
            else:
                self.estimators_.append(clone(base).fit(X, Y[:, j]))

    def _label_proba(self, X: np.ndarray) -> np.ndarray:
        out = np.tile(self.constant_proba_, (len(X), 1))
        for j, model in enumerate(self.estimators_):
            if model is not None:
                out[:, j] = model.predict_proba(X)[:, list(model.classes_).index(1)]
        return out

    def predict_proba(self, X) -> np.ndarray:
        """Probability that each label applies, shape ``(n_samples, n_labels_)``.

        For a 1-d ``y``, the usual ``(n_samples, n_classes)`` of a binary classifier.
        """
        check_is_fitted(self, "thresholds_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        proba = self._label_proba(X)
        if self.multilabel_:
            return proba
        if len(self.classes_) == 1:
            return np.ones((len(X), 1))
        return np.column_stack([1 - proba[:, 0], proba[:, 0]])

    def predict(self, X) -> np.ndarray:
        """The 0/1 label indicator matrix: each label's probability against its threshold."""
        check_is_fitted(self, "thresholds_")
        X = validate_data(self, X, reset=False, ensure_all_finite="allow-nan")
        indicator = (self._label_proba(X) >= self.thresholds_).astype(np.int64)
        if self.multilabel_:
            return indicator
        return self.classes_[np.minimum(indicator[:, 0], len(self.classes_) - 1)]

    def score(self, X, y, sample_weight=None) -> float:
        """Macro F1 over the labels (accuracy for a 1-d ``y``)."""
        if not self.multilabel_:
            return super().score(X, y, sample_weight=sample_weight)
        return float(f1_score(y, self.predict(X), average="macro", zero_division=0,
                              sample_weight=sample_weight))

    @classmethod
    def _estimator_check_instances(cls) -> list:
        # scikit-learn's checks require predict == round(predict_proba), i.e. a 0.5
        # cut-off; tuned thresholds break that by design (see the docs page).
        return [cls(threshold_strategy=0.5)]


def multilabel_report(y_true, y_pred, labels=None) -> dict:
    """Per-label precision, recall, F1 and support, plus macro F1, Hamming loss, subset accuracy.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples, n_labels)
        0/1 label indicator matrices.
    labels : list of str, default=None
        Label names, in column order; default ``"0"``, ``"1"``, ...

    Returns
    -------
    dict
        ``{"labels": {name: {"precision", "recall", "f1", "support"}}, "macro_f1",
        "micro_f1", "hamming_loss", "subset_accuracy"}``.

    >>> report = multilabel_report([[1, 0], [1, 1]], [[1, 0], [1, 0]], labels=["a", "b"])
    >>> report["labels"]["b"]["recall"], report["hamming_loss"], report["subset_accuracy"]
    (0.0, 0.25, 0.5)
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"y_true and y_pred must be 2-d arrays of one shape, "
                         f"got {y_true.shape} and {y_pred.shape}")
    names = [str(j) for j in range(y_true.shape[1])] if labels is None else list(labels)
    if len(names) != y_true.shape[1]:
        raise ValueError(f"labels has {len(names)} names for {y_true.shape[1]} columns")
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, average=None, zero_division=0)
    per_label = {name: {"precision": float(p), "recall": float(r), "f1": float(f),
                        "support": int(s)}
                 for name, p, r, f, s in zip(names, precision, recall, f1, support, strict=True)}
    return {
        "labels": per_label,
        "macro_f1": float(np.mean(f1)),
        "micro_f1": float(f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "hamming_loss": float(hamming_loss(y_true, y_pred)),
        "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))),
    }


def _make_head_class() -> type:
    import torch
    from torch import nn

    class MultilabelHead(nn.Module):
        """The multilabel output layer: ``n_labels`` logits, one sigmoid each.

        Train on the logits with :meth:`loss` (``BCEWithLogitsLoss``, numerically
        stable), read probabilities with :meth:`proba`, and parse them with
        per-label ``thresholds`` in :meth:`predict` (never ``argmax``).

        Parameters
        ----------
        in_features : int
            Width of the input (the last hidden layer of the network it tops).
        n_labels : int
            Number of labels.
        pos_weight : sequence of float, optional
            Weight of the positive examples of each label in the loss.

        Examples
        --------
        >>> import torch
        >>> head = MultilabelHead(4, 3)
        >>> head(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
        >>> head.predict(torch.zeros(2, 4), thresholds=[0.5, 0.5, 0.5]).dtype
        torch.int64
        """

        def __init__(self, in_features: int, n_labels: int, pos_weight=None) -> None:
            super().__init__()
            for name, value in (("in_features", in_features), ("n_labels", n_labels)):
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ValueError(f"{name} must be a positive integer, got {value!r}")
            self.linear = nn.Linear(in_features, n_labels)
            weight = None if pos_weight is None else torch.as_tensor(pos_weight, dtype=torch.float32)
            self.criterion = nn.BCEWithLogitsLoss(pos_weight=weight)

        def forward(self, x):
            return self.linear(x)

        def loss(self, logits, targets):
            """Binary cross-entropy of every label, averaged."""
            return self.criterion(logits, targets.float())

        @torch.no_grad()
        def proba(self, x):
            return torch.sigmoid(self(x))

        @torch.no_grad()
        def predict(self, x, thresholds=0.5):
            """0/1 per label: each probability against its label's threshold."""
            cut = torch.as_tensor(thresholds, dtype=torch.float32)
            return (self.proba(x) >= cut).long()

    MultilabelHead.__module__ = __name__
    MultilabelHead.__qualname__ = "MultilabelHead"
    return MultilabelHead


def __getattr__(name: str) -> Any:
    if name == "MultilabelHead":
        cls = _make_head_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
