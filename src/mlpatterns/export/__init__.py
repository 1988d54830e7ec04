"""ONNX export, at build time: trained models to the ONNX files a bundle carries, each export verified.

* ``onnx_export``: :func:`sklearn_to_onnx`, :func:`torch_to_onnx`,
  :func:`torch_matrix_to_onnx` and :func:`verify_sklearn_export`, each checked against the
  model on a sample at the scale its float32 computation carries (:func:`output_scale`), and
  byte-reproducible (:func:`reproducible_onnx_bytes`: no random graph name, no doc strings).
* ``graph_export``: :func:`export_graph`, a chapter-3 meta-estimator as ONNX leaves and the
  model graph (:mod:`mlpatterns.serving.model_graph`) that recombines them.
* ``tree_thresholds``: the repair of skl2onnx's HistGradientBoosting split thresholds.

The check itself (:func:`compare_outputs`, :class:`ExportMismatchError`) is
:mod:`mlpatterns.tolerance`, re-exported here. Exporting imports skl2onnx, onnx and torch;
serving a bundle imports nothing of this package. Importing this package imports none of
its modules; each name loads its module on first use.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {  # name -> the module (relative to this package) it is taken from
    "EPS32": "onnx_export",
    "TOLERANCE_FACTOR": "onnx_export",
    "ExportMismatchError": "onnx_export",
    "compare_outputs": "onnx_export",
    "export_tolerance": "onnx_export",
    "output_scale": "onnx_export",
    "reproducible_onnx_bytes": "onnx_export",
    "sklearn_to_onnx": "onnx_export",
    "torch_matrix_to_onnx": "onnx_export",
    "torch_to_onnx": "onnx_export",
    "verify_sklearn_export": "onnx_export",
    "export_graph": "graph_export",
    "floor_float32": "tree_thresholds",
    "repair_hist_gradient_boosting_thresholds": "tree_thresholds",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
