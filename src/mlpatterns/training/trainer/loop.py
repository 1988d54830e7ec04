"""The torch training loop of chapter 4, built around Checkpoints (pattern 12).

Problem: a long training run dies (preemption, a crash) and the best model is often not
the last; epochs defined as passes over the data make checkpoint cadence and early
stopping change whenever the data grows.

Solution: :class:`Trainer` counts *virtual epochs* of a fixed number of examples, keeps a
metrics history per virtual epoch, stops early on a monitored metric and keeps the best
weights, and saves the full training state (model, optimizer, schedule, every random
generator, position in the data, counters, history) atomically every
``checkpoint_every`` steps and at each virtual epoch end. ``fit(resume=True)`` continues
from the last good checkpoint and ends bit for bit where an uninterrupted run ends;
``fit(init_from=...)`` fine-tunes from a checkpoint's weights on new data.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpatterns.training.checkpoints.manager import CheckpointManager, load_checkpoint
from mlpatterns.training.checkpoints.state import load_model_state, seed_everything
from mlpatterns.training.trainer.data import ShuffledStream, TrainingData, as_training_data
from mlpatterns.training.trainer.distributed import Replicas
from mlpatterns.training.trainer.history import History
from mlpatterns.training.trainer.state import TRAINER_FORMAT, TrainerState

__all__ = ["DEFAULT_CHECKPOINT_EVERY", "Trainer"]

DEFAULT_CHECKPOINT_EVERY = 500
"""Steps between mid-epoch checkpoints: about 1 % of the training time of the flights
wide-and-deep network at batches of 256 and 2048 on a 2-core VM
(``benchmarks/bench_checkpoints.py``, ``docs/patterns/checkpoints.md``)."""


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


class Trainer(TrainerState):
    """Train a torch model in virtual epochs with checkpoints, resume, early stopping and history.

    Parameters
    ----------
    model : torch.nn.Module
        Called as ``model(*inputs)`` on each batch of ``(inputs..., target)``.
    loss : callable
        ``loss(output, target)`` returning the *mean* loss of the batch as a scalar tensor.
    optimizer : callable or torch.optim.Optimizer, optional
        A factory ``optimizer(parameters)`` (preferred: each fresh ``fit`` starts a fresh
        optimizer), or an optimizer over ``model``'s parameters. Default: Adam, lr 1e-3.
    scheduler : callable, optional
        ``scheduler(optimizer)`` returning a learning-rate scheduler, stepped every
        ``scheduler_interval`` (``"epoch"``: each virtual epoch; ``"step"``: each batch).
        ``ReduceLROnPlateau`` is stepped with the monitored value.
    batch_size : int
    examples_per_epoch : int, optional
        Size of a virtual epoch in examples (rounded up to whole batches). Default: the
        number of training rows. Fix it, and checkpoint cadence, early stopping and the
        schedule stay the same when the data set grows.
    max_epochs : int
        Virtual epochs to train (fewer if early stopping stops the run).
    metrics : dict of str to callable, optional
        ``{name: metric(target, output)}`` on the validation data (NumPy arrays; ``output``
        is the raw model output, e.g. logits) returning a float, recorded per epoch.
    monitor : str, optional
        The history column early stopping and "best" follow. Default ``"valid_loss"`` with
        validation data, else ``"train_loss"``. ``mode`` is ``"min"`` or ``"max"``.
    patience : int, optional
        Stop after this many virtual epochs without improving ``monitor`` by more than
        ``min_delta``. None: never stop early.
    restore_best : bool
        Load the best epoch's weights into ``model`` when training ends.
    seed : int
        Seeds Python's ``random``, NumPy's and torch's global generators at the start of a
        fresh run, and the trainer's own shuffling generator. Same seed and same initial
        model: the same weights, bit for bit.
    checkpoint_dir : str or path, optional
        Where checkpoints go (see :class:`~mlpatterns.training.checkpoints.manager.CheckpointManager`).
        None: no checkpoints. A fresh run refuses a directory that already holds checkpoints.
    checkpoint_every : int, optional
        Also save every this many optimizer steps inside an epoch (default
        ``DEFAULT_CHECKPOINT_EVERY``); None: only at virtual epoch ends.
    keep_last : int
        Checkpoints to keep besides the best one.
    callbacks : sequence of callable
        Each is called as ``callback(epoch, metrics)`` after every virtual epoch, once its
        checkpoint is written: ``epoch`` is the 1-based virtual epoch just finished and
        ``metrics`` a copy of its history record (``train_loss``, ``valid_loss``, each
        metric, ``lr``, ``step``, ``examples``). Whatever a callback raises stops training
        and propagates (e.g. ``optuna.TrialPruned`` from a pruning callback).
    progress : bool or rich.progress.Progress
        Show a progress bar (a ``Progress`` you manage, or True for one of the trainer's).
    clip_grad_norm : float, optional
        Clip the gradients' global norm to this value before each step.
    data_parallel : bool
        Inside a ``torch.distributed`` group of several ranks, train data-parallel with the
        other ranks (see Notes). False: this process trains alone (and writes its own
        checkpoints), for a model that only one rank trains.

    Notes
    -----
    Data parallel: inside an initialised ``torch.distributed`` group of several ranks
    (``torchrun``, :mod:`mlpatterns.training.distribution_strategy`), each rank trains on its
    share of every global batch of ``batch_size`` rows and the gradients are summed over
    the ranks (:mod:`mlpatterns.training.trainer.distributed`); rank 0 alone writes
    checkpoints and shows progress; every rank resumes from the checkpoint rank 0 chose.
    Callbacks run on every rank, with the same metrics.

    Bit-for-bit repeatability holds for the same seed, settings, data, torch version and
    number of intra-op threads (``torch.set_num_threads``).

    Attributes
    ----------
    history : History
    step, epoch : int
        Optimizer steps and virtual epochs done.
    steps_per_epoch : int
    optimizer_, scheduler_
        The optimizer and scheduler of the last ``fit``.
    best_epoch : int or None
    stopped_early : bool
    resumed_from : pathlib.Path or None
        The checkpoint the last ``fit`` resumed from.

    Examples
    --------
    >>> import torch
    >>> from mlpatterns.training.checkpoints.state import seed_everything
    >>> seed_everything(0)
    >>> x = torch.linspace(-1, 1, 64).reshape(-1, 1); y = 3 * x + 1
    >>> trainer = Trainer(torch.nn.Linear(1, 1), torch.nn.functional.mse_loss,
    ...                   optimizer=lambda p: torch.optim.SGD(p, lr=0.1), batch_size=16,
    ...                   examples_per_epoch=256, max_epochs=8, patience=2)
    >>> history = trainer.fit((x, y), valid=(x, y))
    >>> len(history), round(history[-1]["valid_loss"], 4)
    (8, 0.0)
    """

    def __init__(
        self,
        model: Any,
        loss: Callable[[Any, Any], Any],
        *,
        optimizer: Any = None,
        scheduler: Any = None,
        scheduler_interval: str = "epoch",
        batch_size: int = 256,
        examples_per_epoch: int | None = None,
        max_epochs: int = 10,
        metrics: Mapping[str, Callable[[Any, Any], float]] | None = None,
        monitor: str | None = None,
        mode: str = "min",
        patience: int | None = None,
        min_delta: float = 0.0,
        restore_best: bool = True,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
        keep_last: int = 3,
        callbacks: Sequence[Callable[[int, dict[str, float]], None]] = (),
        progress: Any = False,
        clip_grad_norm: float | None = None,
        eval_batch_size: int = 8192,
        data_parallel: bool = True,
    ) -> None:
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss):
            raise TypeError(f"loss: expected a callable loss(output, target), got {type(loss).__name__}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"scheduler_interval: expected 'epoch' or 'step', got {scheduler_interval!r}")
        for name, value in [("batch_size", batch_size), ("max_epochs", max_epochs), ("keep_last", keep_last),
                            ("eval_batch_size", eval_batch_size)]:
            _positive_int(name, value)
        for name, value in [("examples_per_epoch", examples_per_epoch), ("checkpoint_every", checkpoint_every),
                            ("patience", patience)]:
            _positive_int(name, value, allow_none=True)
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if not (isinstance(min_delta, (int, float)) and min_delta >= 0):
            raise ValueError(f"min_delta: expected a number >= 0, got {min_delta!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed: expected an integer >= 0, got {seed!r}")
        metrics = dict(metrics or {})
        for name, metric in metrics.items():
            if not callable(metric):
                raise TypeError(f"metrics[{name!r}]: expected a callable metric(target, output)")
            if name in ("epoch", "step", "examples", "lr", "train_loss", "valid_loss"):
                raise ValueError(f"metrics[{name!r}]: the name is taken by the history")
        callbacks = list(callbacks)
        for index, callback in enumerate(callbacks):
            if not callable(callback):
                raise TypeError(f"callbacks[{index}]: expected a callable callback(epoch, metrics)")
        self.model, self.loss, self.optimizer, self.scheduler = model, loss, optimizer, scheduler
        self.scheduler_interval, self.batch_size, self.examples_per_epoch = scheduler_interval, batch_size, examples_per_epoch
        self.max_epochs, self.metrics, self.monitor, self.mode = max_epochs, metrics, monitor, mode
        self.patience, self.min_delta, self.restore_best, self.seed = patience, float(min_delta), restore_best, seed
        self.checkpoint_every, self.keep_last, self.callbacks = checkpoint_every, keep_last, callbacks
        self.progress, self.clip_grad_norm, self.eval_batch_size = progress, clip_grad_norm, eval_batch_size
        self.data_parallel = bool(data_parallel)
        self.checkpoints = None if checkpoint_dir is None else CheckpointManager(checkpoint_dir, keep_last)
        self.history = History()
        self.step = self.epoch = 0
        self.best_epoch: int | None = None
        self.stopped_early = False
        self.resumed_from: Path | None = None

    # -- set-up -------------------------------------------------------------------------------
    def _build_optimizer(self) -> None:
        import torch

        if isinstance(self.optimizer, torch.optim.Optimizer):
            self.optimizer_ = self.optimizer
        elif self.optimizer is None:
            self.optimizer_ = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        elif callable(self.optimizer):
            self.optimizer_ = self.optimizer(self.model.parameters())
        else:
            raise TypeError(f"optimizer: expected a factory optimizer(params) or an Optimizer, got {self.optimizer!r}")
        if self.scheduler is None:
            self.scheduler_ = None
        elif hasattr(self.scheduler, "state_dict") and hasattr(self.scheduler, "step"):
            self.scheduler_ = self.scheduler
        elif callable(self.scheduler):
            self.scheduler_ = self.scheduler(self.optimizer_)
        else:
            raise TypeError(f"scheduler: expected a factory scheduler(optimizer), got {self.scheduler!r}")

    def _config(self, train_rows: int) -> dict[str, Any]:
        return {"batch_size": self.batch_size, "examples_per_epoch": self.examples_per_epoch or train_rows,
                "seed": self.seed, "shuffle": True, "train_rows": train_rows, "monitor": self.monitor_,
                "mode": self.mode}

    def _start_fresh(self, train_rows: int) -> None:
        seed_everything(self.seed)
        self.stream = ShuffledStream(train_rows, self.batch_size, self.seed)
        self.step = self.epoch = 0
        self._loss_sum, self._loss_rows = 0.0, 0
        self.best_value: float | None = None
        self.best_epoch = self.best_step = None
        self._best_model = None
        self.wait, self.stopped_early = 0, False
        self.history = History(monitor=self.monitor_, mode=self.mode)

    # -- the loop -----------------------------------------------------------------------------
    def fit(
        self,
        train: Any,
        valid: Any = None,
        *,
        resume: bool = False,
        resume_from: str | os.PathLike | None = None,
        init_from: str | os.PathLike | None = None,
        init_optimizer: bool = False,
    ) -> History:
        """Train on ``train`` (``(inputs..., target)``: tensors, arrays or a Dataset).

        ``valid`` (same form) gives ``valid_loss`` and the metrics. ``resume=True``
        continues from the newest good checkpoint in ``checkpoint_dir`` (a fresh run if
        there is none); ``resume_from`` names a checkpoint file or directory. ``init_from``
        (a checkpoint file or directory, whose best checkpoint is used) loads only the
        model's weights, and the optimizer's too if ``init_optimizer``, then starts a new
        run on this data: fine-tuning. Returns the :attr:`history`.
        """
        if init_from is not None and (resume or resume_from is not None):
            raise ValueError("init_from: starts a new run from a checkpoint's weights; it cannot be combined with resume")
        if resume and self.checkpoints is None:
            raise ValueError("resume: needs checkpoint_dir (or name the checkpoint with resume_from=)")
        self._train = as_training_data(train, "train")
        self._valid = None if valid is None else as_training_data(valid, "valid")
        self.monitor_ = self.monitor or ("valid_loss" if self._valid is not None else "train_loss")
        if self.monitor_ != "train_loss" and self._valid is None:
            raise ValueError(f"monitor={self.monitor_!r} needs validation data: pass valid=(inputs..., target)")
        if self.monitor_ not in ("train_loss", "valid_loss", *self.metrics):
            raise ValueError(f"monitor: {self.monitor_!r} is not recorded; choose train_loss, valid_loss or one of {list(self.metrics)}")
        self._config_ = self._config(len(self._train))
        self.steps_per_epoch = math.ceil(self._config_["examples_per_epoch"] / self.batch_size)
        self._replicas = Replicas(self.data_parallel)
        writer = self.checkpoints if self._replicas.is_main else None  # rank 0 alone writes
        with writer.locked() if writer is not None else contextlib.nullcontext():
            self._prepare(resume, resume_from, init_from, init_optimizer)
            self._run(writer)
        if self.restore_best and self._best_model is not None:
            self.model.load_state_dict(self._best_model)
        self.model.eval()
        return self.history

    def _prepare(self, resume: bool, resume_from: Any, init_from: Any, init_optimizer: bool) -> None:
        self._build_optimizer()
        self._start_fresh(len(self._train))
        self.resumed_from = self._resume_point(resume, resume_from)
        if self.resumed_from is not None:
            self.load_state_dict(self._load_resume_point(self.resumed_from), source=self.resumed_from)
            if self.checkpoints is not None and self._replicas.is_main:
                self.checkpoints.forget_after(self.step, self.best_step)
        if init_from is not None:
            path, state = load_checkpoint(init_from, prefer="best")
            weights = state["model"] if state.get("format") == TRAINER_FORMAT else state
            load_model_state(self.model, weights, source=str(path))
            if init_optimizer:
                if "optimizer" not in state:
                    raise ValueError(f"init_optimizer: {path} holds no optimizer state")
                self.optimizer_.load_state_dict(state["optimizer"])

    def _progress(self) -> Any:
        if not self.progress or not self._replicas.is_main:
            return contextlib.nullcontext(None)
        from rich.progress import Progress

        if isinstance(self.progress, Progress):
            return contextlib.nullcontext(self.progress)
        return Progress(transient=False)

    def _run(self, writer: CheckpointManager | None) -> None:
        self.model.train()
        self._device = next(self.model.parameters()).device
        self._parameters = [p for p in self.model.parameters() if p.requires_grad]
        with self._progress() as bar:
            task = None
            if bar is not None:
                total = self.max_epochs * self.steps_per_epoch
                task = bar.add_task("training", total=total, completed=min(self.step, total))
            while self.epoch < self.max_epochs and not self.stopped_early:
                while self.step < (self.epoch + 1) * self.steps_per_epoch:
                    self._train_step(self.stream.next_batch())
                    at_epoch_end = self.step % self.steps_per_epoch == 0
                    if self.checkpoints is not None and self.checkpoint_every and not at_epoch_end \
                            and self.step % self.checkpoint_every == 0:
                        self._save(writer)
                    if bar is not None:
                        bar.update(task, advance=1, description=f"epoch {self.epoch + 1}/{self.max_epochs}")
                record, improved = self._end_epoch()
                if self.checkpoints is not None:
                    self._save(writer, metric=record.get(self.monitor_), best=improved)
                for callback in self.callbacks:
                    callback(self.epoch, dict(record))
            if bar is not None and self.stopped_early:
                bar.update(task, description=f"stopped early after epoch {self.epoch}/{self.max_epochs}")

    def _save(self, writer: CheckpointManager | None, metric: float | None = None, best: bool = False) -> None:
        state = self.state_dict()  # every rank: it gathers the ranks' generator states
        if writer is not None:
            writer.save(state, step=self.step, epoch=self.epoch, metric=metric, best=best)

    def _train_step(self, rows: Any) -> None:
        import torch

        global_rows, rows = len(rows), self._replicas.local_rows(rows)
        self.optimizer_.zero_grad(set_to_none=True)
        loss_sum = 0.0
        if len(rows):
            *inputs, target = (t.to(self._device) for t in self._train.batch(rows))
            loss = self.loss(self.model(*inputs), target)
            # a rank's share of the global batch's mean loss (the loss itself in one process)
            (loss * (len(rows) / global_rows) if self._replicas.active else loss).backward()
            loss_sum = float(loss.detach()) * len(rows)
        loss_sum = self._replicas.sum_gradients(self._parameters, loss_sum)
        if self.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self._parameters, self.clip_grad_norm)
        self.optimizer_.step()
        if self.scheduler_ is not None and self.scheduler_interval == "step":
            self.scheduler_.step()
        self.step += 1
        self._loss_sum += loss_sum
        self._loss_rows += global_rows

    def _end_epoch(self) -> tuple[dict[str, Any], bool]:
        import torch

        self.epoch += 1
        record: dict[str, Any] = {"epoch": self.epoch, "step": self.step, "examples": self.step * self.batch_size,
                                  "lr": float(self.optimizer_.param_groups[0]["lr"]),
                                  "train_loss": self._loss_sum / max(self._loss_rows, 1)}
        if self._valid is not None:
            record.update(self.evaluate(self._valid))
        self.model.train()
        self._loss_sum, self._loss_rows = 0.0, 0
        value = record[self.monitor_]
        best = self.best_value
        improved = not math.isnan(value) and (
            best is None or (value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta))
        if improved:
            self.best_value, self.best_epoch, self.best_step, self.wait = value, self.epoch, self.step, 0
            if self.restore_best:
                self._best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.wait += 1
            self.stopped_early = self.patience is not None and self.wait >= self.patience
        if self.scheduler_ is not None and self.scheduler_interval == "epoch":
            if isinstance(self.scheduler_, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler_.step(value)
            else:
                self.scheduler_.step()
        self.history.append(record)
        return record, improved

    def evaluate(self, data: Any) -> dict[str, float]:
        """``valid_loss`` (row-weighted mean of the batch losses) and each metric on ``data``."""
        import numpy as np
        import torch

        data = data if isinstance(data, TrainingData) else as_training_data(data, "data")
        device = next(self.model.parameters()).device
        self.model.eval()
        total, outputs, targets = 0.0, [], []
        with torch.no_grad():
            for batch in data.batches(self.eval_batch_size):
                *inputs, target = (t.to(device) for t in batch)
                output = self.model(*inputs)
                total += float(self.loss(output, target)) * len(target)
                if self.metrics:
                    outputs.append(output.cpu())
                    targets.append(target.cpu())
        result = {"valid_loss": total / len(data)}
        if self.metrics:
            output, target = torch.cat(outputs).numpy(), torch.cat(targets).numpy()
            for name, metric in self.metrics.items():
                result[name] = float(metric(np.asarray(target), np.asarray(output)))
        return result
