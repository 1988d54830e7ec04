"""A wide-and-deep network over hashed categories, crosses and numbers.

The model the book uses to show Embeddings (2) and Feature Cross (3) working
together: the *wide* part is a linear model over every categorical index
(hashed categories and hashed crosses), which memorizes specific combinations;
the *deep* part embeds the same indices (:class:`~mlpatterns.data.embeddings.CategoricalEmbeddings`)
and passes them, with the standardized numbers, through dense layers, which
generalizes. Their sum is the logit (or the value, for regression).

It consumes :class:`~mlpatterns.reproducibility.transform.TransformedFeatures`,
so the same fitted transform feeds it in training and in serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mlpatterns.data.embeddings import CategoricalEmbeddings

__all__ = ["StandardisedInputs", "TargetScale", "WideAndDeep"]


class WideAndDeep(nn.Module):
    """Wide (linear over categorical indices) plus deep (embeddings + MLP) network.

    Parameters
    ----------
    n_numeric : int
        Number of dense numeric inputs.
    cardinalities : sequence of int
        Number of distinct indices of each categorical input column.
    hidden : sequence of int
        Widths of the deep part's hidden layers.
    n_outputs : int
        1 for binary classification (a logit) and regression; k for k classes.
    dropout : float
        Dropout between hidden layers.

    Examples
    --------
    >>> import torch
    >>> model = WideAndDeep(n_numeric=2, cardinalities=[10, 5], hidden=[8])
    >>> model(torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.long)).shape
    torch.Size([3, 1])
    """

    def __init__(
        self,
        n_numeric: int,
        cardinalities: Sequence[int],
        hidden: Sequence[int] = (64, 32),
        n_outputs: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.config = {
            "n_numeric": int(n_numeric),
            "cardinalities": [int(c) for c in cardinalities],
            "hidden": [int(h) for h in hidden],
            "n_outputs": int(n_outputs),
            "dropout": float(dropout),
        }
        cardinalities = list(cardinalities)
        offsets = torch.tensor([0, *cardinalities[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("offsets", offsets if cardinalities else torch.zeros(0, dtype=torch.long))
        self.wide = nn.Embedding(max(sum(cardinalities), 1), n_outputs)
        nn.init.zeros_(self.wide.weight)
        self.bias = nn.Parameter(torch.zeros(n_outputs))
        self.embeddings = CategoricalEmbeddings(cardinalities) if cardinalities else None
        width = n_numeric + (self.embeddings.output_dim if self.embeddings is not None else 0)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, n_outputs))
        self.deep = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric]
        out = self.bias.expand(numeric.shape[0], -1)
        if self.embeddings is not None:
            out = out + self.wide(categorical + self.offsets).sum(dim=1)
            parts.append(self.embeddings(categorical))
        return out + self.deep(torch.cat(parts, dim=1))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> WideAndDeep:
        """Rebuild the architecture from :attr:`config` (weights are loaded separately)."""
        return cls(**config)


class StandardisedInputs(nn.Module):
    """Standardise the numeric inputs with training statistics, then run ``inner``.

    Categorical indices above a column's last bucket (``cardinalities - 1``) share
    that bucket. Keeping both steps inside the network means its ONNX export takes
    the raw inputs (used by :mod:`mlpatterns.models.wide_and_deep_estimators`).
    """

    def __init__(self, inner: nn.Module, mean: Any, scale: Any, cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("last_index", torch.as_tensor(list(cardinalities), dtype=torch.long) - 1)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.inner((numeric - self.mean) / self.scale, torch.minimum(categorical, self.last_index))


class TargetScale(nn.Module):
    """Put a network's standardised regression output back in the target's units.

    A network learns a target with mean 0 and standard deviation 1 far more easily than
    prices in the thousands; ``inner`` is trained on ``(y - mean) / std`` and this module
    returns ``inner(...) * std + mean``, so its ONNX export serves values in the target's
    units.

    >>> import torch
    >>> head = TargetScale(WideAndDeep(n_numeric=1, cardinalities=[], hidden=[2]), mean=100.0, std=10.0)
    >>> bool(torch.allclose(head(torch.zeros(2, 1), torch.zeros(2, 0, dtype=torch.long)),
    ...                     head.inner(torch.zeros(2, 1), torch.zeros(2, 0, dtype=torch.long)) * 10 + 100))
    True
    """

    def __init__(self, inner: nn.Module, mean: float, std: float) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(float(std), dtype=torch.float32))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.inner(numeric, categorical) * self.std + self.mean
