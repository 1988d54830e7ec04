"""Hyperparameter Tuning (15): search spaces, samplers, pruning from the training loop, workers.

The spec side (the ``tuning:`` section, the study in the lifecycle, ``mlpatterns tune``)
is in ``test_tuning_spec.py``; the storage backends in ``test_tuning_storages.py``.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from mlpatterns.datasets import load_natality
from mlpatterns.training.hyperparameter_tuning.search_space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpaceError,
    decode_params,
    parse_search_space,
)
from mlpatterns.training.hyperparameter_tuning.study import (
    PruningCallback,
    make_pruner,
    make_sampler,
    plot_history,
    tune,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"x": {"type": "float", "low": -3.0, "high": 3.0}, "k": {"type": "int", "low": 1, "high": 9, "step": 2},
         "hidden": [[16], [32, 16]]}


def bowl(params, trial):
    return (params["x"] - 0.5) ** 2 + params["k"] + len(params["hidden"])


# -- search spaces ---------------------------------------------------------------------------------
def test_space_declares_int_float_log_step_and_categorical():
    space = parse_search_space({
        "lr": {"type": "float", "low": 1e-3, "high": 0.3, "log": True},
        "l2": {"type": "float", "low": 0, "high": 10, "step": 0.5},
        "leaves": {"type": "int", "low": 8, "high": 256, "log": True},
        "depth": {"type": "int", "low": 2, "high": 10, "step": 2},
        "loss": ["squared_error", "absolute_error"],
        "hidden": {"type": "categorical", "choices": [[64, 32], [128]]},
    })
    assert space["lr"] == FloatParam(0.001, 0.3, None, True)
    assert space["l2"] == FloatParam(0.0, 10.0, 0.5, False)
    assert space["leaves"] == IntParam(8, 256, 1, True)
    assert space["depth"] == IntParam(2, 10, 2, False)
    assert space["loss"] == CategoricalParam(("squared_error", "absolute_error"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    values = {name: param.suggest(trial, name) for name, param in space.items()}
    assert values["hidden"] in ([64, 32], [128])  # a JSON choice comes back as the list
    assert 0.001 <= values["lr"] <= 0.3 and values["depth"] in (2, 4, 6, 8, 10)
    assert (values["l2"] / 0.5).is_integer()
    assert decode_params(space, trial.params)["hidden"] == values["hidden"]


@pytest.mark.parametrize(("raw", "message"), [
    ({"lr": {"type": "float", "low": 0.3, "high": 0.1}}, r"space\.lr\.high: expected at least low"),
    ({"lr": {"type": "float", "low": 0, "high": 1, "log": True}}, r"space\.lr\.low: a log scale needs low > 0"),
    ({"lr": {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1}}, r"space\.lr\.step: a log scale"),
    ({"n": {"type": "int", "low": 1.5, "high": 4}}, r"space\.n\.low: expected a whole number"),
    ({"n": {"type": "int", "low": 1, "high": 4, "step": 0}}, r"space\.n\.step: expected a positive"),
    ({"n": {"type": "integer", "low": 1, "high": 4}}, r"space\.n\.type: expected 'int', 'float' or 'categorical'"),
    ({"n": {"type": "int", "low": 1, "high": 4, "choices": [1]}}, r"space\.n: unknown field\(s\) \['choices'\]"),
    ({"c": {"type": "categorical", "choices": []}}, r"space\.c\.choices: expected a non-empty list"),
    ({"c": ["a", "a"]}, r"space\.c\.choices: expected distinct choices"),
    ({"c": 3}, r"space\.c: expected \{type"),
    ({}, r"space: expected at least one parameter"),
])
def test_space_errors_name_the_field(raw, message):
    with pytest.raises(SearchSpaceError, match=message):
        parse_search_space(raw)


# -- samplers, pruners, the study ------------------------------------------------------------------
def test_samplers_and_pruners_by_name_or_options():
    assert isinstance(make_sampler("tpe"), optuna.samplers.TPESampler)
    assert isinstance(make_sampler("random"), optuna.samplers.RandomSampler)
    assert isinstance(make_sampler("gp"), optuna.samplers.GPSampler)
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        assert isinstance(make_sampler("qmc"), optuna.samplers.QMCSampler)
    assert isinstance(make_sampler({"type": "tpe", "n_startup_trials": 3, "multivariate": True}),
                      optuna.samplers.TPESampler)
    assert isinstance(make_pruner("none"), optuna.pruners.NopPruner)
    assert isinstance(make_pruner({"type": "hyperband", "min_resource": 1}), optuna.pruners.HyperbandPruner)
    sampler = optuna.samplers.RandomSampler()
    assert make_sampler(sampler) is sampler
    with pytest.raises(ValueError, match=r"sampler: expected one of \['tpe', 'random'"):
        make_sampler("annealing")
    with pytest.raises(ValueError, match="sampler: tpe: .*n_startup"):
        make_sampler({"type": "tpe", "n_startup": 3})
    with pytest.raises(ValueError, match=r"pruner: expected one of \['median'"):
        make_pruner("early")


def test_tpe_is_the_default_and_a_seed_repeats_the_study():
    first = tune(bowl, SPACE, n_trials=25, seed=7)
    again = tune(bowl, SPACE, n_trials=25, seed=7)
    assert first.sampler == "tpe" and isinstance(first.study.sampler, optuna.samplers.TPESampler)
    assert first.best_params == again.best_params and first.best_value == again.best_value
    assert first.best_params["hidden"] == [16] and first.best_params["k"] == 1
    assert (first.complete, first.new_trials, first.storage) == (25, 25, "memory")
    random = tune(bowl, SPACE, n_trials=25, seed=7, sampler="random")
    assert random.best_value >= first.best_value  # TPE learns from earlier trials; random search does not


def test_enqueued_values_run_first_and_plain_objective_works():
    result = tune(bowl, SPACE, n_trials=3, enqueue=[{"x": 0.5, "k": 1, "hidden": [16]}])
    first = result.study.trials[0]
    assert decode_params({k: v for k, v in parse_search_space(SPACE).items()}, first.params)["hidden"] == [16]
    assert first.value == 2.0 and result.best_trial == 0

    def plain(trial):
        return trial.suggest_float("y", 0, 1)

    assert tune(plain, n_trials=4, direction="maximize").direction == "maximize"


def test_arguments_checked(tmp_path):
    with pytest.raises(ValueError, match="n_trials: expected a whole number"):
        tune(bowl, SPACE, n_trials=0)
    with pytest.raises(ValueError, match="direction: expected"):
        tune(bowl, SPACE, direction="down")
    stored = tune(bowl, SPACE, n_trials=1, storage=f"sqlite:///{tmp_path}/s.db", study_name="s")
    with pytest.raises(ValueError, match=r"study 's' in sqlite:///.* holds trials of other parameters \['hidden'\]"):
        tune(bowl, {k: v for k, v in SPACE.items() if k != "hidden"}, storage=stored.storage_url, study_name="s")
    with pytest.raises(TypeError, match="must be picklable"):
        tune(lambda params, trial: 0.0, SPACE, n_trials=2, n_workers=2, storage=f"journal:///{tmp_path}/j.log")


def test_a_killed_run_s_trials_are_failed_on_resume(tmp_path):
    """A trial killed before its objective named its process is failed only when every process
    registered for the study ran here and is gone."""
    import socket
    import subprocess
    import sys

    from mlpatterns.training.hyperparameter_tuning.study import WORKER_ATTR, register_worker

    storage = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(storage=storage, study_name="killed")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    study.set_user_attr(f"{WORKER_ATTR}:{socket.gethostname()}:{dead.stdout.strip()}", True)
    study.ask()  # running, and no process named: created by the dead process
    result = tune(bowl, SPACE, n_trials=2, storage=storage, study_name="killed")
    assert (result.failed, result.complete) == (1, 2)
    register_worker(result.study)  # this process is alive: its unnamed running trial is left alone
    result.study.ask()
    again = tune(bowl, SPACE, n_trials=3, storage=storage, study_name="killed")
    assert (again.failed, again.complete) == (1, 3)
    assert [t.state.name for t in again.study.trials].count("RUNNING") == 1


# -- pruning from the training loop ----------------------------------------------------------------
@pytest.fixture(scope="module")
def natality_features():
    """Natality (real data): mother's age and gestation weeks -> weight, as network features."""
    from mlpatterns.reproducibility.transform import TransformedFeatures

    frame = load_natality().dropna(subset=["weight_pounds", "mother_age", "gestation_weeks"]).head(2000)
    numeric = frame[["mother_age", "gestation_weeks"]].to_numpy(np.float32)
    numeric = (numeric - numeric.mean(axis=0)) / numeric.std(axis=0)
    plurality = frame["plurality"].astype("category").cat.codes.to_numpy(np.int64).reshape(-1, 1)
    y = np.array(frame["weight_pounds"], dtype=np.float64)

    def part(rows):
        return TransformedFeatures(numeric[rows], plurality[rows], cardinalities=[int(plurality.max()) + 1])

    return part(slice(0, 1600)), y[:1600], part(slice(1600, None)), y[1600:]


def _network_objective(features, epochs_seen):
    import torch

    from mlpatterns.models.training_loop import train_network
    from mlpatterns.models.wide_and_deep import WideAndDeep

    train, y_train, valid, y_valid = features

    def objective(params, trial):
        torch.manual_seed(0)
        network = WideAndDeep(n_numeric=2, cardinalities=train.cardinalities, hidden=[8])
        seen = epochs_seen.setdefault(trial.number, [])
        pruning = PruningCallback(trial, monitor="valid_loss")

        def callback(epoch, metrics):
            seen.append(epoch)
            pruning(epoch, metrics)

        result = train_network(network, train, y_train, valid, y_valid, task="regression", epochs=4,
                               batch_size=256, learning_rate=params["learning_rate"], patience=10, callback=callback)
        return min(h["valid_loss"] for h in result.history)

    return objective


def test_pruning_callback_stops_train_network_early(natality_features):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    epochs_seen: dict[int, list[int]] = {}
    space = {"learning_rate": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True}}
    result = tune(_network_objective(natality_features, epochs_seen), space, n_trials=8, sampler="random",
                  pruner={"type": "median", "n_startup_trials": 2}, seed=0)
    trials = result.study.get_trials(deepcopy=False)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and result.complete >= 2 and result.pruned == len(pruned)
    for trial in pruned:  # stopped at the epoch it was pruned at, with that epoch's valid_loss reported
        assert epochs_seen[trial.number] == list(range(1, len(epochs_seen[trial.number]) + 1))
        assert max(trial.intermediate_values) == epochs_seen[trial.number][-1] < 4
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert all(len(epochs_seen[t.number]) == 4 for t in complete)
    slow = min(trials, key=lambda t: t.params["learning_rate"])
    assert slow.state.name == "PRUNED"  # the tiniest learning rate barely moves the loss


def test_pruning_callback_plugs_into_the_trainer():
    torch = pytest.importorskip("torch")
    from mlpatterns.training.trainer import loop as trainer_module
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1e-6))
    trial = study.ask()
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).reshape(-1, 1)
    trainer = trainer_module.Trainer(torch.nn.Linear(1, 1), torch.nn.functional.mse_loss, batch_size=16,
                                     max_epochs=5, callbacks=[PruningCallback(trial)])
    with pytest.raises(optuna.TrialPruned, match="epoch 1: valid_loss"):
        trainer.fit((x, 3 * x + 1), valid=(x, 3 * x + 1))
    assert trainer.epoch == 1
    assert list(study.trials[0].intermediate_values) == [1]


def test_pruning_callback_reports_in_the_study_direction():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    PruningCallback(trial)(1, {"valid_loss": 0.25, "train_loss": 0.3})  # lower is better: reported negated
    PruningCallback(trial, monitor="valid_auc")(2, {"valid_auc": 0.8})  # 'auc': higher is better, as is
    PruningCallback(trial, monitor="score", mode="max")(3, {"score": 0.5})
    assert study.trials[0].intermediate_values == {1: -0.25, 2: 0.8, 3: 0.5}
    with pytest.raises(ValueError, match=r"no 'valid_loss' among the epoch's metrics \['train_loss'\]"):
        PruningCallback(trial)(4, {"train_loss": 0.3})
    with pytest.raises(ValueError, match="mode: expected"):
        PruningCallback(trial, mode="lower")
    pruning = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=1.0))
    with pytest.raises(optuna.TrialPruned, match="epoch 1: valid_loss 2"):
        PruningCallback(pruning.ask())(1, {"valid_loss": 2.0})


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    result = tune(bowl, SPACE, n_trials=5)
    path = plot_history(result.study, tmp_path / "history.png")
    assert (tmp_path / "history.png").stat().st_size > 1000 and path.endswith("history.png")
