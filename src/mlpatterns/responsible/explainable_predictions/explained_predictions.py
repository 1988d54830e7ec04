"""Explainable Predictions (29): predictions that carry their own attributions, for batch and online serving.

Problem: a global importance chart does not tell the person who got a prediction why they
got it; the explanation has to travel with the prediction, row by row, from the same bundle.

Solution: :class:`ExplainingServingFunction` is a
:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction` whose predictions
gain one column per raw input, ``explain_<column>`` (its attribution, in log-odds for a
classifier and in the target's units for a regression), ``explain_baseline_score`` (the
baseline's score in the same units: the row's score is the baseline's plus the sum of its
attributions) and ``explain_check_error`` (that row's completeness error, against the served
output). Anything that scores with a serving function (``mlpatterns predict``'s chunked
batch scoring, with its progress) explains with it unchanged. :func:`explainer_for_serving`
gives an HTTP server the same columns for ``explain: true``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.responsible.explainable_predictions.attribution_checks import completeness_errors
from mlpatterns.responsible.explainable_predictions.baselines import build_baseline
from mlpatterns.responsible.explainable_predictions.bundle_explainer import BundleExplainer
from mlpatterns.serving.stateless_serving_function import ServingFunction

__all__ = ["EXPLAIN_PREFIX", "ExplainingServingFunction", "explainer_for_serving", "explanation_columns",
           "explanation_rows"]

EXPLAIN_PREFIX = "explain_"


def explanation_columns(serving: Any) -> list[str]:
    """The columns an explained prediction adds, in order."""
    return [f"{EXPLAIN_PREFIX}{c}" for c in serving.input_columns] + [f"{EXPLAIN_PREFIX}baseline_score",
                                                                         f"{EXPLAIN_PREFIX}check_error"]


def _columns_of(explanation: Any, inputs: list[str]) -> dict[str, np.ndarray]:
    """The explanation columns (:func:`explanation_columns`) of an explanation, as float arrays."""
    columns = {f"{EXPLAIN_PREFIX}{c}": explanation.attributions[c].to_numpy(dtype=np.float64) for c in inputs}
    columns[f"{EXPLAIN_PREFIX}baseline_score"] = np.full(len(explanation.served), float(explanation.baseline_score))
    columns[f"{EXPLAIN_PREFIX}check_error"] = completeness_errors(
        explanation.attributions.to_numpy(), explanation.baseline_score, explanation.served, explanation.space)
    return columns


def explanation_rows(explainer: BundleExplainer, frame: pd.DataFrame) -> dict[str, list[Any]]:
    """The explanation columns (:func:`explanation_columns`) of ``frame``'s rows as lists of JSON numbers.

    Raises the serving function's ``InputError`` for a bad row.
    """
    return {name: values.astype(float).tolist()
            for name, values in _columns_of(explainer.explain(frame), explainer.columns).items()}


def explainer_for_serving(serving: ServingFunction, **options: Any) -> Any:
    """A function from raw rows to their explanation columns (:func:`explanation_rows`) for ``serving``.

    The baseline is the bundle's data statistics (``"mean"``); ``options`` go to
    :class:`.bundle_explainer.BundleExplainer`. This is what an HTTP server is given to answer
    ``explain: true`` (``mlpatterns.serving.http.create_app(explainer=explainer_for_serving)``).
    Raises ``ValueError`` (:class:`.bundle_explainer.UnsupportedExplanation`,
    :class:`.baselines.BaselineError`) for a bundle it cannot explain.
    """
    from functools import partial

    baseline, _ = build_baseline(serving, "mean", None, where="explain")
    return partial(explanation_rows, BundleExplainer(serving, baseline, **options))


class ExplainingServingFunction(ServingFunction):
    """A serving function whose predictions carry per-row attributions to the raw input columns.

    Parameters
    ----------
    serving : ServingFunction
        The loaded bundle to explain (its bundle is loaded again by this object).
    baseline : "mean" or dict
        As :func:`.baselines.build_baseline` (without training rows: the bundle's data statistics).
    reference : DataFrame, optional
        The rows ``{"row": i}`` picks from.
    **options
        :class:`.bundle_explainer.BundleExplainer`'s ``method``, ``permutations``, ``seed``, ``tolerance``.
    """

    def __init__(self, serving: ServingFunction, baseline: Any = "mean", reference: pd.DataFrame | None = None,
                 **options: Any) -> None:
        super().__init__(serving.bundle)
        row, self.baseline_description = build_baseline(self, baseline, None, reference, where="--explain-baseline")
        self.explainer = BundleExplainer(self, row, **options)

    @property
    def output_columns(self) -> list[str]:
        return [*super().output_columns, *explanation_columns(self)]

    def predict_conformed(self, raw: pd.DataFrame, conformed: pd.DataFrame, *, features: Any = None) -> pd.DataFrame:
        """The bundle's predictions of good rows, with their attributions (see the module's description)."""
        result = super().predict_conformed(raw, conformed, features=features)
        explanation = self.explainer.explain(conformed[self.input_columns].reset_index(drop=True))
        for name, values in _columns_of(explanation, self.input_columns).items():
            result[name] = values
        return result
