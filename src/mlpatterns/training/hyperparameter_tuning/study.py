"""Hyperparameter Tuning (15): an outer optimisation loop over training runs, with Optuna.

**Problem.** A grid search trains a model for every combination of its
hyperparameters: the cost grows exponentially with their number, and every point is
chosen blind, without learning from the results so far.

**Solution.** Treat training as the objective of an outer optimisation. A Bayesian
sampler (Optuna's TPE by default) proposes each trial from the results of the earlier
ones; a pruner stops trials whose intermediate validation metric is hopeless
(:class:`PruningCallback` plugs into :func:`mlpatterns.models.training_loop.train_network`
and :class:`mlpatterns.training.Trainer`); trials run in parallel worker processes
that share one study through a storage named by a config string
(:func:`mlpatterns.training.hyperparameter_tuning.storage.open_storage`), and a study that was
interrupted resumes with the trials already stored.

>>> import optuna
>>> optuna.logging.set_verbosity(optuna.logging.WARNING)
>>> def objective(params, trial):
...     return (params["x"] - 2) ** 2 + params["y"]
>>> result = tune(objective, {"x": {"type": "float", "low": -5, "high": 5},
...                           "y": {"type": "categorical", "choices": [0, 1]}}, n_trials=30, seed=0)
>>> result.complete, round(result.best_value, 1), result.best_params["y"]
(30, 0.0, 0)
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlpatterns._processes import process_exists
from mlpatterns.training.hyperparameter_tuning.samplers import (
    PRUNERS,
    SAMPLERS,
    describe_config,
    make_pruner,
    make_sampler,
)
from mlpatterns.training.hyperparameter_tuning.search_space import (
    decode_params,
    encode_params,
    parse_search_space,
    suggest_params,
)
from mlpatterns.training.hyperparameter_tuning.storage import TuningStorage, open_storage

__all__ = ["PRUNERS", "SAMPLERS", "PruningCallback", "TuningResult", "make_pruner", "make_sampler",
           "plot_history", "tune"]

_HIGHER_IS_BETTER = ("acc", "auc", "r2", "f1", "precision", "recall")
WORKER_ATTR = "worker"  # "host:pid" of the process that runs a trial, to recognise orphans on resume


class PruningCallback:
    """Report an intermediate metric to an Optuna trial after each epoch; prune hopeless trials.

    Called as ``callback(epoch, metrics)`` by ``train_network(callback=...)`` and by
    ``Trainer(callbacks=[...])`` after each (virtual) epoch. It reports
    ``metrics[monitor]`` at step ``epoch`` and raises ``optuna.TrialPruned`` when the
    study's pruner says so. ``mode`` says which way the monitored value improves
    (``"min"``, ``"max"``, or ``"auto"``: ``"max"`` for names with acc, auc, r2, f1,
    precision or recall, like Keras); where that differs from the study's direction
    the value is reported negated, so a study that maximises ROC AUC can prune on
    the validation loss.
    """

    def __init__(self, trial: Any, monitor: str = "valid_loss", mode: str = "auto") -> None:
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        self.trial, self.monitor, self.mode = trial, monitor, mode

    def _sign(self) -> float:
        mode = self.mode
        if mode == "auto":
            mode = "max" if any(word in self.monitor.lower() for word in _HIGHER_IS_BETTER) else "min"
        study = getattr(self.trial, "study", None)
        maximize = study is not None and study.direction.name == "MAXIMIZE"
        return -1.0 if (mode == "max") != maximize else 1.0

    def __call__(self, epoch: int, metrics: Mapping[str, float]) -> None:
        import optuna

        if self.monitor not in metrics:
            raise ValueError(f"PruningCallback: no {self.monitor!r} among the epoch's metrics {sorted(metrics)}; "
                             "pass monitor= one of them (a validation split gives 'valid_loss')")
        value = float(metrics[self.monitor])
        self.trial.report(self._sign() * value, step=int(epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: {self.monitor} {value:.6g}")


@dataclass
class TuningResult:
    """What a study holds after :func:`tune`: the best trial and the trial counts."""

    study_name: str
    storage: str  # the backend kind: memory, sqlite, journal or postgresql
    storage_url: str  # the config string, password hidden
    direction: str
    n_trials: int  # trials asked for (complete or pruned)
    best_value: float | None
    best_params: dict[str, Any]
    best_trial: int | None
    complete: int
    pruned: int
    failed: int
    new_trials: int  # trials this call ran
    sampler: str
    pruner: str
    n_workers: int
    seconds: float
    study: Any = field(default=None, repr=False, compare=False)

    def manifest(self) -> dict[str, Any]:
        """The JSON fields a bundle records."""
        return {k: v for k, v in self.__dict__.items() if k != "study"}


@dataclass
class _Objective:
    """The user's objective with the search space sampled first; picklable for worker processes."""

    objective: Callable[..., float]
    space: dict[str, Any] | None
    record_worker: bool

    def __call__(self, trial: Any) -> float:
        if self.record_worker:
            trial.set_user_attr(WORKER_ATTR, _here())
        if self.space is None:
            return self.objective(trial)
        return self.objective(suggest_params(trial, self.space), trial)


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _here() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def register_worker(study: Any) -> None:
    """Record this process in the study before it creates a trial (see ``_fail_orphaned_trials``)."""
    study.set_user_attr(f"{WORKER_ATTR}:{_here()}", True)


def _dead_here(where: str) -> bool:
    name, _, pid = where.rpartition(":")
    return name == socket.gethostname() and pid.isdigit() and not process_exists(int(pid))


def _fail_orphaned_trials(study: Any, storage: Any) -> int:
    """Mark FAIL the running trials whose process on this machine is gone (a killed run).

    A trial names its process (``worker`` attribute) once its objective starts. A trial
    killed before that is an orphan only if every process ever registered for the study
    ran on this machine and is gone, since a live or remote one may own it.
    """
    from optuna.trial import TrialState

    workers = [key.removeprefix(f"{WORKER_ATTR}:") for key in study.user_attrs if key.startswith(f"{WORKER_ATTR}:")]
    all_gone = bool(workers) and all(_dead_here(where) for where in workers)
    orphans = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        where = trial.user_attrs.get(WORKER_ATTR)
        if not (_dead_here(str(where)) if where else all_gone):
            continue
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        orphans += 1
    return orphans


def tune(
    objective: Callable[..., float],
    space: Mapping[str, Any] | None = None,
    *,
    n_trials: int = 20,
    direction: str = "minimize",
    storage: str | TuningStorage | None = None,
    study_name: str | None = None,
    sampler: Any = "tpe",
    pruner: Any = "median",
    n_workers: int = 1,
    seed: int | None = 0,
    timeout: float | None = None,
    enqueue: list[dict[str, Any]] | None = None,
    progress: Any = None,
) -> TuningResult:
    """Run (or resume) a study until it holds ``n_trials`` complete or pruned trials.

    ``objective(trial)`` returns the value to optimise; with a ``space`` (see
    :func:`~mlpatterns.training.hyperparameter_tuning.search_space.parse_search_space`) it is called
    ``objective(params, trial)`` with the sampled values. ``storage`` is a config
    string (:func:`~mlpatterns.training.hyperparameter_tuning.storage.open_storage`); a named study
    that exists there is loaded and continued, trials left running by a killed
    process on this machine are marked failed, and only the missing trials run.
    ``n_workers > 1`` starts that many processes (spawned, so ``objective`` must be
    picklable: a module-level function or object), each with a share of the missing
    trials, its sampler seeded ``seed + i``, and ``cpu_count // n_workers`` compute
    threads. ``enqueue`` lists parameter sets to try first (a fresh study only).
    ``progress`` is an optional ``rich.progress.Progress``.
    """
    import optuna

    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise ValueError(f"n_trials: expected a whole number of at least 1, got {n_trials!r}")
    if not isinstance(n_workers, int) or isinstance(n_workers, bool) or n_workers < 1:
        raise ValueError(f"n_workers: expected a whole number of at least 1, got {n_workers!r}")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction: expected 'minimize' or 'maximize', got {direction!r}")
    parsed = None if space is None else parse_search_space(space)
    backend = open_storage(storage)
    url = backend.worker_url() if n_workers > 1 else backend.url
    started = time.perf_counter()
    study = optuna.create_study(storage=backend.optuna_storage(), study_name=study_name, direction=direction,
                                sampler=make_sampler(sampler, seed), pruner=make_pruner(pruner), load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ValueError(f"study {study.study_name!r} in {backend.describe()} {study.direction.name.lower()}s; "
                         f"cannot {direction} it")
    if parsed is not None:  # a stored study of other parameters is another experiment
        other = {name for t in study.get_trials(deepcopy=False) for name in t.params} - set(parsed)
        if other:
            raise ValueError(f"study {study.study_name!r} in {backend.describe()} holds trials of other parameters "
                             f"{sorted(other)}; choose another study name or delete that study")
    _fail_orphaned_trials(study, backend.optuna_storage())
    if enqueue and not study.trials:
        for params in enqueue:
            study.enqueue_trial(params if parsed is None else encode_params(parsed, params), skip_if_exists=True)
    done = _finished(study)
    remaining = max(0, n_trials - done)
    reporter = _Reporter(progress, study, n_trials, done)
    wrapped = _Objective(objective, parsed, record_worker=backend.shared)
    if remaining and n_workers == 1 and backend.shared:
        register_worker(study)
    if remaining and n_workers == 1:
        study.optimize(wrapped, n_trials=remaining, timeout=timeout, callbacks=[reporter.callback])
    elif remaining:
        from mlpatterns.training.hyperparameter_tuning.workers import WorkerJob, run_workers

        shares = [remaining // n_workers + (i < remaining % n_workers) for i in range(n_workers)]
        jobs = [WorkerJob(url, study.study_name, wrapped, share, sampler, pruner,
                          None if seed is None else seed + i, i, timeout, max(1, (os.cpu_count() or 1) // n_workers),
                          optuna.logging.get_verbosity()) for i, share in enumerate(shares) if share]
        run_workers(jobs, reporter.poll)
    reporter.poll()
    return _result(study, backend, n_trials, done, parsed, sampler, pruner, n_workers, time.perf_counter() - started)


def _result(study: Any, backend: TuningStorage, n_trials: int, done_before: int, space: Any, sampler: Any,
            pruner: Any, n_workers: int, seconds: float) -> TuningResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    count = {state: sum(t.state == state for t in trials) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if complete else None
    params = {} if best is None else (best.params if space is None else decode_params(space, best.params))
    return TuningResult(
        study_name=study.study_name, storage=backend.kind, storage_url=backend.describe(),
        direction=study.direction.name.lower(), n_trials=n_trials,
        best_value=None if best is None else float(best.value), best_params=params,
        best_trial=None if best is None else best.number, complete=count[TrialState.COMPLETE],
        pruned=count[TrialState.PRUNED], failed=count[TrialState.FAIL],
        new_trials=count[TrialState.COMPLETE] + count[TrialState.PRUNED] - done_before,
        sampler=describe_config(sampler), pruner=describe_config(pruner), n_workers=n_workers, seconds=seconds, study=study)


class _Reporter:
    """A rich progress bar of finished trials and the best value so far."""

    def __init__(self, progress: Any, study: Any, total: int, done: int) -> None:
        self.progress, self.study, self.total = progress, study, total
        self.task = None if progress is None else progress.add_task(
            f"tuning {study.study_name}", total=total, completed=min(done, total))

    def _show(self, done: int, best: float | None) -> None:
        if self.progress is None:
            return
        text = "" if best is None or not math.isfinite(best) else f" (best {best:.5g})"
        self.progress.update(self.task, completed=min(done, self.total),
                             description=f"tuning {self.study.study_name}{text}")

    def callback(self, study: Any, _trial: Any) -> None:
        if self.progress is not None:
            self._show(_finished(study), _best_value(study))

    def poll(self) -> None:
        if self.progress is not None:
            self._show(_finished(self.study), _best_value(self.study))


def _best_value(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no complete trial yet
        return None


def plot_history(study: Any, path: str | os.PathLike[str], title: str | None = None) -> str:
    """Write a PNG of each trial's value and the best so far (matplotlib, imported here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    numbers, values = [t.number for t in trials], [t.value for t in trials]
    better = max if study.direction.name == "MAXIMIZE" else min
    running = [better(values[: i + 1]) for i in range(len(values))]
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.scatter(numbers, values, s=14, label="trial")
    axes.step(numbers, running, where="post", color="C1", label="best so far")
    axes.set_xlabel("trial")
    axes.set_ylabel("objective")
    axes.set_title(title or study.study_name)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return os.fspath(path)
