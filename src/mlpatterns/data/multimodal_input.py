"""Multimodal Input (pattern 4): one model over tabular, text and image inputs.

Problem: the inputs of a model come in different kinds (numbers and categories,
free text, pixels), or one input is worth representing several ways (a title as a
bag of words *and* as its length), and off-the-shelf models take one numeric matrix.

Solution: encode each modality in the way that suits it and concatenate the
encodings before the layers that combine them. Numbers are imputed and
standardized (with a missing-value indicator), categories embedded (2), text
becomes a bag of hashed words (1) plus tabular features extracted from it (length
in characters, words, digits), and images go through a small CNN.

This module holds what both forms of the pattern share: the declaration of which
columns are which modality, the text encodings, and :class:`MultimodalFeatures`,
the non-neural form that puts every modality into one feature matrix for any
scikit-learn model. The neural form, one tower per modality, is
:class:`~mlpatterns.data.multimodal_network.MultimodalNetwork`, wrapped for
scikit-learn by :class:`~mlpatterns.data.multimodal_estimators.MultimodalClassifier`
and :class:`~mlpatterns.data.multimodal_estimators.MultimodalRegressor`.

Examples
--------
>>> tokenize("The Good, the Bad and the Ugly (1966)")
['the', 'good', 'the', 'bad', 'and', 'the', 'ugly', '1966']
>>> text_statistics(["Alien", "2001: A Space Odyssey", None]).tolist()
[[5.0, 1.0, 0.0], [21.0, 4.0, 4.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from mlpatterns._json_state import JSONStateMixin, register_json_state
from mlpatterns.data.embedding_encoder import FIRST
from mlpatterns.data.multimodal_columns import ModalityColumnsMixin
from mlpatterns.hashing import hash_bucket, is_null

__all__ = ["TEXT_STATISTICS", "MultimodalFeatures", "hashed_tokens", "text_statistics", "tokenize"]

TEXT_STATISTICS = ("n_chars", "n_words", "n_digits")
_WORD = re.compile(r"\w+")


def tokenize(text: Any) -> list[str]:
    """Lower-cased words (runs of letters, digits, underscores); a null has none."""
    if is_null(text):
        return []
    return _WORD.findall(str(text).lower())


def text_statistics(texts: Any) -> np.ndarray:
    """Tabular features of each text: characters, words and digits (0 for a null)."""
    rows = []
    for text in texts:
        text = "" if is_null(text) else str(text)
        rows.append((len(text), len(_WORD.findall(text)), sum(c.isdigit() for c in text)))
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(TEXT_STATISTICS))


def hashed_tokens(texts: Any, num_buckets: int, max_tokens: int | None = None) -> np.ndarray:
    """The hashed words of each text, padded with ``num_buckets``: ``int64 [n, length]``.

    Words go to ``hash_bucket(word, num_buckets)`` (FarmHash, the Hashed Feature
    pattern), so an unseen word still lands in a bucket and no vocabulary is stored.
    Texts longer than ``max_tokens`` words are cut.

    >>> hashed_tokens(["a b", "c"], 10).tolist()
    [[7, 4], [4, 10]]
    """
    tokens = [tokenize(text)[:max_tokens] for text in texts]
    lengths = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    flat = np.empty(int(lengths.sum()), dtype=object)
    flat[:] = [word for words in tokens for word in words]
    buckets = hash_bucket(flat, num_buckets)
    out = np.full((len(tokens), int(lengths.max(initial=1))), num_buckets, dtype=np.int64)
    out[np.arange(out.shape[1]) < lengths[:, None]] = buckets
    return out


def _one_per_row(columns: np.ndarray, width: int) -> Any:
    """A CSR matrix with a single 1 per row, in ``columns[row]``."""
    rows = np.arange(len(columns) + 1)
    return sparse.csr_matrix((np.ones(len(columns)), columns, rows), shape=(len(columns), width))


@register_json_state
class MultimodalFeatures(ModalityColumnsMixin, JSONStateMixin, TransformerMixin, BaseEstimator):
    """One feature matrix from tabular and text columns, for any scikit-learn model.

    Numeric columns are imputed with the training median, standardized, and
    followed by a ``{column}_missing`` indicator when training saw nulls;
    categorical columns are one-hot encoded (``{column}=<other>`` for unseen, rare
    and null values); each text column becomes ``num_buckets`` counts of hashed
    words plus its standardized :data:`TEXT_STATISTICS`. Undeclared columns are
    dropped; declaring none treats every column as numeric.

    Parameters
    ----------
    numeric_columns, categorical_columns, text_columns : list of str or int, optional
        Column names (when fitting on a DataFrame) or positions.
    num_buckets : int
        Hash buckets of the bag of words of each text column.
    min_word_count : int
        Hash buckets used by fewer training texts are always 0 (a minimum document
        frequency per word when ``num_buckets`` is well above the vocabulary size).
    text_features : bool
        Whether to add the text statistics (length, words, digits).
    min_frequency : int
        Categories seen fewer times in training fall into ``<other>``.
    sparse_output : bool
        Return a SciPy CSR matrix (worth it for many buckets) instead of a dense array.

    Attributes
    ----------
    columns_ : dict
        Positions of the columns of each modality.
    categories_ : list of ndarray
        Vocabulary of each categorical column.
    n_features_in_, feature_names_in_ : as in scikit-learn.

    Examples
    --------
    >>> import pandas as pd
    >>> movies = pd.DataFrame({"title": ["Alien", "Aliens", None], "length": [117, 137, None]})
    >>> features = MultimodalFeatures(numeric_columns=["length"], text_columns=["title"],
    ...                               num_buckets=4).fit(movies)
    >>> features.get_feature_names_out().tolist()[:5]
    ['length', 'length_missing', 'title_hash0', 'title_hash1', 'title_hash2']
    >>> features.transform(movies).shape
    (3, 9)
    """

    def __init__(
        self,
        numeric_columns: Any = None,
        categorical_columns: Any = None,
        text_columns: Any = None,
        num_buckets: int = 256,
        min_word_count: int = 1,
        text_features: bool = True,
        min_frequency: int = 1,
        sparse_output: bool = False,
    ) -> None:
        self.numeric_columns = numeric_columns
        self.categorical_columns = categorical_columns
        self.text_columns = text_columns
        self.num_buckets = num_buckets
        self.min_word_count = min_word_count
        self.text_features = text_features
        self.min_frequency = min_frequency
        self.sparse_output = sparse_output

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    def fit(self, X: Any, y: Any = None) -> MultimodalFeatures:
        """Learn medians, scales and vocabularies on ``X``."""
        X = validate_data(self, X, dtype=None, ensure_all_finite=False)
        self._fit_modalities(X)
        return self

    def transform(self, X: Any) -> Any:
        """The feature matrix, in the order of :meth:`get_feature_names_out`."""
        check_is_fitted(self, "columns_")
        X = validate_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        encoded = self._encode_modalities(X)
        n = len(X)
        blocks: list[Any] = [sparse.csr_matrix(encoded["numeric"])]
        for j, categories in enumerate(self.categories_):
            codes = encoded["categorical"][:, j]
            # column 0 is <other>: unseen, rare and null values
            columns = np.where(codes >= FIRST, codes - FIRST + 1, 0)
            blocks.append(_one_per_row(columns, len(categories) + 1))
        for j in range(len(self.columns_["text"])):
            tokens = encoded["tokens"][:, j, :]
            rows = np.repeat(np.arange(n), tokens.shape[1])
            counts = sparse.coo_matrix(
                (np.ones(tokens.size), (rows, tokens.ravel())), shape=(n, self.num_buckets + 1)
            )
            blocks.append(counts.tocsr()[:, : self.num_buckets])  # duplicates are summed
            if self.text_features:
                width = len(TEXT_STATISTICS)
                stats = encoded["text_stats"][:, j * width : (j + 1) * width]
                blocks.append(sparse.csr_matrix(stats))
        out = sparse.hstack(blocks, format="csr", dtype=np.float64)
        return out if self.sparse_output else out.toarray()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the output columns: numbers, one-hot categories, hashed words, text stats."""
        check_is_fitted(self, "columns_")
        names = self._input_names(input_features)
        out = self._numeric_names(names)
        for position, categories in zip(
            self.columns_["categorical"], self.categories_, strict=True
        ):
            out += [f"{names[position]}=<other>"] + [f"{names[position]}={c}" for c in categories]
        for position in self.columns_["text"]:
            out += [f"{names[position]}_hash{b}" for b in range(self.num_buckets)]
            if self.text_features:
                out += [f"{names[position]}_{stat}" for stat in TEXT_STATISTICS]
        return np.asarray(out, dtype=object)
