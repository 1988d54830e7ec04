"""The torch side of Useful Overfitting (pattern 11): the emulator network and its training loop.

This module imports torch; :class:`~mlpatterns.training.useful_overfitting.OverfitEmulator`
imports it only when it is fitted. The network is defined here, at module level, so a
fitted emulator pickles.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["EmulatorNetwork", "train_to_tolerance"]

ACTIVATION_LAYERS = {"tanh": nn.Tanh, "relu": nn.ReLU, "silu": nn.SiLU}  # by the names of params.ACTIVATIONS
_STALL_CHECKS = 3  # checks without a 1 % better max error before the quartic loss takes over


class EmulatorNetwork(nn.Module):
    """An MLP with its input encoding and target scale built in, returning values in target units.

    Linear input columns are standardised with the grid's mean and scale; a periodic
    column ``j`` (``periods[j] = p``) enters as ``cos(2 pi x / p)`` and ``sin(2 pi x / p)``,
    so its two ends meet. There is no dropout and no normalisation layer.
    """

    def __init__(self, n_features: int, hidden: Sequence[int], activation: str,
                 periods: Mapping[int, float], mean: np.ndarray, scale: np.ndarray,
                 y_mean: float, y_scale: float) -> None:
        super().__init__()
        periodic = sorted(periods)
        linear = [j for j in range(n_features) if j not in periods]
        self.register_buffer("linear", torch.tensor(linear, dtype=torch.long))
        self.register_buffer("periodic", torch.tensor(periodic, dtype=torch.long))
        self.register_buffer("periods", torch.tensor([float(periods[j]) for j in periodic]))
        self.register_buffer("mean", torch.tensor(np.asarray(mean)[linear], dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(np.asarray(scale)[linear], dtype=torch.float32))
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_scale", torch.tensor(float(y_scale)))
        layers: list[nn.Module] = []
        width = len(linear) + 2 * len(periodic)
        for size in hidden:
            layers += [nn.Linear(width, int(size)), ACTIVATION_LAYERS[activation]()]
            width = int(size)
        layers.append(nn.Linear(width, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # no empty blocks: the ONNX exporter types an empty float tensor as int64
        parts = [(x[:, self.linear] - self.mean) / self.scale] if len(self.linear) else []
        if len(self.periodic):
            angles = 2 * math.pi * x[:, self.periodic] / self.periods
            parts += [torch.cos(angles), torch.sin(angles)]
        return self.body(torch.cat(parts, dim=1)).squeeze(-1) * self.y_scale + self.y_mean


def _max_and_mean_error(network: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        chunk: int = 65536) -> tuple[float, float]:
    """Max and mean absolute error, in float64 as the estimator's ``predict`` computes them."""
    network = copy.deepcopy(network).double()
    largest, total = 0.0, 0.0
    with torch.no_grad():
        for start in range(0, len(y), chunk):
            error = (network(x[start:start + chunk]) - y[start:start + chunk]).abs()
            largest, total = max(largest, float(error.max())), total + float(error.sum())
    return largest, total / len(y)


def _lbfgs_round(optimizer: torch.optim.LBFGS, objective, budget: int) -> tuple[float, int]:
    """Up to ``budget`` L-BFGS iterations; the loss before them and the iterations taken."""

    def closure():
        optimizer.zero_grad()
        value = objective()
        value.backward()
        return value

    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    before = state.get("n_iter", 0)
    optimizer.param_groups[0]["max_iter"] = budget
    value = float(optimizer.step(closure).detach())
    return value, optimizer.state[optimizer.param_groups[0]["params"][0]]["n_iter"] - before


def train_to_tolerance(network: nn.Module, X: np.ndarray, y: np.ndarray, *, tol: float,
                       solver: str = "lbfgs", loss: str = "adaptive", max_steps: int = 2000,
                       check_every: int = 20, learning_rate: float | None = None,
                       batch_size: int | None = None, seed: int = 0) -> dict:
    """Train ``network`` on every row of ``(X, y)`` until its max error is ``<= tol``.

    No held-out rows, no weight decay, no dropout: the only stopping rule is the max
    absolute error over all of ``X`` (checked every ``check_every`` steps, in float64;
    training itself runs in float32) or the step budget. The weights with the smallest
    max error seen are kept.

    ``solver="lbfgs"`` takes full-batch L-BFGS steps (one step is one L-BFGS
    iteration); ``"adam"`` takes Adam steps on minibatches of ``batch_size`` rows
    (``None``: all rows). ``loss="squared_error"`` minimises the mean squared error;
    ``"adaptive"`` does so until the max error stops improving, then minimises the mean
    fourth power of the error, which weighs the worst points most. Errors are measured
    in units of ``tol`` so the loss is of order one near the goal.
    """
    x_all = torch.tensor(X, dtype=torch.float32)
    y_all = torch.tensor(y, dtype=torch.float32)
    x_check, y_check = torch.tensor(X, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    unit = float(tol) if tol > 0 else float(max(np.std(y), 1.0))
    power = 2

    def objective(rows=None):
        xb, yb = (x_all, y_all) if rows is None else (x_all[rows], y_all[rows])
        return (((network(xb) - yb) / unit) ** power).mean()

    def make_optimizer():
        if solver == "lbfgs":
            return torch.optim.LBFGS(network.parameters(), lr=learning_rate or 1.0, max_iter=check_every,
                                     history_size=50, line_search_fn="strong_wolfe",
                                     tolerance_grad=0.0, tolerance_change=0.0)
        return torch.optim.Adam(network.parameters(), lr=learning_rate or 1e-3)

    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer()
    order, position = torch.randperm(len(y_all), generator=generator), 0
    n_steps, stalled, history = 0, 0, []
    best_error, best_mean = _max_and_mean_error(network, x_check, y_check)
    best_state = copy.deepcopy(network.state_dict())
    while best_error > tol and n_steps < max_steps:
        budget = min(check_every, max_steps - n_steps)
        if solver == "lbfgs":
            value, taken = _lbfgs_round(optimizer, objective, budget)
            n_steps += max(taken, 1)  # a round that cannot move still spends budget
        else:
            for _ in range(budget):
                size = batch_size or len(y_all)
                if position + size > len(order):
                    order, position = torch.randperm(len(y_all), generator=generator), 0
                rows = order[position:position + size]
                position += size
                optimizer.zero_grad()
                batch_loss = objective(rows)
                batch_loss.backward()
                optimizer.step()
            n_steps += budget
            value = float(batch_loss.detach())
        error, mean = _max_and_mean_error(network, x_check, y_check)
        history.append({"step": n_steps, "loss": value, "max_error": error, "power": power})
        if not math.isfinite(error):
            break
        if error < best_error:
            stalled = stalled + 1 if error > 0.99 * best_error else 0
            best_error, best_mean, best_state = error, mean, copy.deepcopy(network.state_dict())
        else:
            stalled += 1
        if loss == "adaptive" and power == 2 and stalled >= _STALL_CHECKS:
            power, stalled, optimizer = 4, 0, make_optimizer()
    network.load_state_dict(best_state)
    return {"max_error": best_error, "mean_error": best_mean, "n_steps": n_steps, "history": history}
