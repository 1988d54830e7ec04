"""Learned embeddings as features for any model: a scikit-learn transformer (pattern 2).

A gradient-boosted model or a linear model cannot learn an embedding itself. The
:class:`EmbeddingEncoder` trains a small torch model (one embedding per categorical
column and a linear head on the target), keeps the learned vectors and the
vocabularies as plain arrays, and replaces every categorical value by its vector:
dense features in which similar values are close. Its state is JSON, not torch, so
``transform`` runs without torch and a fitted encoder ships in a bundle as data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from mlpatterns._json_state import JSONStateMixin, register_json_state

__all__ = ["EmbeddingEncoder", "embedding_dim"]

MIN_DIM, MAX_DIM = 2, 64
OOV, NULL, FIRST = 0, 1, 2  # reserved rows: unseen (or rare) values, nulls; categories follow


def embedding_dim(cardinality: int, *, min_dim: int = MIN_DIM, max_dim: int = MAX_DIM) -> int:
    """The book's rule of thumb: about the fourth root of the number of categories.

    ``ceil(cardinality ** 0.25)``, clamped to ``[min_dim, max_dim]`` (2 and 64 by
    default): a two-valued column still gets 2 dimensions, and a million values get
    32 rather than thousands.

    >>> [embedding_dim(n) for n in (2, 16, 105, 4043, 10**6, 10**9)]
    [2, 2, 4, 8, 32, 64]
    """
    if isinstance(cardinality, bool) or not isinstance(cardinality, (int, np.integer)):
        raise TypeError(f"cardinality must be an integer, got {type(cardinality).__name__}")
    if cardinality < 1:
        raise ValueError(f"cardinality must be at least 1, got {cardinality}")
    if not 1 <= min_dim <= max_dim:
        raise ValueError(f"need 1 <= min_dim <= max_dim, got {min_dim} and {max_dim}")
    return int(min(max(math.ceil(cardinality**0.25 - 1e-9), min_dim), max_dim))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def fit_vocabulary(values: np.ndarray, min_frequency: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sorted categories seen at least ``min_frequency`` times (nulls left out), with counts."""
    series = pd.Series(values, dtype=object)
    counts = series[~series.isna()].map(_plain).value_counts(sort=False)
    counts = counts[counts >= min_frequency]
    keys = list(counts.index)
    try:
        order = sorted(range(len(keys)), key=lambda i: keys[i])
    except TypeError:  # mixed types: group by type name, then by value
        order = sorted(range(len(keys)), key=lambda i: (type(keys[i]).__name__, str(keys[i])))
    categories = np.empty(len(keys), dtype=object)
    categories[:] = [keys[i] for i in order]
    return categories, counts.to_numpy(dtype=np.int64)[order]


def encode_categories(values: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Row indices: ``OOV`` (0) for unseen values, ``NULL`` (1) for nulls, ``FIRST + i``."""
    values = np.asarray(values, dtype=object)
    codes = pd.Index(categories, dtype=object).get_indexer(values)
    out = np.where(codes >= 0, codes + FIRST, OOV).astype(np.int64)
    out[np.asarray(pd.isna(values), dtype=bool)] = NULL
    return out


@register_json_state
class EmbeddingEncoder(JSONStateMixin, TransformerMixin, BaseEstimator):
    """Replace each categorical value by an embedding learned on a target.

    Every column of ``X`` is categorical (strings, integers, any hashable value).
    ``fit`` learns one embedding per column jointly, through a linear head (or a
    small MLP) on ``y``; ``transform`` outputs the vectors side by side.

    Parameters
    ----------
    task : {"auto", "classification", "regression"}
        The head's loss: cross-entropy over the classes of ``y`` or squared error
        on standardized ``y``. ``"auto"`` picks regression for continuous ``y``.
    dims : int, sequence of int or None
        Vector length per column; ``None`` applies :func:`embedding_dim` to the
        number of categories of each column.
    min_frequency : int
        Categories seen fewer times share the out-of-vocabulary vector.
    hidden_units : tuple of int
        Hidden layers between the embeddings and the output; ``()`` is a linear head.
    epochs, batch_size, learning_rate, weight_decay : training settings (AdamW).
    random_state : int, RandomState or None
        Seeds initialization (normal, standard deviation 0.1) and shuffling; an int
        gives identical vectors run to run.

    Attributes
    ----------
    categories_ : list of ndarray
        Sorted categories of each column; category ``i`` has vector row ``i + 2``.
    embeddings_ : list of ndarray
        ``[len(categories_[j]) + 2, dims_[j]]`` vectors; row 0 is for unseen or rare
        values, row 1 for nulls. A reserved row that no training row reached holds
        the frequency-weighted mean of the learned vectors.
    dims_ : list of int
    task_ : str
    loss_curve_ : list of float
        Mean training loss of each epoch.
    n_features_in_, feature_names_in_ : as in scikit-learn.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"dest": ["BOS", "LAX", "BOS", "SFO", "LAX", "BOS"]})
    >>> encoder = EmbeddingEncoder(epochs=3, random_state=0).fit(X, [1, 0, 1, 0, 0, 1])
    >>> encoder.transform(pd.DataFrame({"dest": ["SFO", "ORD", None]})).shape
    (3, 2)
    >>> encoder.get_feature_names_out().tolist()
    ['dest_emb0', 'dest_emb1']
    """

    def __init__(
        self,
        task: str = "auto",
        dims: Any = None,
        min_frequency: int = 1,
        hidden_units: tuple[int, ...] = (),
        epochs: int = 10,
        batch_size: int = 256,
        learning_rate: float = 0.01,
        weight_decay: float = 1e-4,
        random_state: Any = None,
    ) -> None:
        self.task = task
        self.dims = dims
        self.min_frequency = min_frequency
        self.hidden_units = hidden_units
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
        tags.target_tags.required = True
        return tags

    def _resolve_dims(self, n_categories: list[int]) -> list[int]:
        if self.dims is None:
            return [embedding_dim(max(n, 1)) for n in n_categories]
        dims = [self.dims] * len(n_categories) if np.isscalar(self.dims) else list(self.dims)
        if len(dims) != len(n_categories) or not all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in dims
        ):
            raise ValueError(
                f"dims must be None, a positive int or {len(n_categories)} positive ints "
                f"(one per column), got {self.dims!r}"
            )
        return [int(d) for d in dims]

    def _target(self, y: np.ndarray) -> tuple[str, np.ndarray, int]:
        if self.task not in ("auto", "classification", "regression"):
            raise ValueError(
                f"task must be 'auto', 'classification' or 'regression', got {self.task!r}"
            )
        kind = type_of_target(y, input_name="y")
        task = self.task
        if task == "auto":
            task = "regression" if kind == "continuous" else "classification"
        if task == "classification":
            check_classification_targets(y)
            classes, encoded = np.unique(y, return_inverse=True)
            return task, encoded.astype(np.int64), len(classes)
        values = np.asarray(y, dtype=np.float64)
        scale = values.std() or 1.0
        return task, ((values - values.mean()) / scale).astype(np.float32), 1

    def fit(self, X: Any, y: Any) -> EmbeddingEncoder:
        """Learn the vocabularies and the embeddings of every column of ``X`` on ``y``."""
        X, y = validate_data(self, X, y, dtype=None, ensure_all_finite=False)
        if isinstance(self.min_frequency, bool) or not (
            isinstance(self.min_frequency, (int, np.integer)) and self.min_frequency >= 1
        ):
            raise ValueError(f"min_frequency must be a positive int, got {self.min_frequency!r}")
        task, target, n_outputs = self._target(y)
        vocabularies = [fit_vocabulary(X[:, j], self.min_frequency) for j in range(X.shape[1])]
        codes = np.column_stack(
            [encode_categories(X[:, j], cats) for j, (cats, _) in enumerate(vocabularies)]
        )
        dims = self._resolve_dims([len(cats) for cats, _ in vocabularies])
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        cardinalities = [len(cats) + FIRST for cats, _ in vocabularies]
        vectors, self.loss_curve_ = _train(
            self, codes, target, (task, n_outputs), cardinalities, dims, seed
        )
        self.categories_ = [cats for cats, _ in vocabularies]
        self.embeddings_ = [
            _fill_unreached(table, counts, codes[:, j])
            for j, (table, (_, counts)) in enumerate(zip(vectors, vocabularies, strict=True))
        ]
        self.dims_ = dims
        self.task_ = task
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Each row's vectors, column after column: ``[n_samples, sum(dims_)]`` float64."""
        check_is_fitted(self, "embeddings_")
        X = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        parts = [
            table[encode_categories(X[:, j], cats)]
            for j, (cats, table) in enumerate(zip(self.categories_, self.embeddings_, strict=True))
        ]
        return np.hstack(parts) if parts else np.zeros((len(X), 0))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``{column}_emb{k}`` for every column and vector component."""
        check_is_fitted(self, "embeddings_")
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            names = np.array([f"x{j}" for j in range(self.n_features_in_)], dtype=object)
        if input_features is not None:
            input_features = np.asarray(input_features, dtype=object)
            if len(input_features) != self.n_features_in_ or (
                hasattr(self, "feature_names_in_") and not np.array_equal(input_features, names)
            ):
                raise ValueError(
                    f"input_features must be {list(names)}, got {list(input_features)}"
                )
            names = input_features
        return np.array(
            [
                f"{name}_emb{k}"
                for name, dim in zip(names, self.dims_, strict=True)
                for k in range(dim)
            ],
            dtype=object,
        )


def _fill_unreached(table: np.ndarray, counts: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Give the reserved rows (OOV, null) that no training row used the mean learned vector."""
    table = table.astype(np.float64)
    if len(counts):
        mean = np.average(table[FIRST:], axis=0, weights=counts)
        for row in (OOV, NULL):
            if not (codes == row).any():
                table[row] = mean
    return table


def _train(
    encoder: EmbeddingEncoder,
    codes: np.ndarray,
    target: np.ndarray,
    head: tuple[str, int],
    cardinalities: list[int],
    dims: list[int],
    seed: int,
) -> tuple[list[np.ndarray], list[float]]:
    """Train embeddings + head with AdamW; return each column's vectors and the loss curve."""
    import torch
    from torch import nn

    from mlpatterns.data.embeddings import CategoricalEmbeddings

    task, n_outputs = head
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        embeddings = CategoricalEmbeddings(cardinalities, dims)
        for table in embeddings.embeddings:  # small start: the learned signal dominates soon
            nn.init.normal_(table.weight, std=0.1)
        layers: list[nn.Module] = []
        width = embeddings.output_dim
        for units in encoder.hidden_units:
            layers += [nn.Linear(width, int(units)), nn.ReLU()]
            width = int(units)
        model = nn.Sequential(embeddings, *layers, nn.Linear(width, n_outputs))
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=encoder.learning_rate, weight_decay=encoder.weight_decay
        )
        loss_fn = nn.CrossEntropyLoss() if task == "classification" else nn.MSELoss()
        inputs = torch.as_tensor(codes)
        targets = torch.as_tensor(target)
        if task == "regression":
            targets = targets.reshape(-1, 1)
        curve = []
        for _ in range(int(encoder.epochs)):
            order = torch.randperm(len(inputs))
            total = 0.0
            for start in range(0, len(inputs), int(encoder.batch_size)):
                batch = order[start : start + int(encoder.batch_size)]
                optimizer.zero_grad()
                loss = loss_fn(model(inputs[batch]), targets[batch])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            curve.append(total / max(len(inputs), 1))
    return [embeddings.export(name) for name in embeddings.names], curve
