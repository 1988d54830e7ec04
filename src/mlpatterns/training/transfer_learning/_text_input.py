"""The text input of the Transfer Learning estimators: a list of texts, and their parameter checks.

Shared by :class:`~mlpatterns.training.transfer_learning.sentence_embedder.SentenceEmbedder`
and :class:`~mlpatterns.training.transfer_learning.fine_tuning.FineTunedTextClassifier`.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np

__all__ = ["TextInput", "check_positive", "check_texts"]


def check_texts(X: Any) -> list[str]:
    """``X`` as a list of texts; a single text, or anything but texts, is a ``ValueError``."""
    if isinstance(X, str | bytes) or not hasattr(X, "__iter__"):
        raise ValueError(
            f"X must be a list of texts, got {type(X).__name__}: wrap a single text in a list"
        )
    texts = list(np.asarray(X, dtype=object).ravel()) if hasattr(X, "shape") else list(X)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"X[{position}] must be a str, got {type(text).__name__} {text!r}")
    return texts


def check_positive(name: str, value: Any, kind: type = Integral, allow_zero: bool = False) -> None:
    """A positive (or, with ``allow_zero``, non-negative) whole number or number, else a ``ValueError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or not (value >= 0 if allow_zero else value > 0)
    ):
        what = "whole number" if kind is Integral else "number"
        raise ValueError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} {what}, got {value!r}"
        )


class TextInput:
    """Tags an estimator whose ``X`` is a list of texts, as scikit-learn's text vectorizers are."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags
