"""Train the torch networks of a spec run with the chapter-4 :class:`~mlpatterns.training.Trainer`.

:func:`train_network` turns a spec model's parameters into one ``Trainer`` run:
minibatch Adam over virtual epochs (``examples_per_epoch``, Checkpoints, 12), early
stopping on the validation loss with the best weights restored, a per-epoch history and
a progress bar; optionally atomic checkpoints that a later run resumes bit for bit
(``checkpoint_dir``, ``resume``), fine-tuning from another run's checkpoint
(``init_from``), data-parallel training when the process is one rank of a ``torchrun``
job (Distribution Strategy, 14), and a per-epoch callback (Hyperparameter Tuning's
pruning, 15). The same seed gives the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TrainingResult", "predict_network", "train_network"]


@dataclass
class TrainingResult:
    model: Any
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    resumed_from: str | None = None
    stopped_early: bool = False


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


def _loss(task: str, pos_weight: float | None) -> Any:
    import torch
    from torch import nn

    weight = None if pos_weight is None else torch.tensor([float(pos_weight)])
    return {"classification": nn.BCEWithLogitsLoss(pos_weight=weight), "regression": nn.MSELoss(),
            "multiclass": nn.CrossEntropyLoss(), "multilabel": nn.BCEWithLogitsLoss()}[task]


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
    examples_per_epoch: int | None = None,
    seed: int = 0,
    progress: Any = None,
    pos_weight: float | None = None,
    callback: Any = None,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    keep_last: int = 2,
    resume: bool = False,
    init_from: str | os.PathLike | None = None,
    data_parallel: bool = True,
) -> TrainingResult:
    """Train ``model`` on transformed features; keep the weights of the best validation epoch.

    ``task`` is ``"classification"`` (binary, a logit output, BCE loss),
    ``"regression"`` (MSE), ``"multiclass"`` (one logit per class, cross-entropy;
    the Reframing head over target buckets, the Neutral Class head) or
    ``"multilabel"`` (one logit per label, binary cross-entropy each). ``epochs`` are
    virtual epochs of ``examples_per_epoch`` rows (default: the training rows).
    ``pos_weight`` weighs the positive rows of a binary task in the loss (Rebalancing's
    class weights). ``valid=None`` trains all ``epochs`` and keeps the last weights (no
    early stopping). ``progress`` is an optional ``rich.progress.Progress``.
    ``callback(epoch, metrics)`` is called after each epoch with that epoch's history
    record (``train_loss``, ``valid_loss``...); it may raise to stop training
    (Hyperparameter Tuning's ``PruningCallback`` raises ``optuna.TrialPruned``).
    ``checkpoint_dir``, ``checkpoint_every``, ``keep_last``, ``resume`` and ``init_from``
    are the :class:`~mlpatterns.training.Trainer`'s; ``data_parallel=False`` trains in
    this process alone even when it is one rank of a ``torchrun`` job.
    """
    import torch

    from mlpatterns.training.trainer.loop import Trainer

    def adam(parameters: Any) -> Any:
        return torch.optim.Adam(parameters, lr=learning_rate, weight_decay=weight_decay)

    with_valid = valid is not None  # the trainer seeds every generator from ``seed`` when it starts
    trainer = Trainer(
        model, _loss(task, pos_weight), optimizer=adam, batch_size=batch_size, max_epochs=epochs,
        examples_per_epoch=examples_per_epoch, patience=patience if with_valid else None, min_delta=1e-6,
        restore_best=with_valid, seed=seed, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
        keep_last=keep_last, callbacks=[] if callback is None else [callback], progress=progress or False,
        data_parallel=data_parallel,
    )
    trainer.fit(_tensors(train, y_train, task), _tensors(valid, y_valid, task) if with_valid else None,
                resume=resume, init_from=init_from)
    history = [dict(record) for record in trainer.history.records]
    best_epoch = trainer.best_epoch if with_valid and trainer.best_epoch is not None else trainer.epoch
    return TrainingResult(model=model, history=history, best_epoch=int(best_epoch),
                          resumed_from=None if trainer.resumed_from is None else str(trainer.resumed_from),
                          stopped_early=trainer.stopped_early)


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
