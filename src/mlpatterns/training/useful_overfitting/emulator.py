"""Useful Overfitting (pattern 11): emulate a deterministic function over its whole input grid.

Problem: a model stands in for a deterministic function (a physics simulation, a
closed-form formula) whose input space can be enumerated. The usual generalisation
tricks (a held-out split, dropout, weight decay, early stopping on validation loss)
are wrong here: there is no unseen input to generalise to, and every one of them
leaves error on inputs the model will be asked about.

Solution: enumerate the grid (:class:`~mlpatterns.training.useful_overfitting.grid.FunctionGrid`,
the Cartesian product of per-axis values), compute the function on every point, and
train on all of them without regularisation until the *maximum* absolute error over
the grid is under a tolerance (:class:`OverfitEmulator`).
:func:`~mlpatterns.training.useful_overfitting.grid.emulation_errors` reports the max
and mean error on the grid and, separately, on points halfway between grid values:
the pattern promises the former, not the latter.

:func:`~mlpatterns.training.useful_overfitting.one_batch.overfit_one_batch` is the
pattern's other use: a model and training loop that cannot overfit one batch are
broken.

Examples
--------
>>> import numpy as np
>>> from mlpatterns.training.useful_overfitting.grid import FunctionGrid, emulation_errors
>>> grid = FunctionGrid({"x": np.linspace(0, 1, 21), "t": np.arange(0, 12)})
>>> def wave(x, t):
...     return np.sin(3 * x) * np.cos(2 * np.pi * t / 12)
>>> X, y = grid.points(), grid.values(wave)
>>> X.shape
(252, 2)
>>> emulator = OverfitEmulator(tol=0.01, periods={1: 12}).fit(X, y)
>>> bool(emulator.max_error_ <= 0.01), emulator.converged_
(True, True)
>>> list(emulation_errors(emulator, wave, grid).index)
['grid', 'off-grid midpoints']
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from mlpatterns.training.useful_overfitting.params import check_emulator_params

__all__ = ["OverfitEmulator"]

_PREDICT_BATCH = 65536


class OverfitEmulator(RegressorMixin, BaseEstimator):
    """Useful Overfitting: an MLP fitted to every grid point until the max error is under ``tol``.

    Fit it on the whole enumerated input space (:meth:`~mlpatterns.training.useful_overfitting.grid.FunctionGrid.points`) and the
    function's values there. There is no validation split, no dropout and no weight
    decay; training stops when the max absolute error over the training rows is at
    most ``tol`` or after ``max_steps`` steps, and keeps the weights with the smallest
    max error seen.

    Parameters
    ----------
    tol : float, default=None
        Target max absolute error, in target units. ``None``: 1 % of the target's range.
    hidden : tuple of int, default=(32, 32)
        Hidden layer widths.
    activation : {"tanh", "relu", "silu"}, default="tanh"
    periods : dict of int to float, default=None
        Periodic input columns and their periods (``{1: 365}`` for a day of year);
        each enters as a cosine and a sine, so both ends of its range meet.
    solver : {"lbfgs", "adam"}, default="lbfgs"
        Full-batch L-BFGS (one step = one iteration), or Adam on minibatches for grids
        too large for full-batch steps.
    loss : {"adaptive", "squared_error"}, default="adaptive"
        ``"adaptive"`` minimises the squared error until the max error stalls, then
        the fourth power of the error, which weighs the worst points most.
    max_steps : int, default=2000
    check_every : int, default=20
        Steps between two measurements of the max error.
    learning_rate : float, default=None
        ``None``: 1.0 for L-BFGS, 1e-3 for Adam.
    batch_size : int, default=None
        Adam's minibatch; ``None``: all rows.
    random_state : int, default=0
        Seeds the initial weights and the minibatch order. ``None`` means 0.

    Attributes
    ----------
    network_ : EmulatorNetwork
        The trained torch module (input encoding and target scale inside).
    tol_ : float
    max_error_, mean_error_ : float
        Max and mean absolute error over the training rows (the grid).
    converged_ : bool
        ``max_error_ <= tol_``.
    n_steps_ : int
        Optimizer steps taken.
    history_ : list of dict
        ``step``, ``loss``, ``max_error`` and the loss ``power`` at every check.

    See Also
    --------
    mlpatterns.training.useful_overfitting.grid.FunctionGrid
    mlpatterns.training.useful_overfitting.grid.emulation_errors
    mlpatterns.training.useful_overfitting.one_batch.overfit_one_batch
    """

    def __init__(self, tol: float | None = None, hidden=(32, 32), activation: str = "tanh",
                 periods=None, solver: str = "lbfgs", loss: str = "adaptive", max_steps: int = 2000,
                 check_every: int = 20, learning_rate: float | None = None,
                 batch_size: int | None = None, random_state: int | None = 0) -> None:
        self.tol = tol
        self.hidden = hidden
        self.activation = activation
        self.periods = periods
        self.solver = solver
        self.loss = loss
        self.max_steps = max_steps
        self.check_every = check_every
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state

    @classmethod
    def _estimator_check_instances(cls) -> list:
        return [cls(hidden=(16,), max_steps=50)]

    def _check_params(self, n_features: int) -> dict[int, float]:
        return check_emulator_params(self.get_params(deep=False), n_features)

    def fit(self, X, y):
        """Train on every row of ``(X, y)`` (the whole grid) until the max error is ``<= tol``."""
        X, y = validate_data(self, X, y, y_numeric=True)
        y = column_or_1d(y, warn=True).astype(np.float64)
        periods = self._check_params(X.shape[1])
        import torch

        from mlpatterns.training.useful_overfitting.network import (
            EmulatorNetwork,
            train_to_tolerance,
        )

        self.tol_ = float(0.01 * np.ptp(y)) if self.tol is None else float(self.tol)
        scale = X.std(axis=0)
        y_scale = float(y.std())
        seed = 0 if self.random_state is None else int(self.random_state)
        hidden = self.hidden if isinstance(self.hidden, (tuple, list)) else [self.hidden]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.network_ = EmulatorNetwork(X.shape[1], hidden, self.activation, periods, X.mean(axis=0),
                                            np.where(scale > 0, scale, 1.0), float(y.mean()),
                                            y_scale if y_scale > 0 else 1.0)
        result = train_to_tolerance(self.network_, X, y, tol=self.tol_, solver=self.solver, loss=self.loss,
                                    max_steps=self.max_steps, check_every=self.check_every,
                                    learning_rate=self.learning_rate, batch_size=self.batch_size, seed=seed)
        self.network_.eval()
        error = np.abs(self._predict(X) - y)  # as predict computes it, in float64
        self.max_error_, self.mean_error_ = float(error.max()), float(error.mean())
        self.n_steps_ = result["n_steps"]
        self.history_ = result["history"]
        self.converged_ = bool(self.max_error_ <= self.tol_)
        return self

    def predict(self, X):
        """The emulated function's value at every row of ``X``."""
        check_is_fitted(self, "network_")
        return self._predict(validate_data(self, X, reset=False))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        # float64 at inference: a row's value must not depend on which other rows share its batch
        import copy

        import torch

        network = copy.deepcopy(self.network_).double()
        out = np.empty(len(X))
        with torch.no_grad():
            for start in range(0, len(X), _PREDICT_BATCH):
                rows = torch.tensor(X[start:start + _PREDICT_BATCH], dtype=torch.float64)
                out[start:start + _PREDICT_BATCH] = network(rows).numpy()
        return out
