"""Checkpoints (pattern 12): the full training state, saved atomically, and read back.

* ``manager``: :class:`CheckpointManager` (the directory of checkpoints: naming, retention,
  the newest good one) and :func:`load_checkpoint`.
* ``atomic``: :func:`atomic_write`, the write that survives a kill.
* ``state``: random generators, weights-only checks, loading weights.

Importing this package imports none of its modules; each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module that defines it
    "CheckpointError": "manager",
    "CheckpointManager": "manager",
    "CorruptCheckpointWarning": "manager",
    "load_checkpoint": "manager",
    "atomic_write": "atomic",
    "CheckpointMismatchError": "state",
    "capture_rng_state": "state",
    "check_weights_only": "state",
    "load_model_state": "state",
    "restore_rng_state": "state",
    "seed_everything": "state",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
