"""Transfer Learning (pattern 13), the second step: fine-tune a pretrained text encoder.

Problem: frozen pretrained features (:class:`~mlpatterns.training.transfer_learning.sentence_embedder.SentenceEmbedder`)
were learned for another task; a few hundred labels may still adapt them to this one,
but training every layer at one rate on so few examples overwrites what pretraining
taught the lower layers.

Solution: :class:`FineTunedTextClassifier` puts a linear head on the pretrained
all-MiniLM-L6-v2, fits the head on the frozen features first, then trains end to end
with layer-wise learning rates (torch optimizer parameter groups from
:func:`~mlpatterns.training.transfer_learning.layers.layerwise_lr_groups`): the head and top
layer at ``learning_rate``, each layer below at ``layer_decay`` times the rate above,
the first ``frozen_layers`` not at all. torch is imported when it is fitted.
"""

from __future__ import annotations

import copy
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from mlpatterns.training.transfer_learning._text_input import TextInput, check_positive, check_texts
from mlpatterns.training.transfer_learning.layers import freeze, layerwise_lr_groups, train_mode
from mlpatterns.training.transfer_learning.sentence_embedder import load_sentence_encoder

__all__ = ["FineTunedTextClassifier"]


class FineTunedTextClassifier(TextInput, ClassifierMixin, BaseEstimator):
    """A pretrained sentence encoder and a linear head, fine-tuned with layer-wise learning rates.

    Training has two steps. First the head alone: a logistic regression (``head_C``)
    on the frozen encoder's embeddings, copied into the head. Then ``epochs`` of
    end-to-end training (AdamW, cross-entropy, minibatches of ``batch_size``) with
    one parameter group per layer: the head and the top transformer layer at
    ``learning_rate``, each layer below at ``layer_decay`` times the rate above it,
    down to the word embeddings. ``epochs=0`` gives the frozen-feature classifier.

    Parameters
    ----------
    model : str or Path, default=None
        ``None``: the packaged all-MiniLM-L6-v2; otherwise a local sentence-transformers
        model directory with a BERT-style encoder.
    learning_rate : float, default=5e-5
        The rate of the head and the top transformer layer.
    layer_decay : float, default=0.8
        Factor per layer going down; ``1.0`` trains all layers at one rate.
    frozen_layers : int, default=0
        Layers from the bottom kept frozen, counting the word embeddings as the first:
        ``1`` freezes the embeddings, ``7`` (all-MiniLM-L6-v2 has 6 transformer layers)
        the whole encoder, so only the head trains.
    epochs, batch_size, weight_decay : training settings of the fine-tuning step.
    head_C : float, default=1.0
        Inverse regularisation of the first step's logistic regression.
    max_length : int, default=128
        Tokens per text; longer texts are cut.
    device : str, default="cpu"
    random_state : int, default=0
        Seeds dropout and the order of the minibatches: a fit repeats exactly.

    Attributes
    ----------
    classes_ : ndarray
    network_ : SentenceClassifier
        The fine-tuned encoder and head (torch, eval mode).
    tokenizer_ : tokenizer of the encoder.
    lr_groups_ : list of (str, float)
        Each trained layer and its learning rate, bottom first.
    history_ : list of float
        Mean training loss per fine-tuning epoch.
    """

    def __init__(
        self,
        model: Any = None,
        learning_rate: float = 5e-5,
        layer_decay: float = 0.8,
        frozen_layers: int = 0,
        epochs: int = 3,
        batch_size: int = 16,
        weight_decay: float = 0.01,
        head_C: float = 1.0,
        max_length: int = 128,
        device: str = "cpu",
        random_state: int = 0,
    ) -> None:
        self.model = model
        self.learning_rate = learning_rate
        self.layer_decay = layer_decay
        self.frozen_layers = frozen_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.head_C = head_C
        self.max_length = max_length
        self.device = device
        self.random_state = random_state

    def _check_params(self) -> None:
        check_positive("epochs", self.epochs, allow_zero=True)
        check_positive("frozen_layers", self.frozen_layers, allow_zero=True)
        for name in ("batch_size", "max_length"):
            check_positive(name, getattr(self, name))
        for name in ("learning_rate", "head_C"):
            check_positive(name, getattr(self, name), Real)
        check_positive("weight_decay", self.weight_decay, Real, allow_zero=True)
        if (
            isinstance(self.layer_decay, bool)
            or not isinstance(self.layer_decay, Real)
            or not 0 < self.layer_decay <= 1
        ):
            raise ValueError(f"layer_decay must be a number in (0, 1], got {self.layer_decay!r}")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, Integral):
            raise ValueError(f"random_state must be an int, got {self.random_state!r}")

    def _tokens(self, texts: list[str]) -> dict:
        return self.tokenizer_(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch

        self.network_.eval()
        with torch.no_grad():
            return np.concatenate(
                [
                    self.network_.embed(**self._tokens(texts[i : i + self.batch_size]))
                    .cpu()
                    .numpy()
                    for i in range(0, len(texts), self.batch_size)
                ]
            )

    def _init_head(self, texts: list[str], y: np.ndarray) -> None:
        import torch

        head = LogisticRegression(C=self.head_C, max_iter=2000).fit(self._embed(texts), y)
        coef, intercept = head.coef_, head.intercept_
        if len(self.classes_) == 2:  # one binary logit z: logits (-z/2, z/2) give the same softmax
            coef, intercept = (
                np.vstack([-coef / 2, coef / 2]),
                np.concatenate([-intercept / 2, intercept / 2]),
            )
        with torch.no_grad():
            self.network_.head.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
            self.network_.head.bias.copy_(torch.as_tensor(intercept, dtype=torch.float32))

    def fit(self, X, y):
        """Fit the head on the frozen embeddings, then fine-tune with layer-wise learning rates."""
        import torch

        from mlpatterns.training.transfer_learning.networks import SentenceClassifier

        texts = check_texts(X)
        y = column_or_1d(y, warn=True)
        if len(texts) != len(y):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y)} labels")
        check_classification_targets(y)
        self._check_params()
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"y must hold at least two classes, got only {self.classes_[0]!r}")
        target = encoder.transform(y)
        pretrained = load_sentence_encoder(self.model, self.device)
        self.tokenizer_ = pretrained.tokenizer
        self.network_ = SentenceClassifier(
            copy.deepcopy(pretrained[0].auto_model), len(self.classes_)
        ).to(self.device)
        self._init_head(texts, target)

        layers = self.network_.layers()
        if self.frozen_layers > len(layers) - 1:
            raise ValueError(
                f"frozen_layers must be at most {len(layers) - 1} (the encoder's layers), "
                f"got {self.frozen_layers}"
            )
        freeze(self.network_.encoder)  # the pooler and anything else outside the listed layers
        for _, layer in layers[self.frozen_layers :]:
            layer.requires_grad_(True)
        groups = layerwise_lr_groups(
            self.network_,
            self.learning_rate,
            self.layer_decay,
            layers=layers,
            weight_decay=self.weight_decay,
        )
        self.lr_groups_ = [(group["name"], group["lr"]) for group in groups]
        self.history_ = []
        if self.epochs:
            optimizer = torch.optim.AdamW(groups)
            labels = torch.as_tensor(target, dtype=torch.long, device=self.device)
            generator = torch.Generator().manual_seed(self.random_state)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.random_state)
                for _ in range(self.epochs):
                    train_mode(self.network_)
                    total = 0.0
                    for batch in torch.randperm(len(texts), generator=generator).split(
                        self.batch_size
                    ):
                        optimizer.zero_grad()
                        logits = self.network_(**self._tokens([texts[i] for i in batch.tolist()]))
                        loss = torch.nn.functional.cross_entropy(
                            logits, labels[batch.to(self.device)]
                        )
                        loss.backward()
                        optimizer.step()
                        total += float(loss.detach()) * len(batch)
                    self.history_.append(total / len(texts))
        self.network_.eval()
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        import torch

        check_is_fitted(self, "network_")
        texts = check_texts(X)
        if not texts:
            return np.empty((0, len(self.classes_)))
        self.network_.eval()
        with torch.no_grad():
            logits = [
                self.network_(**self._tokens(texts[i : i + self.batch_size]))
                for i in range(0, len(texts), self.batch_size)
            ]
            return torch.softmax(torch.cat(logits), dim=1).cpu().numpy().astype(np.float64)

    def predict(self, X) -> np.ndarray:
        """The most probable class of every text."""
        check_is_fitted(self, "network_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
