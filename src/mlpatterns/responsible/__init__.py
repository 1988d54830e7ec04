"""Chapter 7, responsible AI: Heuristic Benchmark (28), Explainable Predictions (29), Fairness Lens (30).

* Heuristic Benchmark (28): :mod:`.heuristic_benchmark` (the lookup with back-off),
  :mod:`.heuristic_rules` (the previous period's value, one threshold on one feature),
  :mod:`.heuristic_selection` (the best rule chosen on the valid split) and
  :mod:`.heuristic_comparison` (a model's gain over it in the problem's own units) and
  :mod:`.heuristic_plots` (the rules against the models, drawn).
* Explainable Predictions (29): :mod:`.explainable_predictions` (attributions of a served
  bundle in raw columns, counterfactuals, nearest examples, integrated gradients).
* Fairness Lens (30): :mod:`.fairness_lens` (slices before and after training, thresholds,
  mitigations) and :mod:`.model_card` (``from mlpatterns.responsible.model_card import model_card``).

Importing this package imports none of its modules (so neither pandas nor scikit-learn);
each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "HeuristicBenchmark": "heuristic_benchmark",
    "PreviousPeriodHeuristic": "heuristic_rules",
    "ThresholdHeuristic": "heuristic_rules",
    "select_heuristic": "heuristic_selection",
    "HeuristicPlan": "heuristic_selection",
    "share_caught": "heuristic_selection",
    "compare_with_heuristic": "heuristic_comparison",
    "plot_heuristic_benchmark": "heuristic_plots",
    "BundleExplainer": "explainable_predictions.bundle_explainer",
    "Explanation": "explainable_predictions.bundle_explainer",
    "ExplainingServingFunction": "explainable_predictions.explained_predictions",
    "build_baseline": "explainable_predictions.baselines",
    "BaselineError": "explainable_predictions.baselines",
    "CompletenessError": "explainable_predictions.attribution_checks",
    "UnsupportedExplanation": "explainable_predictions.bundle_explainer",
    "explainer_for_serving": "explainable_predictions.explained_predictions",
    "plot_global_importance": "explainable_predictions.global_importance",
    "check_completeness": "explainable_predictions.attribution_checks",
    "global_importance": "explainable_predictions.global_importance",
    "read_onnx_tree_ensemble": "explainable_predictions.onnx_tree_shap",
    "counterfactuals": "explainable_predictions.counterfactuals",
    "nearest_examples": "explainable_predictions.example_based",
    "integrated_gradients": "explainable_predictions.integrated_gradients",
    "bundle_integrated_gradients": "explainable_predictions.integrated_gradients",
    "data_balance": "fairness_lens.slices",
    "model_slices": "fairness_lens.slices",
    "sensitive_slices": "fairness_lens.slices",
    "raise_on_crossings": "fairness_lens.thresholds",
    "plot_slices": "fairness_lens.plots",
    "plot_mitigations": "fairness_lens.plots",
    "MITIGATIONS": "fairness_lens.mitigation",
    "check_thresholds": "fairness_lens.thresholds",
    "FairnessThresholdError": "fairness_lens.thresholds",
    "compare_mitigations": "fairness_lens.mitigation",
    "slice_thresholds": "fairness_lens.mitigation",
    "reweighting_weights": "fairness_lens.mitigation",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
