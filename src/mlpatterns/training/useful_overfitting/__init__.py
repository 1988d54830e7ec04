"""Useful Overfitting (pattern 11): emulate a deterministic function over its whole input grid.

* ``grid``: :class:`FunctionGrid` (every input of the function) and :func:`emulation_errors`
  (max and mean error on the grid and between its points).
* ``emulator``: :class:`OverfitEmulator`, a scikit-learn regressor trained on the whole grid
  until its max error is under a tolerance; ``params`` checks its parameters without scikit-
  learn or torch; ``network`` is its torch network.
* ``one_batch``: :func:`overfit_one_batch`, the pattern as a debugging check.

Importing this package imports none of its modules; each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module that defines it
    "OverfitEmulator": "emulator",
    "FunctionGrid": "grid",
    "emulation_errors": "grid",
    "EmulatorNetwork": "network",
    "train_to_tolerance": "network",
    "OverfitCheck": "one_batch",
    "overfit_one_batch": "one_batch",
    "ACTIVATIONS": "params",
    "LOSSES": "params",
    "SOLVERS": "params",
    "check_emulator_params": "params",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
