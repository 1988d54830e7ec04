"""Float32 split thresholds that send every float32 input where scikit-learn sends it.

scikit-learn's tree models compare a float32 feature, widened to float64, with a float64
threshold: ``x <= t``. ONNX's tree ensembles compare in float32, so the exported threshold
must be the largest float32 at or below ``t``: then ``x <= t`` and ``x <= rd(t)`` agree for
every float32 ``x``. skl2onnx 1.20 does this for decision trees and forests, but writes a
HistGradientBoosting threshold rounded to the *nearest* float32; when that rounds up, an
input equal to the rounded value goes left in ONNX and right in scikit-learn. On a grid of
values (measurements with one decimal, standardised by the transform) that happens often:
2,000 diamonds rows gave a prediction off by 1.99 on one row, for ``table = 57.9`` against a
threshold of 57.89999961853027.

:func:`repair_hist_gradient_boosting_thresholds` rewrites the thresholds of a converted
HistGradientBoosting model from its float64 split values, read from the same per-round
predictors that skl2onnx's converter reads, in the converter's order (round by round, one
tree per class within a round). The export check then compares the repaired graph with the
model, as it does every export, so a change in either library cannot pass unnoticed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["floor_float32", "repair_hist_gradient_boosting_thresholds"]


def floor_float32(value: float) -> np.float32:
    """The largest float32 that is not above ``value``.

    >>> float(floor_float32(57.89999961853027)) < 57.89999961853027
    True
    >>> float(floor_float32(0.5))
    0.5
    """
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return rounded


def _trees(model: Any) -> list[Any]:
    """Every tree of a fitted HistGradientBoosting model, in skl2onnx's tree-id order."""
    return [tree for round_trees in model._predictors for tree in round_trees]  # one per class and round


def repair_hist_gradient_boosting_thresholds(proto: Any, model: Any) -> int:
    """Set each split threshold of ``proto``'s tree ensemble to the float32 floor of ``model``'s own.

    ``proto`` is the ONNX ModelProto skl2onnx made from ``model`` (a fitted
    HistGradientBoostingClassifier or -Regressor); it is changed in place. Returns how
    many thresholds changed.
    """
    trees = _trees(model)
    changed = 0
    for node in proto.graph.node:
        if node.op_type not in ("TreeEnsembleRegressor", "TreeEnsembleClassifier"):
            continue
        attributes = {a.name: a for a in node.attribute}
        tree_ids, node_ids = attributes["nodes_treeids"].ints, attributes["nodes_nodeids"].ints
        modes, values = attributes["nodes_modes"].strings, attributes["nodes_values"].floats
        if len(trees) != len(set(tree_ids)):
            raise ValueError(f"the ONNX graph holds {len(set(tree_ids))} trees, the model {len(trees)}")
        for k, mode in enumerate(modes):
            if mode != b"BRANCH_LEQ":
                continue
            split = trees[tree_ids[k]].nodes[node_ids[k]]
            if split["is_leaf"] or split["is_categorical"]:
                raise ValueError(f"tree {tree_ids[k]} node {node_ids[k]} is not a numeric split in the model")
            floor = float(floor_float32(float(split["num_threshold"])))
            if values[k] != floor:
                values[k] = floor
                changed += 1
    return changed
