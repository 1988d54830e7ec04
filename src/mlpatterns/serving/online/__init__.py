"""Stateless Serving Function (16), the online path: a few rows served without pandas or scikit-learn.

:class:`OnlinePredictor` (:mod:`.predictor`) loads a bundle like
:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction` and predicts rows
given as dicts, with the batch path's features, scores and row problems. Importing this
package imports numpy, pyfarmhash and (on load) ONNX Runtime only. :class:`RowProblem` and
:class:`InputError` are the batch path's own classes (defined here, free of pandas, and
imported by :mod:`~mlpatterns.serving.stateless_serving_function`). ``mlpatterns serve``
answers requests of few rows through this path (:mod:`mlpatterns.serving.http._common`).
"""

from mlpatterns.serving.online.predictor import (
    InputError,
    OnlinePathUnsupported,
    OnlinePredictor,
    RowProblem,
)

__all__ = ["InputError", "OnlinePathUnsupported", "OnlinePredictor", "RowProblem"]
