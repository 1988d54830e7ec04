"""A small, deterministic training loop for the torch models of a spec run.

Minibatch Adam with early stopping on the validation loss, the best weights kept,
a per-epoch history, and a progress bar. Chapter 4's patterns (checkpoints,
distribution, tuning) extend this loop; here it only needs to be correct and
repeatable: the same seed gives the same weights.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TrainingResult", "evaluate_loss", "predict_network", "train_network"]


@dataclass
class TrainingResult:
    model: Any
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0


def _tensors(features: Any, target: np.ndarray | None, task: str = "classification") -> tuple[Any, ...]:
    import torch

    numeric = torch.as_tensor(features.numeric, dtype=torch.float32)
    categorical = torch.as_tensor(features.categorical, dtype=torch.long)
    if target is None:
        return numeric, categorical
    if task == "multiclass":  # class indices for cross-entropy
        return numeric, categorical, torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if task == "multilabel":  # one 0/1 column per label
        return numeric, categorical, torch.as_tensor(target, dtype=torch.float32).reshape(len(target), -1)
    return numeric, categorical, torch.as_tensor(target, dtype=torch.float32).reshape(-1, 1)


def train_network(
    model: Any,
    train: Any,
    y_train: np.ndarray,
    valid: Any,
    y_valid: np.ndarray | None,
    *,
    task: str,
    epochs: int = 5,
    batch_size: int = 1024,
    learning_rate: float = 2e-3,
    weight_decay: float = 0.0,
    patience: int = 2,
    seed: int = 0,
    progress: Any = None,
    pos_weight: float | None = None,
    callback: Any = None,
) -> TrainingResult:
    """Train ``model`` on transformed features; keep the weights of the best validation epoch.

    ``task`` is ``"classification"`` (binary, a logit output, BCE loss),
    ``"regression"`` (MSE), ``"multiclass"`` (one logit per class, cross-entropy;
    the Reframing head over target buckets, the Neutral Class head) or
    ``"multilabel"`` (one logit per label, binary cross-entropy each). ``pos_weight``
    weighs the positive rows of a binary task in the loss (Rebalancing's class
    weights). ``valid=None`` trains all ``epochs`` and keeps the last weights (no
    early stopping). ``progress`` is an optional ``rich.progress.Progress``.
    ``callback(epoch, metrics)`` is called after each epoch with that epoch's
    ``train_loss`` (and ``valid_loss``); it may raise to stop training (Hyperparameter
    Tuning's ``PruningCallback`` raises ``optuna.TrialPruned``).
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    weight = None if pos_weight is None else torch.tensor([float(pos_weight)])
    loss_fn = {"classification": nn.BCEWithLogitsLoss(pos_weight=weight), "regression": nn.MSELoss(),
               "multiclass": nn.CrossEntropyLoss(), "multilabel": nn.BCEWithLogitsLoss()}[task]
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    train_tensors = _tensors(train, y_train, task)
    valid_tensors = None if valid is None else _tensors(valid, y_valid, task)
    n = len(y_train)
    steps = math.ceil(n / batch_size)
    task_id = progress.add_task("wide-and-deep", total=epochs * steps) if progress else None
    best_loss, best_state, best_epoch, history, waited = math.inf, None, 0, [], 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps):
            rows = order[step * batch_size : (step + 1) * batch_size]
            numeric, categorical, target = (t[rows] for t in train_tensors)
            optimizer.zero_grad()
            loss = loss_fn(model(numeric, categorical), target)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(rows)
            if progress is not None:
                progress.advance(task_id)
        history.append({"epoch": epoch, "train_loss": total / n})
        if valid_tensors is not None:
            history[-1]["valid_loss"] = evaluate_loss(model, valid_tensors, loss_fn)
        if callback is not None:
            callback(epoch, {k: v for k, v in history[-1].items() if k != "epoch"})
        if valid_tensors is None:
            best_epoch = epoch
            continue
        valid_loss = history[-1]["valid_loss"]
        if valid_loss < best_loss - 1e-6:
            best_loss, best_state, best_epoch, waited = valid_loss, copy.deepcopy(model.state_dict()), epoch, 0
        else:
            waited += 1
            if waited >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    if progress is not None:
        progress.update(task_id, completed=epochs * steps)
    model.eval()
    return TrainingResult(model=model, history=history, best_epoch=best_epoch)


def evaluate_loss(model: Any, tensors: tuple[Any, ...], loss_fn: Any, batch_size: int = 65536) -> float:
    import torch

    model.eval()
    numeric, categorical, target = tensors
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(target), batch_size):
            sl = slice(start, start + batch_size)
            total += float(loss_fn(model(numeric[sl], categorical[sl]), target[sl])) * len(target[sl])
    return total / max(len(target), 1)


def predict_network(model: Any, features: Any, task: str, batch_size: int = 65536) -> np.ndarray:
    """P(positive) (classification), values (regression), class probabilities (multiclass)
    or label probabilities (multilabel)."""
    import torch

    numeric, categorical = _tensors(features, None)
    outputs = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(numeric), batch_size):
            sl = slice(start, start + batch_size)
            out = model(numeric[sl], categorical[sl])
            if task == "multiclass":
                outputs.append(torch.softmax(out, dim=1))
            else:
                outputs.append(torch.sigmoid(out) if task in ("classification", "multilabel") else out)
    if not outputs:
        return np.zeros(0)
    result = torch.cat(outputs).numpy().astype(np.float64)
    return result if task in ("multiclass", "multilabel") else result.reshape(-1)
