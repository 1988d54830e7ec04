"""Two-Phase Predictions (19): a small model on the device, a large one on the server.

* ``phase_one``: :func:`fit_phase_one` (a small torch network, or a logistic regression,
  as ONNX), :func:`quantize_phase_one` (int8 with ``onnxruntime.quantization``),
  :func:`phase_one_columns`.
* ``phase_two``: :class:`HttpPhaseTwo`, the client of a model served by ``mlpatterns serve``.
* ``model``: :class:`TwoPhaseModel`, which routes each row.
* ``evaluation``: :func:`choose_threshold`, :func:`tradeoff_curve`, :func:`regression_tradeoff_curve`,
  :func:`plot_tradeoff`.
* ``artifact``: :func:`write_two_phase`, :func:`read_two_phase`: the folder ``mlpatterns run``
  writes for a spec's ``two_phase:`` section, read back by :meth:`TwoPhaseModel.from_run`.

Names load on first use: importing this package imports neither torch, httpx nor ONNX Runtime.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {
    "fit_phase_one": "phase_one", "phase_one_columns": "phase_one", "quantize_phase_one": "phase_one",
    "HttpPhaseTwo": "phase_two", "PhaseTwoError": "phase_two",
    "TwoPhaseModel": "model",
    "choose_threshold": "evaluation", "plot_tradeoff": "evaluation", "tradeoff_curve": "evaluation",
    "regression_tradeoff_curve": "evaluation",
    "read_two_phase": "artifact", "write_two_phase": "artifact",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
