"""Chapter 4, model training: Useful Overfitting (11), Checkpoints (12), Transfer Learning (13),
Distribution Strategy (14) and Hyperparameter Tuning (15).

One subpackage per pattern, each re-exporting its public names:

* :mod:`~mlpatterns.training.useful_overfitting`: :class:`OverfitEmulator` (a network
  trained on a whole enumerable input grid, :class:`FunctionGrid`, its maximum grid error
  verified) and :func:`overfit_one_batch` (the debugging check for any torch model).
* :mod:`~mlpatterns.training.trainer`: :class:`Trainer`, the torch training loop of
  chapter 4 (virtual epochs, history, learning curves, early stopping, callbacks), with
  checkpoints that resume bit for bit (:mod:`~mlpatterns.training.checkpoints`:
  :class:`CheckpointManager`, atomic writes) and data-parallel training under ``torchrun``
  (:mod:`~mlpatterns.training.distribution_strategy`).
* :mod:`~mlpatterns.training.transfer_learning`: :class:`SentenceEmbedder` (frozen
  all-MiniLM-L6-v2 bottleneck features, offline), :class:`FineTunedTextClassifier`
  (layer-wise learning rates), and :func:`freeze`, :func:`layerwise_lr_groups`,
  :func:`bottleneck_features` for any torch model; :class:`TextEncoder`, the frozen
  encoder as ONNX with its tokenizer, which a spec's ``features: text:`` runs in training
  and the bundle in serving.
* :mod:`~mlpatterns.training.hyperparameter_tuning`: :func:`tune`, Optuna studies over any
  spec parameter, with storages chosen by a config string (:func:`open_storage`: memory,
  SQLite, journal file, PostgreSQL) and pruning fed by the training loops
  (:class:`PruningCallback`).

torch and Optuna are imported when a component is used, not when this package is.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "Trainer": "trainer.loop", "DEFAULT_CHECKPOINT_EVERY": "trainer.loop",
    "History": "trainer.history", "plot_learning_curves": "trainer.history",
    "CheckpointManager": "checkpoints.manager", "CheckpointError": "checkpoints.manager",
    "CorruptCheckpointWarning": "checkpoints.manager", "load_checkpoint": "checkpoints.manager",
    "atomic_write": "checkpoints.atomic",
    "CheckpointMismatchError": "checkpoints.state", "seed_everything": "checkpoints.state",
    "capture_rng_state": "checkpoints.state", "restore_rng_state": "checkpoints.state",
    "load_model_state": "checkpoints.state",
    "DistributedContext": "distribution_strategy", "init_distributed": "distribution_strategy",
    "shutdown_distributed": "distribution_strategy", "torchrun_command": "distribution_strategy",
    "tune": "hyperparameter_tuning.study", "TuningResult": "hyperparameter_tuning.study",
    "PruningCallback": "hyperparameter_tuning.study", "plot_history": "hyperparameter_tuning.study",
    "make_sampler": "hyperparameter_tuning.samplers", "make_pruner": "hyperparameter_tuning.samplers",
    "open_storage": "hyperparameter_tuning.storage", "TuningStorage": "hyperparameter_tuning.storage",
    "MemoryTuningStorage": "hyperparameter_tuning.storage", "SQLiteTuningStorage": "hyperparameter_tuning.storage",
    "JournalTuningStorage": "hyperparameter_tuning.storage", "PostgresTuningStorage": "hyperparameter_tuning.storage",
    "IntParam": "hyperparameter_tuning.search_space", "FloatParam": "hyperparameter_tuning.search_space",
    "CategoricalParam": "hyperparameter_tuning.search_space", "SearchSpaceError": "hyperparameter_tuning.search_space",
    "parse_search_space": "hyperparameter_tuning.search_space", "suggest_params": "hyperparameter_tuning.search_space",
    "SentenceEmbedder": "transfer_learning.sentence_embedder",
    "load_sentence_encoder": "transfer_learning.sentence_embedder",
    "TextEncoder": "transfer_learning.text_encoder",
    "FineTunedTextClassifier": "transfer_learning.fine_tuning",
    "freeze": "transfer_learning.layers", "unfreeze": "transfer_learning.layers",
    "train_mode": "transfer_learning.layers", "layerwise_lr_groups": "transfer_learning.layers",
    "bottleneck_features": "transfer_learning.layers",
    "OverfitEmulator": "useful_overfitting.emulator", "FunctionGrid": "useful_overfitting.grid",
    "emulation_errors": "useful_overfitting.grid", "OverfitCheck": "useful_overfitting.one_batch",
    "overfit_one_batch": "useful_overfitting.one_batch",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
