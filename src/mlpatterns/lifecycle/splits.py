"""Splitting the rows and fitting the transform for ``mlpatterns run`` (Repeatable Splitting, 22; Transform, 21).

Also the bundle's signature: the inputs with the kind of value each was trained on, the
keys passed through (Keyed Predictions, 20), and the outputs.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.reproducibility.categorical_encoding import MergedCategoriesWarning
from mlpatterns.reproducibility.transform import FeatureTransform
from mlpatterns.spec import Spec, SpecError
from mlpatterns.spec.data import neutral_mask, with_spec_option
from mlpatterns.spec.models import classes_of, served_task

__all__ = ["SPLITS", "check_classes", "fit_transform", "signature", "split_masks"]

SPLITS = ("train", "valid", "test")


def signature(spec: Spec, frame: pd.DataFrame, transform: FeatureTransform,
               reading: dict[str, Any] | None = None) -> dict[str, Any]:
    """Inputs with the kind of value each was trained on; keys; outputs."""
    from mlpatterns.input_types import input_description

    reading = reading or {}
    numeric_uses = {*transform.numeric, *transform.bucketize}
    inputs = [input_description(column, frame[column], date=column in transform.date_parts,
                                boolean_texts=reading.get("boolean_texts"),
                                categorical=column not in numeric_uses and column not in transform.date_parts)
              for column in transform.input_columns]
    if served_task(spec) == "multiclass":  # Neutral Class (9): three classes; or the target's classes
        classes = classes_of(spec)
        outputs = [{"name": f"probability_{c}", "type": "number"} for c in classes]
        outputs.append({"name": "prediction", "type": "text", "values": classes})
    elif spec.task == "multilabel":  # Multilabel (6): a probability and a decision per label
        outputs = [{"name": f"probability_{c}", "type": "number"} for c in spec.target["columns"]]
        outputs += [{"name": f"prediction_{c}", "type": "integer"} for c in spec.target["columns"]]
    elif spec.task == "classification":
        outputs = [{"name": "probability", "type": "number"}, {"name": "prediction", "type": "integer"}]
    else:
        outputs = [{"name": "prediction", "type": "number"}]
    for q in spec.target.get("reframe", {}).get("quantiles", []):
        outputs.append({"name": f"q{round(q * 100):02d}", "type": "number"})
    taken = {o["name"] for o in outputs} | {"row"}  # 'row' numbers the predictions of a bundle without keys
    for i, key in enumerate(spec.keys):
        if key in taken:
            raise SpecError(f"keys[{i}]: the key column {key!r} has the name of a prediction column "
                            f"({sorted(taken)}); rename it in the data, or pass another column through")
    names = [o["name"] for o in outputs]
    if len(set(names)) != len(names):
        raise SpecError(f"target: two outputs would share a name among {names}; rename the classes or labels")
    signature = {"inputs": inputs, "keys": list(spec.keys), "outputs": outputs}
    if reading.get("null_values"):  # the file's null markers apply when scoring files too
        signature["null_values"] = list(reading["null_values"])
    return signature


def split_masks(spec: Spec, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each split's rows: by a hash of the split key (Repeatable Splitting, 22), or, with ``split: none``
    (Useful Overfitting, 11), every row in every split."""
    from mlpatterns.reproducibility.repeatable_splitting import hash_split

    if spec.split.get("none"):
        if len(frame) == 0:
            raise SpecError("split: none: the data set has no row with a target")
        return {s: np.ones(len(frame), dtype=bool) for s in SPLITS}
    nulls = spec.split.get("nulls", "raise")
    if spec.split.get("by") == "time":  # sequential: train on the past, test on the future
        from mlpatterns.reproducibility import time_split

        try:
            split = time_split(frame, spec.split["column"], cutoffs=spec.split.get("cutoffs"),
                               fractions=spec.split.get("fractions"), nulls=nulls)
        except (TypeError, ValueError) as error:
            raise SpecError(f"split: {with_spec_option(str(error))}") from None
        spec.split["cutoffs_used"] = split.attrs.get("cutoffs")  # recorded in each bundle's lineage
        split = split.astype(object).to_numpy()
        return {s: split == s for s in SPLITS}
    try:
        split = hash_split(frame, key=spec.split["key"], fractions=spec.split["fractions"],
                           num_buckets=spec.split.get("num_buckets", 100),
                           separator=spec.split.get("separator", ""), nulls=nulls).astype(object).to_numpy()
    except ValueError as error:
        raise SpecError(f"split.key: {with_spec_option(str(error))}") from None
    for s in SPLITS:
        if not (split == s).any():
            raise SpecError(f"split: the {s} split is empty; the key {spec.split['key']} has too few values")
    return {s: split == s for s in SPLITS}


def fit_transform(spec: Spec, frame: pd.DataFrame, target: np.ndarray,
                  masks: dict[str, np.ndarray]) -> tuple[FeatureTransform, dict[str, Any], dict[str, Any]]:
    """Fit the transform on the train split only (Transform, 21) and apply it to every split.

    Returns the fitted transform, each split's ``(features, target)`` and the context the
    training functions need: each row's split key (keyed out-of-fold folds of Ensembles
    and Cascade) and the neutral mask (Neutral Class, 9).
    """
    from mlpatterns.reproducibility.repeatable_splitting import key_text

    # Trees split category codes as numbers: ordered by a 1-D target's mean they separate like categories
    ordering = target[masks["train"]] if spec.task in ("classification", "regression") else None
    with warnings.catch_warnings():  # the run logs them once, from the transform's encoding report
        warnings.simplefilter("ignore", MergedCategoriesWarning)
        transform = spec.feature_transform().fit(frame.loc[masks["train"]], y=ordering)
    parts = {s: frame.loc[masks[s]].reset_index(drop=True) for s in SPLITS}
    data = {s: (transform.transform(parts[s]), target[masks[s]]) for s in SPLITS}
    neutral = neutral_mask(spec, frame)
    group_columns = spec.split["key"] or ([spec.split["column"]] if spec.split.get("by") == "time" else [])
    context = {
        "groups": {s: key_text(parts[s], group_columns, separator=spec.split.get("separator", ""))
                   if group_columns else np.arange(len(parts[s])).astype(str) for s in SPLITS},  # split: none
        "neutral": None if neutral is None else {s: neutral[masks[s]] for s in SPLITS},
        "transform": transform,
    }
    return transform, data, context


def check_classes(spec: Spec, target: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    """Every class of a multiclass target must have training rows, or the model cannot predict it."""
    if spec.task != "multiclass":
        return
    classes = spec.target["classes"]
    seen = np.unique(target[masks["train"]]).astype(np.int64)
    missing = [classes[j] for j in range(len(classes)) if j not in seen]
    if missing:
        counts = {classes[j]: int((target == j).sum()) for j in range(len(classes)) if classes[j] in missing}
        raise SpecError(f"target.column: class(es) {missing} have no row in the train split ({counts} rows in "
                        "all); drop such rare classes from the data or split otherwise")
