"""The torch training loop of chapter 4, built around Checkpoints (pattern 12).

* ``loop``: :class:`Trainer` (virtual epochs, early stopping, callbacks, resuming).
* ``data``: the shuffled stream of virtual epochs; ``history``: the metrics history and
  learning curves; ``state``: what a checkpoint of the trainer holds; ``distributed``: the
  data-parallel ranks (Distribution Strategy, 14).

Importing this package imports none of its modules; each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module that defines it
    "DEFAULT_CHECKPOINT_EVERY": "loop",
    "Trainer": "loop",
    "ShuffledStream": "data",
    "TrainingData": "data",
    "as_training_data": "data",
    "Replicas": "distributed",
    "History": "history",
    "plot_learning_curves": "history",
    "TRAINER_FORMAT": "state",
    "TrainerState": "state",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
