"""The wide-and-deep network as scikit-learn estimators over one feature matrix.

:class:`WideAndDeepClassifier` and :class:`WideAndDeepRegressor` make the torch
:class:`~mlpatterns.models.wide_and_deep.WideAndDeep` a scikit-learn estimator, so a
network can be a member of a stack (Ensembles, 7), a regime model of a cascade
(Cascade, 8) or the inner model of any meta-estimator of :mod:`mlpatterns.problem`,
next to tree and linear models, and be tuned through ``get_params``.

The matrix is the one :meth:`TransformedFeatures.matrix` gives: the first
``n_numeric`` columns are numbers (standardised inside the network with the
training mean and scale), the rest are categorical indices (hashed categories and
crosses), each embedded and fed to the wide part. ``cardinalities`` gives each
index column's number of buckets; left out, it is the largest training index plus
one, and larger indices at prediction time share the last bucket.

torch is imported when an estimator is fitted, not when this module is.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = np.column_stack([rng.normal(size=400), rng.integers(0, 5, 400)])
>>> y = X[:, 0] + (X[:, 1] == 3)
>>> model = WideAndDeepRegressor(n_numeric=1, epochs=20, random_state=0).fit(X, y)
>>> bool(np.mean((model.predict(X) - y) ** 2) < np.var(y) / 2)
True
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = ["WideAndDeepClassifier", "WideAndDeepRegressor"]

_PREDICT_BATCH = 65536


class _WideAndDeepEstimator(BaseEstimator):
    _task = "regression"

    def __init__(self, n_numeric: int | None = None, cardinalities=None, hidden=(64, 32), dropout: float = 0.1,
                 epochs: int = 5, batch_size: int = 1024, learning_rate: float = 2e-3,
                 weight_decay: float = 0.0, random_state: int = 0) -> None:
        self.n_numeric = n_numeric
        self.cardinalities = cardinalities
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.random_state = random_state

    @classmethod
    def _estimator_check_instances(cls) -> list:
        # the checks fit a few hundred rows: small batches and more epochs to learn them
        return [cls(epochs=15, batch_size=32, learning_rate=0.01)]

    def _check_params(self, n_features: int) -> int:
        n_numeric = n_features if self.n_numeric is None else self.n_numeric
        if isinstance(n_numeric, bool) or not isinstance(n_numeric, Integral) or not 0 <= n_numeric <= n_features:
            raise ValueError(f"n_numeric must be a whole number between 0 and n_features={n_features}, "
                             f"got {self.n_numeric!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if self.random_state is not None and (isinstance(self.random_state, bool)
                                              or not isinstance(self.random_state, Integral)):
            raise ValueError(f"random_state must be an int or None, got {self.random_state!r}")
        return int(n_numeric)

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        numeric = np.asarray(X[:, :self.n_numeric_], dtype=np.float32)
        categorical = np.asarray(X[:, self.n_numeric_:], dtype=np.float64)
        if categorical.size and (np.any(categorical < 0) or np.any(categorical != np.floor(categorical))):
            raise ValueError(f"columns {self.n_numeric_} and after of X must be categorical indices "
                             "(whole numbers, 0 or more)")
        # past the last bucket shares it (the network clamps); keep the cast to int64 in range
        return numeric, np.minimum(categorical, 2.0**62).astype(np.int64)

    def _fit_network(self, X: np.ndarray, y: np.ndarray, n_outputs: int, task: str) -> None:
        import torch

        from mlpatterns.models.training_loop import train_network
        from mlpatterns.models.wide_and_deep import StandardisedInputs, WideAndDeep

        self.n_numeric_ = self._check_params(X.shape[1])
        indices = X[:, self.n_numeric_:]
        if self.cardinalities is None:
            self.cardinalities_ = [int(v) + 1 for v in (indices.max(axis=0) if len(indices) else [])]
        else:
            self.cardinalities_ = [int(v) for v in self.cardinalities]
            if len(self.cardinalities_) != indices.shape[1]:
                raise ValueError(f"cardinalities has {len(self.cardinalities_)} entries for "
                                 f"{indices.shape[1]} categorical columns")
        numeric, categorical = self._split(X)
        if categorical.size and np.any(categorical >= np.asarray(self.cardinalities_)):
            raise ValueError("a categorical index of X is not below its column's cardinality")
        self.mean_ = numeric.mean(axis=0)
        scale = numeric.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0).astype(np.float32)
        seed = 0 if self.random_state is None else int(self.random_state)
        torch.manual_seed(seed)
        inner = WideAndDeep(n_numeric=self.n_numeric_, cardinalities=self.cardinalities_, hidden=list(self.hidden),
                            n_outputs=n_outputs, dropout=self.dropout)
        self.network_ = StandardisedInputs(inner, self.mean_, self.scale_, self.cardinalities_)
        result = train_network(self.network_, _Rows(numeric, categorical), y, None, None, task=task,
                               epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                               weight_decay=self.weight_decay, seed=seed, data_parallel=False)
        self.history_ = result.history

    def _network_output(self, X) -> np.ndarray:
        from mlpatterns.models.training_loop import predict_network

        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False)
        numeric, categorical = self._split(X)
        return predict_network(self.network_, _Rows(numeric, categorical), self._task, batch_size=_PREDICT_BATCH)

    def onnx_inputs(self, X) -> tuple[np.ndarray, np.ndarray]:
        """The (numeric, categorical) arrays the exported network takes for rows of ``X``."""
        check_is_fitted(self, "network_")
        return self._split(validate_data(self, X, reset=False))


class WideAndDeepRegressor(RegressorMixin, _WideAndDeepEstimator):
    """A wide-and-deep network regressor (mean squared error) on one feature matrix.

    Parameters
    ----------
    n_numeric : int, default=None
        Leading columns that are numbers; the rest are categorical indices.
        ``None``: every column is a number (the network is then an MLP).
    cardinalities : list of int, default=None
        Buckets of each categorical column; ``None`` infers them from the training data.
    hidden : tuple of int, default=(64, 32)
        Widths of the deep part's hidden layers.
    dropout, epochs, batch_size, learning_rate, weight_decay
        Training settings (Adam, all ``epochs``, the last weights kept).
    random_state : int, default=0
        Seeds the initial weights and the order of the minibatches.

    Attributes
    ----------
    network_ : torch.nn.Module
        The trained network, taking ``(numeric, categorical)``.
    n_numeric_, cardinalities_, mean_, scale_, history_
        What fitting learned: the layout, the numbers' standardisation, per-epoch losses.
    """

    def fit(self, X, y):
        """Train the network on ``(X, y)``."""
        X, y = validate_data(self, X, y, y_numeric=True)
        self._fit_network(X, np.asarray(y, dtype=np.float64).reshape(-1), 1, "regression")
        return self

    def predict(self, X):
        """The predicted value of every row."""
        return self._network_output(X)


class WideAndDeepClassifier(ClassifierMixin, _WideAndDeepEstimator):
    """A wide-and-deep network classifier (softmax, cross-entropy) on one feature matrix.

    Parameters and attributes as :class:`WideAndDeepRegressor`, plus ``classes_``.
    The network has one output per class, so its exported probabilities have the
    shape of ``predict_proba`` for binary and multiclass targets alike.
    """

    _task = "multiclass"

    def fit(self, X, y):
        """Train the network on ``(X, y)``."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        self._fit_network(X, encoder.transform(y), max(len(self.classes_), 2), "multiclass")
        return self

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        check_is_fitted(self, "network_")
        proba = self._network_output(X)
        return proba[:, :len(self.classes_)] if len(self.classes_) > 1 else np.ones((len(proba), 1))

    def predict(self, X):
        """The most probable class."""
        check_is_fitted(self, "network_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class _Rows:
    """The (numeric, categorical) pair the training loop reads."""

    def __init__(self, numeric: np.ndarray, categorical: np.ndarray) -> None:
        self.numeric, self.categorical = numeric, categorical
