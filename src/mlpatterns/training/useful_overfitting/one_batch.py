"""Useful Overfitting (pattern 11) as a debugging tool: can the model overfit one batch?

Problem: a model that trains badly may be a poor fit for the data, or simply broken
(an output that ignores the input, a graph cut by ``.detach()``, parameters the
optimizer never sees, a zero learning rate), and a full training run is a slow way to
tell the two apart.

Solution: before the real run, train on a single small batch. A correct model and
training step drive the loss on that batch to nearly nothing; one that cannot is
broken. :func:`overfit_one_batch` trains a copy of the model, returns the loss curve
and a verdict, and says what looks wrong when it fails.

Examples
--------
>>> import torch
>>> _ = torch.manual_seed(0)
>>> x, y = torch.randn(16, 4), torch.randn(16, 1)
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
>>> check = overfit_one_batch(model, x, y, torch.nn.MSELoss(), steps=300, lr=1e-2)
>>> check.passed, len(check.losses)
(True, 301)
>>> broken = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
>>> check = overfit_one_batch(broken, x, y, torch.nn.MSELoss(), steps=300, lr=0.0)
>>> check.passed
False
>>> print(check.message)  # doctest: +ELLIPSIS
the loss never changed: the optimizer does not move the weights (learning rate 0? ...)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["OverfitCheck", "overfit_one_batch"]


@dataclass
class OverfitCheck:
    """The verdict of :func:`overfit_one_batch`.

    ``losses`` holds the loss before training and after every step; ``passed`` is
    true when the last loss is at most ``threshold`` times the first; ``message``
    says why it failed (or that it passed).
    """

    passed: bool
    losses: list[float] = field(default_factory=list)
    threshold: float = 0.01
    message: str = ""

    @property
    def initial_loss(self) -> float:
        return self.losses[0] if self.losses else math.nan

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else math.nan

    def __bool__(self) -> bool:
        return self.passed

    def raise_if_failed(self) -> OverfitCheck:
        """Raise ``AssertionError`` with the message when the check failed."""
        if not self.passed:
            raise AssertionError(f"overfit-one-batch check failed: {self.message}")
        return self


def overfit_one_batch(model: Any, batch_x: Any, batch_y: Any, loss_fn: Callable[[Any, Any], Any], *,
                      steps: int = 200, lr: float = 1e-2, threshold: float = 0.01,
                      optimizer: Callable[..., Any] | None = None, copy_model: bool = True) -> OverfitCheck:
    """Train ``model`` on one batch; pass when the loss falls to ``threshold`` x its initial value.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(batch_x)``; a copy is trained unless ``copy_model=False``.
    batch_x, batch_y : tensors
        One small batch (a few to a few dozen rows).
    loss_fn : callable
        ``loss_fn(model(batch_x), batch_y)`` returns a scalar tensor.
    steps : int, default=200
    lr : float, default=1e-2
        Adam's learning rate (ignored when ``optimizer`` is given).
    threshold : float, default=0.01
        Pass when ``final_loss <= threshold * initial_loss``.
    optimizer : callable, default=None
        ``optimizer(parameters, lr=lr) -> torch.optim.Optimizer``; ``None``: Adam.

    Returns
    -------
    OverfitCheck
        ``passed``, the loss curve (``steps + 1`` values) and a message naming the
        symptom when it fails: no trainable parameters, a loss cut from the
        parameters' graph, no or zero gradients, a loss that never moves, a non-finite
        loss, an output that is the same for every row, or a loss that falls too little.
    """
    import torch

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
    model = copy.deepcopy(model) if copy_model else model
    model.train()
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not named:
        return OverfitCheck(False, [], threshold, "the model has no trainable parameters "
                            "(every parameter has requires_grad=False)")
    make = optimizer or torch.optim.Adam
    opt = make([p for _, p in named], lr=lr)
    losses: list[float] = []
    missing: list[str] = []
    for step in range(steps + 1):
        opt.zero_grad()
        loss = loss_fn(model(batch_x), batch_y)
        losses.append(float(loss.detach()))
        if not math.isfinite(losses[-1]):
            return OverfitCheck(False, losses, threshold, f"the loss became {losses[-1]} at step {step}: "
                                "lower the learning rate or check the inputs and the loss")
        if step == steps:
            break
        if not loss.requires_grad:
            return OverfitCheck(False, losses, threshold, "the loss does not depend on any trainable "
                                "parameter: the graph is cut (.detach(), .item(), .numpy(), "
                                "torch.no_grad()) between the parameters and the loss")
        loss.backward()
        if step == 0:
            missing = [name for name, p in named if p.grad is None]
            if len(missing) == len(named):
                return OverfitCheck(False, losses, threshold, "no parameter received a gradient")
            if all(float(p.grad.abs().max()) == 0 for _, p in named if p.grad is not None):
                return OverfitCheck(False, losses, threshold, "every gradient is zero: the output does "
                                    "not depend on the weights (a dead activation, a constant output?)")
        opt.step()
    check = _verdict(model, batch_x, batch_y, losses, threshold)
    if not check.passed and missing:
        check.message += f"; these parameters got no gradient: {', '.join(missing)}"
    return check


def _verdict(model: Any, batch_x: Any, batch_y: Any, losses: list[float], threshold: float) -> OverfitCheck:
    import torch

    first, last = losses[0], losses[-1]
    if all(value == first for value in losses):
        return OverfitCheck(False, losses, threshold, "the loss never changed: the optimizer does not move "
                            "the weights (learning rate 0? parameters not given to the optimizer?)")
    with torch.no_grad():
        output = model(batch_x)
    varies = len(batch_y) > 1 and not bool(torch.all(batch_y == batch_y[:1]))
    if varies and len(output) > 1 and bool(torch.all(output == output[:1])):
        return OverfitCheck(False, losses, threshold, "the model gives the same output for every row of "
                            "the batch: its output does not depend on its input")
    if last <= threshold * first:
        return OverfitCheck(True, losses, threshold,
                            f"passed: the loss fell from {first:.4g} to {last:.4g} in {len(losses) - 1} steps")
    return OverfitCheck(False, losses, threshold,
                        f"the loss fell only from {first:.4g} to {last:.4g} ({last / first:.1%} of the initial "
                        f"loss; the check asks for {threshold:.0%}) in {len(losses) - 1} steps: the model "
                        "cannot memorise one batch (too small, a bug in the forward pass, or more steps or "
                        "another learning rate needed)")
