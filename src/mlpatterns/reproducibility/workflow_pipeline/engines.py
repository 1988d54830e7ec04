"""Engines of the Workflow Pipeline (pattern 25): one step at a time, or steps in parallel.

The driver schedules: a step becomes ready when the steps producing its inputs have
finished; it is then planned with the now-known input digests, reused when its key has a
record, or handed to the engine. ``LocalEngine`` runs it at once in this process.
``RayEngine`` submits it as a Ray task (one CPU each) to a worker process that writes
into the same store, so independent steps (one model per worker) overlap; results are
the same records and digests as the local engine's.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from typing import Any

from mlpatterns.reproducibility.workflow_pipeline.execution import StepError, execute_step
from mlpatterns.reproducibility.workflow_pipeline.records import StepRecord
from mlpatterns.reproducibility.workflow_pipeline.step import Step
from mlpatterns.reproducibility.workflow_pipeline.store import Store

__all__ = ["LocalEngine", "RayEngine", "import_ray", "init_ray"]


class LocalEngine:
    """Runs each step in this process, one at a time."""

    capacity = 1

    def __init__(self, store: Store) -> None:
        self.store = store
        self.finished: deque[tuple[str, StepRecord | BaseException]] = deque()

    def start(self, step: Step, key: str, code: dict, inputs: dict, environment: dict) -> None:
        try:
            outcome: StepRecord | BaseException = execute_step(
                self.store, step, key, code, inputs, environment
            )
        except StepError as error:
            outcome = error
        self.finished.append((step.name, outcome))

    def wait(self) -> tuple[str, StepRecord | BaseException]:
        return self.finished.popleft()

    def close(self) -> None:
        pass


def import_ray():
    """Import Ray, or raise an ``ImportError`` that names the extra to install."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "the 'ray' engine needs Ray: pip install 'mlpatterns[pipeline]'"
        ) from error
    return ray


def init_ray(num_cpus: int | None = None) -> bool:
    """Start a local Ray instance for pipeline steps unless one is running; True if started.

    Workers get this process's ``sys.path`` (so step functions defined in scripts and test
    modules import there), no dashboard, and no log forwarding to this terminal; one task
    per CPU imports this package in them at once, since workers start without it.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    # Workers inherit the environment of the raylet that ray.init starts; a runtime_env
    # would instead start fresh workers for each task (seconds on a small machine).
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(entry for entry in sys.path if entry)
    try:
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous
    cpus = int(ray.cluster_resources().get("CPU", 1))
    warm = ray.remote(num_cpus=1)(warm_worker)
    for _ in range(cpus):  # workers import this package while the driver hashes sources
        warm.remote()
    return True


def warm_worker() -> None:
    """Import this package in a Ray worker before the first step arrives."""
    import mlpatterns.reproducibility.workflow_pipeline  # noqa: F401


def run_remote(root: str, durable: bool, step, key, code, inputs, environment) -> dict[str, Any]:
    """The Ray task: execute one step in a worker and return its record as a dict."""
    store = Store(root, durable=durable)
    return execute_step(store, step, key, code, inputs, environment).to_dict()


class RayEngine:
    """Runs each ready step as a Ray task; tasks run in parallel up to the cluster's CPUs.

    Starts a local Ray instance (:func:`init_ray`) when none is running, and shuts it down
    on :meth:`close` only if it started it.
    """

    capacity = sys.maxsize

    def __init__(self, store: Store, num_cpus: int | None = None) -> None:
        self.ray = import_ray()
        self.store = store
        self.started_ray = init_ray(num_cpus)
        self.task = self.ray.remote(num_cpus=1, max_retries=0)(run_remote)
        self.futures: dict[Any, str] = {}

    def start(self, step: Step, key: str, code: dict, inputs: dict, environment: dict) -> None:
        future = self.task.remote(
            str(self.store.root), self.store.durable, step, key, code, inputs, environment
        )
        self.futures[future] = step.name

    def wait(self) -> tuple[str, StepRecord | BaseException]:
        [future], _ = self.ray.wait(list(self.futures), num_returns=1)
        name = self.futures.pop(future)
        try:
            return name, StepRecord.from_dict(self.ray.get(future))
        except self.ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, StepError):
                cause.__cause__ = error  # the worker's traceback
                return name, cause
            return name, StepError(name, f"failed in a Ray worker: {error}")
        except self.ray.exceptions.RayError as error:
            return name, StepError(name, f"Ray could not run it: {error}")

    def close(self) -> None:
        if self.started_ray:
            self.ray.shutdown()
