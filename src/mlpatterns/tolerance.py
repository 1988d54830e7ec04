"""How far two float computations of one model may differ: float32 rounding at the scale they carry.

A model exported to ONNX runs in float32 where scikit-learn or torch computed in
float64, and the served bundle recomputes what training computed: the results differ
by rounding, and rounding is relative to the magnitudes a computation *carries*, not to
its output. :func:`export_tolerance` allows each output element ``TOLERANCE_FACTOR x
eps32 x scale``; :func:`compare_outputs` checks two computations against it and raises
:class:`ExportMismatchError` where they differ by more. The scale of a model's
computation comes from :func:`mlpatterns.export.onnx_export.output_scale`, whose
docstring measures how much room the factor leaves.

Numpy only: the export (build time), the text encoder's export check and the
lifecycle's training-serving skew check share it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["EPS32", "TOLERANCE_FACTOR", "ExportMismatchError", "compare_outputs", "export_tolerance"]

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23, the float32 rounding unit
TOLERANCE_FACTOR = 4.0  # roundings of the scale an export may differ by


class ExportMismatchError(ValueError, RuntimeError):
    """The ONNX model does not reproduce the original model's outputs.

    A ``ValueError`` (the model given cannot be exported faithfully, so command-line
    entry points report it as a message) and, as before, a ``RuntimeError``. The
    attributes locate the worst element of the sample: ``row``, ``column``,
    ``difference`` (``|ONNX - model|`` there), ``tolerance`` there and ``largest_difference``.
    """

    def __init__(self, message: str, *, row: int = -1, column: int = -1, difference: float = float("nan"),
                 tolerance: float = float("nan"), largest_difference: float = float("nan")) -> None:
        super().__init__(message)
        self.row, self.column, self.difference = row, column, difference
        self.tolerance, self.largest_difference = tolerance, largest_difference


def export_tolerance(expected: Any, scale: Any = None, *, factor: float = TOLERANCE_FACTOR) -> np.ndarray:
    """The largest float32 rounding difference allowed for each element of ``expected``.

    ``factor x eps32 x max(scale, |expected|)``: ``scale`` is the magnitude the float32
    computation carries (:func:`~mlpatterns.export.onnx_export.output_scale`), broadcast to ``expected`` (a number, a
    value per column, per row as ``(rows, 1)`` or per element); ``None`` takes each
    column's largest ``|expected|`` over the rows (a 1-d ``expected`` is one column).
    Two float32 computations of the same model (training and serving) agree within it.

    Examples
    --------
    >>> export_tolerance([[180000.0], [1.0]]).ravel() / 2**-23
    array([720000., 720000.])
    """
    expected = np.abs(np.asarray(expected, dtype=np.float64))
    if scale is None:
        scale = np.nanmax(expected, axis=0, keepdims=True) if expected.size else 0.0
    magnitude = np.maximum(np.broadcast_to(np.asarray(scale, dtype=np.float64), expected.shape), expected)
    return factor * EPS32 * np.nan_to_num(magnitude, nan=0.0)


def compare_outputs(got: Any, expected: Any, scale: Any = None, *, what: str = "the exported model") -> None:
    """Raise :class:`ExportMismatchError` where ``got`` and ``expected`` differ by more than :func:`export_tolerance`.

    ``got`` and ``expected`` are one row per sample row (a 1-d array is one column);
    ``scale`` as for :func:`export_tolerance`; ``what`` names the computation checked
    in the message, which gives the worst row and column, both values, the difference,
    the tolerance there and the largest difference over the sample.
    """
    expected = np.asarray(expected, dtype=np.float64).reshape(len(expected), -1)
    got = np.asarray(got, dtype=np.float64).reshape(expected.shape)
    tolerance = export_tolerance(expected, scale)
    # a NaN on one side only is an infinite difference; NaN on both sides agrees
    difference = np.where(np.isnan(got) & np.isnan(expected), 0.0, np.nan_to_num(np.abs(got - expected), nan=np.inf))
    excess = difference / np.maximum(tolerance, np.finfo(np.float64).tiny)
    if np.all(excess <= 1.0):
        return
    row, column = (int(i) for i in np.unravel_index(np.argmax(excess), excess.shape))
    worst, allowed, largest = float(difference[row, column]), float(tolerance[row, column]), float(difference.max())
    raise ExportMismatchError(
        f"{what} does not compute what the trained model computes: on sample row {row}, output column {column}, "
        f"it gives {got[row, column]:.9g} and the model {expected[row, column]:.9g}, a difference of {worst:.3g} "
        f"where float32 rounding allows {allowed:.3g} ({TOLERANCE_FACTOR:g} x 2**-23 x {allowed / TOLERANCE_FACTOR / EPS32:.3g}, "
        f"the magnitude this output carries); {int(np.sum(excess > 1.0))} of {excess.size} outputs differ by more "
        f"than allowed, the largest difference is {largest:.3g}. It is not bundled: the converter computes "
        "something else than the model (choose another model type, or report the converter bug)",
        row=row, column=column, difference=worst, tolerance=allowed, largest_difference=largest)
