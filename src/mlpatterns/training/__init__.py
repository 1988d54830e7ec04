"""Chapter 4, model training: Useful Overfitting (11), Checkpoints (12), Transfer Learning (13),
Distribution Strategy (14) and Hyperparameter Tuning (15).

* Useful Overfitting: :class:`OverfitEmulator` (a network trained on a whole enumerable
  input grid, its maximum grid error verified) and :func:`overfit_one_batch` (the
  debugging check for any torch model).
* :class:`Trainer`: the torch training loop of chapter 4 (virtual epochs, history,
  learning curves, early stopping, callbacks), with checkpoints that resume bit for bit
  (:class:`CheckpointManager`, atomic writes) and data-parallel training under
  ``torchrun`` (:mod:`~mlpatterns.training.distribution_strategy`).
* Transfer Learning: :class:`SentenceEmbedder` (frozen all-MiniLM-L6-v2 bottleneck
  features, offline), :class:`FineTunedTextClassifier` (layer-wise learning rates),
  and :func:`freeze`, :func:`layerwise_lr_groups`, :func:`bottleneck_features` for any
  torch model; :class:`TextEncoder`, the frozen encoder as ONNX with its tokenizer, which
  a spec's ``features: text:`` runs in training and the bundle in serving.
* :func:`tune`: Optuna studies over any spec parameter, with storages chosen by a
  config string (:func:`open_storage`: memory, SQLite, journal file, PostgreSQL) and
  pruning fed by the training loops (:class:`PruningCallback`).

torch and Optuna are imported when a component is used, not when this package is.
"""

from typing import Any

_EXPORTS = {
    "Trainer": "trainer", "DEFAULT_CHECKPOINT_EVERY": "trainer",
    "History": "trainer_history", "plot_learning_curves": "trainer_history",
    "CheckpointManager": "checkpoints", "CheckpointError": "checkpoints",
    "CorruptCheckpointWarning": "checkpoints", "load_checkpoint": "checkpoints",
    "atomic_write": "checkpoints_io",
    "CheckpointMismatchError": "checkpoints_state", "seed_everything": "checkpoints_state",
    "capture_rng_state": "checkpoints_state", "restore_rng_state": "checkpoints_state",
    "load_model_state": "checkpoints_state",
    "DistributedContext": "distribution_strategy", "init_distributed": "distribution_strategy",
    "shutdown_distributed": "distribution_strategy", "torchrun_command": "distribution_strategy",
    "tune": "hyperparameter_tuning", "TuningResult": "hyperparameter_tuning",
    "PruningCallback": "hyperparameter_tuning", "make_sampler": "hyperparameter_tuning",
    "make_pruner": "hyperparameter_tuning", "plot_history": "hyperparameter_tuning",
    "open_storage": "tuning_storage", "TuningStorage": "tuning_storage",
    "MemoryTuningStorage": "tuning_storage", "SQLiteTuningStorage": "tuning_storage",
    "JournalTuningStorage": "tuning_storage", "PostgresTuningStorage": "tuning_storage",
    "IntParam": "tuning_search_space", "FloatParam": "tuning_search_space",
    "CategoricalParam": "tuning_search_space", "SearchSpaceError": "tuning_search_space",
    "parse_search_space": "tuning_search_space", "suggest_params": "tuning_search_space",
    "SentenceEmbedder": "transfer_learning_text", "load_sentence_encoder": "transfer_learning_text",
    "TextEncoder": "transfer_learning_encoder",
    "FineTunedTextClassifier": "transfer_learning_fine_tuning",
    "freeze": "transfer_learning", "unfreeze": "transfer_learning", "train_mode": "transfer_learning",
    "layerwise_lr_groups": "transfer_learning", "bottleneck_features": "transfer_learning",
    "OverfitEmulator": "useful_overfitting", "FunctionGrid": "useful_overfitting",
    "emulation_errors": "useful_overfitting", "OverfitCheck": "useful_overfitting_check",
    "overfit_one_batch": "useful_overfitting_check",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        from importlib import import_module

        value = getattr(import_module(f"mlpatterns.training.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
