"""Explainable Predictions (29): which raw input columns each model input comes from.

Problem: a model reads standardised numbers, vocabulary indices, hash buckets, bins, calendar
parts and hashed crosses; an attribution to ``origin_dest`` or bucket 812 of ``tailnum``
means nothing to the person who sent ``origin``, ``dest`` and ``tailnum``.

Solution: :func:`feature_sources` maps every model input of a fitted
:class:`~mlpatterns.reproducibility.transform.FeatureTransform` back to the raw column(s)
it is computed from (``distance`` and ``distance_missing`` from ``distance``, ``dep_hour_bin``
from ``dep_hour``, ``date_dayofweek`` from ``date``, the cross ``origin_dest`` from ``origin``
and ``dest``). :func:`to_raw_columns` adds attributions up by raw column; an input computed
from several raw columns (a feature cross) has its attribution shared equally among them,
which keeps the sum (the completeness check holds unchanged) and is reported as the pair too
(:func:`cross_attributions`), so nobody has to take the equal split on faith.
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


def to_raw_columns(values: np.ndarray, sources: dict[str, list[str]], columns: list[str]) -> np.ndarray:
    """Attributions per model input (rows x inputs, in ``sources``' order) summed into ``columns``.

    An input from ``k`` raw columns gives each of them ``1/k`` of its attribution; every
    row's total is unchanged.
    """
    values = np.asarray(values, dtype=np.float64)
    position = {c: j for j, c in enumerate(columns)}
    share = np.zeros((len(sources), len(columns)))
    for i, raw in enumerate(sources.values()):
        for column in raw:
            share[i, position[column]] += 1.0 / len(raw)
    return values @ share


def cross_attributions(values: np.ndarray, sources: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """The attributions of each input computed from several raw columns (a cross), by the input's name."""
    values = np.asarray(values, dtype=np.float64)
    return {name: values[:, i] for i, (name, raw) in enumerate(sources.items()) if len(raw) > 1}
