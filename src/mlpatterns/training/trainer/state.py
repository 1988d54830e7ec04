"""What the Trainer saves in a checkpoint and how it picks one up again (Checkpoints, pattern 12).

A resumed run must end where an uninterrupted one ends, so the state is everything that
shapes the rest of the run: model, optimizer, learning-rate schedule, the random generators
(of every data-parallel rank), the position in the shuffled data, the step and epoch
counters with the partial epoch's loss, the history, and early stopping's best value,
best weights and patience counter. The settings that fix the sequence of batches (batch
size, virtual epoch size, seed, number of training rows, monitored metric) are saved too,
and a resume with other settings is refused, naming them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpatterns.training.checkpoints.manager import CheckpointError, load_checkpoint
from mlpatterns.training.checkpoints.state import (
    capture_rng_state,
    load_model_state,
    restore_rng_state,
)
from mlpatterns.training.trainer.history import History

__all__ = ["TRAINER_FORMAT", "TrainerState"]

TRAINER_FORMAT = "mlpatterns.trainer/1"
RESUME_CONFIG = ("batch_size", "examples_per_epoch", "seed", "shuffle", "train_rows", "monitor", "mode")


class TrainerState:
    """The Trainer's checkpoint state: :meth:`state_dict`, :meth:`load_state_dict` and finding the
    checkpoint to resume from. Mixed into :class:`~mlpatterns.training.trainer.loop.Trainer`."""

    def state_dict(self) -> dict[str, Any]:
        """The full training state, as a checkpoint holds it (tensors and plain containers).

        In a data-parallel run every rank must call it at the same step: the ranks'
        random-generator states are gathered (``rng_ranks``).
        """
        rng = capture_rng_state()
        return {
            "format": TRAINER_FORMAT,
            "config": self._config_,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer_.state_dict(),
            "scheduler": None if self.scheduler_ is None else self.scheduler_.state_dict(),
            "rng": rng,
            "rng_ranks": self._replicas.gather(rng) if self._replicas.active else None,
            "data": self.stream.state_dict(),
            "progress": {"step": self.step, "epoch": self.epoch, "loss_sum": self._loss_sum,
                         "loss_rows": self._loss_rows, "stopped_early": self.stopped_early},
            "best": {"value": self.best_value, "epoch": self.best_epoch, "step": self.best_step,
                     "wait": self.wait},
            "best_model": None if self.best_step == self.step else self._best_model,
            "history": self.history.records,
        }

    def _check_config(self, state: Mapping[str, Any], source: Any) -> None:
        if state.get("format") != TRAINER_FORMAT:
            raise CheckpointError(f"{source}: not a Trainer checkpoint (format {state.get('format')!r})")
        differences = [
            f"{key}={state['config'].get(key)!r} there, {self._config_[key]!r} here"
            for key in RESUME_CONFIG
            if state["config"].get(key) != self._config_[key]
        ]
        if differences:
            raise ValueError(
                f"resume: {source} was written with other settings ({'; '.join(differences)}); resume with "
                f"the same settings and data, or start a new run from its weights with init_from="
            )

    def load_state_dict(self, state: Mapping[str, Any], source: Any = "the checkpoint") -> None:
        """Restore a :meth:`state_dict` (done by ``fit``, which builds the optimizer and data stream first)."""
        self._check_config(state, source)
        load_model_state(self.model, state["model"], source=str(source))
        self.optimizer_.load_state_dict(state["optimizer"])
        if (state["scheduler"] is None) != (self.scheduler_ is None):
            raise ValueError(f"scheduler: {source} was written {'without' if state['scheduler'] is None else 'with'} "
                             f"a scheduler; this Trainer has {'none' if self.scheduler_ is None else 'one'}")
        if self.scheduler_ is not None:
            self.scheduler_.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["data"])
        ranks = state.get("rng_ranks")
        mine = ranks is not None and len(ranks) == self._replicas.world_size
        restore_rng_state(ranks[self._replicas.rank] if mine else state["rng"])
        progress, best = state["progress"], state["best"]
        self.step, self.epoch = progress["step"], progress["epoch"]
        self._loss_sum, self._loss_rows = progress["loss_sum"], progress["loss_rows"]
        self.stopped_early = progress["stopped_early"]
        self.best_value, self.best_epoch, self.best_step, self.wait = best["value"], best["epoch"], best["step"], best["wait"]
        if not self.restore_best or self.best_step is None:
            self._best_model = None
        elif state["best_model"] is None:
            self._best_model = copy.deepcopy(self.model.state_dict())
        else:
            self._best_model = dict(state["best_model"])
        self.history = History(state["history"], monitor=self.monitor_, mode=self.mode)

    def _resume_point(self, resume: bool, resume_from: str | os.PathLike | None) -> Path | None:
        """The checkpoint to resume from (None: a fresh run), decided by rank 0 for every rank."""
        choice: tuple[str | None, str | None] = (None, None)
        self._found = None
        if self._replicas.is_main:
            try:
                choice = (self._choose_checkpoint(resume, resume_from), None)
            except (CheckpointError, ValueError) as error:
                if not self._replicas.active:
                    raise
                choice = (None, f"{type(error).__name__}: {error}")
        path, error = self._replicas.broadcast(choice)
        if error is not None:
            raise CheckpointError(f"rank 0 could not start: {error}")
        return None if path is None else Path(path)

    def _load_resume_point(self, path: Path) -> dict[str, Any]:
        found, self._found = self._found, None
        return found[1] if found is not None and str(found[0]) == str(path) else load_checkpoint(path)[1]

    def _choose_checkpoint(self, resume: bool, resume_from: Any) -> str | None:
        manager = self.checkpoints
        if resume_from is not None:
            self._found = load_checkpoint(resume_from)
            return str(self._found[0])
        if resume:
            found = self._found = manager.load_latest()
            if found is None and manager.candidates():
                raise CheckpointError(f"checkpoint_dir {str(manager.directory)!r}: no checkpoint is usable "
                                      f"(see the warnings); move them away to start afresh")
            return None if found is None else str(found[0])
        if manager is not None and manager.candidates():
            raise CheckpointError(f"checkpoint_dir {str(manager.directory)!r} already holds checkpoints; "
                                  f"pass resume=True to continue that run, or use another directory")
        return None
