"""Explainable Predictions (29): exact TreeSHAP over the tree ensemble of an ONNX file.

Problem: a serving bundle holds its model as ONNX, not as the scikit-learn object SHAP's
``TreeExplainer`` knows, and an explanation computed from the training object explains
that object, not what is served.

Solution: read the ``ai.onnx.ml`` ``TreeEnsembleRegressor``/``TreeEnsembleClassifier``
node back into the tree arrays SHAP accepts as a custom model (``children_left``,
``children_right``, ``children_default``, ``features``, ``thresholds``, ``values``,
``node_sample_weight``) and let ``shap.TreeExplainer`` compute exact interventional
TreeSHAP against an explicit background (the baseline row).

How ONNX's trees become SHAP's (SHAP sends ``x <= threshold`` left, a missing value to
``children_default``):

* ``BRANCH_LEQ`` (what skl2onnx writes for scikit-learn trees): the true branch goes left.
  ``BRANCH_LT`` becomes ``x <= t'`` with ``t'`` the float32 just below ``t`` (inputs are
  float32, so the two agree for every input); ``BRANCH_GT``/``BRANCH_GTE`` swap the
  branches. ``BRANCH_EQ``/``BRANCH_NEQ`` are refused.
* ``nodes_missing_value_tracks_true``: a missing value follows the true branch when set,
  the false branch otherwise (as ONNX Runtime does); that branch is ``children_default``.
* Leaf values are the sum of the node's target (or class) weights; ``base_values`` is the
  ensemble's constant; ``AVERAGE`` divides each tree by their number. A binary classifier
  with a ``LOGISTIC`` post-transform is explained in log-odds (the served probability is its
  logistic); a classifier whose probabilities are summed without a link (a random forest) is
  not additive in log-odds and is refused (:class:`UnsupportedTreeModel`).
* Covers (``node_sample_weight``): ONNX keeps none (skl2onnx writes hit rates of 1.0), so
  they are recomputed by passing a background sample (training rows) through the trees and
  counting the rows that reach each node. Interventional TreeSHAP does not read them; they
  make the model complete (path-dependent TreeSHAP would weigh by them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["OnnxTreeEnsemble", "UnsupportedTreeModel", "read_onnx_tree_ensemble"]

_ENSEMBLES = ("TreeEnsembleRegressor", "TreeEnsembleClassifier")
_PASS_THROUGH = ("Cast", "Identity")


class UnsupportedTreeModel(ValueError):
    """The ONNX model is not one tree ensemble whose served output is additive over its trees."""


@dataclass
class OnnxTreeEnsemble:
    """The trees of one ONNX tree ensemble, in SHAP's custom-model form.

    Attributes
    ----------
    trees : list of dict
        One dict of arrays per tree (SHAP's custom tree format; ``node_sample_weight``
        filled by :meth:`with_covers`).
    base_value : float
        The ensemble's constant (``base_values``), added to the sum of the trees.
    link : {"identity", "logit"}
        ``"logit"``: the served output is the logistic of the trees' sum (binary classifier).
    n_features : int
        Columns of the feature matrix the trees read (at least the largest feature id + 1).
    """

    trees: list[dict[str, np.ndarray]]
    base_value: float
    link: str
    n_features: int
    covered_rows: int = field(default=0)

    def margin(self, X: np.ndarray) -> np.ndarray:
        """The trees' sum plus the base value for each row of ``X`` (log-odds for ``link="logit"``)."""
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        total = np.full(len(X), self.base_value)
        for tree in self.trees:
            total += tree["values"][_leaves(tree, X), 0]
        return total

    def with_covers(self, background: np.ndarray) -> OnnxTreeEnsemble:
        """Fill each node's ``node_sample_weight`` with how many ``background`` rows reach it."""
        X = np.asarray(background, dtype=np.float32).astype(np.float64)
        for tree in self.trees:
            counts = np.zeros(len(tree["features"]))
            nodes = np.zeros(len(X), dtype=np.int64)
            counts[0] = len(X)
            active = np.full(len(X), tree["children_left"][0] >= 0)
            while active.any():
                moved = active
                nodes, active = _step(tree, X, nodes, active)
                np.add.at(counts, nodes[moved], 1.0)
            tree["node_sample_weight"] = counts
            _fill_internal_values(tree)
        self.covered_rows = len(X)
        return self

    def shap_model(self) -> dict[str, Any]:
        """The dict ``shap.TreeExplainer`` accepts as a custom tree model (copies: given ``data``, SHAP
        recounts the covers over it in place)."""
        trees = [{name: array.copy() for name, array in tree.items()} for tree in self.trees]
        return {"trees": trees, "base_offset": self.base_value, "tree_output": "raw_value",
                "objective": "squared_error", "input_dtype": np.float32, "internal_dtype": np.float64}

    def explainer(self, baseline: np.ndarray) -> Any:
        """``shap.TreeExplainer`` computing exact interventional TreeSHAP against ``baseline`` rows."""
        import shap

        baseline = np.atleast_2d(np.asarray(baseline, dtype=np.float32)).astype(np.float64)
        return shap.TreeExplainer(self.shap_model(), data=baseline, feature_perturbation="interventional",
                                  model_output="raw")

    def shap_values(self, X: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        """Attributions of each column of ``X`` (rows x columns), relative to ``baseline`` (margin space)."""
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        values = self.explainer(baseline).shap_values(X, check_additivity=False)
        return np.asarray(values, dtype=np.float64).reshape(len(X), -1)


def _step(tree: dict[str, np.ndarray], X: np.ndarray, nodes: np.ndarray,
          active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One level down for the active rows: the child each goes to, and which rows are still above a leaf."""
    rows = np.flatnonzero(active)
    at = nodes[rows]
    values = X[rows, tree["features"][at]]
    left = values <= tree["thresholds"][at]
    child = np.where(np.isnan(values), tree["children_default"][at],
                     np.where(left, tree["children_left"][at], tree["children_right"][at]))
    nodes = nodes.copy()
    nodes[rows] = child
    still = np.zeros_like(active)
    still[rows] = tree["children_left"][child] >= 0
    return nodes, still


def _leaves(tree: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    nodes = np.zeros(len(X), dtype=np.int64)
    active = tree["children_left"][nodes] >= 0
    while active.any():
        nodes, active = _step(tree, X, nodes, active)
    return nodes


def _fill_internal_values(tree: dict[str, np.ndarray]) -> None:
    """An internal node's value: the cover-weighted mean of its children's (leaves keep theirs)."""
    values, weight = tree["values"], tree["node_sample_weight"]
    order = _postorder(tree)
    for node in order:
        left, right = tree["children_left"][node], tree["children_right"][node]
        if left < 0:
            continue
        total = weight[left] + weight[right]
        values[node] = (values[left] * weight[left] + values[right] * weight[right]) / total if total \
            else (values[left] + values[right]) / 2


def _postorder(tree: dict[str, np.ndarray]) -> list[int]:
    order, stack = [], [(0, False)]
    while stack:
        node, done = stack.pop()
        if done or tree["children_left"][node] < 0:
            order.append(node)
            continue
        stack += [(node, True), (int(tree["children_right"][node]), False), (int(tree["children_left"][node]), False)]
    return order


def _attributes(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ensemble_node(model: Any) -> Any:
    """The graph's one tree ensemble node, reading the graph input directly (through casts at most)."""
    ensembles = [n for n in model.graph.node if n.op_type in _ENSEMBLES and n.domain == "ai.onnx.ml"]
    others = [n.op_type for n in model.graph.node if n.op_type not in (*_ENSEMBLES, *_PASS_THROUGH, "ZipMap")]
    if len(ensembles) != 1 or others:
        raise UnsupportedTreeModel(f"expected one ai.onnx.ml tree ensemble and nothing else, got nodes "
                                   f"{[n.op_type for n in model.graph.node]}")
    return ensembles[0]


def read_onnx_tree_ensemble(onnx_bytes: bytes) -> OnnxTreeEnsemble:
    """The trees of the ONNX model ``onnx_bytes`` as an :class:`OnnxTreeEnsemble` (covers not yet filled).

    Raises :class:`UnsupportedTreeModel` for a graph that is not one tree ensemble, a split
    mode other than ``BRANCH_LEQ/LT/GT/GTE``, a multiclass or multi-target ensemble, or a
    classifier without a ``LOGISTIC`` post-transform.
    """
    import onnx

    model = onnx.load_model_from_string(onnx_bytes)
    node = _ensemble_node(model)
    a = _attributes(node)
    if any(name.endswith("_as_tensor") for name in a):
        raise UnsupportedTreeModel("tree attributes stored as tensors (double precision) are not read")
    post = a.get("post_transform", b"NONE")
    post = post.decode() if isinstance(post, bytes) else str(post)
    if node.op_type == "TreeEnsembleClassifier":
        labels = a.get("classlabels_int64s") or a.get("classlabels_strings") or []
        ids, tree_ids, node_ids, weights = a["class_ids"], a["class_treeids"], a["class_nodeids"], a["class_weights"]
        if len(labels) != 2 or len(set(ids)) != 1 or post != "LOGISTIC":
            raise UnsupportedTreeModel(
                f"a classifier is read when binary with one score and a LOGISTIC post-transform (log-odds); got "
                f"{len(labels)} classes, score ids {sorted(set(ids))}, post-transform {post}")
        link, scaling = "logit", 1.0
    else:
        ids, tree_ids, node_ids, weights = a["target_ids"], a["target_treeids"], a["target_nodeids"], a["target_weights"]
        if int(a.get("n_targets", 1)) != 1 or post != "NONE":
            raise UnsupportedTreeModel(f"a regressor is read with one target and no post-transform; got "
                                       f"{a.get('n_targets', 1)} targets, post-transform {post}")
        link = "identity"
        aggregate = a.get("aggregate_function", b"SUM")
        aggregate = aggregate.decode() if isinstance(aggregate, bytes) else str(aggregate)
        if aggregate not in ("SUM", "AVERAGE"):
            raise UnsupportedTreeModel(f"aggregate function {aggregate} is not a sum of trees")
        scaling = 1.0 / len(set(a["nodes_treeids"])) if aggregate == "AVERAGE" else 1.0
    base = a.get("base_values") or [0.0]
    trees = _trees(a, tree_ids, node_ids, weights, scaling)
    n_features = 1 + max(int(f) for f in a["nodes_featureids"])
    return OnnxTreeEnsemble(trees, float(base[0]), link, n_features)


def _trees(a: dict[str, Any], leaf_trees: Any, leaf_nodes: Any, weights: Any,
           scaling: float) -> list[dict[str, np.ndarray]]:
    tree_ids = np.asarray(a["nodes_treeids"], dtype=np.int64)
    node_ids = np.asarray(a["nodes_nodeids"], dtype=np.int64)
    features = np.asarray(a["nodes_featureids"], dtype=np.int64)
    thresholds = np.asarray(a["nodes_values"], dtype=np.float32)
    modes = [m.decode() if isinstance(m, bytes) else str(m) for m in a["nodes_modes"]]
    true_ids = np.asarray(a["nodes_truenodeids"], dtype=np.int64)
    false_ids = np.asarray(a["nodes_falsenodeids"], dtype=np.int64)
    missing_true = np.asarray(a.get("nodes_missing_value_tracks_true") or [0] * len(modes), dtype=np.int64)
    unknown = sorted(set(modes) - {"LEAF", "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GT", "BRANCH_GTE"})
    if unknown:
        raise UnsupportedTreeModel(f"split mode(s) {unknown} have no 'x <= threshold' form")
    trees = []
    leaf_value: dict[tuple[int, int], float] = {}
    for t, n, w in zip(leaf_trees, leaf_nodes, weights, strict=True):
        leaf_value[(int(t), int(n))] = leaf_value.get((int(t), int(n)), 0.0) + float(w)
    for tree_id in sorted(set(tree_ids.tolist())):
        rows = np.flatnonzero(tree_ids == tree_id)
        size = int(node_ids[rows].max()) + 1
        tree = {"children_left": np.full(size, -1, dtype=np.int32), "children_right": np.full(size, -1, dtype=np.int32),
                "children_default": np.full(size, -1, dtype=np.int32), "features": np.full(size, -2, dtype=np.int32),
                "thresholds": np.zeros(size), "values": np.zeros((size, 1)), "node_sample_weight": np.ones(size)}
        for k in rows:
            node, mode = int(node_ids[k]), modes[k]
            if mode == "LEAF":
                tree["values"][node, 0] = leaf_value.get((tree_id, node), 0.0) * scaling
                continue
            threshold = thresholds[k]
            if mode in ("BRANCH_LT", "BRANCH_GTE"):  # x < t  <=>  x <= the float32 just below t
                threshold = np.nextafter(threshold, np.float32(-np.inf))
            yes, no = int(true_ids[k]), int(false_ids[k])
            left, right = (yes, no) if mode in ("BRANCH_LEQ", "BRANCH_LT") else (no, yes)
            tree["children_left"][node], tree["children_right"][node] = left, right
            tree["children_default"][node] = yes if missing_true[k] else no
            tree["features"][node] = int(features[k])
            tree["thresholds"][node] = float(threshold)
        trees.append(tree)
    return trees
