"""Rebalancing (pattern 10): a network's output bias started at the log prior.

Problem: a freshly initialised network predicts about 0.5 for a class seen 1 % of the
time, so its first epochs only learn the imbalance and the starting loss is far from its
floor. Solution: set the output layer's bias so that the untrained network predicts the
prior (Karpathy's "init well"; the TensorFlow imbalanced-data tutorial).
"""

from __future__ import annotations

import numpy as np

__all__ = ["init_output_bias"]


def init_output_bias(linear_layer, positive_rate):
    """Start a network's output bias at the log prior, so its first predictions match the base rate.

    With one output (sigmoid), the bias becomes ``log(p / (1 - p))``; with one output per
    class (softmax), ``positive_rate`` holds the class frequencies and the bias becomes
    ``log(p_k)``. An untrained network then predicts the prior rather than 0.5, which saves
    the first epochs from learning only the imbalance and gives a loss near its floor.

    Parameters
    ----------
    linear_layer : torch.nn.Linear
        The output layer; changed in place.
    positive_rate : float or array-like
        The positive-class rate in ``(0, 1)``, or the class frequencies (summing to 1)
        for a layer with one output per class.

    Returns
    -------
    torch.nn.Linear
        The same layer.

    Examples
    --------
    >>> import torch
    >>> layer = init_output_bias(torch.nn.Linear(4, 1), 0.2)
    >>> round(torch.sigmoid(layer.bias.detach()).item(), 6)
    0.2
    """
    import torch

    if getattr(linear_layer, "bias", None) is None:
        raise ValueError("linear_layer must have a bias (torch.nn.Linear(..., bias=True))")
    rates = np.atleast_1d(np.asarray(positive_rate, dtype=np.float64))
    if np.any((rates <= 0) | (rates >= 1)):
        raise ValueError(f"positive_rate must lie strictly between 0 and 1, got {positive_rate!r}")
    n_outputs = linear_layer.bias.shape[0]
    if len(rates) == 1 and n_outputs == 1:
        bias = np.log(rates / (1 - rates))
    elif len(rates) == n_outputs and n_outputs > 1:
        if not np.isclose(rates.sum(), 1.0):
            raise ValueError("positive_rate must sum to 1 when it gives one rate per output")
        bias = np.log(rates)
    else:
        raise ValueError(f"positive_rate has {len(rates)} value(s) for a layer with {n_outputs} "
                         "output(s): give one rate for one output, or one per output")
    with torch.no_grad():
        linear_layer.bias.copy_(torch.as_tensor(bias, dtype=linear_layer.bias.dtype))
    return linear_layer
