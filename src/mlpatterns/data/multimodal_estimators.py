"""Multimodal Input (pattern 4) as scikit-learn estimators over a DataFrame.

:class:`MultimodalClassifier` and :class:`MultimodalRegressor` take a DataFrame,
a declaration of which columns are numeric, categorical, text or image pixels,
encode each modality with parameters learned in ``fit``
(:class:`~mlpatterns.data.multimodal_columns.ModalityColumnsMixin`) and train a
:class:`~mlpatterns.data.multimodal_network.MultimodalNetwork`. Declaring no
column treats every column as numeric, which makes them plain MLPs on arrays.
torch is imported when an estimator is fitted, not when this module is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from mlpatterns.data.embedding_encoder import FIRST
from mlpatterns.data.multimodal_columns import ModalityColumnsMixin
from mlpatterns.data.multimodal_input import TEXT_STATISTICS

__all__ = ["MultimodalClassifier", "MultimodalRegressor"]

_PREDICT_BATCH = 4096

_PARAMETERS_DOC = """
    Parameters
    ----------
    numeric_columns, categorical_columns, text_columns : list of str or int, optional
        Column names (when fitting on a DataFrame) or positions of each modality.
        Undeclared columns are ignored; declaring none makes every column numeric.
    image_columns : list of str or int, optional
        The pixel columns of one image, in row-major order, or one column whose
        cells are arrays.
    image_shape : tuple of int, optional
        ``(channels, height, width)`` or ``(height, width)``; by default inferred
        from array cells, or a square single-channel image.
    num_buckets, text_dim : int
        Hash buckets and vector length of each text column's bag of words.
    min_word_count : int
        Hash buckets used by fewer training texts are ignored. A word seen in one
        title can only be memorized; with ``num_buckets`` well above the number of
        distinct words, this is a minimum document frequency per word.
    text_features : bool
        Add each text's length in characters, words and digits to the text tower.
    max_tokens : int
        Words of a text beyond this are ignored.
    hidden_units : tuple of int
        Dense layers after the towers are concatenated.
    dropout, epochs, batch_size, learning_rate, weight_decay : training settings (AdamW).
    random_state : int, RandomState or None
        Seeds initialization and shuffling; an int gives identical models run to run.
"""


class _MultimodalEstimator(ModalityColumnsMixin, BaseEstimator):
    def __init__(
        self,
        numeric_columns: Any = None,
        categorical_columns: Any = None,
        text_columns: Any = None,
        image_columns: Any = None,
        image_shape: Any = None,
        num_buckets: int = 1024,
        min_word_count: int = 2,
        text_dim: int = 16,
        text_features: bool = True,
        max_tokens: int = 32,
        hidden_units: tuple[int, ...] = (64,),
        dropout: float = 0.0,
        epochs: int = 30,
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        weight_decay: float = 1e-4,
        random_state: Any = None,
    ) -> None:
        self.numeric_columns = numeric_columns
        self.categorical_columns = categorical_columns
        self.text_columns = text_columns
        self.image_columns = image_columns
        self.image_shape = image_shape
        self.num_buckets = num_buckets
        self.min_word_count = min_word_count
        self.text_dim = text_dim
        self.text_features = text_features
        self.max_tokens = max_tokens
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    def _inputs(self, encoded: dict[str, np.ndarray], rows: Any, dtype: Any) -> dict[str, Any]:
        import torch

        inputs = {}
        for name, value in encoded.items():
            if name == "text_stats" and not self.text_features:
                continue
            tensor = torch.as_tensor(value[rows])
            inputs[name] = tensor if tensor.dtype == torch.int64 else tensor.to(dtype)
        return inputs

    def _fit_network(self, X: np.ndarray, target: np.ndarray, n_outputs: int) -> None:
        import torch
        from torch import nn

        from mlpatterns.data.multimodal_network import MultimodalNetwork

        self._fit_modalities(X)
        encoded = self._encode_modalities(X)
        n_text = len(self.columns_["text"])
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        classification = n_outputs > 1 or target.dtype == np.int64
        loss_fn = nn.CrossEntropyLoss() if classification else nn.MSELoss()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = MultimodalNetwork(
                n_numeric=encoded["numeric"].shape[1],
                cardinalities=[len(c) + FIRST for c in self.categories_],
                n_text=n_text,
                num_buckets=self.num_buckets,
                text_dim=self.text_dim,
                n_text_stats=n_text * len(TEXT_STATISTICS) if self.text_features else 0,
                image_shape=getattr(self, "image_shape_", None),
                hidden_units=self.hidden_units,
                n_outputs=n_outputs,
                dropout=self.dropout,
            )
            optimizer = torch.optim.AdamW(
                network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            targets = torch.as_tensor(target)
            self.loss_curve_ = []
            for _ in range(int(self.epochs)):
                network.train()
                order = torch.randperm(len(target)).numpy()
                total = 0.0
                for start in range(0, len(order), int(self.batch_size)):
                    rows = order[start : start + int(self.batch_size)]
                    optimizer.zero_grad()
                    output = network(**self._inputs(encoded, rows, torch.float32))
                    loss = loss_fn(output if classification else output[:, 0], targets[rows])
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(rows)
                self.loss_curve_.append(total / len(order))
        # float64 inference: a row's prediction does not depend on the batch it is in
        self.network_ = network.double().eval()

    def _outputs(self, X: Any) -> np.ndarray:
        import torch

        check_is_fitted(self, "network_")
        X = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        encoded = self._encode_modalities(X)
        outputs = []
        with torch.no_grad():
            for start in range(0, len(X), _PREDICT_BATCH):
                rows = np.arange(start, min(start + _PREDICT_BATCH, len(X)))
                outputs.append(self.network_(**self._inputs(encoded, rows, torch.float64)).numpy())
        return np.vstack(outputs) if outputs else np.zeros((0, 1))


class MultimodalClassifier(ClassifierMixin, _MultimodalEstimator):
    __doc__ = (
        """A classifier over tabular, text and image columns: one tower per modality.
"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray
    columns_ : dict
        Positions of the columns of each modality.
    network_ : MultimodalNetwork
    loss_curve_ : list of float
    n_features_in_, feature_names_in_ : as in scikit-learn.

    Examples
    --------
    >>> import pandas as pd
    >>> movies = pd.DataFrame({"title": ["Love Story", "Toy Story", "Love Actually", "Cars"],
    ...                        "length": [99, 81, 135, 117]})
    >>> model = MultimodalClassifier(numeric_columns=["length"], text_columns=["title"],
    ...                              epochs=5, random_state=0).fit(movies, [1, 0, 1, 0])
    >>> model.predict_proba(movies).shape
    (4, 2)
    """
    )

    def fit(self, X: Any, y: Any) -> MultimodalClassifier:
        """Encode every modality and train the network with cross-entropy."""
        X, y = validate_data(self, X, y, dtype=None, ensure_all_finite=False)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self._fit_network(X, codes.astype(np.int64), len(self.classes_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        logits = self._outputs(X)
        logits = logits - logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return probabilities / probabilities.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        probabilities = self.predict_proba(X)
        return self.classes_[np.argmax(probabilities, axis=1)]


class MultimodalRegressor(RegressorMixin, _MultimodalEstimator):
    __doc__ = (
        """A regressor over tabular, text and image columns: one tower per modality.
"""
        + _PARAMETERS_DOC
        + """
    Attributes
    ----------
    columns_ : dict
        Positions of the columns of each modality.
    network_ : MultimodalNetwork
    y_mean_, y_scale_ : float
        The network learns ``(y - y_mean_) / y_scale_``.
    loss_curve_ : list of float
    n_features_in_, feature_names_in_ : as in scikit-learn.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(40.0).reshape(20, 2)
    >>> model = MultimodalRegressor(epochs=50, random_state=0).fit(X, X[:, 0] * 2)
    >>> model.predict(X[:2]).shape
    (2,)
    """
    )

    def fit(self, X: Any, y: Any) -> MultimodalRegressor:
        """Encode every modality and train the network on standardized ``y``."""
        X, y = validate_data(self, X, y, dtype=None, ensure_all_finite=False, y_numeric=True)
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) or 1.0
        self._fit_network(X, ((y - self.y_mean_) / self.y_scale_).astype(np.float32), 1)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted value of each row."""
        return self._outputs(X)[:, 0] * self.y_scale_ + self.y_mean_
