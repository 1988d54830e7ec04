"""Which columns are which modality, and the fitted encoding of each (pattern 4).

Shared by :class:`~mlpatterns.data.multimodal_input.MultimodalFeatures` and the
multimodal estimators: an estimator declares ``numeric_columns``,
``categorical_columns``, ``text_columns`` (and, for the network, ``image_columns``)
by name or position; :class:`ModalityColumnsMixin` resolves the declarations,
learns each modality's parameters on the training data (medians, scales,
vocabularies, image shape) and encodes new rows with them. Its fitted state is
plain arrays, so an estimator built on it stays JSON-serializable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.data.embedding_encoder import encode_categories, fit_vocabulary

__all__ = ["MODALITIES", "ModalityColumnsMixin"]

MODALITIES = ("numeric", "categorical", "text", "image")


def _as_float(values: np.ndarray, column: str, declaration: str) -> np.ndarray:
    """A float64 copy of ``values`` (nulls become NaN); non-numbers raise naming the column."""
    values = np.asarray(values)
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    flat = pd.Series(values.ravel(), dtype=object)
    numbers = pd.to_numeric(flat, errors="coerce")
    bad = numbers.isna().to_numpy() & ~flat.isna().to_numpy()
    if bad.any():
        row = int(np.argmax(bad)) // max(values.shape[1] if values.ndim == 2 else 1, 1)
        raise ValueError(
            f"{declaration}: column {column!r} must hold numbers, "
            f"got {flat[int(np.argmax(bad))]!r} at row {row}"
        )
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan).reshape(values.shape)


class ModalityColumnsMixin:
    """Resolve, fit and encode the declared modality columns of an estimator."""

    def _resolve_columns(self, n_features: int) -> dict[str, list[int]]:
        names = getattr(self, "feature_names_in_", None)
        names = list(names) if names is not None else None
        declared = {m: getattr(self, f"{m}_columns", None) for m in MODALITIES}
        if all(value is None for value in declared.values()):
            return {m: list(range(n_features)) if m == "numeric" else [] for m in MODALITIES}
        resolved: dict[str, list[int]] = {}
        owner: dict[int, str] = {}
        for modality, value in declared.items():
            field = f"{modality}_columns"
            value = [] if value is None else [value] if isinstance(value, (str, int)) else value
            positions = []
            for column in value:
                if isinstance(column, str):
                    if names is None or column not in names:
                        known = names if names is not None else "none (X has no column names)"
                        raise ValueError(
                            f"{field}: {column!r} is not a column of X; columns: {known}"
                        )
                    position = names.index(column)
                elif isinstance(column, (int, np.integer)) and not isinstance(column, bool):
                    if not 0 <= column < n_features:
                        raise ValueError(
                            f"{field}: position {column} is out of range for {n_features} columns"
                        )
                    position = int(column)
                else:
                    raise TypeError(f"{field}: expected column names or positions, got {column!r}")
                if position in owner:
                    raise ValueError(
                        f"column {column!r} is declared in both {owner[position]} and {field}"
                    )
                owner[position] = field
                positions.append(position)
            resolved[modality] = positions
        return resolved

    def _column_name(self, position: int) -> str:
        names = getattr(self, "feature_names_in_", None)
        return str(names[position]) if names is not None else f"x{position}"

    def _input_names(self, input_features: Any = None) -> list[str]:
        names = [self._column_name(j) for j in range(self.n_features_in_)]
        if input_features is not None and list(input_features) != names:
            if getattr(self, "feature_names_in_", None) is not None or len(input_features) != len(
                names
            ):
                raise ValueError(f"input_features must be {names}, got {list(input_features)}")
            names = [str(name) for name in input_features]
        return names

    def _numeric_names(self, names: list[str]) -> list[str]:
        positions = self.columns_["numeric"]
        flagged = [
            p for p, missing in zip(positions, self.numeric_missing_, strict=True) if missing
        ]
        return [names[p] for p in positions] + [f"{names[p]}_missing" for p in flagged]

    def _numeric(self, X: np.ndarray, positions: list[int], declaration: str) -> np.ndarray:
        columns = [_as_float(X[:, p], self._column_name(p), declaration) for p in positions]
        return np.column_stack(columns) if columns else np.zeros((len(X), 0))

    def _images(self, X: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
        positions = self.columns_["image"]
        first = X[0, positions[0]] if len(X) and len(positions) == 1 else None
        if isinstance(first, (np.ndarray, list, tuple)):
            pixels = np.stack([np.asarray(cell, dtype=np.float64) for cell in X[:, positions[0]]])
        else:
            pixels = self._numeric(X, positions, "image_columns")
        values = math.prod(pixels.shape[1:])
        if shape is None:
            side = math.isqrt(values)
            if pixels.ndim == 2 and side * side != values:
                raise ValueError(
                    f"image_columns: {values} pixel values per row do not make a square "
                    "image; pass image_shape=(channels, height, width)"
                )
            shape = pixels.shape[1:] if pixels.ndim > 2 else (side, side)
            shape = (1, *shape) if len(shape) == 2 else tuple(shape)
        if math.prod(shape) != values:
            raise ValueError(
                f"image_shape {tuple(shape)} does not fit the {values} pixel values per row "
                "of image_columns; pass image_shape=(channels, height, width)"
            )
        return np.nan_to_num(pixels.reshape(len(X), *shape), nan=0.0)

    def _kept_buckets(self, texts: np.ndarray) -> np.ndarray:
        """Buckets used by at least ``min_word_count`` training texts (document frequency).

        With ``num_buckets`` well above the number of distinct words a bucket is about
        one word, so this drops rare words, which a network would otherwise memorize.
        """
        from mlpatterns.data.multimodal_input import hashed_tokens

        tokens = hashed_tokens(texts, self.num_buckets, getattr(self, "max_tokens", None))
        rows = np.repeat(np.arange(len(tokens)), tokens.shape[1])
        pairs = np.unique(rows * (self.num_buckets + 1) + tokens.ravel())
        frequency = np.bincount(pairs % (self.num_buckets + 1), minlength=self.num_buckets + 1)
        return frequency[: self.num_buckets] >= getattr(self, "min_word_count", 1)

    def _fit_modalities(self, X: np.ndarray) -> None:
        """Learn every modality's parameters on the validated training matrix ``X``."""
        from mlpatterns.data.multimodal_input import text_statistics

        self.columns_ = self._resolve_columns(X.shape[1])
        numeric = self._numeric(X, self.columns_["numeric"], "numeric_columns")
        missing = np.isnan(numeric)
        median = np.zeros(numeric.shape[1])
        for j in range(numeric.shape[1]):
            present = numeric[~missing[:, j], j]
            median[j] = np.median(present) if len(present) else 0.0
        filled = np.where(missing, median, numeric)
        self.numeric_median_ = median
        self.numeric_mean_ = filled.mean(axis=0) if len(filled) else median
        self.numeric_scale_ = np.where(filled.std(axis=0) > 0, filled.std(axis=0), 1.0)
        self.numeric_missing_ = missing.any(axis=0)
        min_frequency = getattr(self, "min_frequency", 1)
        self.categories_ = [
            fit_vocabulary(X[:, p], min_frequency)[0] for p in self.columns_["categorical"]
        ]
        self.text_kept_buckets_ = [self._kept_buckets(X[:, p]) for p in self.columns_["text"]]
        stats = [text_statistics(X[:, p]) for p in self.columns_["text"]]
        stats = np.hstack(stats) if stats else np.zeros((len(X), 0))
        self.text_mean_ = stats.mean(axis=0)
        self.text_scale_ = np.where(stats.std(axis=0) > 0, stats.std(axis=0), 1.0)
        if self.columns_["image"]:
            declared = getattr(self, "image_shape", None)
            declared = None if declared is None else tuple(int(s) for s in declared)
            if declared is not None and len(declared) == 2:
                declared = (1, *declared)
            images = self._images(X, declared)
            self.image_shape_ = list(images.shape[1:])
            self.image_scale_ = float(np.abs(images).max(initial=0.0)) or 1.0

    def _encode_modalities(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """Every modality of ``X`` encoded with the fitted parameters, as NumPy arrays."""
        from mlpatterns.data.multimodal_input import hashed_tokens, text_statistics

        numeric = self._numeric(X, self.columns_["numeric"], "numeric_columns")
        missing = np.isnan(numeric)
        numeric = np.where(missing, self.numeric_median_, numeric) - self.numeric_mean_
        numeric = numeric / self.numeric_scale_
        numeric = np.hstack([numeric, missing[:, self.numeric_missing_].astype(np.float64)])
        categorical = [
            encode_categories(X[:, p], cats)
            for p, cats in zip(self.columns_["categorical"], self.categories_, strict=True)
        ]
        encoded = {
            "numeric": numeric,
            "categorical": np.column_stack(categorical)
            if categorical
            else np.zeros((len(X), 0), np.int64),
        }
        texts = self.columns_["text"]
        if texts:
            max_tokens = getattr(self, "max_tokens", None)
            tokens = [hashed_tokens(X[:, p], self.num_buckets, max_tokens) for p in texts]
            length = max(t.shape[1] for t in tokens)
            padded = np.full((len(X), len(texts), length), self.num_buckets, dtype=np.int64)
            for j, (t, kept) in enumerate(zip(tokens, self.text_kept_buckets_, strict=True)):
                # dropped buckets (too rare in training) become padding, left out of the bag
                padded[:, j, : t.shape[1]] = np.where(
                    np.append(kept, False)[t], t, self.num_buckets
                )
            stats = np.hstack([text_statistics(X[:, p]) for p in texts])
            encoded["tokens"] = padded
            encoded["text_stats"] = (stats - self.text_mean_) / self.text_scale_
        if self.columns_["image"]:
            encoded["images"] = self._images(X, tuple(self.image_shape_)) / self.image_scale_
        return encoded
