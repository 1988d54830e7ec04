"""Transform (pattern 21): one fitted transformation from raw columns to model features.

Problem: preprocessing written for training is re-implemented, or forgotten, at
serving time, and the two drift apart (training-serving skew).

Solution: declare the features once; fit every learned parameter (medians, means,
quantile boundaries) on the training split only; save the fitted parameters as
JSON inside the model bundle; apply exactly the same object at serving time.
:class:`FeatureTransform` is that object. It builds on the representation
patterns of chapter 2: numeric columns are imputed and standardized, categorical
columns become a vocabulary or hashed buckets (1), chosen on the training data
(:mod:`~mlpatterns.reproducibility.categorical_encoding`), numeric columns can be bucketized and any
columns crossed (3), and dates are split into calendar parts. Its output keeps
dense numbers and categorical indices apart, so a gradient-boosted model can take
both as a matrix and a neural model can embed the indices (2).

Examples
--------
>>> import pandas as pd
>>> frame = pd.DataFrame({"distance": [100.0, 200.0, None, 400.0],
...                       "carrier": ["UA", "AA", "UA", None]})
>>> transform = FeatureTransform(numeric=["distance"], categorical={"carrier": 8}).fit(frame)
>>> features = transform.transform(frame)
>>> features.numeric.shape, features.categorical.shape, features.cardinalities
((4, 2), (4, 1), [9])
>>> auto = FeatureTransform(categorical=["carrier"]).fit(frame)  # 2 values: a vocabulary
>>> auto.transform(frame).categorical.ravel().tolist(), auto.encoding_report()["carrier"]["size"]
([0, 1, 0, 3], 4)
>>> restored = FeatureTransform.from_json(transform.to_json())
>>> bool((restored.transform(frame).categorical == features.categorical).all())
True
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns._json_state import decode_value, encode_value
from mlpatterns.hashing import BUCKET_CONVENTIONS
from mlpatterns.reproducibility import categorical_encoding as encodings

__all__ = ["DATE_PARTS", "FeatureTransform", "TransformedFeatures"]

DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour")
_FORMAT = "mlpatterns.FeatureTransform/1"


@dataclass
class TransformedFeatures:
    """Model-ready features: dense numbers and categorical indices, row-aligned."""

    numeric: np.ndarray  # float32 [n, n_numeric]
    categorical: np.ndarray  # int64 [n, n_categorical], each column in [0, cardinality)
    numeric_names: list[str] = field(default_factory=list)
    categorical_names: list[str] = field(default_factory=list)
    cardinalities: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.numeric)

    def matrix(self) -> np.ndarray:
        """One float32 matrix, numbers then category indices (for tree models)."""
        return np.hstack([self.numeric, self.categorical.astype(np.float32)]).astype(np.float32)

    @property
    def names(self) -> list[str]:
        return self.numeric_names + self.categorical_names

    def take(self, rows: np.ndarray) -> TransformedFeatures:
        return TransformedFeatures(
            self.numeric[rows], self.categorical[rows], self.numeric_names,
            self.categorical_names, self.cardinalities,
        )


def _as_bucket_count(column: str, value: Any) -> int:
    count = value.get("buckets") if isinstance(value, Mapping) else value
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(
            f"categorical.{column}: expected a positive bucket count, got {count!r}"
        )
    return count


class FeatureTransform:
    """Declared features, fitted on training data, applied identically at serving.

    Parameters
    ----------
    numeric : list of str
        Numeric columns: missing values take the training median (and get a
        ``<name>_missing`` indicator when the training data had any), then the
        column is standardized with the training mean and standard deviation.
    categorical : list of str, or dict of str to int, str or dict
        Categorical columns. A list of names means ``"auto"`` for each. In a dict, an
        int is a hash bucket count (Hashed Feature, 1; ``{"buckets": n}`` too), and
        ``"auto"``, ``"vocabulary"``, ``"hash"`` or ``{"encoding": ..., "buckets": n,
        "min_frequency": k, "max_categories": m}`` choose the encoding. ``"auto"``
        picks, at :meth:`fit`, a vocabulary when at most ``max_categories`` (default
        1,000) distinct training values occur ``min_frequency`` (default 1) times or
        more, else hashing into ``min(2**ceil(log2(8 * distinct)), 2**20)`` buckets
        (see :mod:`~mlpatterns.reproducibility.categorical_encoding`). A vocabulary
        gives each kept value an index, plus one out-of-vocabulary index (unseen or
        rarer than ``min_frequency``) and one null index; values match by their
        BigQuery text cast (``7`` and ``"7"`` alike). A hash sends unseen values to a
        bucket and nulls to an extra bucket, bit-exact with BigQuery.
    bucketize : dict of str to dict
        Numeric columns turned into bins (Feature Cross, 3): ``{"quantiles": n}``
        learns ``n`` quantile bins on the training data, ``{"boundaries": [...]}``
        uses explicit split points. The bin index becomes a categorical feature,
        and the bin name can be crossed.
    crosses : list of dict
        ``{"columns": [a, b, ...], "buckets": n}``: the crossed values of 2-4
        categorical or bucketized columns, hashed into ``n`` buckets.
    date_parts : dict of str to list of str
        Calendar parts of date or datetime columns (``DATE_PARTS``), used as
        categorical features, e.g. ``{"date": ["dayofweek", "month"]}``.
    convention : {"bigquery", "keras"}
        Hash bucket convention (see :mod:`mlpatterns.hashing`).
    text : dict of str to str
        Text columns and the frozen pretrained encoder whose bottleneck features they
        become (Transfer Learning, 13), e.g. ``{"title": "all-MiniLM-L6-v2"}``: 384
        numbers ``title_emb_000``... after the numeric columns; a null is the empty
        text. The encoder runs as ONNX (:class:`~mlpatterns.training.transfer_learning.text_encoder.TextEncoder`);
        the JSON records its sha256, and a bundle carries its files (:meth:`text_files`).
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Mapping[str, Any] | None = None,
        bucketize: Mapping[str, Mapping[str, Any]] | None = None,
        crosses: Sequence[Mapping[str, Any]] = (),
        date_parts: Mapping[str, Sequence[str]] | None = None,
        convention: str = "bigquery",
        text: Mapping[str, Any] | None = None,
    ) -> None:
        self.numeric = list(numeric)
        self.categorical = encodings.normalize_categorical(categorical)
        self.bucketize = {c: dict(v) for c, v in (bucketize or {}).items()}
        self.crosses = [dict(c) for c in crosses]
        self.date_parts = {c: list(p) for c, p in (date_parts or {}).items()}
        self.convention = convention
        # {"title": "all-MiniLM-L6-v2"}; the spec's {"encoder": name} form is accepted too
        self.text = {c: v.get("encoder") if isinstance(v, Mapping) else v for c, v in (text or {}).items()}
        self._validate_declaration()
        self.state_: dict[str, Any] | None = None
        self.text_encoders_: dict[str, Any] = {}  # encoder name -> TextEncoder, attached, never serialized

    # -- declaration ---------------------------------------------------------------------------
    def _validate_declaration(self) -> None:
        for column, parts in self.date_parts.items():
            unknown = sorted(set(parts) - set(DATE_PARTS))
            if unknown:
                raise ValueError(
                    f"date_parts.{column}: unknown part(s) {unknown}; expected some of {list(DATE_PARTS)}"
                )
        for column, how in self.bucketize.items():
            if ("quantiles" in how) == ("boundaries" in how):
                raise ValueError(
                    f"bucketize.{column}: expected exactly one of 'quantiles' or 'boundaries', "
                    f"got {sorted(how)}"
                )
        for i, cross in enumerate(self.crosses):
            columns = cross.get("columns")
            if not isinstance(columns, list) or not 2 <= len(columns) <= 4:
                raise ValueError(f"crosses[{i}].columns: expected a list of 2 to 4 columns, got {columns!r}")
            _as_bucket_count(f"crosses[{i}]", cross.get("buckets"))
        if self.text:
            from mlpatterns.training.transfer_learning.text_encoder import ENCODERS

            for column, name in self.text.items():
                if name not in ENCODERS:
                    raise ValueError(f"text.{column}: unknown encoder {name!r}; expected one of {list(ENCODERS)}")

    @property
    def input_columns(self) -> list[str]:
        """The raw columns the transform reads, in a stable order."""
        columns: list[str] = []
        for name in [*self.numeric, *self.categorical, *self.bucketize, *self.date_parts, *self.text]:
            if name not in columns:
                columns.append(name)
        for cross in self.crosses:
            for name in cross["columns"]:
                if name not in columns and name not in self._derived_names():
                    columns.append(name)
        return columns

    def _derived_names(self) -> set[str]:
        return {f"{c}_{p}" for c, parts in self.date_parts.items() for p in parts}

    def check_columns(self, frame: pd.DataFrame) -> None:
        """Raise a clear error when ``frame`` lacks a column the transform reads."""
        missing = [c for c in self.input_columns if c not in frame.columns]
        if missing:
            raise KeyError(
                f"missing input column(s) {missing}; the transform reads {self.input_columns}"
            )

    # -- fitting -------------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, y: Any = None) -> FeatureTransform:
        """Learn medians, means, scales, quantile boundaries and categorical encodings from the training rows.

        Parameters
        ----------
        frame : pandas.DataFrame
            The training rows.
        y : array-like, optional
            The training target. With a 1-D numeric target (regression, binary 0/1, or a
            target of two classes) vocabulary codes are ordered by the training mean of the
            target per value (ties by frequency, then text), and the OOV and null indices by
            the mean of their rows (the overall mean when they have none). A tree splitting
            on codes as numbers can then separate low from high categories in one split,
            as a native categorical split would. Without ``y``, or with a 2-D target (pass
            ``None`` for a multiclass target too), codes follow frequency, most frequent
            first, then the OOV and the null index.

        A hash that merges training values of a column that a vocabulary could hold whole
        emits a :class:`~mlpatterns.reproducibility.categorical_encoding.MergedCategoriesWarning`
        (also in :meth:`encoding_warnings`).
        """
        import warnings

        from mlpatterns.data.bucketize import quantile_boundaries

        self.check_columns(frame)
        numeric_state = {}
        for column in self.numeric:
            values = _numeric_column(frame, column)
            finite = values[~np.isnan(values)]
            if len(finite) == 0:
                raise ValueError(f"numeric.{column}: the training data has no non-null value")
            median = float(np.median(finite))
            filled = np.where(np.isnan(values), median, values)
            std = float(filled.std())
            numeric_state[column] = {
                "median": median, "mean": float(filled.mean()), "std": std if std > 0 else 1.0,
                "indicator": bool(np.isnan(values).any()),
            }
        boundaries = {}
        for column, how in self.bucketize.items():
            if "boundaries" in how:
                boundaries[column] = [float(b) for b in how["boundaries"]]
            else:
                values = _numeric_column(frame, column)
                boundaries[column] = [
                    float(b) for b in quantile_boundaries(values[~np.isnan(values)], int(how["quantiles"]))
                ]
        target = encodings.ordering_target(y, len(frame))
        categorical = {
            column: encodings.fit_column(column, declared, frame[column], target, self.convention)
            for column, declared in self.categorical.items()
        }
        self.state_ = {"numeric": numeric_state, "boundaries": boundaries, "categorical": categorical}
        hashed: dict[str, dict[str, Any]] = {}
        self._index_features(frame, self.state_, hashed)
        self.state_["hashed"] = hashed
        for message in self.encoding_warnings():
            warnings.warn(message, encodings.MergedCategoriesWarning, stacklevel=2)
        if self.text:  # Transfer Learning (13): nothing to learn; record which encoder, by sha256
            encoders = dict.fromkeys(self.text.values())
            self.state_["text"] = {name: self._text_encoder(name).record() for name in encoders}
        return self

    def attach_text_encoder(self, encoder: Any) -> None:
        """Use ``encoder`` (a ``TextEncoder``) for the text columns that name it; a fitted transform
        refuses an encoder other than the one it recorded."""
        recorded = (self.state_ or {}).get("text", {}).get(encoder.name)
        if recorded is not None:
            encoder.check(recorded)
        self.text_encoders_[encoder.name] = encoder

    def _text_encoder(self, name: str) -> Any:
        if name not in self.text_encoders_:  # the packaged encoder, exported once and cached
            from mlpatterns.training.transfer_learning.text_encoder import TextEncoder

            self.attach_text_encoder(TextEncoder.packaged(name))
        return self.text_encoders_[name]

    def text_files(self) -> dict[str, bytes]:
        """The files of the text encoders (ONNX and tokenizer) that a bundle of this transform carries."""
        self._check_fitted()
        files: dict[str, bytes] = {}
        for name in dict.fromkeys(self.text.values()):
            files.update(self._text_encoder(name).files())
        return files

    # -- applying ------------------------------------------------------------------------------
    def _check_fitted(self) -> dict[str, Any]:
        if self.state_ is None:
            raise RuntimeError("this FeatureTransform is not fitted yet; call fit() on training data")
        return self.state_

    def row_problems(self, frame: pd.DataFrame) -> list[tuple[int, str, str]]:
        """``(row, column, problem)`` for each value the transform could only treat as missing:
        text in a numeric column, an unparseable date."""
        problems = []
        positions = np.arange(len(frame))
        for column in dict.fromkeys([*self.numeric, *self.bucketize]):
            series = frame[column]
            if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
                continue
            bad = (pd.to_numeric(series, errors="coerce").isna() & series.notna()).to_numpy()
            problems += [(int(r), column, f"expected a number, got {series.iloc[r]!r}") for r in positions[bad]]
        for column in self.date_parts:
            series = frame[column]
            codes, stamps = _distinct_dates(series)
            bad = np.append(stamps.isna().to_numpy(), False)[codes]  # not a null (-1), and not parsed
            problems += [(int(r), column, f"expected an ISO 8601 date or timestamp, got {series.iloc[r]!r}")
                         for r in positions[bad]]
        return problems

    def transform(self, frame: pd.DataFrame) -> TransformedFeatures:
        """Apply the fitted transform; the same code runs in training and in serving."""
        state = self._check_fitted()
        self.check_columns(frame)
        n = len(frame)
        numeric_blocks, numeric_names = [], []
        for column in self.numeric:
            params = state["numeric"][column]
            values = _numeric_column(frame, column)
            missing = np.isnan(values)
            filled = np.where(missing, params["median"], values)
            numeric_blocks.append((filled - params["mean"]) / params["std"])
            numeric_names.append(column)
            if params["indicator"]:
                numeric_blocks.append(missing.astype(np.float64))
                numeric_names.append(f"{column}_missing")
        for column, name in self.text.items():  # Transfer Learning (13): the frozen encoder's features
            embedding = self._text_encoder(name).encode(frame[column], description=f"encoding {column} ({name})")
            numeric_blocks.append(embedding)
            numeric_names += [f"{column}_emb_{i:03d}" for i in range(embedding.shape[1])]

        index_blocks, index_names, cardinalities = self._index_features(frame, state)
        numeric = np.column_stack(numeric_blocks) if numeric_blocks else np.zeros((n, 0))
        categorical = np.column_stack(index_blocks) if index_blocks else np.zeros((n, 0))
        return TransformedFeatures(
            numeric.astype(np.float32), categorical.astype(np.int64), numeric_names,
            index_names, cardinalities,
        )

    def _index_features(
        self, frame: pd.DataFrame, state: Mapping[str, Any], hashed: dict[str, Any] | None = None,
    ) -> tuple[list[np.ndarray], list[str], list[int]]:
        """The categorical index blocks, names and cardinalities; with ``hashed`` (at fit), the
        collision report of each hashed cross and year part goes into it.

        Every categorical input is first reduced to its distinct BigQuery texts and a code per
        row (:func:`_distinct_texts`); vocabularies, hashes and crosses then work on the distinct
        values and are taken back per row, so that a value's index is computed from the value
        alone (a row never depends on the others) and each distinct value costs one lookup.
        """
        from mlpatterns.data.bucketize import bucketize
        from mlpatterns.data.hashed_feature import collision_report

        texts: dict[str, _DistinctTexts] = {}
        index_blocks, index_names, cardinalities = [], [], []

        def add_hashed(name: str, values: _DistinctTexts, buckets: int, report: bool = True) -> None:
            index_blocks.append(values.hash_bucket(buckets, self.convention))
            index_names.append(name)
            cardinalities.append(buckets + 1)
            if hashed is not None and report:
                hashed[name] = {"encoding": "hash", "buckets": buckets,
                                "collisions": collision_report(values.per_row(), buckets, self.convention)}

        for column in self.categorical:
            fitted = self._column_state(column, state)
            values = texts[column] = _distinct_texts(frame[column])  # a cross reads the raw values too
            if fitted["encoding"] == "hash":
                add_hashed(column, values, int(fitted["buckets"]), report=False)  # in fitted
            else:
                index_blocks.append(values.vocabulary(fitted)[0])
                index_names.append(column)
                cardinalities.append(len(fitted["values"]) + 2)
        for column in self.bucketize:  # declaration order, not the JSON's key order
            edges = state["boundaries"][column]
            numbers, distinct = pd.factorize(_numeric_column(frame, column))  # NaN: -1, no bin
            names = texts[column] = _distinct_texts(bucketize(distinct, edges)).taken(numbers)
            # 'bin_1'..'bin_{k+1}' become indices 0..k; a null gets index k+1.
            index_blocks.append(names.take(np.array([int(v[4:]) - 1 for v in names.texts], dtype=np.int64),
                                           len(edges) + 1))
            index_names.append(f"{column}_bin")
            cardinalities.append(len(edges) + 2)
        for column, parts in self.date_parts.items():
            codes, stamps = _distinct_dates(frame[column])
            for part in parts:
                per_stamp = getattr(stamps.dt, _PANDAS_DATE_PART.get(part, part)).to_numpy(
                    dtype=np.float64, na_value=np.nan
                )
                name = f"{column}_{part}"
                known = ~np.isnan(per_stamp)
                # the part as text ('7'), one per distinct value: what crosses and the year hash read
                numbers, at = np.unique(per_stamp[known].astype(np.int64), return_inverse=True)
                text_code = np.full(len(stamps), -1, dtype=np.int64)
                text_code[known] = at
                text_code = np.append(text_code, -1)  # a null row (code -1) has no part
                values = texts[name] = _DistinctTexts(text_code[codes], np.array([str(v) for v in numbers.tolist()],
                                                                                dtype=object))
                if part == "year":  # an open domain: hashed
                    add_hashed(name, values, _YEAR_BUCKETS)
                    continue
                # A closed domain: the value itself is the index (no collisions), null last.
                low, size = _DATE_PART_DOMAINS[part]
                index_blocks.append(values.take(numbers - low, size))
                index_names.append(name)
                cardinalities.append(size + 1)
        for cross in self.crosses:
            columns = cross["columns"]
            crossed = _DistinctTexts.cross([texts[c] if c in texts else _distinct_texts(frame[c]) for c in columns])
            add_hashed("_".join(columns), crossed, int(cross["buckets"]))
        return index_blocks, index_names, cardinalities

    def _column_state(self, column: str, state: Mapping[str, Any]) -> Mapping[str, Any]:
        fitted = state.get("categorical", {}).get(column)
        if fitted is None:  # a transform saved before encodings were chosen: plain hashing
            return {"encoding": "hash", "buckets": self.categorical[column], "chosen_by": "declared"}
        return fitted

    # -- categorical encodings -----------------------------------------------------------------
    def encoding_report(self) -> dict[str, dict[str, Any]]:
        """Per categorical feature, in output order: its encoding, size (indices) and what it cost.

        A vocabulary reports ``values`` kept, ``rare_values`` (distinct training values sent to
        the OOV index), ``oov_rows``, ``null_rows``, ``oov_index``, ``null_index`` and ``order``;
        a hash (column, cross or year part) its ``buckets`` and its collision report on the
        training data (``distinct_values``, ``buckets_used``, ``values_sharing_a_bucket``,
        ``share_of_rows_in_shared_buckets``, ``null_rows``; None for a transform saved before
        these reports existed). Each entry has a ``warnings`` list (:meth:`encoding_warnings`).
        """
        state = self._check_fitted()
        report: dict[str, dict[str, Any]] = {}
        for column in self.categorical:
            report[column] = encodings.column_report(column, self._column_state(column, state))
        for column in self.bucketize:
            report[f"{column}_bin"] = {"encoding": "bins", "size": len(state["boundaries"][column]) + 2,
                                       "warnings": []}
        for column, parts in self.date_parts.items():
            for part in parts:
                name = f"{column}_{part}"
                if part == "year":
                    report[name] = encodings.hashed_report(_YEAR_BUCKETS, state.get("hashed", {}).get(name))
                else:
                    report[name] = {"encoding": "calendar", "size": _DATE_PART_DOMAINS[part][1] + 1,
                                    "warnings": []}
        for cross in self.crosses:
            name = "_".join(cross["columns"])
            report[name] = encodings.hashed_report(int(cross["buckets"]), state.get("hashed", {}).get(name))
        return report

    def encoding_warnings(self) -> list[str]:
        """Every warning of :meth:`encoding_report`: hashes that merge values a vocabulary would keep."""
        return [message for entry in self.encoding_report().values() for message in entry["warnings"]]

    def unseen_counts(self, frame: pd.DataFrame) -> dict[str, int]:
        """Per vocabulary column, how many rows of ``frame`` hold a non-null value outside the
        vocabulary (never seen in training, or rarer than ``min_frequency``): they get the OOV index."""
        state = self._check_fitted()
        counts = {}
        for column in self.categorical:
            fitted = self._column_state(column, state)
            if fitted["encoding"] == "vocabulary":
                if column not in frame.columns:
                    raise KeyError(f"missing input column {column!r}")
                counts[column] = int(_distinct_texts(frame[column]).vocabulary(fitted)[1].sum())
        return counts

    # -- JSON ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "declaration": {
                "numeric": self.numeric, "categorical": self.categorical,
                "bucketize": self.bucketize, "crosses": self.crosses,
                "date_parts": self.date_parts, "convention": self.convention,
                **({"text": self.text} if self.text else {}),
            },
            "state": encode_value(self._check_fitted()),
        }

    def to_json(self) -> str:
        # No sort_keys: the declaration order is the order of the output columns.
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FeatureTransform:
        """Rebuild a fitted transform from :meth:`to_dict`, checking every field it will use."""
        if not isinstance(payload, Mapping) or payload.get("format") != _FORMAT:
            raise ValueError(f"not a fitted FeatureTransform: expected format {_FORMAT!r}")
        declaration = payload.get("declaration")
        if not isinstance(declaration, Mapping) or set(declaration) - _DECLARATION_FIELDS:
            raise ValueError(f"'declaration' must be an object with fields among {sorted(_DECLARATION_FIELDS)}")
        _expect_type(declaration.get("numeric", []), list, "declaration.numeric")
        for group in ("categorical", "bucketize", "date_parts"):
            _expect_type(declaration.get(group, {}), Mapping, f"declaration.{group}")
        _expect_type(declaration.get("crosses", []), list, "declaration.crosses")
        _expect_type(declaration.get("text", {}), Mapping, "declaration.text")
        if declaration.get("convention", "bigquery") not in BUCKET_CONVENTIONS:
            raise ValueError(f"declaration.convention must be one of {BUCKET_CONVENTIONS}")
        transform = cls(**declaration)
        state = decode_value(payload.get("state"))
        _expect_type(state, Mapping, "state")
        numeric, boundaries = state.get("numeric"), state.get("boundaries")
        _expect_type(numeric, Mapping, "state.numeric")
        _expect_type(boundaries, Mapping, "state.boundaries")
        for column in transform.numeric:
            params = numeric.get(column)
            _expect_type(params, Mapping, f"state.numeric.{column}")
            for key in ("median", "mean", "std"):
                value = params.get(key)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                    raise ValueError(f"state.numeric.{column}.{key} must be a finite number, got {value!r}")
            if params["std"] <= 0:
                raise ValueError(f"state.numeric.{column}.std must be positive, got {params['std']!r}")
        for column in transform.bucketize:
            edges = boundaries.get(column)
            _expect_type(edges, list, f"state.boundaries.{column}")
            if not all(isinstance(e, (int, float)) and np.isfinite(e) for e in edges) or edges != sorted(set(edges)):
                raise ValueError(f"state.boundaries.{column} must be finite numbers in increasing order")
        categorical = state.get("categorical")
        if categorical is not None or any(not isinstance(v, int) for v in transform.categorical.values()):
            _expect_type(categorical, Mapping, "state.categorical")  # absent only in older, all-hash JSON
            for column, declared in transform.categorical.items():
                encodings.check_state(column, declared, categorical.get(column))
        if transform.text:
            from mlpatterns.training.transfer_learning.text_encoder import check_record

            _expect_type(state.get("text"), Mapping, "state.text")
            for name in set(transform.text.values()):
                check_record(state["text"].get(name), f"state.text.{name}")
        transform.state_ = dict(state)
        return transform

    @classmethod
    def from_json(cls, text: str) -> FeatureTransform:
        return cls.from_dict(json.loads(text))


_DECLARATION_FIELDS = {"numeric", "categorical", "bucketize", "crosses", "date_parts", "convention", "text"}


def _expect_type(value: Any, kind: Any, where: str) -> None:
    if not isinstance(value, kind):
        name = "a list" if kind is list else "an object"
        raise ValueError(f"{where} must be {name}, got {type(value).__name__}")


_PANDAS_DATE_PART = {"dayofweek": "day_of_week", "dayofyear": "day_of_year"}
# (lowest value, number of values) of each calendar part with a closed domain.
_DATE_PART_DOMAINS = {"month": (1, 12), "day": (1, 31), "dayofweek": (0, 7), "dayofyear": (1, 366),
                      "hour": (0, 24)}
_YEAR_BUCKETS = 1024


def parse_dates(values: Any) -> pd.Series:
    """Dates and timestamps as UTC timestamps, the same way in training and in serving.

    Strings must be ISO 8601 (``2013-01-01``, ``2013-01-01T05:00:00``, with or without
    an offset); naive values are taken as UTC, aware ones converted to UTC, so the
    calendar parts do not depend on the machine's time zone. Unparseable values give
    NaT; :meth:`FeatureTransform.row_problems` reports them. Each distinct value is
    parsed once.
    """
    series = pd.Series(values)
    codes, stamps = _distinct_dates(series)
    return pd.Series(stamps.array.take(codes, allow_fill=True), index=series.index)


# columns whose non-null values are all of one kind that parse_dates passes through as they are
_DATE_KINDS = {"string", "date", "datetime", "datetime64", "empty"}


def _parsed(series: pd.Series) -> pd.Series:
    series = series.astype(object).map(
        lambda v: v if isinstance(v, (str, dt.date, np.datetime64)) else str(v),
        na_action="ignore",
    )
    return pd.to_datetime(series, format="ISO8601", utc=True, errors="coerce")


def _distinct_dates(series: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """Per row a position among the parsed distinct values (-1: null), and those parsed values.

    Only a column of strings, dates or timestamps is reduced to its distinct values (a
    mixed object column could hold ``1`` and ``True``, equal in Python but not as text);
    any other is parsed row by row.
    """
    dtype = series.dtype
    if dtype.kind == "M" or isinstance(dtype, pd.DatetimeTZDtype) or (
        (pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype))
        and pd.api.types.infer_dtype(series, skipna=True) in _DATE_KINDS
    ):
        codes, uniques = pd.factorize(series)
        return codes.astype(np.int64), _parsed(pd.Series(uniques))
    codes = np.where(series.isna().to_numpy(), -1, np.arange(len(series), dtype=np.int64))
    return codes, _parsed(series.reset_index(drop=True))


@dataclass(frozen=True)
class _DistinctTexts:
    """A categorical column as its distinct BigQuery texts and, per row, its text's position (-1: null).

    Vocabulary lookups, hashes and crosses run once per distinct text and are taken back
    per row: the same indices as row by row, since each depends on the value alone.
    """

    codes: np.ndarray  # int64, one per row
    texts: np.ndarray  # object: str (or bytes), no null

    def take(self, per_text: np.ndarray, null: int) -> np.ndarray:
        """Per row the entry of ``per_text`` for its text, ``null`` for a null."""
        return np.append(np.asarray(per_text, dtype=np.int64), np.int64(null))[self.codes]

    def taken(self, rows: np.ndarray) -> _DistinctTexts:
        """The texts of the values at positions ``rows`` (-1: null): of each row, when this holds distinct values."""
        return _DistinctTexts(np.append(self.codes, -1)[rows], self.texts)

    def per_row(self) -> np.ndarray:
        """The texts row by row (None for a null), as :func:`~mlpatterns.hashing.to_bigquery_strings` gives them."""
        return np.append(self.texts, None)[self.codes]

    def hash_bucket(self, buckets: int, convention: str) -> np.ndarray:
        from mlpatterns.hashing import hash_bucket

        return self.take(hash_bucket(self.texts, buckets, convention=convention), buckets)  # type: ignore[arg-type]

    def vocabulary(self, state: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Indices under a fitted vocabulary, and a mask of the non-null values it lacks."""
        per_text, unseen = encodings.encode_vocabulary(self.texts, state)
        return self.take(per_text, state["null_index"]), np.append(unseen, False)[self.codes]

    @classmethod
    def cross(cls, parts: Sequence[_DistinctTexts]) -> _DistinctTexts:
        """The crossed texts (Feature Cross, 3) of each distinct combination of ``parts``; null if any is."""
        from mlpatterns.data.feature_cross import cross_values

        rows = len(parts[0].codes)
        valid = np.all([part.codes >= 0 for part in parts], axis=0) if rows else np.zeros(0, dtype=bool)
        combination = parts[0].codes[valid]
        members = [np.arange(len(parts[0].texts))]  # per combination, each part's text position
        for part in parts[1:]:
            # combination * width + code < rows**2: no overflow; numbered back below rows
            width = max(len(part.texts), 1)
            combination, keys = _numbered(combination * width + part.codes[valid], len(members[0]) * width)
            before, code = np.divmod(keys, width)
            members = [m[before] for m in members] + [code]
        codes = np.full(rows, -1, dtype=np.int64)
        codes[valid] = combination
        if not len(members[0]):
            return cls(codes, np.zeros(0, dtype=object))
        crossed = cross_values(*(part.texts[m] for part, m in zip(parts, members, strict=True)))
        return cls(codes, crossed)


def _numbered(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each of ``keys`` (integers in ``[0, size)``) as a position among the distinct keys, and those keys."""
    if size <= max(4 * len(keys), 1 << 16):  # a small range: a table of the keys present, no hashing
        present = np.zeros(size, dtype=bool)
        present[keys] = True
        return (np.cumsum(present) - 1)[keys], np.flatnonzero(present)
    codes, distinct = pd.factorize(keys)
    return codes.astype(np.int64), np.asarray(distinct, dtype=np.int64)


def _distinct_texts(values: Any) -> _DistinctTexts:
    """The distinct BigQuery texts of a column and each row's position among them.

    Strings are their own text, so a column of strings is factorized as it is; any other
    column goes through :func:`~mlpatterns.reproducibility.categorical_encoding.factorize_texts`.
    """
    if isinstance(values, (pd.Series, np.ndarray)) and (
        isinstance(values.dtype, pd.StringDtype)
        or (pd.api.types.is_object_dtype(values.dtype) and pd.api.types.infer_dtype(values, skipna=True) == "string")
    ):
        codes, uniques = pd.factorize(values)
    else:
        codes, uniques = encodings.factorize_texts(values)
    return _DistinctTexts(np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object))


def _numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    series = frame[column]
    if isinstance(series.dtype, pd.StringDtype) or series.dtype == object:
        converted = pd.to_numeric(series, errors="coerce")
        bad = converted.isna() & series.notna()
        if bad.any():
            first = series[bad].iloc[0]
            raise ValueError(
                f"column {column!r}: expected numbers, got {int(bad.sum())} non-numeric value(s) "
                f"such as {first!r}"
            )
        series = converted
    if isinstance(series.dtype, pd.BooleanDtype) or series.dtype == bool:
        series = series.astype("float64")
    try:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise ValueError(f"column {column!r}: expected numbers ({error})") from error
    # Infinities count as missing, in training and in serving alike.
    return np.where(np.isinf(values), np.nan, values)

