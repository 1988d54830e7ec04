"""Hyperparameter Tuning (15): the cost of ``mlpatterns.training.tune`` over calling Optuna directly.

Each case runs the same objective with the same search space, the same ``TPESampler``
seed and the same number of trials twice in the same process:

* **bare Optuna**: ``optuna.create_study(sampler=TPESampler(seed=0)).optimize(objective,
  n_trials)``, the objective calling ``trial.suggest_*`` itself;
* **mlpatterns tune**: ``tune(objective, space, n_trials=..., seed=0)``, which parses the
  space, samples it for the objective, counts the finished trials (to resume), records
  the worker process of each trial (stored studies only) and builds the result.

``vs_bare`` is the wrapper's time over bare Optuna's (1.00: no overhead). Both runs
must find the same best value (``same_best``), which shows they sampled the same
trials. Cases:

* ``quadratic``: a function of three parameters that does no work, so the table shows
  the per-trial overhead itself (``MLPATTERNS_BENCH_TRIALS``, default 200 trials);
* ``quadratic, sqlite``: the same in an SQLite study; bare Optuna opens the URL with
  Optuna's defaults, the wrapper with its settings for worker processes (write-ahead
  log, ``synchronous=NORMAL``), and a third row runs bare Optuna on the wrapper's
  storage, to separate the wrapper from the storage settings;
* ``gradient boosting``: a ``HistGradientBoostingRegressor`` on the natality sample
  (52,000 training rows, one compute thread), learning rate, leaves and L2 penalty,
  scored on held-out rows: the overhead where a trial does real work; a last row runs
  the wrapper with two worker processes (``n_workers=2``) sharing an SQLite study;
* ``gradient boosting, 400 rounds``: the same with trials of about a second, one worker
  process against two: the parallel speed-up once a trial outweighs a worker's start-up
  (spawning it, importing, receiving the objective and its data: about a second here).

Each timing is the best of ``REPEATS`` runs, interleaved.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

N_TRIALS = int(os.environ.get("MLPATTERNS_BENCH_TRIALS", 200))
GBM_TRIALS = max(4, N_TRIALS // 10)
REPEATS = 3
LONG_ROUNDS = 400  # trials of about a second: long enough for two worker processes to pay off
SEED = 0

QUADRATIC_SPACE = {
    "x": {"type": "float", "low": -5.0, "high": 5.0},
    "n": {"type": "int", "low": 1, "high": 32, "log": True},
    "kind": {"type": "categorical", "choices": ["a", "b", "c"]},
}
GBM_SPACE = {
    "learning_rate": {"type": "float", "low": 0.02, "high": 0.5, "log": True},
    "max_leaf_nodes": {"type": "int", "low": 4, "high": 64, "log": True},
    "l2_regularization": {"type": "float", "low": 0.0, "high": 20.0},
}


def quadratic(params: dict[str, Any], trial: Any = None) -> float:
    return (params["x"] - 1.0) ** 2 + np.log2(params["n"]) + {"a": 0.5, "b": 0.0, "c": 1.0}[params["kind"]]


def quadratic_bare(trial: Any) -> float:
    return quadratic({"x": trial.suggest_float("x", -5.0, 5.0), "n": trial.suggest_int("n", 1, 32, log=True),
                      "kind": trial.suggest_categorical("kind", ["a", "b", "c"])})


class Boosting:
    """Validation RMSE of a gradient-boosted model of natality birth weights (picklable for workers)."""

    def __init__(self, rounds: int = 60) -> None:
        from mlpatterns.datasets import load_natality

        self.rounds = rounds
        frame = load_natality().dropna(subset=["weight_pounds"])
        plurality = frame["plurality"].astype("category").cat.codes
        X = frame[["mother_age", "gestation_weeks", "is_male"]].assign(plurality=plurality).to_numpy(np.float64)
        y = frame["weight_pounds"].to_numpy(np.float64)
        cut = int(len(y) * 0.8)
        self.data = X[:cut], y[:cut], X[cut:], y[cut:]

    def __call__(self, params: dict[str, Any], trial: Any = None) -> float:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        X, y, X_valid, y_valid = self.data
        with threadpool_limits(1):
            model = HistGradientBoostingRegressor(max_iter=self.rounds, early_stopping=False, random_state=0, **params)
            model.fit(X, y)
            return float(np.sqrt(np.mean((model.predict(X_valid) - y_valid) ** 2)))

    def bare(self, trial: Any) -> float:
        return self({"learning_rate": trial.suggest_float("learning_rate", 0.02, 0.5, log=True),
                     "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 64, log=True),
                     "l2_regularization": trial.suggest_float("l2_regularization", 0.0, 20.0)})


def _log(message: str) -> None:
    print(f"  [tuning] {message}", file=sys.stderr, flush=True)


def _bare(objective: Callable[[Any], float], n_trials: int, storage: Any = None) -> float:
    import optuna

    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=SEED))
    study.optimize(objective, n_trials=n_trials)
    return study.best_value


def _ours(objective: Callable[..., float], space: dict, n_trials: int, storage: Any = None, n_workers: int = 1) -> float:
    from mlpatterns.training.hyperparameter_tuning.study import tune

    return tune(objective, space, n_trials=n_trials, storage=storage, seed=SEED, pruner="none",
                n_workers=n_workers).best_value


def _best_of(cases: list[tuple[str, Callable[[], float]]]) -> list[tuple[float, float]]:
    best = [(float("inf"), float("nan"))] * len(cases)
    for _ in range(REPEATS):
        for i, (name, function) in enumerate(cases):
            started = time.perf_counter()
            value = function()
            seconds = time.perf_counter() - started
            _log(f"{name}: {seconds:.2f} s")
            if seconds < best[i][0]:
                best[i] = (seconds, value)
    return best


def run() -> list[dict]:
    import optuna

    from mlpatterns.training.hyperparameter_tuning.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tempfile.mkdtemp(prefix="bench-tuning-")
    counter = iter(range(10**6))

    def sqlite() -> str:  # a fresh file per run, so no run resumes another
        return f"sqlite:///{folder}/study-{next(counter)}.db"

    boosting, long_boosting = Boosting(), Boosting(rounds=LONG_ROUNDS)
    groups = [
        ("quadratic", "memory", N_TRIALS, [
            ("bare Optuna", lambda: _bare(quadratic_bare, N_TRIALS)),
            ("mlpatterns tune", lambda: _ours(quadratic, QUADRATIC_SPACE, N_TRIALS)),
        ]),
        ("quadratic", "sqlite", N_TRIALS // 4, [
            ("bare Optuna, Optuna's SQLite defaults", lambda: _bare(quadratic_bare, N_TRIALS // 4, sqlite())),
            ("bare Optuna on the wrapper's SQLite storage",
             lambda: _bare(quadratic_bare, N_TRIALS // 4, open_storage(sqlite()).optuna_storage())),
            ("mlpatterns tune", lambda: _ours(quadratic, QUADRATIC_SPACE, N_TRIALS // 4, sqlite())),
        ]),
        ("gradient boosting (natality)", "memory", GBM_TRIALS, [
            ("bare Optuna", lambda: _bare(boosting.bare, GBM_TRIALS)),
            ("mlpatterns tune", lambda: _ours(boosting, GBM_SPACE, GBM_TRIALS)),
        ]),
        ("gradient boosting (natality)", "sqlite", GBM_TRIALS, [
            ("mlpatterns tune, 1 worker", lambda: _ours(boosting, GBM_SPACE, GBM_TRIALS, sqlite())),
            ("mlpatterns tune, 2 worker processes", lambda: _ours(boosting, GBM_SPACE, GBM_TRIALS, sqlite(), 2)),
        ]),
        (f"gradient boosting (natality), {LONG_ROUNDS} rounds", "sqlite", GBM_TRIALS, [
            ("mlpatterns tune, 1 worker", lambda: _ours(long_boosting, GBM_SPACE, GBM_TRIALS, sqlite())),
            ("mlpatterns tune, 2 worker processes",
             lambda: _ours(long_boosting, GBM_SPACE, GBM_TRIALS, sqlite(), 2)),
        ]),
    ]
    rows = []
    for objective, storage, n_trials, cases in groups:
        timings = _best_of(cases)
        reference_s, reference_value = timings[0]
        for (method, _), (seconds, value) in zip(cases, timings, strict=True):
            rows.append({
                "objective": objective, "storage": storage, "method": method, "trials": n_trials,
                "best_s": seconds, "ms_per_trial": seconds / n_trials * 1000, "vs_bare": seconds / reference_s,
                "same_best": bool(np.isclose(value, reference_value)),
            })
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(format_table(run()))
