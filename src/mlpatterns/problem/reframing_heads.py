"""Torch output heads for Reframing (pattern 5): bounded outputs and the multi-task form.

Two further ways the book reframes a network's output layer:

* :class:`BoundedOutput`: when a target has a valid range (a probability, a weight
  between 0.5 and 18 lb), a scaled sigmoid ``low + (high - low) * sigmoid(x)`` keeps
  every prediction inside it, instead of clipping afterwards;
* :class:`MultiTaskHead`: regression and classification over target buckets from one
  shared representation, trained on the sum of both losses; the regression head gives
  a point estimate, the bucket head a distribution (see
  :func:`mlpatterns.problem.reframing.quantiles_from_bucket_proba`).

Examples
--------
>>> import torch
>>> head = BoundedOutput(in_features=4, low=0.5, high=18.0)
>>> out = head(torch.randn(8, 4) * 100)
>>> bool(((out >= 0.5) & (out <= 18.0)).all())
True
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BoundedOutput", "MultiTaskHead", "multitask_loss"]


class BoundedOutput(nn.Module):
    """A linear layer followed by a sigmoid scaled to ``[low, high]``.

    Parameters
    ----------
    in_features : int
        Width of the representation the head reads.
    low, high : float
        The valid range of the target; ``low < high``.
    """

    def __init__(self, in_features: int, low: float, high: float) -> None:
        super().__init__()
        if not low < high:
            raise ValueError(f"BoundedOutput needs low < high, got low={low}, high={high}")
        self.linear = nn.Linear(in_features, 1)
        self.register_buffer("low", torch.tensor(float(low)))
        self.register_buffer("span", torch.tensor(float(high) - float(low)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.low + self.span * torch.sigmoid(self.linear(x))


class MultiTaskHead(nn.Module):
    """A regression head and a bucket-classification head over one representation.

    ``forward`` returns ``(value, bucket_logits)``: shapes ``(n, 1)`` and
    ``(n, n_buckets)``. Train with :func:`multitask_loss`.
    """

    def __init__(self, in_features: int, n_buckets: int, low: float | None = None,
                 high: float | None = None) -> None:
        super().__init__()
        if n_buckets < 2:
            raise ValueError(f"n_buckets must be at least 2, got {n_buckets}")
        bounded = low is not None and high is not None
        self.value = BoundedOutput(in_features, low, high) if bounded else nn.Linear(in_features, 1)
        self.buckets = nn.Linear(in_features, n_buckets)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.value(x), self.buckets(x)


def multitask_loss(value: torch.Tensor, bucket_logits: torch.Tensor, target: torch.Tensor,
                   bucket: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """Mean squared error of the value plus ``weight`` times the bucket cross-entropy."""
    return nn.functional.mse_loss(value.reshape(-1), target.reshape(-1)) + weight * nn.functional.cross_entropy(
        bucket_logits, bucket.reshape(-1)
    )
