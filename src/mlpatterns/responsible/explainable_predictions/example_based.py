"""Explainable Predictions (29): example-based explanations, the nearest training examples.

Problem: attributions and counterfactuals speak of inputs; people often understand a
decision better through cases: "flights like yours that arrived on time looked like
this", the nearest examples the model learned from, with the other outcome (or the same).

Solution: :func:`nearest_examples` finds, among training rows whose *label* is the other
outcome than the row's *served* decision (or the same, or either), the ``k`` nearest to
the row, with scikit-learn's :class:`~sklearn.neighbors.NearestNeighbors` (exact, brute
force). Two distances are offered:

* ``space="features"`` (default): Euclidean distance in the bundle's own model inputs
  (:meth:`ServingFunction.features`): the standardized numbers (training mean 0, standard
  deviation 1, plus missing-value indicators) and, for every categorical model input
  (vocabulary or hash index, bin, calendar part, hashed cross), a mismatch that counts
  1 in the squared distance (a one-hot vector scaled by ``1/sqrt(2)``). Two rows that
  differ in ``origin`` only also differ in the ``origin x dest`` cross: the distance is
  what the model sees.
* ``space="gower"``: Gower's distance over the raw input columns: the mean over columns
  of ``|a - b| / range`` for numbers and dates (training range; a missing number takes
  the training median) and of a 0/1 mismatch for categories (a missing category is a
  category of its own). Text columns are left out.

A training row's outcome is its label made by the bundle's recorded target rule
(``positive_when`` or ``positive_label`` in the manifest), or labels given by the caller;
for a regression, the side of ``target_value`` its value lies on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.input_types import to_boolean
from mlpatterns.tables import label_text, label_texts

__all__ = ["ExampleExplanation", "nearest_examples", "training_outcomes"]

_RULES = {"greater_than": np.greater, "at_least": np.greater_equal, "less_than": np.less,
          "at_most": np.less_equal, "equals": np.equal}
OUTCOMES = ("other", "same", "any")
#: the texts DuckDB's CSV sniffer reads as booleans, beyond true/false/1/0 (mlpatterns.tables.boolean_texts)
_BOOLEAN_WORDS = {"yes": True, "no": False, "y": True, "n": False, "t": True, "f": False}
SPACES = ("features", "gower")


def training_outcomes(serving: Any, training: pd.DataFrame, *, target_value: float | None = None) -> np.ndarray:
    """Each training row's outcome (1.0, 0.0 or NaN where its label is missing) by the bundle's target rule.

    A classification bundle's manifest records its target column and how it becomes the
    label (``positive_when: {greater_than: 30}`` or ``positive_label``); a regression's
    outcome is whether the target is at least ``target_value``.
    """
    target = serving.bundle.manifest.get("target") or {}
    column = target.get("column")
    if column is None:
        raise ValueError(f"the bundle of '{serving.name}' records no target column; pass the labels explicitly")
    if column not in training.columns:
        raise KeyError(f"the training rows lack the target column {column!r} of the model '{serving.name}'")
    values = training[column]
    known = values.notna().to_numpy()
    outcome = np.full(len(values), np.nan)
    if serving.task == "regression":
        if target_value is None:
            raise ValueError("a regression's outcomes need target_value: the value that splits them in two")
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        outcome[known] = numbers[known] >= target_value
    elif "positive_when" in target:
        (rule, threshold), = target["positive_when"].items()
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        outcome[known] = _RULES[rule](numbers[known], threshold)
    elif "positive_label" in target:
        label = label_text(target["positive_label"])
        if pd.api.types.is_bool_dtype(values.dtype) or values[known].map(type).isin([bool, np.bool_]).all():
            # a Yes/No column the reader took for booleans: the label's text says which side is positive
            positive = to_boolean(label, _BOOLEAN_WORDS)
            if positive is None:
                raise ValueError(f"the target {column!r} holds true/false values; the positive label {label!r} "
                                 "is neither")
            outcome[known] = values[known].astype(bool).to_numpy() == positive
        else:  # labels as the spec made them: 1 (not 1.0), true, Yes
            outcome[known] = label_texts(values[known]).to_numpy() == label
    else:
        raise ValueError(f"the bundle of '{serving.name}' records no rule that makes {column!r} a label "
                         "(positive_when or positive_label); pass the labels explicitly")
    return outcome


@dataclass
class ExampleExplanation:
    """The nearest training examples of one row.

    Attributes
    ----------
    examples : pandas.DataFrame
        The examples' input columns, nearest first.
    training_rows : numpy.ndarray
        Their positions in the training rows given.
    outcomes : numpy.ndarray
        Their labels as 0/1.
    distances : numpy.ndarray
        Their distances to the row.
    outcome : int
        The row's served outcome (decision, or side of ``target_value``).
    wanted : str
        ``other``, ``same`` or ``any``: the outcomes searched.
    space : str
        ``features`` or ``gower``.
    candidates : int
        How many training rows had the wanted outcome.
    """

    examples: pd.DataFrame
    training_rows: np.ndarray
    outcomes: np.ndarray
    distances: np.ndarray
    outcome: int
    wanted: str
    space: str
    candidates: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy: one entry per example with its position, outcome, distance and inputs."""
        records = [{"training_row": int(r), "outcome": int(o), "distance": float(d), "inputs": inputs}
                   for r, o, d, inputs in zip(self.training_rows, self.outcomes, self.distances,
                                              json_records(self.examples), strict=True)]
        return {"outcome": self.outcome, "wanted": self.wanted, "space": self.space,
                "candidates": self.candidates, "examples": records}


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON-able dicts: missing values as None, numpy numbers as Python's, dates as ISO text."""
    def plain(value: Any) -> Any:
        if value is None or (not isinstance(value, (list, tuple, np.ndarray)) and pd.isna(value)):
            return None
        if isinstance(value, np.generic):
            return value.item()
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return value

    return [{str(name): plain(value) for name, value in row.items()} for row in frame.to_dict("records")]


def _feature_matrix(serving: Any, conformed: pd.DataFrame) -> Any:
    from scipy import sparse

    features = serving.features(conformed)
    blocks = [sparse.csr_matrix(features.numeric.astype(np.float64))]
    for j, size in enumerate(features.cardinalities):
        index = np.minimum(features.categorical[:, j], size - 1)
        blocks.append(sparse.csr_matrix((np.full(len(index), np.sqrt(0.5)), (np.arange(len(index)), index)),
                                        shape=(len(index), size)))
    return sparse.hstack(blocks, format="csr")


def _gower_matrix(serving: Any, conformed: pd.DataFrame, reference: pd.DataFrame) -> Any:
    """Columns whose Manhattan distance divided by the column count is Gower's distance."""
    from scipy import sparse

    from mlpatterns.responsible.explainable_predictions.counterfactuals import column_kinds

    blocks, used = [], 0
    for name, kind in column_kinds(serving).items():
        if kind == "text":
            continue
        used += 1
        if kind in ("numeric", "date"):
            numbers = _numbers(kind, conformed[name])
            known = _numbers(kind, reference[name])
            known = known[~np.isnan(known)]
            low, high = (known.min(), known.max()) if len(known) else (0.0, 1.0)
            median = float(np.median(known)) if len(known) else 0.0
            filled = np.where(np.isnan(numbers), median, numbers)
            blocks.append(sparse.csr_matrix(((filled - low) / (high - low if high > low else 1.0))[:, None]))
        else:
            categories = pd.Index(reference[name].astype(object).fillna("\0missing").unique())
            codes = categories.get_indexer(conformed[name].astype(object).fillna("\0missing"))
            unseen = codes < 0
            codes = np.where(unseen, len(categories) + np.arange(len(codes)), codes)  # an unseen value matches none
            blocks.append(sparse.csr_matrix((np.full(len(codes), 0.5), (np.arange(len(codes)), codes)),
                                            shape=(len(codes), len(categories) + len(codes))))
    return sparse.hstack(blocks, format="csr") / max(used, 1)


def _numbers(kind: str, values: pd.Series) -> np.ndarray:
    if kind == "date":
        from mlpatterns.reproducibility.transform import parse_dates

        stamps = parse_dates(values.astype(object))
        days = stamps.to_numpy(dtype="datetime64[ns]").astype("int64") / 86_400e9
        return np.where(stamps.isna().to_numpy(), np.nan, days)
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def nearest_examples(serving: Any, row: pd.DataFrame, training: pd.DataFrame, *, k: int = 5,
                     outcome: str = "other", space: str = "features", labels: Sequence[Any] | None = None,
                     target_value: float | None = None) -> ExampleExplanation:
    """The ``k`` training rows nearest to ``row`` whose label is the other (or same) outcome than its served one.

    Parameters
    ----------
    serving : ServingFunction
        A classification or regression bundle.
    row : pandas.DataFrame
        One row with the bundle's input columns.
    training : pandas.DataFrame
        Training rows with the input columns and, unless ``labels`` is given, the target column.
    k : int, default=5
        How many examples.
    outcome : {"other", "same", "any"}
        Search the rows whose label differs from the row's served decision, equals it, or any row.
    space : {"features", "gower"}
        The distance (see the module docstring).
    labels : sequence, optional
        The training rows' outcomes as 0/1 (classification) or values (regression), instead of
        the bundle's target rule over the target column.
    target_value : float, optional
        Regression only (required there): outcomes are the sides of this value.
    """
    from sklearn.neighbors import NearestNeighbors

    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {list(OUTCOMES)}, got {outcome!r}")
    if space not in SPACES:
        raise ValueError(f"space must be one of {list(SPACES)}, got {space!r}")
    if serving.task not in ("classification", "regression"):
        raise ValueError(f"example-based explanations need a classification or regression bundle, not {serving.task!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive whole number, got {k!r}")
    if len(row) != 1:
        raise ValueError(f"expected one row to explain, got {len(row)}")
    missing = [c for c in serving.input_columns if c not in training.columns]
    if missing:
        raise KeyError(f"the training rows lack the input column(s) {missing} of the model '{serving.name}'")
    if labels is None:
        label = training_outcomes(serving, training, target_value=target_value)
    else:
        label = np.asarray(labels, dtype=np.float64).reshape(-1)
        if len(label) != len(training):
            raise ValueError(f"labels has {len(label)} entries for {len(training)} training rows")
        if serving.task == "regression":
            if target_value is None:
                raise ValueError("a regression's outcomes need target_value: the value that splits them in two")
            label = np.where(np.isnan(label), np.nan, label >= target_value)
    keys = {key: 0 for key in serving.key_columns if key not in serving.input_columns}  # keys only pass through
    query = row.reset_index(drop=True).assign(**{k_: v for k_, v in keys.items() if k_ not in row.columns})
    served = serving.predict(query)
    score = float(served["prediction"].iloc[0])
    own = int(score >= target_value) if serving.task == "regression" else int(score)
    inputs = training[serving.input_columns].reset_index(drop=True)
    conformed, problems = serving.conform(inputs.assign(**keys))
    usable = ~np.isnan(label)
    usable[[p.row for p in problems]] = False
    if outcome == "other":
        usable &= label != own
    elif outcome == "same":
        usable &= label == own
    positions = np.flatnonzero(usable)
    if len(positions) == 0:
        raise ValueError(f"no training row has the {outcome} outcome (the row's served outcome is {own})")
    conformed_query = serving.conform(query)[0]
    if space == "features":
        points, target = _feature_matrix(serving, conformed.iloc[positions]), _feature_matrix(serving, conformed_query)
        metric = "euclidean"
    else:  # one encoding of the candidates and the row together, ranges and categories from the good training rows
        reference = conformed.drop(index=[p.row for p in problems])
        both = _gower_matrix(serving, pd.concat([conformed.iloc[positions], conformed_query], ignore_index=True),
                             reference)
        points, target, metric = both[:-1], both[-1:], "manhattan"
    search = NearestNeighbors(n_neighbors=min(k, len(positions)), algorithm="brute", metric=metric).fit(points)
    distance, index = search.kneighbors(target)
    chosen = positions[index[0]]
    examples = inputs.iloc[chosen].reset_index(drop=True)
    return ExampleExplanation(examples, chosen, label[chosen].astype(int), distance[0], own, outcome, space,
                              int(len(positions)))
