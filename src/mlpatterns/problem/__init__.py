"""Chapter 3, problem representation: the patterns that change what a model is asked to predict.

* Reframing (5): :class:`ReframedRegressor` (regression as classification over
  target buckets, with a predictive distribution); torch heads
  :class:`BoundedOutput`, :class:`MultiTaskHead`.
* Multilabel (6): :class:`MultilabelClassifier` (per-label thresholds),
  :func:`multilabel_report`, the torch :class:`MultilabelHead`.
* Ensembles (7): :class:`KeyedStackingRegressor`, :class:`KeyedStackingClassifier`
  (stacking on key-hashed out-of-fold predictions, with a diversity report).
* Cascade (8): :class:`CascadeRegressor` (a router and a model per regime).
* Neutral Class (9): :class:`NeutralClassClassifier`, :func:`decisive_report`.
* Rebalancing (10): :class:`ResampledClassifier`, :class:`DownsampledEnsembleClassifier`,
  :class:`AnomalyClassifier`, :func:`init_output_bias`, :func:`imbalance_report`,
  :func:`recall_at_precision`.

Each estimator is a scikit-learn meta-estimator taking ``estimator=`` (or its
members), and each can be declared in a spec (``target:`` and ``models:``) and served
from a bundle. The torch heads load lazily, so scikit-learn users need no torch.
"""

from typing import Any

from mlpatterns.problem.cascade import CascadeRegressor, regime_errors
from mlpatterns.problem.ensembles import (
    KeyedStackingClassifier,
    KeyedStackingRegressor,
    fold_indices,
)
from mlpatterns.problem.multilabel import MultilabelClassifier, best_f1_threshold, multilabel_report
from mlpatterns.problem.neutral_class import NeutralClassClassifier, band_codes, decisive_report
from mlpatterns.problem.rebalancing import DownsampledEnsembleClassifier, ResampledClassifier
from mlpatterns.problem.rebalancing_anomaly import AnomalyClassifier
from mlpatterns.problem.rebalancing_bias import init_output_bias
from mlpatterns.problem.rebalancing_metrics import (
    imbalance_report,
    recall_at_precision,
    recall_at_precision_scorer,
)
from mlpatterns.problem.reframing import (
    ReframedRegressor,
    quantiles_from_bucket_proba,
    target_buckets,
)

_TORCH_HEADS = {"BoundedOutput": "reframing_heads", "MultiTaskHead": "reframing_heads",
                "multitask_loss": "reframing_heads", "MultilabelHead": "multilabel"}

__all__ = [  # noqa: F822 (the torch heads load lazily through __getattr__)
    "AnomalyClassifier", "BoundedOutput", "CascadeRegressor", "DownsampledEnsembleClassifier",
    "KeyedStackingClassifier", "KeyedStackingRegressor", "MultiTaskHead", "MultilabelClassifier",
    "MultilabelHead", "NeutralClassClassifier", "ReframedRegressor", "ResampledClassifier", "band_codes",
    "best_f1_threshold", "decisive_report", "fold_indices", "imbalance_report", "init_output_bias",
    "multilabel_report", "multitask_loss", "quantiles_from_bucket_proba", "recall_at_precision",
    "recall_at_precision_scorer", "regime_errors", "target_buckets",
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_HEADS:
        from importlib import import_module

        value = getattr(import_module(f"mlpatterns.problem.{_TORCH_HEADS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
