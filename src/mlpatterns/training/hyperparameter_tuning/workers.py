"""Worker processes that share one tuning study (Hyperparameter Tuning, 15).

:func:`~mlpatterns.training.hyperparameter_tuning.study.tune` gives each worker a share
of the missing trials; each worker is a spawned process that opens the storage from
its config string, loads the study and calls ``study.optimize`` for its share, so
the trials are counted exactly and numbered by the storage without duplicates.
Spawned (not forked) processes inherit no locks or OpenMP thread pools from the
parent; each limits its compute threads to its share of the CPUs before it
unpickles the objective (which imports scikit-learn or torch), since OpenMP
libraries read ``OMP_NUM_THREADS`` when they load. A worker that fails stops the
others and its error is raised in the parent; trials left running by a stopped
worker are marked failed when the study resumes. As with any spawned process, a
script that calls :func:`tune` with workers needs an ``if __name__ == "__main__":``
guard (the ``mlpatterns`` command has one).
"""

from __future__ import annotations

import os
import pickle
import queue
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlpatterns._processes import survives_pickling

__all__ = ["WorkerJob", "run_workers"]

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class WorkerJob:
    """One worker's share of a study: everything it needs, picklable."""

    url: str
    study_name: str
    objective: Any
    n_trials: int
    sampler: Any
    pruner: Any
    seed: int | None
    index: int
    timeout: float | None
    threads: int
    verbosity: int


def _portable(error: BaseException) -> BaseException:
    if survives_pickling(error):
        return error
    text = "".join(traceback.format_exception(error))  # what does not cross keeps its text
    return RuntimeError(f"{type(error).__name__}: {error}\n{text}")


def _work(payload: str, threads: int, results: Any, index: int) -> None:
    try:
        for variable in _THREAD_VARIABLES:
            current = os.environ.get(variable, "")
            os.environ[variable] = str(min(threads, int(current))) if current.isdigit() else str(threads)
        # The parent wrote this file a moment ago into its own private temporary folder
        # (mode 0700), as multiprocessing would send it through a pipe: a message between
        # the processes of one run, never data read from outside (bundles stay pickle-free).
        with open(payload, "rb") as file:
            job: WorkerJob = pickle.load(file)
        import optuna
        from threadpoolctl import threadpool_limits

        from mlpatterns.training.hyperparameter_tuning.samplers import make_pruner, make_sampler
        from mlpatterns.training.hyperparameter_tuning.storage import open_storage
        from mlpatterns.training.hyperparameter_tuning.study import register_worker

        optuna.logging.set_verbosity(job.verbosity)
        sampler = make_sampler(job.sampler, job.seed)
        if job.index and not isinstance(job.sampler, (str, Mapping)):
            sampler.reseed_rng()  # a sampler object arrives as a copy of the parent's: decorrelate it
        study = optuna.load_study(study_name=job.study_name, storage=open_storage(job.url).optuna_storage(),
                                  sampler=sampler, pruner=make_pruner(job.pruner))
        register_worker(study)
        with threadpool_limits(job.threads):
            study.optimize(job.objective, n_trials=job.n_trials, timeout=job.timeout)
        results.put((index, None))
    except BaseException as error:
        results.put((index, _portable(error)))


def run_workers(jobs: list[WorkerJob], poll: Callable[[], None], interval_s: float = 0.5) -> None:
    """Run the jobs in spawned processes; call ``poll()`` while they run; raise the first error."""
    import multiprocessing
    import tempfile

    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    # The jobs (the objective may hold the training data) go through files, not the pipe that
    # starts each process: a child that dies while starting can then not block the parent.
    folder = tempfile.TemporaryDirectory(prefix="mlpatterns-tuning-")
    payloads = []
    for job in jobs:
        payloads.append(os.path.join(folder.name, f"job-{job.index}.pickle"))
        try:
            with open(payloads[-1], "wb") as file:
                pickle.dump(job, file, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as error:
            folder.cleanup()
            raise TypeError(f"n_workers > 1 sends the objective to worker processes, so it must be picklable "
                            f"(a module-level function or object): {error}") from error
    processes = {job.index: context.Process(target=_work, args=(payload, job.threads, results, job.index),
                                            name=f"mlpatterns-tuning-worker-{job.index}")
                 for job, payload in zip(jobs, payloads, strict=True)}
    failure: BaseException | None = None
    clean = False
    try:
        for process in processes.values():
            process.start()
        pending = set(processes)
        while pending and failure is None:
            try:
                index, failure = results.get(timeout=interval_s)
                pending.discard(index)
            except queue.Empty:
                poll()
                for index in list(pending):
                    process = processes[index]
                    if not process.is_alive() and process.exitcode not in (0, None):
                        failure = RuntimeError(f"tuning worker {index} exited with code {process.exitcode}")
        clean = failure is None
    finally:
        for process in processes.values():
            if process.pid is None:  # never started
                continue
            if not clean and process.is_alive():  # an error or an interrupt: stop the others
                process.terminate()
            process.join()
        results.close()
        folder.cleanup()
    if failure is not None:
        raise failure
