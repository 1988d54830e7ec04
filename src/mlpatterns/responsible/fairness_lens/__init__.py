"""Fairness Lens (30): how a data set and a model treat each slice of a sensitive attribute.

* :mod:`.slices`: fairlearn ``MetricFrame`` per sensitive slice, before training (rows, shares,
  label rates) and after (selection, error, false positive and negative rates, ROC AUC; MAE,
  RMSE and mean prediction for regression), with counts, intervals and the gaps.
* :mod:`.thresholds`: the limits a run must keep, failing with a message that names them.
* :mod:`.mitigation`: per-slice thresholds, reweighting and fairlearn's reductions compared
  with their cost in overall accuracy.
* :mod:`.plots`: bars by slice with intervals; the mitigations' trade-off.
"""

from mlpatterns.responsible.fairness_lens.mitigation import (
    EQUALIZED_METRICS,
    MITIGATIONS,
    compare_mitigations,
    reweighting_weights,
    slice_thresholds,
)
from mlpatterns.responsible.fairness_lens.plots import plot_mitigations, plot_slices
from mlpatterns.responsible.fairness_lens.slices import (
    MISSING_SLICE,
    data_balance,
    mean_interval,
    model_slices,
    sensitive_slices,
    wilson_interval,
)
from mlpatterns.responsible.fairness_lens.thresholds import (
    DATA_THRESHOLDS,
    MODEL_METRICS,
    FairnessThresholdError,
    ThresholdCrossing,
    check_thresholds,
    model_threshold_names,
    raise_on_crossings,
)

__all__ = ["DATA_THRESHOLDS", "EQUALIZED_METRICS", "MISSING_SLICE", "MITIGATIONS", "MODEL_METRICS",
           "FairnessThresholdError", "ThresholdCrossing", "check_thresholds", "compare_mitigations", "data_balance",
           "mean_interval", "model_slices", "model_threshold_names", "plot_mitigations", "plot_slices",
           "raise_on_crossings", "reweighting_weights", "sensitive_slices", "slice_thresholds", "wilson_interval"]
