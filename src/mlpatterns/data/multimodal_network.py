"""The neural form of Multimodal Input (pattern 4): one tower per modality, concatenated.

* tabular: standardized numbers side by side with the embeddings of the
  categorical columns (:class:`~mlpatterns.data.embeddings.CategoricalEmbeddings`);
* text: per text column, the mean of the embeddings of its hashed words (an
  ``nn.EmbeddingBag``; the padding bucket is left out of the mean), next to the
  tabular features extracted from the text (length, words, digits);
* image: pixels through a small CNN (two 3x3 convolutions with ReLU, max pooling,
  then an adaptive average pool to 2x2).

The towers' outputs are concatenated and passed through dense layers to the output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mlpatterns.data.embeddings import CategoricalEmbeddings

__all__ = ["MultimodalNetwork"]


class MultimodalNetwork(nn.Module):
    """Tabular, text and image towers concatenated before dense layers.

    Parameters
    ----------
    n_numeric : int
        Dense numeric inputs of the tabular tower.
    cardinalities : sequence of int
        Categorical inputs of the tabular tower, embedded.
    n_text : int
        Text columns; each gets its own ``nn.EmbeddingBag`` over ``num_buckets``
        hashed words (index ``num_buckets`` is padding).
    num_buckets, text_dim : int
        Hash buckets and vector length of the bag of words.
    n_text_stats : int
        Tabular features extracted from the texts, concatenated to the text tower.
    image_shape : (channels, height, width) or None
        Shape of the image input; ``None`` means no image tower.
    image_channels : (int, int)
        Output channels of the two convolutions.
    hidden_units : sequence of int
        Dense layers after the concatenation.
    n_outputs : int
        Width of the output (classes, or 1 for regression).
    dropout : float
        Dropout after each dense layer.

    Attributes
    ----------
    tower_widths : dict
        Width of each tower's output, by modality.

    Examples
    --------
    >>> network = MultimodalNetwork(n_numeric=2, cardinalities=[10], n_text=1,
    ...                             num_buckets=50, n_text_stats=3, image_shape=(1, 8, 8))
    >>> network.tower_widths
    {'tabular': 4, 'text': 19, 'image': 64}
    >>> out = network(numeric=torch.zeros(4, 2), categorical=torch.zeros(4, 1, dtype=torch.long),
    ...               tokens=torch.full((4, 1, 5), 50), text_stats=torch.zeros(4, 3),
    ...               images=torch.zeros(4, 1, 8, 8))
    >>> out.shape
    torch.Size([4, 1])
    """

    def __init__(
        self,
        n_numeric: int = 0,
        cardinalities: Sequence[int] = (),
        n_text: int = 0,
        num_buckets: int = 1024,
        text_dim: int = 16,
        n_text_stats: int = 0,
        image_shape: Sequence[int] | None = None,
        image_channels: Sequence[int] = (8, 16),
        hidden_units: Sequence[int] = (64,),
        n_outputs: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_numeric, self.n_text, self.n_text_stats = (
            int(n_numeric),
            int(n_text),
            int(n_text_stats),
        )
        self.num_buckets = int(num_buckets)
        self.embeddings = CategoricalEmbeddings(cardinalities) if len(cardinalities) else None
        self.bags = nn.ModuleList(
            nn.EmbeddingBag(
                self.num_buckets + 1, text_dim, mode="mean", padding_idx=self.num_buckets
            )
            for _ in range(self.n_text)
        )
        for bag in self.bags:  # start near zero: a title's words add only what they learn
            nn.init.normal_(bag.weight, std=0.01)
            with torch.no_grad():
                bag.weight[self.num_buckets].zero_()
        self.image_shape = tuple(int(s) for s in image_shape) if image_shape is not None else None
        self.cnn = None
        if self.image_shape is not None:
            if len(self.image_shape) != 3:
                raise ValueError(
                    f"image_shape must be (channels, height, width), got {image_shape}"
                )
            first, second = (int(c) for c in image_channels)
            self.cnn = nn.Sequential(
                nn.Conv2d(self.image_shape[0], first, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2) if min(self.image_shape[1:]) >= 4 else nn.Identity(),
                nn.Conv2d(first, second, 3, padding=1),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(2),
                nn.Flatten(),
            )
        self.tower_widths = {
            "tabular": self.n_numeric + (self.embeddings.output_dim if self.embeddings else 0),
            "text": self.n_text * text_dim + self.n_text_stats,
            "image": 4 * int(image_channels[1]) if self.cnn is not None else 0,
        }
        width = sum(self.tower_widths.values())
        if width == 0:
            raise ValueError("the network has no input: declare at least one modality")
        layers: list[nn.Module] = []
        for units in hidden_units:
            layers += [nn.Linear(width, int(units)), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(float(dropout)))
            width = int(units)
        layers.append(nn.Linear(width, int(n_outputs)))
        self.head = nn.Sequential(*layers)

    @staticmethod
    def _require(name: str, value: Any) -> torch.Tensor:
        if value is None:
            raise ValueError(f"the network was built with a {name} input; pass {name}=")
        return value

    def towers(
        self,
        numeric: torch.Tensor | None = None,
        categorical: torch.Tensor | None = None,
        tokens: torch.Tensor | None = None,
        text_stats: torch.Tensor | None = None,
        images: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Each tower's output, before concatenation (empty towers left out)."""
        out: dict[str, torch.Tensor] = {}
        tabular = []
        if self.n_numeric:
            tabular.append(self._require("numeric", numeric))
        if self.embeddings is not None:
            tabular.append(self.embeddings(self._require("categorical", categorical)))
        if tabular:
            out["tabular"] = torch.cat(tabular, dim=1)
        text = []
        if self.n_text:
            tokens = self._require("tokens", tokens)
            if tokens.dim() != 3 or tokens.shape[1] != self.n_text:
                raise ValueError(
                    f"tokens must have shape [batch, {self.n_text}, length], got {tuple(tokens.shape)}"
                )
            tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
            if not tracing and bool(((tokens < 0) | (tokens > self.num_buckets)).any()):
                raise IndexError(f"tokens must be hash buckets in [0, {self.num_buckets}]")
            text += [bag(tokens[:, j, :]) for j, bag in enumerate(self.bags)]
        if self.n_text_stats:
            text.append(self._require("text_stats", text_stats))
        if text:
            out["text"] = torch.cat(text, dim=1)
        if self.cnn is not None:
            images = self._require("images", images)
            if tuple(images.shape[1:]) != self.image_shape:
                raise ValueError(
                    f"images must have shape [batch, {', '.join(map(str, self.image_shape))}], "
                    f"got {tuple(images.shape)}"
                )
            out["image"] = self.cnn(images)
        return out

    def forward(self, **inputs: torch.Tensor | None) -> torch.Tensor:
        """``numeric``, ``categorical``, ``tokens``, ``text_stats``, ``images`` -> outputs."""
        return self.head(torch.cat(list(self.towers(**inputs).values()), dim=1))
