"""The chapter-4 training loop: virtual epochs, history, early stopping, resume, fine-tuning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mlpatterns.training.checkpoints.manager import (
    CheckpointError,
    CheckpointManager,
    load_checkpoint,
)
from mlpatterns.training.checkpoints.state import CheckpointMismatchError, seed_everything
from mlpatterns.training.trainer.history import History, plot_learning_curves
from mlpatterns.training.trainer.loop import Trainer


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: fast on a busy 2-core machine, where OpenMP threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_data(rows: int = 600, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, 6, generator=generator)
    y = ((x[:, 0] - x[:, 1] + 0.3 * torch.randn(rows, generator=generator)) > 0).float().reshape(-1, 1)
    cut = rows * 3 // 4
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def make_model(hidden: int = 16) -> nn.Module:
    seed_everything(0)
    return nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 1))


def make_trainer(model=None, **options) -> Trainer:
    settings = dict(
        optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), batch_size=32, examples_per_epoch=200,
        max_epochs=6, seed=5, checkpoint_every=4,
        scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5),
    )
    settings.update(options)
    return Trainer(make_model() if model is None else model, nn.functional.binary_cross_entropy_with_logits,
                   **settings)


def same_weights(first: nn.Module, second: nn.Module) -> bool:
    a, b = first.state_dict(), second.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def accuracy(target: np.ndarray, output: np.ndarray) -> float:
    return float(((output > 0) == (target > 0.5)).mean())


# -- determinism, virtual epochs, history ----------------------------------------------------------
def test_same_seed_same_weights_bit_for_bit_and_another_seed_differs():
    train, valid = make_data()
    first, second, other = make_trainer(), make_trainer(), make_trainer(seed=6)
    for trainer in (first, second, other):
        trainer.fit(train, valid)
    assert same_weights(first.model, second.model)
    assert first.history == second.history
    assert not same_weights(first.model, other.model)


def test_virtual_epochs_do_not_depend_on_the_data_size(tmp_path):
    small, valid = make_data(400)
    large, _ = make_data(1600)
    for name, train in (("small", small), ("large", large)):
        trainer = make_trainer(checkpoint_dir=tmp_path / name, examples_per_epoch=250, keep_last=100)
        history = trainer.fit(train, valid)
        assert trainer.steps_per_epoch == math.ceil(250 / 32) == 8
        assert history["step"] == [8, 16, 24, 32, 40, 48]
        assert history["examples"] == [256 * e for e in range(1, 7)]
        steps = [e["step"] for e in CheckpointManager(tmp_path / name).entries()]
        assert steps == [4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48]


def test_history_has_losses_metrics_and_lr_per_virtual_epoch():
    train, valid = make_data()
    history = make_trainer(metrics={"accuracy": accuracy}).fit(train, valid)
    assert len(history) == 6
    assert history.columns == ["epoch", "step", "examples", "lr", "train_loss", "valid_loss", "accuracy"]
    assert history["lr"] == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]
    assert history["valid_loss"][-1] < history["valid_loss"][0]
    assert 0.75 < history["accuracy"][-1] <= 1
    assert list(history.to_frame()["epoch"]) == [1, 2, 3, 4, 5, 6]


def test_a_dataset_numpy_arrays_and_tensors_train_alike():
    (x, y), valid = make_data()

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return len(x)

        def __getitem__(self, i):
            return x[i], y[i]

    by_tensor, by_dataset, by_array = make_trainer(), make_trainer(), make_trainer()
    by_tensor.fit((x, y), valid)
    by_dataset.fit(Rows(), valid)
    by_array.fit((x.numpy(), y.numpy()), valid)
    assert same_weights(by_tensor.model, by_dataset.model)
    assert same_weights(by_tensor.model, by_array.model)


# -- early stopping and the best weights -----------------------------------------------------------
def test_early_stopping_keeps_the_best_weights(tmp_path):
    train, valid = make_data(80)  # few rows, a wide net and a high learning rate: it overfits
    trainer = make_trainer(make_model(256), max_epochs=30, patience=3, checkpoint_dir=tmp_path, scheduler=None,
                           examples_per_epoch=90, optimizer=lambda p: torch.optim.Adam(p, lr=3e-2))
    history = trainer.fit(train, valid)
    best = history.best_epoch
    assert trainer.stopped_early and len(history) == best + 3 < 30
    assert trainer.best_epoch == best
    assert trainer.evaluate(valid)["valid_loss"] == pytest.approx(min(history["valid_loss"]), abs=1e-6)
    path, state = load_checkpoint(tmp_path, prefer="best")
    assert state["progress"]["epoch"] == best
    assert all(torch.equal(v, state["model"][k]) for k, v in trainer.model.state_dict().items())


def test_monitor_a_metric_to_maximise():
    train, valid = make_data()
    trainer = make_trainer(metrics={"accuracy": accuracy}, monitor="accuracy", mode="max", patience=2)
    history = trainer.fit(train, valid)
    assert history.best_epoch == trainer.best_epoch
    assert history[trainer.best_epoch - 1]["accuracy"] == max(history["accuracy"])


def test_the_best_model_is_not_the_last_on_natality():
    """Checkpoints' (12) benefit on real data: a small sample overfits, and the best
    validation epoch's weights beat the last epoch's on held-out births."""
    from mlpatterns.datasets import load_natality
    from mlpatterns.models.wide_and_deep import WideAndDeep
    from mlpatterns.reproducibility import FeatureTransform, hash_split_frames

    splits = hash_split_frames(load_natality(), "row_id")
    train, valid, test = splits["train"].sample(2000, random_state=0), splits["valid"], splits["test"]
    transform = FeatureTransform(
        numeric=["mother_age", "gestation_weeks"], categorical={"is_male": 4, "plurality": 8, "mother_race": 32},
        crosses=[{"columns": ["mother_age", "gestation_weeks"], "buckets": 256}],
    ).fit(train)

    def tensors(frame):
        features = transform.transform(frame)
        target = torch.tensor(frame["weight_pounds"].to_numpy(np.float32)).reshape(-1, 1)
        return torch.from_numpy(features.numeric), torch.from_numpy(features.categorical), target

    losses = {}
    for restore_best in (True, False):
        seed_everything(0)
        model = WideAndDeep(2, transform.transform(train.head()).cardinalities, hidden=(128, 64))
        trainer = Trainer(model, nn.functional.mse_loss, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
                          batch_size=64, max_epochs=12, restore_best=restore_best)
        history = trainer.fit(tensors(train), tensors(valid))
        losses[restore_best] = trainer.evaluate(tensors(test))["valid_loss"]
    assert history.best_epoch < 12
    assert losses[True] < losses[False] - 0.01, losses


# -- resume --------------------------------------------------------------------------------------
class Crash(Exception):
    pass


def crashing_loss(at_call: int):
    calls = 0

    def loss(output, target):
        nonlocal calls
        calls += 1
        if calls == at_call:
            raise Crash(f"crash at call {calls}")
        return nn.functional.binary_cross_entropy_with_logits(output, target)

    return loss


# 7 steps and 1 validation batch per epoch: loss calls 1-7 train epoch 1, call 8 validates it...
@pytest.mark.parametrize("crash_at", [13, 24, 38])  # mid-epoch 2, in epoch 3's validation, epoch 5
def test_resume_after_a_crash_ends_bit_for_bit(tmp_path, crash_at):
    train, valid = make_data()
    reference = make_trainer(metrics={"accuracy": accuracy}, patience=10)
    reference.fit(train, valid)
    crashed = make_trainer(metrics={"accuracy": accuracy}, patience=10, checkpoint_dir=tmp_path)
    crashed.loss = crashing_loss(crash_at)
    with pytest.raises(Crash):
        crashed.fit(train, valid)
    resumed = make_trainer(make_model(), metrics={"accuracy": accuracy}, patience=10, checkpoint_dir=tmp_path)
    resumed.fit(train, valid, resume=True)
    assert resumed.resumed_from is not None
    assert same_weights(resumed.model, reference.model)
    assert resumed.history == reference.history
    assert resumed.optimizer_.state_dict()["state"][0]["exp_avg"].equal(reference.optimizer_.state_dict()["state"][0]["exp_avg"])


def test_resume_a_finished_run_returns_at_once_and_more_epochs_continue_it(tmp_path):
    train, valid = make_data()
    make_trainer(checkpoint_dir=tmp_path, max_epochs=3).fit(train, valid)
    again = make_trainer(checkpoint_dir=tmp_path, max_epochs=3)
    assert len(again.fit(train, valid, resume=True)) == 3 and again.step == 3 * 7
    longer = make_trainer(checkpoint_dir=tmp_path, max_epochs=6)
    longer.fit(train, valid, resume=True)
    straight = make_trainer(max_epochs=6)
    straight.fit(train, valid)
    assert same_weights(longer.model, straight.model) and longer.history == straight.history


def test_resume_from_a_named_file_and_resume_without_checkpoints_starts_fresh(tmp_path):
    train, valid = make_data()
    fresh = make_trainer(checkpoint_dir=tmp_path / "a")
    fresh.fit(train, valid, resume=True)  # nothing to resume: a fresh run
    assert fresh.resumed_from is None
    middle = CheckpointManager(tmp_path / "a").entries()[-2]
    resumed = make_trainer(checkpoint_dir=tmp_path / "b")
    resumed.fit(train, valid, resume_from=tmp_path / "a" / middle["file"])
    assert resumed.resumed_from.name == middle["file"]
    assert same_weights(resumed.model, fresh.model)


def test_resume_refuses_other_settings_and_other_architectures(tmp_path):
    train, valid = make_data()
    make_trainer(checkpoint_dir=tmp_path, max_epochs=2).fit(train, valid)
    with pytest.raises(ValueError, match=r"batch_size=32 there, 64 here.*init_from="):
        make_trainer(checkpoint_dir=tmp_path, batch_size=64).fit(train, valid, resume=True)
    with pytest.raises(ValueError, match="train_rows=450 there, 300 here"):
        make_trainer(checkpoint_dir=tmp_path).fit((train[0][:300], train[1][:300]), valid, resume=True)
    with pytest.raises(CheckpointMismatchError, match=r"different shapes: 0\.weight \(checkpoint \(16, 6\), model \(8, 6\)\)"):
        make_trainer(make_model(8), checkpoint_dir=tmp_path).fit(train, valid, resume=True)
    with pytest.raises(CheckpointError, match="already holds checkpoints; pass resume=True"):
        make_trainer(checkpoint_dir=tmp_path).fit(train, valid)
    with pytest.raises(ValueError, match="resume: needs checkpoint_dir"):
        make_trainer().fit(train, valid, resume=True)


def test_a_damaged_latest_checkpoint_falls_back_with_a_warning(tmp_path):
    from mlpatterns.training.checkpoints.manager import CorruptCheckpointWarning

    train, valid = make_data()
    reference = make_trainer()
    reference.fit(train, valid)
    make_trainer(checkpoint_dir=tmp_path, max_epochs=3).fit(train, valid)
    newest = tmp_path / CheckpointManager(tmp_path).entries()[-1]["file"]
    newest.write_bytes(newest.read_bytes()[:-50])
    resumed = make_trainer(checkpoint_dir=tmp_path)
    with pytest.warns(CorruptCheckpointWarning, match=newest.name):
        resumed.fit(train, valid, resume=True)
    assert resumed.resumed_from.name != newest.name
    assert same_weights(resumed.model, reference.model)


@pytest.mark.slow
def test_a_data_parallel_run_resumes_bit_for_bit(tmp_path):
    """Two gloo ranks under torchrun: rank 0 writes, each rank's generators are restored."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).with_name("resumable_run.py")

    def torchrun(directory, output, epochs):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                   str(script), "data-parallel", str(directory), str(output), "--epochs", str(epochs)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    torchrun(tmp_path / "straight", tmp_path / "straight.pt", 4)
    torchrun(tmp_path / "stopped", tmp_path / "half.pt", 2)
    torchrun(tmp_path / "stopped", tmp_path / "resumed.pt", 4)
    straight, resumed = (torch.load(tmp_path / name, weights_only=True) for name in ("straight.pt", "resumed.pt"))
    assert all(torch.equal(v, resumed["model"][k]) for k, v in straight["model"].items())
    assert straight["history"] == resumed["history"]
    state = load_checkpoint(tmp_path / "stopped")[1]
    assert len(state["rng_ranks"]) == 2  # each rank's generators, restored on that rank


# -- fine-tuning -----------------------------------------------------------------------------------
def test_fine_tune_from_a_checkpoint_on_new_data(tmp_path):
    train, valid = make_data()
    source = make_trainer(checkpoint_dir=tmp_path / "source", patience=2)
    source.fit(train, valid)
    best_weights = {k: v.clone() for k, v in source.model.state_dict().items()}
    new_train, new_valid = make_data(seed=9)
    tuned = make_trainer(make_model(), checkpoint_dir=tmp_path / "tuned", max_epochs=2)
    captured = {}
    original = tuned._run

    def run_and_capture(*args):  # the state fit starts training from
        captured["start"] = {k: v.clone() for k, v in tuned.model.state_dict().items()}
        captured["optimizer_state"] = len(tuned.optimizer_.state_dict()["state"])
        original(*args)

    tuned._run = run_and_capture
    history = tuned.fit(new_train, new_valid, init_from=tmp_path / "source")
    assert all(torch.equal(captured["start"][k], v) for k, v in best_weights.items())
    assert captured["optimizer_state"] == 0  # a fresh optimizer
    assert history["step"] == [7, 14] and tuned.resumed_from is None
    with_optimizer = make_trainer(make_model(), max_epochs=1)
    with_optimizer._run = lambda *args: captured.update(moments=len(with_optimizer.optimizer_.state_dict()["state"]))
    with_optimizer.fit(new_train, new_valid, init_from=tmp_path / "source", init_optimizer=True)
    assert captured["moments"] == 4
    plain = tmp_path / "weights.pt"
    torch.save(source.model.state_dict(), plain)
    make_trainer(make_model(), max_epochs=1).fit(new_train, init_from=plain)
    with pytest.raises(ValueError, match="cannot be combined with resume"):
        make_trainer(checkpoint_dir=tmp_path / "x").fit(new_train, init_from=plain, resume=True)


# -- callbacks -------------------------------------------------------------------------------------
class Pruned(Exception):
    """Stands for optuna.TrialPruned."""


def test_callbacks_get_each_epoch_and_may_stop_training(tmp_path):
    train, valid = make_data()
    seen = []

    def prune_at_three(epoch: int, metrics: dict[str, float]) -> None:
        seen.append((epoch, metrics))
        metrics["train_loss"] = -1.0  # a copy: the history is not changed
        if epoch == 3:
            raise Pruned

    trainer = make_trainer(checkpoint_dir=tmp_path, callbacks=[prune_at_three], metrics={"accuracy": accuracy})
    with pytest.raises(Pruned):
        trainer.fit(train, valid)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert set(seen[0][1]) == {"epoch", "step", "examples", "lr", "train_loss", "valid_loss", "accuracy"}
    assert trainer.history[0]["train_loss"] > 0
    assert CheckpointManager(tmp_path).entries()[-1]["epoch"] == 3  # written before the callbacks


def test_an_optuna_pruning_callback_propagates():
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    train, valid = make_data()

    def objective(trial):
        def prune(epoch, metrics):
            trial.report(metrics["valid_loss"], epoch)
            if epoch >= 2:
                raise optuna.TrialPruned

        make_trainer(callbacks=[prune]).fit(train, valid)
        return 0.0

    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert study.trials[0].intermediate_values.keys() == {1, 2}


# -- progress, plots, arguments --------------------------------------------------------------------
def test_progress_bar_runs(capsys):
    from rich.progress import Progress

    train, _ = make_data()
    make_trainer(progress=True, max_epochs=1).fit(train)
    with Progress() as progress:
        make_trainer(progress=progress, max_epochs=1).fit(train)
        assert progress.tasks[0].completed == 7


def test_learning_curves_are_saved_as_png(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, valid = make_data()
    history = make_trainer(metrics={"accuracy": accuracy}).fit(train, valid)
    figure = history.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(figure.axes) == 3  # losses, lr, accuracy
    plt.close(figure)
    figure = plot_learning_curves(history.records, tmp_path / "losses.png", metrics=["train_loss", "valid_loss"])
    assert len(figure.axes) == 1
    plt.close(figure)
    with pytest.raises(ValueError, match=r"metrics: \['auc'\] are not in the history"):
        plot_learning_curves(history, metrics=["auc"])
    with pytest.raises(ValueError, match="no epochs"):
        plot_learning_curves(History())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"checkpoint_every": -5}, "checkpoint_every: expected a positive integer or None, got -5"),
        ({"checkpoint_every": 0}, "checkpoint_every: expected a positive integer or None, got 0"),
        ({"keep_last": 0}, "keep_last: expected a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size: expected a positive integer"),
        ({"examples_per_epoch": -1}, "examples_per_epoch: expected a positive integer or None"),
        ({"patience": 0}, "patience: expected a positive integer or None"),
        ({"mode": "lowest"}, "mode: expected 'min' or 'max'"),
        ({"scheduler_interval": "batch"}, "scheduler_interval: expected 'epoch' or 'step'"),
        ({"seed": -1}, "seed: expected an integer >= 0"),
        ({"min_delta": -0.1}, "min_delta: expected a number >= 0"),
        ({"metrics": {"auc": 3}}, r"metrics\['auc'\]: expected a callable"),
        ({"metrics": {"valid_loss": accuracy}}, r"metrics\['valid_loss'\]: the name is taken"),
        ({"callbacks": [print, "x"]}, r"callbacks\[1\]: expected a callable callback\(epoch, metrics\)"),
    ],
)
def test_bad_arguments_name_the_parameter(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make_trainer(**options)


def test_bad_data_and_monitor_name_the_parameter(tmp_path):
    train, valid = make_data()
    with pytest.raises(TypeError, match="train: expected"):
        make_trainer().fit(train[0])
    with pytest.raises(ValueError, match=r"valid: the tensors have different numbers of rows \[150, 10\]"):
        make_trainer().fit(train, (valid[0], valid[1][:10]))
    with pytest.raises(ValueError, match="monitor='valid_loss' needs validation data"):
        make_trainer(monitor="valid_loss").fit(train)
    with pytest.raises(ValueError, match="monitor: 'auc' is not recorded"):
        make_trainer(monitor="auc").fit(train, valid)
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        Trainer(lambda x: x, nn.functional.mse_loss)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError, match="checkpoint_dir"):
        make_trainer(checkpoint_dir=blocker).fit(train)
