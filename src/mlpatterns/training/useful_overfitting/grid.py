"""The input grid of Useful Overfitting (pattern 11): every input a deterministic function is asked about.

:class:`FunctionGrid` enumerates the Cartesian product of per-axis values and computes
a function (or reads a table of its values) on every point;
:func:`emulation_errors` reports a model's max and mean error on the grid and on the
points halfway between grid values, which the pattern does not promise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["FunctionGrid", "emulation_errors"]


class FunctionGrid:
    """The full Cartesian product of per-axis input values, and a function's values on it.

    Parameters
    ----------
    axes : mapping of name to values, or sequence of values
        Each axis is a 1-D list, array or ``range`` of increasing finite numbers.
        A sequence names its axes ``x0, x1, ...``.

    Attributes
    ----------
    names : list of str
    axes : list of ndarray
    shape : tuple of int
        Values per axis; ``points()`` has ``prod(shape)`` rows, last axis fastest.
    """

    def __init__(self, axes: Mapping[str, Sequence[float]] | Sequence[Sequence[float]]) -> None:
        items = list(axes.items()) if isinstance(axes, Mapping) else [
            (f"x{i}", values) for i, values in enumerate(axes)]
        if not items:
            raise ValueError("axes must name at least one axis")
        self.names, self.axes = [], []
        for name, values in items:
            array = np.asarray(values, dtype=np.float64)
            if array.ndim != 1 or array.size == 0 or not np.all(np.isfinite(array)):
                raise ValueError(f"axis {name!r} must be a non-empty 1-D sequence of finite numbers")
            if np.any(np.diff(array) <= 0):
                raise ValueError(f"axis {name!r} must be strictly increasing")
            self.names.append(str(name))
            self.axes.append(array)
        self.shape = tuple(len(a) for a in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def points(self) -> np.ndarray:
        """Every grid point, one row each, one column per axis."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.column_stack([m.ravel() for m in mesh])

    def values(self, function: Callable[..., np.ndarray] | np.ndarray) -> np.ndarray:
        """The function at every point, in the order of ``points()``.

        ``function`` is a callable taking one array per axis (the columns of
        ``points()``) and returning one value per point, or a table of its values
        shaped ``shape`` (or flat, ``size`` long).
        """
        if callable(function):
            values = np.asarray(function(*self.points().T), dtype=np.float64)
            where = "function(*columns)"
        else:
            values = np.asarray(function, dtype=np.float64)
            where = "the table"
            if values.shape == self.shape:
                values = values.reshape(-1)
        if values.shape != (self.size,):
            raise ValueError(f"{where} gave shape {values.shape}; expected {(self.size,)} "
                             f"(or {self.shape} for a table)")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{where} has non-finite values at {int(np.sum(~np.isfinite(values)))} points")
        return values

    def midpoints(self) -> FunctionGrid:
        """The grid halfway between neighbouring values on every axis (a 1-value axis stays)."""
        return FunctionGrid({name: (a[:-1] + a[1:]) / 2 if len(a) > 1 else a
                             for name, a in zip(self.names, self.axes, strict=True)})

    def __repr__(self) -> str:
        return f"FunctionGrid({dict(zip(self.names, self.shape, strict=True))})"


def emulation_errors(model, function: Callable[..., np.ndarray] | np.ndarray,
                     grid: FunctionGrid) -> pd.DataFrame:
    """Max and mean absolute error of ``model`` on ``grid`` and on its midpoints.

    The ``'off-grid midpoints'`` row needs a callable ``function`` (a table has no
    values between its points) and shows what Useful Overfitting does not promise.
    """
    rows = {}
    grids = {"grid": grid}
    if callable(function):
        grids["off-grid midpoints"] = grid.midpoints()
    for name, g in grids.items():
        error = np.abs(model.predict(g.points()) - g.values(function))
        rows[name] = {"n": g.size, "max_abs_error": float(error.max()),
                      "mean_abs_error": float(error.mean())}
    return pd.DataFrame.from_dict(rows, orient="index")
