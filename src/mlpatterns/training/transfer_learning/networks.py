"""Transfer Learning (pattern 13): torch networks whose layers are named for reuse.

Problem: a new task comes with too few labels (ten images per digit, a few hundred
movie titles) to learn its features from scratch.

Solution: networks split into a pretrained part, cut at a bottleneck, and a new head,
with their layers listed bottom to top so that the generic helpers of
:mod:`mlpatterns.training.transfer_learning.layers` (``freeze``, ``layerwise_lr_groups``,
``bottleneck_features``) apply:

* :class:`SmallCNN`: a CNN for 8x8 digits (children ``block1``, ``block2``,
  ``dense``, ``head``). Pretrain it on one task, then :meth:`SmallCNN.transfer` it:
  the convolutions up to the bottleneck (``block2``, the last layer before the
  flattening, as the book cuts an image model) keep their weights, the layers above
  start anew for the new classes.
* :class:`SentenceClassifier`: a pretrained BERT-style text encoder, mean pooling,
  L2 normalisation (the sentence-transformers recipe of all-MiniLM-L6-v2) and a
  linear head; :meth:`SentenceClassifier.layers` lists the word embeddings, each
  transformer layer and the head, bottom to top.

This module imports torch; the rest of the pattern does not.

Examples
--------
>>> import torch
>>> source = SmallCNN(n_classes=5)
>>> target = source.transfer(n_classes=5)
>>> torch.equal(target.block2[0].weight, source.block2[0].weight), target.head[-1].out_features
(True, 5)
>>> target(torch.zeros(3, 64)).shape
torch.Size([3, 5])
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["SentenceClassifier", "SmallCNN"]


class SmallCNN(nn.Module):
    """A small CNN for square single-channel images (scikit-learn's 8x8 digits).

    Parameters
    ----------
    n_classes : int, default=10
        Outputs of the head (logits).
    channels : tuple of two int, default=(16, 32)
        Filters of the two 3x3 convolution blocks; the second ends in 2x2 max pooling.
    dense : int, default=64
        Width of the dense layer between the convolutions and the head.
    dropout : float, default=0.2
        Dropout before the head.
    image_size : int, default=8
        Height and width of the images, which may come flattened (``n, size * size``)
        or as ``(n, 1, size, size)``.
    """

    def __init__(
        self,
        n_classes: int = 10,
        channels: tuple[int, int] = (16, 32),
        dense: int = 64,
        dropout: float = 0.2,
        image_size: int = 8,
    ) -> None:
        super().__init__()
        first, second = channels
        self.image_size = image_size
        self.block1 = nn.Sequential(nn.Conv2d(1, first, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(
            nn.Conv2d(first, second, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Linear(second * (image_size // 2) ** 2, dense), nn.ReLU()
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(dense, n_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        images = images.reshape(-1, 1, self.image_size, self.image_size)
        return self.head(self.dense(self.block2(self.block1(images))))

    def transfer(self, n_classes: int, keep: str = "block2", random_state: int = 0) -> SmallCNN:
        """A trainable copy: the pretrained layers through ``keep``, new ones above it.

        ``keep="block2"`` (the bottleneck) reuses the convolutions and starts a new
        dense layer and head; ``keep="dense"`` also reuses the dense layer. The new
        layers are initialised from ``random_state`` without touching torch's global
        random state.
        """
        names = [name for name, _ in self.named_children()]
        if keep not in names[:-1]:
            raise ValueError(f"keep must be one of {names[:-1]}, got {keep!r}")
        model = copy.deepcopy(self).requires_grad_(True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(random_state))
            model.head[-1] = nn.Linear(model.head[-1].in_features, n_classes)
            for name in names[names.index(keep) + 1 :]:
                for layer in getattr(model, name).modules():
                    if isinstance(layer, nn.Linear | nn.Conv2d):
                        layer.reset_parameters()
        return model


class SentenceClassifier(nn.Module):
    """A pretrained text encoder, mean pooling, L2 normalisation and a linear head.

    Parameters
    ----------
    encoder : transformers BERT-style model
        Has ``embeddings`` and ``encoder.layer`` (BERT, MiniLM, RoBERTa) and returns
        ``last_hidden_state``; all-MiniLM-L6-v2's is ``SentenceTransformer[0].auto_model``.
    n_outputs : int
        Logits of the head.
    normalize : bool, default=True
        L2-normalise the pooled embedding, as all-MiniLM-L6-v2 is used.
    """

    def __init__(self, encoder: Any, n_outputs: int, normalize: bool = True) -> None:
        super().__init__()
        if not (
            hasattr(encoder, "embeddings") and hasattr(getattr(encoder, "encoder", None), "layer")
        ):
            raise ValueError(
                "encoder must be a BERT-style model with .embeddings and .encoder.layer, "
                f"got {type(encoder).__name__}"
            )
        self.encoder = encoder
        self.normalize = normalize
        self.head = nn.Linear(encoder.config.hidden_size, n_outputs)

    def layers(self) -> list[tuple[str, nn.Module]]:
        """``(name, module)`` from the bottom up: word embeddings, each transformer layer, head."""
        blocks = [
            (f"encoder.encoder.layer.{i}", layer)
            for i, layer in enumerate(self.encoder.encoder.layer)
        ]
        return [("encoder.embeddings", self.encoder.embeddings), *blocks, ("head", self.head)]

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **tokens: Any
    ) -> torch.Tensor:
        """The sentence embedding: the mean of the last hidden states over the real tokens."""
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, **tokens
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, dim=1) if self.normalize else pooled

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **tokens: Any
    ) -> torch.Tensor:
        return self.head(self.embed(input_ids, attention_mask, **tokens))
