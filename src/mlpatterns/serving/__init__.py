"""Chapter 5, resilient serving: the bundle as Stateless Serving Function (16), its online
path, Batch Serving (17) locally and on Ray with Keyed Predictions (20), and Two-Phase
Predictions (19).

Names load on first use: reading a bundle's manifest (:mod:`mlpatterns.bundles`, re-exported)
imports neither pandas nor ONNX Runtime, and nothing here imports Ray, torch or httpx
until a name that needs it is used. ``InputError`` and ``RowProblem`` are one definition
for the batch and the online path (:mod:`mlpatterns.serving.serving_contract`).
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {
    "Bundle": "bundle", "BundleError": "bundle", "read_bundle": "bundle", "write_bundle": "bundle",
    "PredictionSummary": "keyed_predictions", "predict_file": "keyed_predictions",
    "PrecomputedPredictions": "batch_serving", "PredictionTableError": "batch_serving",
    "PredictionTableWriter": "batch_serving",
    "BundleScorer": "ray_batch_serving", "connect_ray": "ray_batch_serving", "predict_dataset": "ray_batch_serving",
    "predict_file_ray": "ray_batch_serving",
    "InputError": "stateless_serving_function", "RowProblem": "stateless_serving_function",
    "ServingFunction": "stateless_serving_function",
    "OnlinePathUnsupported": "online.predictor", "OnlinePredictor": "online.predictor",
    "fit_phase_one": "two_phase_predictions.phase_one", "phase_one_columns": "two_phase_predictions.phase_one",
    "quantize_phase_one": "two_phase_predictions.phase_one",
    "HttpPhaseTwo": "two_phase_predictions.phase_two", "PhaseTwoError": "two_phase_predictions.phase_two",
    "TwoPhaseModel": "two_phase_predictions.model",
    "choose_threshold": "two_phase_predictions.evaluation", "plot_tradeoff": "two_phase_predictions.evaluation",
    "tradeoff_curve": "two_phase_predictions.evaluation",
    "regression_tradeoff_curve": "two_phase_predictions.evaluation",
    "read_two_phase": "two_phase_predictions.artifact", "write_two_phase": "two_phase_predictions.artifact",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
