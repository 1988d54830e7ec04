"""Explainable Predictions (29): attributions for a served model, in terms of its raw input columns.

A prediction nobody can explain is hard to trust, debug or contest.  This package explains a
serving bundle (the ONNX model plus its feature transform), not the training objects: exact
TreeSHAP over the tree ensemble read from the ONNX file, or SHAP's permutation explainer over
the whole serving function, with an explicit baseline and a completeness check against the
bundle's own served output.
"""

__all__: list[str] = []
