"""Useful Overfitting (pattern 11): emulate day length over latitude and day of year.

The function is closed-form and the input space is enumerable: every whole degree of
latitude from -60 to 60 and every day of the year (121 x 365 = 44,165 points). The
emulator trains on all of them, without regularisation, until its max error over the
grid is under 0.05 hours (3 minutes). It is compared with the same network trained
on 80 % of the grid, and with a regularised MLP trained the usual way (L2 penalty,
early stopping on a validation split, 20 % of the grid held out for testing).
The function and its grid live in ``mlpatterns.solar_day_length``, which the spec's
``solar_day_length`` data set also uses (``examples/solar_day_length.yaml``).
Run: ``python examples/useful_overfitting_solar.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mlpatterns.solar_day_length import DAYS_PER_YEAR, day_length_hours, solar_grid
from mlpatterns.training.useful_overfitting import FunctionGrid, OverfitEmulator, emulation_errors

TOLERANCE_HOURS = 0.05


def emulator(tol: float = TOLERANCE_HOURS, max_steps: int = 3000, random_state: int = 0) -> OverfitEmulator:
    """The pattern: no split, no regularisation, the day of year as a periodic input."""
    return OverfitEmulator(tol=tol, hidden=(32, 32), periods={1: DAYS_PER_YEAR}, max_steps=max_steps,
                           random_state=random_state)


def _encode(X):
    angle = 2 * np.pi * X[:, 1] / DAYS_PER_YEAR
    return np.column_stack([X[:, 0], np.cos(angle), np.sin(angle)])


def usual_model(random_state: int = 0, max_iter: int = 500):
    """The usual way: the same features and layers, an L2 penalty, early stopping on 10 %."""
    return make_pipeline(FunctionTransformer(_encode), StandardScaler(),
                         MLPRegressor(hidden_layer_sizes=(32, 32), activation="tanh", alpha=1e-3,
                                      early_stopping=True, validation_fraction=0.1, max_iter=max_iter,
                                      random_state=random_state))


def compare(grid: FunctionGrid, tol: float = TOLERANCE_HOURS, max_steps: int = 3000,
            usual_max_iter: int = 500, random_state: int = 0, held_out_emulator: bool = True) -> pd.DataFrame:
    """Max and mean error (hours) on the grid and between grid points, and fit time, per model.

    ``fit_seconds`` is wall time; ``fit_cpu_seconds`` the process's CPU time (all threads).

    ``held_out_emulator=False`` leaves out the middle row (the emulator on 80 % of the grid).
    """
    X, y = grid.points(), grid.values(day_length_hours)
    held_out = np.random.default_rng(random_state).random(len(y)) < 0.2
    models = {
        "useful overfitting: whole grid, no regularisation": (emulator(tol, max_steps, random_state), None),
        "same emulator, 20 % of the grid held out": (emulator(tol, max_steps, random_state), ~held_out),
        "usual: L2 + early stopping, 20 % held out": (usual_model(random_state, usual_max_iter), ~held_out),
    }
    if not held_out_emulator:
        del models["same emulator, 20 % of the grid held out"]
    rows = []
    for name, (model, train) in models.items():
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(X if train is None else X[train], y if train is None else y[train])
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        errors = emulation_errors(model, day_length_hours, grid)
        rows.append({"model": name, "grid_max": errors.loc["grid", "max_abs_error"],
                     "grid_mean": errors.loc["grid", "mean_abs_error"],
                     "off_grid_max": errors.loc["off-grid midpoints", "max_abs_error"],
                     "off_grid_mean": errors.loc["off-grid midpoints", "mean_abs_error"],
                     "fit_seconds": seconds, "fit_cpu_seconds": cpu_seconds,
                     # optimizer steps for the emulator, epochs for MLPRegressor
                     "steps": model.n_steps_ if isinstance(model, OverfitEmulator) else model[-1].n_iter_})
    return pd.DataFrame(rows).set_index("model")


def main() -> None:
    grid = solar_grid()
    print(f"{grid}: {grid.size} points; day length {grid.values(day_length_hours).min():.2f}"
          f" to {grid.values(day_length_hours).max():.2f} hours")
    with pd.option_context("display.width", 200, "display.max_columns", 10):
        print(compare(grid).round(4))
        # What the pattern does not promise: between the points of a coarse grid
        coarse = solar_grid(latitude_step=10, day_step=15)
        model = emulator().fit(coarse.points(), coarse.values(day_length_hours))
        print(f"{coarse}, {coarse.size} points:")
        print(emulation_errors(model, day_length_hours, coarse).round(4))


if __name__ == "__main__":
    main()
