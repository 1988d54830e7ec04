"""The conformance suite that every tuning storage backend passes (Hyperparameter Tuning, 15).

In the style of Optuna's ``optuna/testing/pytest_storages.py``: a test class whose
tests need one fixture, ``storage_config`` (a URL for
:func:`~mlpatterns.training.hyperparameter_tuning.storage.open_storage`, ``None`` for memory). A
test module subclasses it and parametrizes the fixture over the backends::

    @pytest.fixture(params=[None, "sqlite", "postgres"])
    def storage_config(request, tmp_path): ...

    class TestTuningStorages(TuningStorageConformance):
        pass

It checks creating and loading a study, resuming it (also from a fresh process's
storage and after a ``SIGKILL``), refusing a study of the other direction, pruning,
two worker processes sharing one study, that the storage's URL opens the same backend
again, and that a password in the URL is never shown. A backend that cannot share a study
across processes (memory) must refuse workers with ``NotImplementedError``. Running
it needs pytest; the objectives below are module-level so worker processes can
unpickle them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from mlpatterns.backends import redact_url
from mlpatterns.training.hyperparameter_tuning.storage import STORAGE_KINDS, open_storage
from mlpatterns.training.hyperparameter_tuning.study import WORKER_ATTR, PruningCallback, tune

__all__ = ["SPACE", "TuningStorageConformance", "pruned_quadratic", "quadratic"]

SPACE = {"x": {"type": "float", "low": -4.0, "high": 4.0}, "n": {"type": "int", "low": 1, "high": 8},
         "shape": {"type": "categorical", "choices": [[1, 2], [3]]}}


def quadratic(params: dict[str, Any], trial: Any, sleep_s: float = 0.0) -> float:
    """A cheap objective over :data:`SPACE` whose minimum is 0 at x = 1, n = 1, shape = [1, 2]."""
    time.sleep(sleep_s)
    return (params["x"] - 1.0) ** 2 + (params["n"] - 1) + (len(params["shape"]) != 2)


def slow_quadratic(params: dict[str, Any], trial: Any) -> float:
    return quadratic(params, trial, sleep_s=0.2)


def pruned_quadratic(params: dict[str, Any], trial: Any) -> float:
    """Reports five 'epochs' through :class:`PruningCallback`; trials with large ``x`` get pruned."""
    callback = PruningCallback(trial, monitor="valid_loss")
    for epoch in range(1, 6):
        callback(epoch, {"valid_loss": abs(params["x"]) + 1.0 / epoch})
    return abs(params["x"])


def _states(result: Any) -> list[str]:
    return [t.state.name for t in result.study.get_trials(deepcopy=False)]


class TuningStorageConformance:
    """Tests every storage backend passes; the test module provides a ``storage_config`` fixture."""

    @pytest.fixture
    def study_name(self, storage_config: Any) -> Any:
        name = f"conformance-{uuid.uuid4().hex[:12]}"
        yield name
        storage = open_storage(storage_config)
        if storage.shared and name in storage.study_names():  # leave a shared server as it was
            storage.delete_study(name)

    def test_url_reopens_the_backend_and_hides_its_password(self, storage_config: Any, study_name: str) -> None:
        storage = open_storage(storage_config)
        assert storage.kind in STORAGE_KINDS and open_storage(storage) is storage
        assert (type(open_storage(storage.url)), open_storage(storage.url).url) == (type(storage), storage.url)
        result = tune(quadratic, SPACE, n_trials=1, storage=storage, study_name=study_name)
        assert result.storage_url == storage.describe() == redact_url(storage.url)
        password = urlsplit(storage.url).password if "://" in storage.url else None
        for shown in (storage.describe(), repr(storage), str(result.manifest())):
            assert not password or f":{password}@" not in shown

    def test_create_then_load_by_name(self, storage_config: Any, study_name: str) -> None:
        storage = open_storage(storage_config)
        result = tune(quadratic, SPACE, n_trials=3, storage=storage, study_name=study_name, seed=0)
        assert (result.complete, result.new_trials, result.storage) == (3, 3, storage.kind)
        assert study_name in storage.study_names()
        reopened = open_storage(storage_config) if storage.shared else storage
        again = tune(quadratic, SPACE, n_trials=3, storage=reopened, study_name=study_name)
        assert (again.complete, again.new_trials, again.best_value) == (3, 0, result.best_value)
        assert isinstance(result.best_params["shape"], list)  # a JSON choice comes back decoded

    def test_resume_runs_only_the_missing_trials(self, storage_config: Any, study_name: str) -> None:
        storage = open_storage(storage_config)
        tune(quadratic, SPACE, n_trials=2, storage=storage, study_name=study_name, seed=1)
        reopened = open_storage(storage_config) if storage.shared else storage
        result = tune(quadratic, SPACE, n_trials=5, storage=reopened, study_name=study_name, seed=1)
        numbers = [t.number for t in result.study.get_trials(deepcopy=False)]
        assert (result.complete, result.new_trials) == (5, 3)
        assert numbers == list(range(5))

    def test_other_direction_refused(self, storage_config: Any, study_name: str) -> None:
        storage = open_storage(storage_config)
        tune(quadratic, SPACE, n_trials=1, storage=storage, study_name=study_name)
        with pytest.raises(ValueError, match="cannot maximize"):
            tune(quadratic, SPACE, n_trials=2, storage=storage, study_name=study_name, direction="maximize")

    def test_pruned_trials_count_towards_n_trials(self, storage_config: Any, study_name: str) -> None:
        result = tune(pruned_quadratic, SPACE, n_trials=8, storage=storage_config, study_name=study_name,
                      sampler="random", pruner={"type": "median", "n_startup_trials": 2}, seed=3)
        assert result.complete + result.pruned == 8
        assert result.pruned >= 1
        pruned = [t for t in result.study.get_trials(deepcopy=False) if t.state.name == "PRUNED"]
        assert all(t.intermediate_values for t in pruned)

    def test_parallel_workers_share_one_study(self, storage_config: Any, study_name: str) -> None:
        storage = open_storage(storage_config)
        if not storage.shared:
            with pytest.raises(NotImplementedError, match=type(storage).__name__):
                tune(quadratic, SPACE, n_trials=4, storage=storage, study_name=study_name, n_workers=2)
            return
        result = tune(quadratic, SPACE, n_trials=6, storage=storage, study_name=study_name, n_workers=2,
                      seed=0)
        trials = result.study.get_trials(deepcopy=False)
        assert (result.complete, result.new_trials, len(trials)) == (6, 6, 6)
        assert sorted(t.number for t in trials) == list(range(6))
        assert len({t.user_attrs[WORKER_ATTR] for t in trials}) == 2  # both processes ran trials
        assert result.best_value == min(t.value for t in trials)
        assert result.study.best_trial.number == result.best_trial

    def test_resume_after_sigkill(self, storage_config: Any, study_name: str) -> None:
        storage = open_storage(storage_config)
        if not storage.shared:
            pytest.skip(f"{type(storage).__name__} does not outlive its process")
        storage.optuna_storage()  # create the tables before the child does
        code = ("import optuna; optuna.logging.set_verbosity(optuna.logging.WARNING)\n"
                "from mlpatterns.training.hyperparameter_tuning.study import tune\n"
                "from mlpatterns.testing.tuning_storage import SPACE, slow_quadratic\n"
                f"tune(slow_quadratic, SPACE, n_trials=50, storage={storage.url!r}, study_name={study_name!r})\n")
        child = subprocess.Popen([sys.executable, "-c", code])
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and child.poll() is None:
                if study_name in storage.study_names():
                    import optuna

                    study = optuna.load_study(study_name=study_name, storage=storage.optuna_storage())
                    if sum(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)) >= 3:
                        break
                time.sleep(0.1)
            assert child.poll() is None, "the tuning process ended before it could be killed"
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait()
        reopened = open_storage(storage_config)
        import optuna

        killed = optuna.load_study(study_name=study_name, storage=reopened.optuna_storage()).get_trials(deepcopy=False)
        done, running = (sum(t.state.name == state for t in killed) for state in ("COMPLETE", "RUNNING"))
        assert done >= 3 and running <= 1
        result = tune(quadratic, SPACE, n_trials=8, storage=reopened, study_name=study_name, seed=5)
        states = _states(result)
        assert (result.complete, result.new_trials, result.failed) == (8, 8 - done, running)
        assert "RUNNING" not in states  # the killed run's trial is marked failed, not left running
        assert sorted(t.number for t in result.study.get_trials(deepcopy=False)) == list(range(len(states)))
