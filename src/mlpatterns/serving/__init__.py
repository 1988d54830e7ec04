"""Chapter 5, resilient serving: the bundle as Stateless Serving Function (16), batch
scoring (17) with Keyed Predictions (20)."""

from mlpatterns.serving.bundle import Bundle, BundleError, read_bundle, write_bundle
from mlpatterns.serving.keyed_predictions import PredictionSummary, predict_file
from mlpatterns.serving.stateless_serving_function import InputError, RowProblem, ServingFunction

__all__ = [
    "Bundle",
    "BundleError",
    "InputError",
    "PredictionSummary",
    "RowProblem",
    "ServingFunction",
    "predict_file",
    "read_bundle",
    "write_bundle",
]
