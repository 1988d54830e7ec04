"""Explainable Predictions (29): attributions for a served model, in terms of its raw input columns.

A prediction nobody can explain is hard to trust, debug or contest.  This package explains a
serving bundle (the ONNX model plus its feature transform), not the training objects: exact
TreeSHAP over the tree ensemble read from the ONNX file (:mod:`.onnx_tree_shap`), or SHAP's
permutation explainer over the whole serving function (:mod:`.bundle_explainer`), relative to
an explicit baseline (:mod:`.baselines`), in raw input columns (:mod:`.raw_columns`), with a
completeness check against the bundle's own served output (:mod:`.attribution_checks`);
global importance for a run (:mod:`.global_importance`, whose function of that name is exported by :mod:`mlpatterns.responsible`) and per-row attributions next to
each prediction (:mod:`.explained_predictions`). Counterfactual and example-based
explanations and integrated gradients live in :mod:`.counterfactuals`,
:mod:`.example_based` and :mod:`.integrated_gradients`.

Importing this package imports none of its modules; each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module (relative to this package) that defines it
    "BaselineError": "baselines",
    "BundleExplainer": "bundle_explainer",
    "CompletenessError": "attribution_checks",
    "ExplainingServingFunction": "explained_predictions",
    "Explanation": "bundle_explainer",
    "OnnxTreeEnsemble": "onnx_tree_shap",
    "UnsupportedExplanation": "bundle_explainer",
    "UnsupportedTreeModel": "onnx_tree_shap",
    "build_baseline": "baselines",
    "check_completeness": "attribution_checks",
    "completeness_errors": "attribution_checks",
    "feature_sources": "raw_columns",
    "plot_global_importance": "global_importance",
    "read_onnx_tree_ensemble": "onnx_tree_shap",
    "stability": "attribution_checks",
    "to_raw_columns": "raw_columns",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
