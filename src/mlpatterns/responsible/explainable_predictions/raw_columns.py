"""Explainable Predictions (29): which raw input columns each model input comes from.

Problem: a model reads standardised numbers, vocabulary indices, hash buckets, bins, calendar
parts and hashed crosses; an attribution to ``origin_dest`` or bucket 812 of ``tailnum``
means nothing to the person who sent ``origin``, ``dest`` and ``tailnum``.

Solution: :func:`feature_sources` maps every model input of a fitted
:class:`~mlpatterns.reproducibility.transform.FeatureTransform` back to the raw column(s)
it is computed from (``distance`` and ``distance_missing`` from ``distance``, ``dep_hour_bin``
from ``dep_hour``, ``date_dayofweek`` from ``date``, the cross ``origin_dest`` from ``origin``
and ``dest``). :func:`to_raw_columns` adds attributions up by raw column; an input computed
from several raw columns (a feature cross) has its attribution shared equally among those of
them whose value differs from the baseline's (a column equal to the baseline cannot have
moved the prediction), which keeps the sum (the completeness check holds unchanged). The
cross's own attribution is reported too (:func:`cross_attributions`), so nobody has to take
the split on faith; SHAP's permutation explainer over the raw columns needs no split at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cross_attributions", "feature_sources", "to_raw_columns"]


def feature_sources(transform: Any, names: list[str]) -> dict[str, list[str]]:
    """For each model input in ``names`` (the transform's output order), the raw columns it is computed from."""
    own: dict[str, list[str]] = {}
    for column in transform.numeric:
        own[column] = own[f"{column}_missing"] = [column]
    for column in transform.categorical:
        own[column] = [column]
    for column in transform.bucketize:
        own[f"{column}_bin"] = [column]
        own.setdefault(column, [column])  # a cross names the bucketized column itself
    for column, parts in transform.date_parts.items():
        for part in parts:
            own[f"{column}_{part}"] = [column]
    for cross in transform.crosses:
        raw: list[str] = []
        for part in cross["columns"]:
            for source in own.get(part, [part]):
                if source not in raw:
                    raw.append(source)
        own["_".join(cross["columns"])] = raw
    sources = {}
    for name in names:
        if name in own:
            sources[name] = own[name]
            continue
        text = [c for c in transform.text if name.startswith(f"{c}_emb_")]
        if not text:
            raise KeyError(f"model input {name!r} is not one the transform computes")
        sources[name] = text[:1]
    return sources


def to_raw_columns(values: np.ndarray, sources: dict[str, list[str]], columns: list[str],
                   differs: np.ndarray | None = None) -> np.ndarray:
    """Attributions per model input (rows x inputs, in ``sources``' order) summed into ``columns``.

    An input from ``k`` raw columns gives each of them ``1/k`` of its attribution; with
    ``differs`` (rows x ``columns``, True where a row's raw value is not the baseline's), only
    the columns that differ share it (a column equal to the baseline cannot have moved the
    prediction; an input none of whose columns differ has no attribution). Every row's total
    is unchanged.
    """
    values = np.asarray(values, dtype=np.float64)
    position = {c: j for j, c in enumerate(columns)}
    result = np.zeros((len(values), len(columns)))
    for i, raw in enumerate(sources.values()):
        at = [position[c] for c in raw]
        if differs is None or len(at) == 1:
            weights = np.full((len(values), len(at)), 1.0 / len(at))
        else:
            moved = np.asarray(differs, dtype=bool)[:, at].astype(np.float64)
            count = moved.sum(axis=1, keepdims=True)
            weights = np.where(count > 0, moved / np.maximum(count, 1.0), 1.0 / len(at))
        for k, j in enumerate(at):
            result[:, j] += values[:, i] * weights[:, k]
    return result


def cross_attributions(values: np.ndarray, sources: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """The attributions of each input computed from several raw columns (a cross), by the input's name."""
    values = np.asarray(values, dtype=np.float64)
    return {name: values[:, i] for i, (name, raw) in enumerate(sources.items()) if len(raw) > 1}
