"""Useful Overfitting: an emulator trained on the whole grid, unregularised, meets its max-error
tolerance there and beats a regularised model trained the usual way; overfit-one-batch tells
a correct model from a broken one."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mlpatterns.training.useful_overfitting import FunctionGrid, OverfitEmulator, emulation_errors
from mlpatterns.training.useful_overfitting.one_batch import OverfitCheck, overfit_one_batch

EXAMPLE = Path(__file__).parents[2] / "examples" / "useful_overfitting_solar.py"


@pytest.fixture(scope="module")
def solar():
    spec = importlib.util.spec_from_file_location("useful_overfitting_solar", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_solar_formula_matches_known_day_lengths(solar):
    # equator: about 12 h 7 min all year (refraction and the sun's disc add 7 min to 12 h)
    assert solar.day_length_hours(0, np.arange(1, 366)) == pytest.approx(12.11, abs=0.02)
    # New York (40.71 N) on 21 June: about 15 h 06 min; 60 N: about 18.9 h in June, 5.9 h in December
    assert solar.day_length_hours(40.71, 172) == pytest.approx(15.1, abs=0.05)
    assert solar.day_length_hours(60, 172) == pytest.approx(18.9, abs=0.1)
    assert solar.day_length_hours(60, 355) == pytest.approx(5.9, abs=0.1)
    # the hemispheres mirror each other: a day at 40 N is a night at 40 S, give or take refraction
    summer, winter = solar.day_length_hours(40, 172), solar.day_length_hours(-40, 172)
    assert 24 < summer + winter < 24.5


def test_emulator_meets_tolerance_on_grid_and_beats_the_usual_model(solar):
    torch.set_num_threads(1)
    grid = solar.solar_grid(latitude_step=5, day_step=5)  # 25 x 74 points
    table = solar.compare(grid, tol=0.1, max_steps=1500, held_out_emulator=False)
    pattern = table.loc["useful overfitting: whole grid, no regularisation"]
    usual = table.loc["usual: L2 + early stopping, 20 % held out"]
    assert pattern["grid_max"] <= 0.1
    assert pattern["grid_max"] < usual["grid_max"]
    assert pattern["grid_mean"] < usual["grid_mean"]


def test_grid_points_values_and_midpoints():
    grid = FunctionGrid({"a": [0, 1, 3], "b": range(2)})
    assert grid.shape == (3, 2) and grid.size == 6
    assert grid.points().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [3, 0], [3, 1]]
    assert grid.values(lambda a, b: a + 10 * b).tolist() == [0, 10, 1, 11, 3, 13]
    table = np.array([[0, 10], [1, 11], [3, 13]])
    assert np.array_equal(grid.values(table), grid.values(lambda a, b: a + 10 * b))
    middle = grid.midpoints()
    assert middle.names == ["a", "b"] and middle.axes[0].tolist() == [0.5, 2.0]
    assert FunctionGrid([[1, 2], [5]]).midpoints().axes[1].tolist() == [5]
    with pytest.raises(ValueError, match="increasing"):
        FunctionGrid({"a": [0, 2, 1]})
    with pytest.raises(ValueError, match="expected"):
        grid.values(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        grid.values(lambda a, b: np.where(a > 0, a, np.nan))


def test_emulator_from_a_table_stops_at_tolerance_and_pickles():
    grid = FunctionGrid({"x": np.linspace(-1, 1, 15), "y": np.linspace(0, 2, 9)})
    table = np.outer(np.tanh(2 * grid.axes[0]), np.cos(grid.axes[1]))
    X, y = grid.points(), grid.values(table)
    emulator = OverfitEmulator(tol=0.02, hidden=(32,), max_steps=1000).fit(X, y)
    assert emulator.converged_ and emulator.max_error_ <= 0.02
    assert emulator.n_steps_ < 1000  # stopped at the tolerance, not at the budget
    assert emulator.history_[-1]["max_error"] <= 0.02 + 1e-5
    assert emulator.max_error_ == pytest.approx(np.max(np.abs(emulator.predict(X) - y)))
    errors = emulation_errors(emulator, table, grid)
    assert list(errors.index) == ["grid"]  # a table has no values between its points
    again = pickle.loads(pickle.dumps(emulator))
    assert np.array_equal(again.predict(X), emulator.predict(X))
    repeat = OverfitEmulator(tol=0.02, hidden=(32,), max_steps=1000).fit(X, y)
    assert np.array_equal(repeat.predict(X), emulator.predict(X))


def test_periodic_column_joins_its_ends():
    grid = FunctionGrid({"t": np.arange(0, 24)})
    X, y = grid.points(), grid.values(lambda t: np.sin(2 * np.pi * t / 24) ** 3)
    emulator = OverfitEmulator(tol=0.01, hidden=(16,), periods={0: 24}).fit(X, y)
    assert emulator.converged_
    assert emulator.predict([[24.0]])[0] == pytest.approx(emulator.predict([[0.0]])[0], abs=1e-9)


def test_budget_spent_without_reaching_tolerance_is_reported():
    rng = np.random.default_rng(0)
    X, y = rng.uniform(size=(200, 2)), rng.normal(size=200)  # noise: nothing smooth to emulate
    emulator = OverfitEmulator(tol=1e-6, hidden=(4,), max_steps=60, check_every=20).fit(X, y)
    assert not emulator.converged_ and emulator.n_steps_ == 60
    assert emulator.max_error_ > 1e-6


def test_adam_solver_and_default_tolerance():
    grid = FunctionGrid({"x": np.linspace(0, 1, 50)})
    X, y = grid.points(), grid.values(lambda x: 5 * x**2)
    emulator = OverfitEmulator(solver="adam", learning_rate=1e-2, batch_size=16, max_steps=3000).fit(X, y)
    assert emulator.tol_ == pytest.approx(0.05)  # 1 % of the target's range
    assert emulator.converged_


@pytest.mark.parametrize(("params", "match"), [
    ({"tol": 0}, "tol"), ({"hidden": (8, 0)}, "hidden"), ({"activation": "sigmoid"}, "activation"),
    ({"solver": "sgd"}, "solver"), ({"loss": "l1"}, "loss"), ({"max_steps": 0}, "max_steps"),
    ({"periods": {5: 10}}, "periods"), ({"periods": {0: -1}}, "period"), ({"periods": [1]}, "periods"),
    ({"learning_rate": -1.0}, "learning_rate"), ({"batch_size": 0}, "batch_size"),
])
def test_errors_name_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        OverfitEmulator(**params).fit(np.zeros((5, 2)), np.arange(5.0))


def _batch():
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 4, generator=generator), torch.randn(16, 1, generator=generator)


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))


class _IgnoresInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def forward(self, x):
        return self.layer(torch.zeros_like(x))


class _Detached(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def forward(self, x):
        return self.layer(x).detach()


def test_correct_model_overfits_one_batch():
    x, y = _batch()
    model = _mlp()
    before = [p.clone() for p in model.parameters()]
    check = overfit_one_batch(model, x, y, nn.MSELoss(), steps=300, lr=1e-2)
    assert check.passed and bool(check) and check.raise_if_failed() is check
    assert len(check.losses) == 301 and check.final_loss <= 0.01 * check.initial_loss
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # a copy trained


@pytest.mark.parametrize(("model", "lr", "message"), [
    (_IgnoresInput(), 1e-2, "does not depend on its input"),
    (_Detached(), 1e-2, "graph is cut"),
    (_mlp(), 0.0, "loss never changed"),
    (nn.Sequential(nn.Linear(4, 1), nn.ReLU(), nn.Linear(1, 1)).requires_grad_(False), 1e-2, "no trainable"),
    (nn.Linear(4, 1), 1e-2, "cannot memorise"),  # too small: 5 weights for 16 random targets
])
def test_broken_model_fails_with_a_clear_message(model, lr, message):
    x, y = _batch()
    check = overfit_one_batch(model, x, y, nn.MSELoss(), steps=200, lr=lr)
    assert isinstance(check, OverfitCheck) and not check.passed
    assert message in check.message
    with pytest.raises(AssertionError, match="overfit-one-batch check failed"):
        check.raise_if_failed()


def test_exploding_loss_fails():
    x, y = _batch()
    check = overfit_one_batch(_mlp(), x * 1e30, y, nn.MSELoss(), steps=50, lr=1e30,
                              optimizer=torch.optim.SGD)
    assert not check.passed and "loss became" in check.message
