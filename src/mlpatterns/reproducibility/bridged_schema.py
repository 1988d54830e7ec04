"""Bridged Schema (23): old records carried into a changed schema, and how many of them to use.

Problem: the schema changed. A categorical field was split into finer values (plurality
once recorded as ``Single(1)`` / ``Multiple(2+)`` now says ``Twins(2)``, ``Triplets(3)``,
...) or a new field appeared. Much data has the old schema and only a little the new
one; a model trained on the new data alone has few examples, and a model trained on the
union of both, with the coarse value as one more category, learns a category that
serving will never send.

Solution: bridge each old record into the new schema, then train on bridged old data
plus new data, and choose how much bridged data to use by evaluation on held-out
new-schema data. :class:`SchemaBridge` learns, on new-schema data, how often each finer
value occurs among the finer values an old value was split into, and bridges old
records in one of the book's two ways:

* ``strategy="probabilistic"``: draw a finer value for each old record from that
  distribution (seeded by ``random_state``); the column keeps its name and now holds
  new-schema values only.
* ``strategy="static"``: replace the column by one-hot columns ``<column>_<value>``
  (one per finer value, in :attr:`SchemaBridge.categories_` order); an old record gets
  the expected one-hot, the fraction of each finer value, so its cells sum to 1; a
  new-schema record gets the exact one-hot, so old and new records share one encoding.

The distribution is unconditional: it uses the split column alone, not the record's
other fields. A new field is bridged the same way: give old records the field with one
placeholder value and map the placeholder to every value of the field.

:func:`choose_bridged_count` trains a model on the new training data plus the first
``count`` of a seeded permutation of the bridged old rows, for each count of a grid, and
scores it on held-out new-schema data with a bootstrap confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.metrics import root_mean_squared_error
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "STRATEGIES",
    "BridgedCountChoice",
    "SchemaBridge",
    "bootstrap_interval",
    "choose_bridged_count",
]

STRATEGIES = ("probabilistic", "static")


class SchemaBridge(TransformerMixin, BaseEstimator):
    """Bridge old-schema records of a split categorical column into the new schema.

    Fit on new-schema data; transform old-schema records (new-schema records may be
    mixed in and pass through, or get their exact one-hot under ``"static"``).

    Parameters
    ----------
    column : str or int, default=0
        The split column: a name when ``X`` is a DataFrame, or a position.
    mapping : mapping of old value to sequence of new values, default=None
        Which finer values each old value was split into, for example
        ``{"Single(1)": ["Single(1)"], "Multiple(2+)": ["Twins(2)", "Triplets(3)"]}``.
        A value that is a key is bridged, even if it is also a new value. ``None``
        maps every value seen in ``fit`` to itself (no bridging).
    strategy : {"probabilistic", "static"}, default="probabilistic"
        Draw a finer value from its fitted distribution, or write the expected one-hot.
    random_state : int, RandomState instance or None, default=None
        Seeds the probabilistic draws; an int gives the same draws on every call.

    Attributes
    ----------
    categories_ : list
        The new-schema values: the mapping's targets in order of appearance, then
        other values seen in ``fit`` (sorted by text); the one-hot columns' order.
    distributions_ : dict
        Per old value, ``{new value: fraction}`` among fit rows holding one of its new
        values; fractions sum to 1.
    n_features_in_ : int
        Number of input columns.
    feature_names_in_ : ndarray of str
        Column names, when ``X`` was a DataFrame with string column names.

    Examples
    --------
    >>> import pandas as pd
    >>> new = pd.DataFrame({"plurality": ["Single(1)"] * 6 + ["Twins(2)"] * 3 + ["Triplets(3)"]})
    >>> old = pd.DataFrame({"plurality": ["Single(1)", "Multiple(2+)"]})
    >>> mapping = {"Single(1)": ["Single(1)"], "Multiple(2+)": ["Twins(2)", "Triplets(3)"]}
    >>> bridge = SchemaBridge(column="plurality", mapping=mapping, strategy="static").fit(new)
    >>> bridge.transform(old)
       plurality_Single(1)  plurality_Twins(2)  plurality_Triplets(3)
    0                  1.0                0.00                   0.00
    1                  0.0                0.75                   0.25
    """

    def __init__(
        self,
        *,
        column: str | int = 0,
        mapping: Mapping[Any, Sequence[Any]] | None = None,
        strategy: str = "probabilistic",
        random_state: Any = None,
    ) -> None:
        self.column = column
        self.mapping = mapping
        self.strategy = strategy
        self.random_state = random_state

    @classmethod
    def _estimator_check_instances(cls) -> list[SchemaBridge]:
        """Instances for scikit-learn's estimator checks (tests/test_common.py): both strategies."""
        return [cls(), cls(strategy="static")]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True  # in the other columns; the split column must be set
        tags.transformer_tags.preserves_dtype = []
        return tags

    def _check_params(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.mapping is not None:
            if not isinstance(self.mapping, Mapping):
                raise TypeError(
                    f"mapping must map old values to lists of new values, got {type(self.mapping).__name__}"
                )
            for old, targets in self.mapping.items():
                if (
                    isinstance(targets, str)
                    or not isinstance(targets, Sequence)
                    or not len(targets)
                ):
                    raise ValueError(
                        f"mapping[{old!r}] must be a non-empty list of new values, got {targets!r}"
                    )

    def _position(self) -> int:
        names = getattr(self, "feature_names_in_", None)
        if isinstance(self.column, str):
            if names is None or self.column not in list(names):
                known = [] if names is None else list(names)
                raise ValueError(
                    f"column {self.column!r} not found; expected one of the input's columns {known}"
                )
            return int(list(names).index(self.column))
        if isinstance(self.column, (int, np.integer)) and not isinstance(self.column, bool):
            if not 0 <= self.column < self.n_features_in_:
                raise ValueError(
                    f"column {self.column} out of range; expected a position in [0, {self.n_features_in_})"
                )
            return int(self.column)
        raise TypeError(f"column must be a column name or a position, got {self.column!r}")

    def _name(self) -> str:
        names = getattr(self, "feature_names_in_", None)
        position = self._position()
        return str(names[position]) if names is not None else f"x{position}"

    def _split_values(self, X: Any, *, reset: bool) -> tuple[np.ndarray, int]:
        array = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)
        position = self._position()
        values = array[:, position]
        missing = np.flatnonzero(pd.isna(values))
        if missing.size:
            raise ValueError(
                f"column {self._name()!r} has {missing.size} missing value(s), first at row "
                f"{int(missing[0])}; expected a value of the schema in every row"
            )
        return values, position

    def fit(self, X: Any, y: Any = None) -> SchemaBridge:
        """Learn each old value's distribution over its finer values from new-schema data ``X``."""
        self._check_params()
        values, _ = self._split_values(X, reset=True)
        name = self._name()
        counts = pd.Series(values, dtype=object).value_counts(sort=False)
        seen = list(counts.index)
        if self.mapping is None:
            mapping = {value: [value] for value in seen}
        else:
            mapping = {old: list(targets) for old, targets in self.mapping.items()}
        targets = list(dict.fromkeys(value for group in mapping.values() for value in group))
        others = sorted((value for value in seen if value not in set(targets)), key=str)
        self.categories_ = targets + others
        self.distributions_ = {}
        for old, group in mapping.items():
            found = np.array([counts.get(value, 0) for value in group], dtype=float)
            if found.sum() == 0:
                raise ValueError(
                    f"column {name!r}: none of the new values {group} of old value {old!r} "
                    "occurs in the fit data; expected new-schema rows with at least one of them"
                )
            self.distributions_[old] = dict(zip(group, (found / found.sum()).tolist(), strict=True))
        return self

    def transform(self, X: Any) -> Any:
        """Old-schema records in the new schema: a DataFrame for a DataFrame, else an ndarray."""
        check_is_fitted(self)
        self._check_params()
        values, position = self._split_values(X, reset=False)
        name = self._name()
        old = np.array([value in self.distributions_ for value in values], dtype=bool)
        known = set(self.categories_)
        in_new = np.array([value in known for value in values], dtype=bool)
        unknown = np.flatnonzero(~old & ~in_new)
        if unknown.size:
            bad = values[unknown[0]]
            raise ValueError(
                f"column {name!r}: value {bad!r} (row {int(unknown[0])}) is neither an old value of "
                f"the mapping {list(self.distributions_)} nor a new-schema value {self.categories_}"
            )
        frame = X if isinstance(X, pd.DataFrame) else None
        if self.strategy == "probabilistic":
            return self._draw(X, frame, values, old, position)
        return self._expected_one_hot(X, frame, values, old, position)

    def _draw(
        self, X: Any, frame: pd.DataFrame | None, values: np.ndarray, old: np.ndarray, position: int
    ) -> Any:
        rng = check_random_state(self.random_state)
        bridged = values.copy()
        for key, distribution in self.distributions_.items():
            rows = np.flatnonzero(old & (values == key))
            if rows.size:
                choices = np.empty(len(distribution), dtype=object)
                choices[:] = list(distribution)
                bridged[rows] = choices[
                    rng.choice(len(distribution), size=rows.size, p=list(distribution.values()))
                ]
        if frame is not None:
            out = frame.copy()
            column = frame.columns[position]
            if isinstance(frame[column].dtype, pd.CategoricalDtype):  # stays categorical, over the new schema
                out[column] = pd.Categorical(bridged, categories=self.categories_)
            else:
                out[column] = bridged
            return out
        out = np.asarray(X).copy()
        try:
            out[:, position] = bridged
        except (TypeError, ValueError):
            out = out.astype(object)
            out[:, position] = bridged
        return out

    def _expected_one_hot(
        self, X: Any, frame: pd.DataFrame | None, values: np.ndarray, old: np.ndarray, position: int
    ) -> Any:
        index = {value: j for j, value in enumerate(self.categories_)}
        cells = np.zeros((len(values), len(self.categories_)))
        for row, value in enumerate(values):
            if old[row]:
                for target, share in self.distributions_[value].items():
                    cells[row, index[target]] = share
            else:
                cells[row, index[value]] = 1.0
        names = self._one_hot_names()
        if frame is not None:
            hot = pd.DataFrame(cells, columns=names, index=frame.index)
            return pd.concat([frame.iloc[:, :position], hot, frame.iloc[:, position + 1 :]], axis=1)
        array = np.asarray(X)
        return np.concatenate([array[:, :position], cells, array[:, position + 1 :]], axis=1)

    def _one_hot_names(self, name: str | None = None) -> list[str]:
        name = self._name() if name is None else name
        return [f"{name}_{value}" for value in self.categories_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The input names; under ``"static"`` the split column becomes ``<column>_<value>`` columns.

        As scikit-learn's transformers: ``input_features`` must equal ``feature_names_in_`` when
        the fit data had names; otherwise it names the columns (default ``x0, x1, ...``)."""
        check_is_fitted(self)
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is not None:
            names = [str(n) for n in fitted]
            if input_features is not None and [str(n) for n in input_features] != names:
                raise ValueError(f"input_features {list(input_features)} differ from the fitted columns {names}")
        elif input_features is not None:
            names = [str(n) for n in input_features]
            if len(names) != self.n_features_in_:
                raise ValueError(f"input_features: expected {self.n_features_in_} names, got {len(names)}")
        else:
            names = [f"x{i}" for i in range(self.n_features_in_)]
        if self.strategy == "static":
            position = self._position()
            names = names[:position] + self._one_hot_names(names[position]) + names[position + 1 :]
        return np.asarray(names, dtype=object)


def bootstrap_interval(
    y_true: Any,
    y_pred: Any,
    metric: Callable[[Any, Any], float] = root_mean_squared_error,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: Any = None,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``metric(y_true, y_pred)`` over resampled rows.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,) or (n_samples, k)
        Rows are resampled together; ``metric`` receives the resampled rows (two columns of
        ``y_pred`` let a metric score a paired difference of two models).
    metric : callable, default=root_mean_squared_error
    n_bootstrap : int, default=1000
        Number of resamples (rows drawn with replacement).
    confidence : float, default=0.95
        The interval's coverage, in (0, 1).
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    (low, high) : tuple of float
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if len(y_true) != len(y_pred) or not len(y_true):
        raise ValueError(
            f"y_true and y_pred must be non-empty and equally long, got {len(y_true)} and {len(y_pred)}"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = check_random_state(random_state)
    n = len(y_true)
    scores = np.empty(int(n_bootstrap))
    for i in range(len(scores)):  # one resample at a time: memory of one, whatever n_bootstrap
        rows = rng.randint(0, n, size=n)
        scores[i] = metric(y_true[rows], y_pred[rows])
    tail = (1 - confidence) / 2
    return float(np.quantile(scores, tail)), float(np.quantile(scores, 1 - tail))


@dataclass(frozen=True)
class BridgedCountChoice:
    """What :func:`choose_bridged_count` measured.

    Attributes
    ----------
    scores : pandas.DataFrame
        One row per count tried: ``count``, ``score``, ``ci_low``, ``ci_high``.
    best_count : int
        The count with the best score (the smallest count among ties).
    """

    scores: pd.DataFrame
    best_count: int


def choose_bridged_count(
    estimator: Any,
    new_X: Any,
    new_y: Any,
    bridged_X: Any,
    bridged_y: Any,
    validation_X: Any,
    validation_y: Any,
    counts: Sequence[int],
    *,
    metric: Callable[[Any, Any], float] = root_mean_squared_error,
    greater_is_better: bool = False,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: Any = None,
) -> BridgedCountChoice:
    """Choose how many bridged old rows to add to the new training data, by held-out score.

    For each ``count``, a clone of ``estimator`` is fit on ``new_X`` plus the first
    ``count`` rows of one seeded permutation of ``bridged_X`` (so larger counts hold the
    smaller ones), and scored on ``validation_X`` (new-schema rows, never trained on).

    Parameters
    ----------
    estimator : scikit-learn estimator
    new_X, new_y : new-schema training rows (DataFrame or ndarray) and targets
    bridged_X, bridged_y : old rows already bridged (same columns as ``new_X``) and targets
    validation_X, validation_y : held-out new-schema rows and targets
    counts : sequence of int
        Numbers of bridged rows to try, each in ``[0, len(bridged_X)]``.
    metric : callable, default=root_mean_squared_error
    greater_is_better : bool, default=False
    n_bootstrap, confidence : int, float
        For each score's :func:`bootstrap_interval`.
    random_state : int, RandomState instance or None, default=None
        Seeds the permutation and the bootstrap.

    Returns
    -------
    BridgedCountChoice
    """
    n_bridged = len(bridged_X)
    if len(bridged_y) != n_bridged:
        raise ValueError(f"bridged_y: expected one target per bridged row ({n_bridged}), got {len(bridged_y)}")
    counts = sorted({int(count) for count in counts})  # ascending, so that a tie goes to the smallest count
    bad = [count for count in counts if not 0 <= count <= n_bridged]
    if not counts or bad:
        raise ValueError(
            f"counts must be a non-empty list of numbers of bridged rows in [0, {n_bridged}], got {bad or counts}"
        )
    if isinstance(new_X, pd.DataFrame) != isinstance(bridged_X, pd.DataFrame):
        raise TypeError("new_X and bridged_X must both be DataFrames or both arrays")
    rng = check_random_state(random_state)
    order = rng.permutation(n_bridged)
    new_y, bridged_y = np.asarray(new_y), np.asarray(bridged_y)
    rows = []
    for count in counts:
        taken = order[:count]
        if isinstance(new_X, pd.DataFrame):
            X = pd.concat([new_X, bridged_X.iloc[taken]], ignore_index=True)
        else:
            X = np.concatenate([np.asarray(new_X), np.asarray(bridged_X)[taken]])
        y = np.concatenate([new_y, bridged_y[taken]])
        predicted = clone(estimator).fit(X, y).predict(validation_X)
        low, high = bootstrap_interval(
            validation_y,
            predicted,
            metric,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            random_state=rng,
        )
        rows.append(
            {
                "count": count,
                "score": float(metric(np.asarray(validation_y), predicted)),
                "ci_low": low,
                "ci_high": high,
            }
        )
    scores = pd.DataFrame(rows)
    best = scores["score"].idxmax() if greater_is_better else scores["score"].idxmin()
    return BridgedCountChoice(scores=scores, best_count=int(scores.loc[best, "count"]))
