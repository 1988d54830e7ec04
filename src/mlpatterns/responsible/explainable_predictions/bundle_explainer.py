"""Explainable Predictions (29): attributions for a serving bundle, in its raw input columns.

Problem: the model people call is the bundle (a fitted transform and an ONNX model), and the
questions they ask are about the columns they send (carrier, origin, hour), not about hash
buckets or crosses.

Solution: :class:`BundleExplainer` explains a :class:`~mlpatterns.serving.ServingFunction`
relative to one explicit baseline row (:mod:`.baselines`), with one of two SHAP explainers:

* ``"tree"``: exact interventional TreeSHAP over the tree ensemble read from the bundle's
  ONNX file (:mod:`.onnx_tree_shap`), for a bundle whose model is one gradient-boosted
  ensemble; attributions to model inputs are added up by raw column (:mod:`.raw_columns`;
  a cross is shared equally by its columns and also reported on its own);
* ``"permutation"``: SHAP's permutation explainer over the whole serving function, with the
  raw input columns as its features: a masked row takes each column from the row or from
  the baseline, goes through the bundle's transform (hashes, crosses and all) and model, and
  the served score comes back. This is how hashed and crossed inputs map back to raw columns
  for any model (networks, linear models, stacks, cascades).

``"auto"`` takes ``"tree"`` where the bundle allows it. A classifier is explained in log-odds
(the logit of the served probability), a regression in its value. Every explanation passes
the completeness check of :mod:`.attribution_checks` against the served output, or raises.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.responsible.explainable_predictions.attribution_checks import check_completeness
from mlpatterns.responsible.explainable_predictions.raw_columns import (
    cross_attributions,
    feature_sources,
    to_raw_columns,
)

__all__ = ["METHODS", "BundleExplainer", "Explanation", "UnsupportedExplanation"]

METHODS = ("auto", "tree", "permutation")
_CLIP = 1e-12  # a served probability of exactly 0 or 1 (float32) gets a finite logit


class UnsupportedExplanation(ValueError):
    """The bundle cannot be explained this way (a multiclass task, or ``tree`` for a model that is not one ensemble)."""


@dataclass
class Explanation:
    """Attributions of some rows, in raw input columns, and the figures of their completeness check.

    Attributes
    ----------
    attributions : DataFrame
        One column per raw input column, one row per explained row.
    served : ndarray
        The bundle's served output of each row (probability or value).
    score : ndarray
        The served output in the explained space (log-odds or value).
    baseline_score : float
        The baseline row's served output in the explained space.
    space : {"log_odds", "value"}
    method : {"tree", "permutation"}
    max_error : float
        The completeness check's largest error (relative to ``max(1, |served|)``).
    crosses : dict of str to ndarray
        TreeSHAP only: the attribution of each crossed model input (before its equal split).
    seconds : float
    """

    attributions: pd.DataFrame
    served: np.ndarray
    score: np.ndarray
    baseline_score: float
    space: str
    method: str
    max_error: float
    crosses: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0


class BundleExplainer:
    """SHAP attributions of a bundle's predictions to its raw input columns, relative to a baseline row.

    Parameters
    ----------
    serving : ServingFunction
        The loaded bundle.
    baseline : DataFrame
        One row of the raw input columns (:func:`.baselines.build_baseline`).
    method : {"auto", "tree", "permutation"}
    permutations : int
        Permutation explainer: forward-and-backward permutations per row (each costs
        ``2 x columns + 1`` evaluations of the serving function).
    seed : int
        Seed of the permutation explainer's permutations.
    background : DataFrame, optional
        Training rows whose counts become the trees' covers (TreeSHAP); the baseline alone
        if not given.
    tolerance : float
        The completeness check's tolerance, relative to ``max(1, |served|)``.
    """

    def __init__(self, serving: Any, baseline: pd.DataFrame, *, method: str = "auto", permutations: int = 4,
                 seed: int = 0, background: pd.DataFrame | None = None, tolerance: float = 1e-4) -> None:
        if method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
        if serving.task not in ("classification", "regression"):
            raise UnsupportedExplanation(f"the model '{serving.name}' is {serving.task}; attributions are given for "
                                         "binary classification and regression")
        self.serving, self.permutations, self.seed, self.tolerance = serving, permutations, seed, tolerance
        self.columns = list(serving.input_columns)
        self.baseline = serving.conform(_with_keys(serving, baseline[self.columns]))[0][self.columns]
        self.space = "log_odds" if serving.task == "classification" else "value"
        self.ensemble = None
        self._tree_explainer: Any = None
        if method in ("auto", "tree"):
            self.ensemble = self._tree_ensemble(method == "tree")
        if self.ensemble is not None:
            rows = self.baseline if background is None else background
            conformed = serving.conform(_with_keys(serving, rows[self.columns]))[0]
            self.ensemble.with_covers(serving.features(conformed).matrix())
        self.method = "tree" if self.ensemble is not None else "permutation"
        base_features = serving.features(self.baseline)
        self.baseline_served = float(serving.predict_features(base_features)[0])
        self.baseline_score = float(self._to_space(np.array([self.baseline_served]))[0])
        if self.method == "tree":
            # the trees' own margin: ONNX Runtime's float32 logistic loses the log-odds of a small probability
            # (1 - v for v near 1: 0.0024 logits at p = 2e-5), and every row's sum would carry that error
            self.baseline_score = float(self.ensemble.margin(base_features.matrix())[0])
        self.sources = feature_sources(serving.transform, base_features.names)

    def _tree_ensemble(self, required: bool) -> Any:
        from mlpatterns.responsible.explainable_predictions.onnx_tree_shap import (
            UnsupportedTreeModel,
            read_onnx_tree_ensemble,
        )
        from mlpatterns.serving.serving_contract import model_graph

        graph = model_graph(self.serving.bundle.manifest["model"])
        why = None
        if "onnx" not in graph or graph.get("column") is not None:
            why = "its model is a graph of several ONNX models"
        elif self.serving.bundle.manifest["model"].get("output") == "bucket_probabilities":
            why = "it predicts a distribution over buckets (Reframing)"
        else:
            try:
                ensemble = read_onnx_tree_ensemble(self.serving.bundle.files[graph["onnx"]])
                if (ensemble.link == "logit") != (self.space == "log_odds"):
                    raise UnsupportedTreeModel(f"its trees' link {ensemble.link} does not match a {self.serving.task}")
                return ensemble
            except UnsupportedTreeModel as error:
                why = str(error)
        if required:
            raise UnsupportedExplanation(f"method 'tree' needs one tree ensemble in the bundle '{self.serving.name}': "
                                         f"{why}; use 'permutation' or 'auto'")
        return None

    def _to_space(self, served: np.ndarray) -> np.ndarray:
        served = np.asarray(served, dtype=np.float64)
        if self.space == "log_odds":
            p = np.clip(served, _CLIP, 1 - _CLIP)
            return np.log(p) - np.log1p(-p)
        return served

    def _differs(self, conformed: pd.DataFrame) -> np.ndarray:
        """Rows x raw columns: True where the row's value is not the baseline's (two nulls are equal)."""
        out = np.empty((len(conformed), len(self.columns)), dtype=bool)
        for j, column in enumerate(self.columns):
            value, mine = self.baseline[column].iloc[0], conformed[column]
            if pd.isna(value):
                out[:, j] = mine.notna().to_numpy()
            else:
                out[:, j] = ~(mine == value).fillna(False).to_numpy(dtype=bool)
        return out

    # -- the served function over raw columns, for the permutation explainer ------------------------
    def _mixed_inputs(self, conformed: pd.DataFrame) -> list[np.ndarray]:
        """Per model input, its value for every way of taking its raw columns from the rows or the baseline.

        Entry ``i`` has shape ``(2**k, rows)`` for an input computed from ``k`` raw columns:
        row ``m`` holds the input's value when the raw columns whose bit is set in ``m`` come
        from the explained row and the others from the baseline (0: the baseline's value,
        ``2**k - 1``: the row's own). Each is the bundle's transform applied to such mixed
        rows (the transform computes a row's features from that row alone), so a masked row's
        model inputs are looked up instead of transformed again for every coalition SHAP tries.
        """
        n = len(conformed)
        repeated = self.baseline.loc[np.zeros(n, dtype=np.int64), self.columns].reset_index(drop=True)
        cache: dict[frozenset[str], Any] = {}

        def features(taken: frozenset[str]) -> Any:
            if taken not in cache:
                frame = repeated.copy()
                for column in taken:
                    frame[column] = conformed[column].to_numpy()
                cache[taken] = self.serving.features(frame)
            return cache[taken]

        tables = []
        for i, raw in enumerate(self.sources.values()):
            table = np.empty((2 ** len(raw), n))
            for m in range(2 ** len(raw)):
                chosen = features(frozenset(c for b, c in enumerate(raw) if m >> b & 1))
                table[m] = _column(chosen, i)
            tables.append(table)
        return tables

    def permutation_values(self, conformed: pd.DataFrame, seed: int) -> np.ndarray:
        """SHAP permutation attributions (rows x raw columns) of already conformed rows.

        SHAP's permutation explainer masks a row by taking some columns from the baseline
        (a function masker: SHAP's tabular maskers cost seconds of numba compilation in every
        process, a masker this simple does not). Each raw column is handed to it as a number: 0 for the baseline's
        value, ``r + 1`` for the value of explained row ``r``; the function SHAP calls reads
        which columns come from the row and gives the served score of that mixed row, with
        the model inputs the bundle's transform computes for it (:meth:`_mixed_inputs`) and
        the bundle's ONNX model.
        """
        import shap

        from mlpatterns.reproducibility.transform import TransformedFeatures

        tables = self._mixed_inputs(conformed)
        position = {c: j for j, c in enumerate(self.columns)}
        parts = [[position[c] for c in raw] for raw in self.sources.values()]
        base = self.serving.features(self.baseline)
        n_numeric = base.numeric.shape[1]

        def served(masked: np.ndarray) -> np.ndarray:
            masked = np.asarray(masked, dtype=np.float64).reshape(-1, len(self.columns))
            row = max(int(masked.max()) - 1, 0)
            taken = masked > 0
            inputs = np.empty((len(masked), len(tables)))
            for i, (table, columns) in enumerate(zip(tables, parts, strict=True)):
                code = taken[:, columns] @ (1 << np.arange(len(columns)))
                inputs[:, i] = table[code, row]
            features = TransformedFeatures(inputs[:, :n_numeric].astype(np.float32),
                                           inputs[:, n_numeric:].astype(np.int64), base.numeric_names,
                                           base.categorical_names, base.cardinalities)
            return self._to_space(self.serving.predict_features(features))

        rows = np.repeat(np.arange(1, len(conformed) + 1, dtype=np.float64)[:, None], len(self.columns), axis=1)
        def masker(mask: np.ndarray, row: np.ndarray) -> np.ndarray:  # a masked column takes the baseline (0)
            return np.where(mask, row, 0.0)[None, :]

        explainer = shap.PermutationExplainer(served, masker, seed=seed)
        max_evals = self.permutations * (2 * len(self.columns) + 1)
        result = explainer(rows, max_evals=max_evals, silent=True)
        return np.asarray(result.values, dtype=np.float64).reshape(len(conformed), len(self.columns))

    # -- explaining ---------------------------------------------------------------------------------
    def explain(self, frame: pd.DataFrame, *, seed: int | None = None) -> Explanation:
        """Attributions of every row of ``frame`` (raw rows; a bad row raises the serving function's InputError)."""
        from mlpatterns.serving.stateless_serving_function import InputError

        started = time.perf_counter()
        conformed, problems = self.serving.conform(_with_keys(self.serving, frame))
        if problems:
            raise InputError(f"{len({p.row for p in problems})} bad row(s)", problems)
        conformed = conformed[self.columns].reset_index(drop=True)
        features = self.serving.features(conformed)
        served = np.asarray(self.serving.predict_features(features), dtype=np.float64)
        crosses: dict[str, np.ndarray] = {}
        if not len(conformed):
            values = np.zeros((0, len(self.columns)))
        elif self.method == "tree":
            if self._tree_explainer is None:  # built once: SHAP prepares the trees for each explainer it makes
                self._tree_explainer = self.ensemble.explainer(self.serving.features(self.baseline).matrix())
            matrix = features.matrix().astype(np.float64)
            per_input = np.asarray(self._tree_explainer.shap_values(matrix, check_additivity=False),
                                   dtype=np.float64).reshape(len(matrix), -1)
            per_input = per_input[:, :len(self.sources)]
            values = to_raw_columns(per_input, self.sources, self.columns, self._differs(conformed))
            crosses = cross_attributions(per_input, self.sources)
        else:
            values = self.permutation_values(conformed, self.seed if seed is None else seed)
        error = check_completeness(values, self.baseline_score, served, self.space, self.tolerance,
                                   what=f"the {self.method} explanation of '{self.serving.name}'")
        return Explanation(pd.DataFrame(values, columns=self.columns), served, self._to_space(served),
                           self.baseline_score, self.space, self.method, error, crosses,
                           time.perf_counter() - started)


def _column(features: Any, i: int) -> np.ndarray:
    """Model input ``i`` (numbers first, then category indices) of transformed features, as float64."""
    n_numeric = features.numeric.shape[1]
    block = features.numeric[:, i] if i < n_numeric else features.categorical[:, i - n_numeric]
    return np.asarray(block, dtype=np.float64)


def _with_keys(serving: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the bundle's key columns (zeros where it has none: explanations do not read keys)."""
    missing = [key for key in serving.key_columns if key not in frame.columns]
    if not missing:
        return frame
    frame = frame.copy()
    for key in missing:
        frame[key] = 0
    return frame
