"""Hyperparameter Tuning (pattern 15): an outer optimisation loop over training runs, with Optuna.

* ``study``: :func:`tune` (a study, its workers, its result), :class:`PruningCallback`.
* ``search_space``: the search space as data (int, float, categorical parameters).
* ``samplers``: samplers and pruners by name; ``storage``: the storage of a study, chosen by
  a URL (:func:`open_storage`); ``workers``: the worker processes that share one
  study.

Importing this package imports none of its modules; each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module that defines it
    "PruningCallback": "study",
    "TuningResult": "study",
    "plot_history": "study",
    "tune": "study",
    "CategoricalParam": "search_space",
    "FloatParam": "search_space",
    "IntParam": "search_space",
    "SearchSpaceError": "search_space",
    "decode_params": "search_space",
    "encode_params": "search_space",
    "parse_search_space": "search_space",
    "suggest_params": "search_space",
    "PRUNERS": "samplers",
    "SAMPLERS": "samplers",
    "describe_config": "samplers",
    "make_pruner": "samplers",
    "make_sampler": "samplers",
    "STORAGE_BACKENDS": "storage",
    "STORAGE_KINDS": "storage",
    "JournalTuningStorage": "storage",
    "MemoryTuningStorage": "storage",
    "PostgresTuningStorage": "storage",
    "SQLiteTuningStorage": "storage",
    "TuningStorage": "storage",
    "open_storage": "storage",
    "WorkerJob": "workers",
    "run_workers": "workers",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
