"""Chapter 5, resilient serving: the bundle as Stateless Serving Function (16), batch
scoring (17) with Keyed Predictions (20).

Names load on first use: reading a bundle's manifest (:mod:`mlpatterns.bundles`, re-exported)
imports neither pandas nor ONNX Runtime.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {
    "Bundle": "bundle", "BundleError": "bundle", "read_bundle": "bundle", "write_bundle": "bundle",
    "PredictionSummary": "keyed_predictions", "predict_file": "keyed_predictions",
    "InputError": "stateless_serving_function", "RowProblem": "stateless_serving_function",
    "ServingFunction": "stateless_serving_function",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
