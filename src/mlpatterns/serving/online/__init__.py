"""Stateless Serving Function (16), the online path: a few rows served without pandas or scikit-learn.

:class:`OnlinePredictor` (:mod:`.predictor`) loads a bundle like
:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction` and predicts rows
given as dicts, with the batch path's features, scores and row problems. Importing this
package imports numpy, pyfarmhash and (on load) ONNX Runtime only.
"""

from mlpatterns.serving.online.predictor import (
    InputError,
    OnlinePathUnsupported,
    OnlinePredictor,
    RowProblem,
)

__all__ = ["InputError", "OnlinePathUnsupported", "OnlinePredictor", "RowProblem"]
