"""The spec's schema: :class:`Spec` and the parsers of its sections, with :func:`load_spec`.

Every mistake is reported with the path of the field (``features.categorical.tailnum``)
and what was expected; column names are checked against the data once it is loaded
(:meth:`Spec.check_columns`). The models' own parameters are checked by
:mod:`mlpatterns.spec.params`, an emulator by :mod:`mlpatterns.spec.emulator` and the
``tuning:`` section by :mod:`mlpatterns.spec.tuning`.
"""
from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlpatterns.reproducibility.categorical_declaration import normalize_categorical
from mlpatterns.spec._checks import (
    SpecError,
    check_plain_name,
    expect,
    mapping,
    positive_int,
    string_list,
)
from mlpatterns.spec.params import check_model_params  # the models' own parameter checks

__all__ = ["CATEGORICAL_ENCODINGS", "COMPARISONS", "DATASETS", "DATE_PARTS", "MEMBER_TYPES", "MODEL_TYPES",
           "NETWORK_REBALANCE_METHODS", "REBALANCE_METHODS", "TASKS", "TEXT_ENCODERS", "Spec", "check_spec_params",
           "data_path", "load_spec",
           "parse_distribution", "parse_spec"]

MODEL_TYPES = ("gradient_boosting", "wide_and_deep", "random_forest", "linear", "stacking", "cascade",
               "anomaly_detector", "emulator")
# Models that a stack or a cascade can hold: scikit-learn estimators exported to ONNX
# (wide_and_deep as mlpatterns.models.WideAndDeepClassifier/Regressor).
MEMBER_TYPES = ("gradient_boosting", "random_forest", "linear", "wide_and_deep")
REBALANCE_METHODS = ("downsample", "upsample", "smote", "class_weight", "downsampled_ensemble", "output_bias")
NETWORK_REBALANCE_METHODS = ("downsample", "upsample", "class_weight", "output_bias")
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour")  # as FeatureTransform
TEXT_ENCODERS = ("all-MiniLM-L6-v2",)  # as mlpatterns.training.transfer_learning.text_encoder.ENCODERS
DATASETS = ("flights", "natality", "movies", "taxi", "solar_day_length", "adult")
TASKS = ("classification", "regression", "multiclass", "multilabel")
CATEGORICAL_ENCODINGS = ("auto", "vocabulary", "hash")  # as FeatureTransform (documented in docs/spec.md)
_TOP_LEVEL = ("name", "description", "data", "target", "keys", "split", "features", "models",
              "baseline", "output", "tuning", "distribution", "validation", "register", "two_phase",
               "monitoring", "fairness", "explain")
COMPARISONS = {"greater_than": ">", "at_least": ">=", "less_than": "<", "at_most": "<=", "equals": "=="}


@dataclass
class Spec:
    """A validated spec. Build it with :func:`load_spec` or :func:`parse_spec`."""

    name: str
    data: dict[str, Any]
    target: dict[str, Any]
    split: dict[str, Any]
    features: dict[str, Any]
    models: dict[str, dict[str, Any]]
    keys: list[str] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: Path | None = None
    tuning: dict[str, Any] = field(default_factory=dict)  # Hyperparameter Tuning (15); see spec.tuning
    distribution: dict[str, Any] = field(default_factory=dict)  # Distribution Strategy (14)
    target_declared: tuple[str, ...] = ()  # the target fields the spec wrote itself (the rest are defaults)
    validation: dict[str, Any] = field(default_factory=dict)  # Workflow Pipeline (25): see spec.pipeline_sections
    register: dict[str, Any] = field(default_factory=dict)  # Model Versioning (27): empty = do not register
    two_phase: dict[str, Any] = field(default_factory=dict)  # Two-Phase Predictions (19): see spec.two_phase
    monitoring: dict[str, Any] = field(default_factory=dict)  # Continued Model Evaluation (18): spec.monitoring
    fairness: dict[str, Any] = field(default_factory=dict)  # Fairness Lens (30): see spec.fairness_lens
    explain: dict[str, Any] = field(default_factory=dict)  # Explainable Predictions (29): spec.explainable_predictions

    @property
    def task(self) -> str:
        return self.target["task"]

    @property
    def output_dir(self) -> Path:
        directory = Path(self.output.get("dir", f"runs/{self.name}"))
        if not directory.is_absolute() and self.source is not None and self.output.get("relative_to_spec"):
            directory = self.source.parent / directory
        return directory

    @property
    def label_columns(self) -> list[str]:
        """The target column(s): one, or a multilabel target's label columns."""
        return list(self.target["columns"]) if self.task == "multilabel" else [self.target["column"]]

    def feature_transform(self) -> Any:
        """The declared features as an unfitted :class:`~mlpatterns.reproducibility.transform.FeatureTransform`
        (Transform, 21): what ``mlpatterns run`` fits on the train split."""
        from mlpatterns.reproducibility.transform import FeatureTransform

        features = self.features
        return FeatureTransform(numeric=features["numeric"], categorical=features["categorical"],
                                bucketize=features["bucketize"], crosses=features["crosses"],
                                date_parts=features["date_parts"], text=features.get("text"))

    def feature_columns(self) -> dict[str, str]:
        """Every raw column a feature reads, with where it is declared."""
        columns: dict[str, str] = {}
        for column in self.features.get("numeric", []):
            columns[column] = f"features.numeric.{column}"
        for group in ("categorical", "bucketize", "date_parts", "text"):
            for column in self.features.get(group, {}):
                columns[column] = f"features.{group}.{column}"
        derived = {f"{c}_{p}" for c, parts in self.features.get("date_parts", {}).items() for p in parts}
        for i, cross in enumerate(self.features.get("crosses", [])):
            for column in cross["columns"]:
                if column not in derived:
                    columns.setdefault(column, f"features.crosses[{i}].columns")
        return columns

    def check_columns(self, columns: Mapping[str, Any]) -> None:
        """Check every named column against the loaded data's columns and dtypes."""
        import pandas as pd

        available = list(columns)

        def known(column: str, where: str) -> None:
            expect(column in columns, where, f"unknown column {column!r}; the data has {available}")

        for i, column in enumerate(self.label_columns):
            known(column, f"target.columns[{i}]" if self.task == "multilabel" else "target.column")
        if "column" in self.target.get("neutral", {}):
            known(self.target["neutral"]["column"], "target.neutral.column")
        for i, key in enumerate(self.keys):
            known(key, f"keys[{i}]")
        for i, key in enumerate(self.split["key"]):
            known(key, f"split.key[{i}]")
        if self.split.get("by") == "time":
            known(self.split["column"], "split.column")
        for column, where in self.feature_columns().items():
            known(column, where)
        if "bridge" in self.data:
            column = self.data["bridge"]["column"]
            known(column, "data.bridge.column")
        for i, level in enumerate(self.baseline.get("levels", [])):
            for column in level:
                known(column, f"baseline.levels[{i}]")
        numeric_needed = {c: f"features.numeric.{c}" for c in self.features.get("numeric", [])}
        numeric_needed.update({c: f"features.bucketize.{c}" for c in self.features.get("bucketize", {})})
        for i, column in enumerate(self.baseline.get("threshold_columns", [])):  # the one cut of a number
            known(column, f"baseline.threshold_columns[{i}]")
            numeric_needed.setdefault(column, f"baseline.threshold_columns[{i}]")
        if self.task == "regression" or "positive_when" in self.target:
            numeric_needed[self.target["column"]] = "target.column"
        for i, column in enumerate(self.target.get("columns", [])):
            numeric_needed[column] = f"target.columns[{i}]"
        for column, where in numeric_needed.items():
            dtype = columns[column]
            hint = ""
            if where == "target.column" and self.task == "regression" and "task" not in self.target_declared:
                hint = ("; a regression is the default task: for labels set task: classification (two classes) "
                        "or task: multiclass")
            expect(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype), where,
                   f"expected a numeric column, but {column!r} has type {dtype}{hint}")
        if self.task == "regression" and "task" not in self.target_declared:
            dtype = columns[self.target["column"]]
            expect(not pd.api.types.is_bool_dtype(dtype), "target.column",
                   f"{self.target['column']!r} holds true/false (or Yes/No) values, and a regression is the "
                   "default task: set task: classification")
        for column in self.features.get("text", {}):  # Transfer Learning (13): the encoder reads text
            dtype = columns[column]
            expect(pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype),
                   f"features.text.{column}", f"expected a text column, but {column!r} has type {dtype}")


def _parse_target(raw: Any) -> dict[str, Any]:
    target = mapping(raw, "target", ("column", "columns", "task", "positive_when", "positive_label", "reframe",
                                      "neutral"))
    if "columns" in target:  # Multilabel (6): one 0/1 column per label
        expect("column" not in target, "target", "expected 'column' (one target) or 'columns' (labels), not both")
        columns = string_list(target["columns"], "target.columns")
        expect(len(columns) >= 2 and len(set(columns)) == len(columns), "target.columns",
               f"expected at least two distinct label columns, got {columns!r}")
        target["columns"] = columns
        task = target.setdefault("task", "multilabel")
        expect(task == "multilabel", "target.task", f"label 'columns' make a multilabel task, got {task!r}")
        for field_name in ("positive_when", "positive_label", "reframe", "neutral"):
            expect(field_name not in target, f"target.{field_name}", "does not apply to a multilabel target")
        return target
    expect("column" in target, "target", "missing field 'column' (the column to predict)")
    expect(isinstance(target["column"], str), "target.column", "expected a column name")
    rule = "positive_when" in target or "positive_label" in target
    task = target.setdefault("task", "classification" if rule else "regression")
    expect(task in TASKS, "target.task", f"expected one of {list(TASKS)}, got {task!r}")
    expect(task != "multilabel", "target.task", "a multilabel task takes its labels from 'columns'")
    if task == "multiclass":  # one class among several, text or integer labels
        for field_name in ("positive_when", "positive_label", "reframe", "neutral"):
            expect(field_name not in target, f"target.{field_name}",
                   "does not apply to a multiclass target (each label is a class of its own)")
    expect("positive_label" not in target or task == "classification", "target.positive_label",
           f"only applies to a binary classification target, not to a {task} one")
    if "positive_label" in target:
        label = target["positive_label"]
        expect(isinstance(label, (str, int, bool)) and not isinstance(label, float), "target.positive_label",
               f"expected the label (text, a whole number or true/false) that counts as positive, got {label!r}")
    if "neutral" in target:  # Neutral Class (9)
        target["neutral"] = _parse_neutral(target)
    if "positive_when" in target:
        expect(task == "classification", "target.positive_when", "only applies to classification")
        rule = mapping(target["positive_when"], "target.positive_when", tuple(COMPARISONS))
        expect(len(rule) == 1, "target.positive_when", f"expected exactly one of {list(COMPARISONS)}")
        (_, threshold), = rule.items()
        expect(isinstance(threshold, (int, float)) and not isinstance(threshold, bool),
               "target.positive_when", f"expected a number, got {threshold!r}")
    if "reframe" in target:
        expect(task == "regression", "target.reframe", "reframes a regression target; the task is classification")
        reframe = mapping(target["reframe"], "target.reframe", ("buckets", "strategy", "quantiles"))
        buckets = reframe.setdefault("buckets", 20)
        expect(isinstance(buckets, int) and not isinstance(buckets, bool) and buckets >= 2,
               "target.reframe.buckets", f"expected a whole number of buckets, at least 2, got {buckets!r}")
        strategy = reframe.setdefault("strategy", "quantile")
        expect(strategy in ("quantile", "uniform"), "target.reframe.strategy",
               f"expected 'quantile' or 'uniform', got {strategy!r}")
        quantiles = reframe.setdefault("quantiles", [0.1, 0.5, 0.9])
        expect(isinstance(quantiles, list) and all(isinstance(q, (int, float)) and 0 < q < 1 for q in quantiles),
               "target.reframe.quantiles", f"expected numbers between 0 and 1, got {quantiles!r}")
        target["reframe"] = reframe
    return target


def _parse_neutral(target: dict[str, Any]) -> dict[str, Any]:
    where = "target.neutral"
    expect(target["task"] == "classification", where, "applies to a classification target")
    neutral = mapping(target["neutral"], where, ("band", "column"))
    expect(len(neutral) == 1, where, "expected 'band: [low, high]' (of the target column) or 'column: NAME' "
           "(a true/false column marking ambiguous rows)")
    if "band" in neutral:
        band = neutral["band"]
        expect(isinstance(band, list) and len(band) == 2
               and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in band)
               and band[0] <= band[1], f"{where}.band", f"expected [low, high] with low <= high, got {band!r}")
        expect("positive_when" in target, f"{where}.band",
               "a band of the target column needs 'positive_when' (the cut that the band surrounds)")
        (_, cut), = target["positive_when"].items()
        expect(band[0] <= cut <= band[1], f"{where}.band",
               f"expected a band around the positive_when cut {cut}, got {band!r}")
    else:
        expect(isinstance(neutral["column"], str), f"{where}.column", "expected a column name")
    return neutral


def _parse_split(raw: Any) -> dict[str, Any]:
    # 'split: none' (Useful Overfitting, 11): train, valid and test are all the whole data set. That is right
    # only for a deterministic function over a fully enumerated input space (an emulator's grid); any other
    # data needs a held-out split, or its test metrics measure memorisation.
    if raw == "none":
        return {"none": True, "key": []}
    expect(isinstance(raw, Mapping), "split", "expected a mapping with 'key' (the column(s) whose hash decides "
           f"the split), or 'none' (no held-out split, for an emulator's enumerated grid), got {raw!r}")
    if raw.get("by") == "time":
        return _parse_time_split(raw)
    split = mapping(raw, "split", ("by", "key", "fractions", "num_buckets", "separator", "nulls"))
    expect(split.pop("by", "hash") == "hash", "split.by",
           f"expected 'hash' (the default: by a hash of the key) or 'time' (sequential), got {raw.get('by')!r}")
    expect("key" in split, "split", "missing field 'key' (the column(s) whose hash decides the split)")
    split["key"] = string_list(split["key"], "split.key")
    _check_nulls(split)
    num_buckets = split.setdefault("num_buckets", 100)
    positive_int(num_buckets, "split.num_buckets")
    expect(isinstance(split.setdefault("separator", ""), str), "split.separator",
           f"expected the text put between the key columns, got {split['separator']!r}")
    split["fractions"] = _parse_fractions(split.get("fractions"))
    for name, value in split["fractions"].items():  # whole buckets of ABS(MOD(FARM_FINGERPRINT(key), N))
        expect(abs(value * num_buckets - round(value * num_buckets)) < 1e-9, f"split.fractions.{name}",
               f"expected a multiple of 1/num_buckets = {1 / num_buckets:g} (whole hash buckets), got {value!r}")
    return split


def _check_nulls(split: dict[str, Any]) -> None:
    nulls = split.setdefault("nulls", "raise")
    expect(nulls in ("raise", "exclude"), "split.nulls",
           f"expected 'raise' (a null split value stops the run) or 'exclude' (such rows join no split), "
           f"got {nulls!r}")


def _parse_time_split(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Sequential split (Repeatable Splitting, 22, for time series): train on the past, test on the future."""
    split = mapping(raw, "split", ("by", "column", "cutoffs", "fractions", "nulls"))
    expect(isinstance(split.get("column"), str), "split.column",
           f"a time split needs the time column's name, got {split.get('column')!r}")
    expect(not ("cutoffs" in split and "fractions" in split), "split",
           "expected 'cutoffs' (the first valid and the first test time) or 'fractions', not both")
    _check_nulls(split)
    if "cutoffs" in split:
        cutoffs = mapping(split["cutoffs"], "split.cutoffs", ("valid", "test"))
        expect(set(cutoffs) == {"valid", "test"}, "split.cutoffs",
               f"expected the first time of the 'valid' and of the 'test' split, got {sorted(cutoffs)}")
        for name, value in cutoffs.items():
            ok = isinstance(value, (str, int, float, dt.date)) and not isinstance(value, bool)
            expect(ok, f"split.cutoffs.{name}", f"expected a date, a timestamp or a number, got {value!r}")
            cutoffs[name] = value.isoformat() if isinstance(value, dt.date) else value
        split["cutoffs"] = {"valid": cutoffs["valid"], "test": cutoffs["test"]}
        order = [_comparable_time(cutoffs[name]) for name in ("valid", "test")]
        if None not in order and type(order[0]) is type(order[1]):
            expect(order[0] < order[1], "split.cutoffs", f"the valid split must start before the test split, "
                   f"got valid {cutoffs['valid']!r} and test {cutoffs['test']!r}")
    else:
        split["fractions"] = _parse_fractions(split.get("fractions"))
    split.update(by="time", key=[])
    return split


def _comparable_time(value: Any) -> Any:
    """A cut-off as a number or a UTC timestamp, to check the order of two; None when it does not parse."""
    if isinstance(value, (int, float)):
        return float(value)
    try:
        stamp = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return stamp.replace(tzinfo=dt.UTC) if stamp.tzinfo is None else stamp.astimezone(dt.UTC)


def _parse_fractions(raw: Any) -> dict[str, float]:
    fractions = mapping(raw if raw is not None else {"train": 0.8, "valid": 0.1, "test": 0.1},
                        "split.fractions", ("train", "valid", "test"))
    expect(set(fractions) == {"train", "valid", "test"}, "split.fractions",
           f"expected train, valid and test fractions, got {sorted(fractions)}")
    for name, value in fractions.items():
        expect(isinstance(value, (int, float)) and 0 < value < 1, f"split.fractions.{name}",
               f"expected a number between 0 and 1, got {value!r}")
    expect(abs(sum(fractions.values()) - 1) < 1e-9, "split.fractions",
           f"the fractions must add up to 1, they add up to {sum(fractions.values())}")
    # train, valid, test in this order whatever the YAML's order: hash buckets are handed
    # out in order, so another order would put other keys in each split
    return {name: fractions[name] for name in ("train", "valid", "test")}


def _parse_features(raw: Any) -> dict[str, Any]:
    features = mapping(raw, "features", ("numeric", "categorical", "bucketize", "crosses", "date_parts", "text"))
    features["numeric"] = string_list(features.get("numeric", []), "features.numeric")
    features["text"] = _parse_text(features.get("text", {}) or {})
    features["categorical"] = _parse_categorical(features.get("categorical", {}) or {})
    for group in ("bucketize", "date_parts"):
        features[group] = mapping(features.get(group, {}) or {}, f"features.{group}")
    for column, how in features["bucketize"].items():
        where = f"features.bucketize.{column}"
        how = mapping(how, where, ("quantiles", "boundaries"))
        expect(len(how) == 1, where, "expected 'quantiles: N' or 'boundaries: [...]'")
        if "quantiles" in how:
            n = how["quantiles"]
            expect(isinstance(n, int) and not isinstance(n, bool) and n >= 2, f"{where}.quantiles",
                   f"expected a whole number of bins, at least 2, got {n!r}")
        else:
            edges = how["boundaries"]
            expect(isinstance(edges, list) and edges and all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                              for e in edges) and edges == sorted(set(edges)),
                    f"{where}.boundaries", f"expected increasing numbers, got {edges!r}")
    for column, parts in features["date_parts"].items():
        expect(isinstance(parts, list) and all(isinstance(p, str) for p in parts) and parts,
               f"features.date_parts.{column}", f"expected a list of calendar parts, got {parts!r}")
        unknown = sorted(set(parts) - set(DATE_PARTS))
        expect(not unknown, f"features.date_parts.{column}",
               f"unknown part(s) {unknown}; expected some of {list(DATE_PARTS)}")
    crosses = features.get("crosses", []) or []
    expect(isinstance(crosses, list), "features.crosses", "expected a list of crosses")
    for i, cross in enumerate(crosses):
        where = f"features.crosses[{i}]"
        cross = mapping(cross, where, ("columns", "buckets"))
        columns = string_list(cross.get("columns"), f"{where}.columns")
        expect(2 <= len(columns) <= 4, f"{where}.columns", f"expected 2 to 4 columns, got {len(columns)}")
        buckets = cross.get("buckets")
        expect(isinstance(buckets, int) and not isinstance(buckets, bool) and buckets > 0,
               f"{where}.buckets", f"expected a positive number of hash buckets, got {buckets!r}")
    features["crosses"] = crosses
    expect(any(features[g] for g in ("numeric", "categorical", "bucketize", "crosses", "date_parts", "text")),
           "features", "declares no feature")
    return features


def _parse_categorical(raw: Any) -> dict[str, Any]:
    """Categorical columns: a list (each gets the encoding chosen from the training data), or a mapping of
    each column to a hash bucket count, ``auto``, or ``{encoding: auto|vocabulary|hash, buckets: N,
    min_frequency: K, max_categories: M}``, checked by the transform's own declaration check; a spec's
    ``encoding: hash`` also names its bucket count."""
    if isinstance(raw, Mapping):  # YAML's empty value means auto
        raw = {column: "auto" if how is None else how for column, how in raw.items()}
    try:
        categorical = normalize_categorical(raw)
    except ValueError as error:
        raise SpecError(f"features.{error}") from None
    for column, how in categorical.items():
        expect(not isinstance(how, Mapping) or how.get("encoding") != "hash" or "buckets" in how,
               f"features.categorical.{column}.buckets",
               "hashing needs a number of buckets (or encoding: auto to choose it from the training data)")
        expect(how != "hash", f"features.categorical.{column}",
               "hashing needs a number of buckets: {encoding: hash, buckets: N} (or auto)")
    return categorical


def _parse_text(raw: Any) -> dict[str, dict[str, Any]]:
    """Transfer Learning (13): text columns whose features are a frozen pretrained encoder's bottleneck."""
    text = mapping(raw, "features.text")
    for column, how in text.items():
        where = f"features.text.{column}"
        how = mapping(how, where, ("encoder",))
        expect("encoder" in how, where, f"missing field 'encoder'; expected one of {list(TEXT_ENCODERS)}")
        expect(how["encoder"] in TEXT_ENCODERS, f"{where}.encoder",
               f"unknown encoder {how['encoder']!r}; expected one of {list(TEXT_ENCODERS)}")
        text[column] = how
    return text


def _member(raw: Any, where: str) -> dict[str, Any]:
    """A model inside a stack or a cascade: a scikit-learn type and its parameters."""
    member = mapping(raw, where, ("type", "params"))
    expect(member.get("type") in MEMBER_TYPES, f"{where}.type",
           f"expected one of {list(MEMBER_TYPES)}, got {member.get('type')!r}")
    member["params"] = mapping(member.get("params", {}) or {}, f"{where}.params")
    return member


_MODEL_FIELDS = ("type", "params", "rebalance", "threshold", "members", "final", "n_splits", "router",
                 "typical", "extreme", "extreme_above", "checkpoints", "refit")
_CHECKPOINT_FIELDS = ("every", "keep_last", "dir", "init_from")


def _parse_checkpoints(raw: Any, where: str) -> dict[str, Any]:
    """Checkpoints (12) of a network: ``false``, or where and how often to save, and what to fine-tune from."""
    if raw is False:
        return {"enabled": False}
    checkpoints = mapping({} if raw is True or raw is None else raw, where, _CHECKPOINT_FIELDS)
    for name in ("every", "keep_last"):
        if name in checkpoints:
            positive_int(checkpoints[name], f"{where}.{name}")
    for name in ("dir", "init_from"):
        if name in checkpoints:
            value = checkpoints[name]
            expect(isinstance(value, str) and value.strip() != "", f"{where}.{name}",
                   f"expected a path, got {value!r}")
    return {"enabled": True, **checkpoints}


def _parse_model(name: str, raw: Any, target: dict[str, Any]) -> dict[str, Any]:
    where = f"models.{name}"
    model = mapping(raw, where, _MODEL_FIELDS)
    kind = model.get("type")
    expect(kind in MODEL_TYPES, f"{where}.type", f"expected one of {list(MODEL_TYPES)}, got {kind!r}")
    model["params"] = mapping(model.get("params", {}) or {}, f"{where}.params")
    task = target["task"]
    expect(not (kind in ("stacking", "cascade") and model["params"]), f"{where}.params",
           f"a {kind} model has no parameters of its own; give them to its "
           f"{'members and final' if kind == 'stacking' else 'router, typical and extreme'} models")
    if kind == "stacking":  # Ensembles (7)
        members = mapping(model.get("members"), f"{where}.members")
        expect(len(members) >= 2, f"{where}.members", "expected at least two members")
        for member_name in members:
            expect("__" not in member_name, f"{where}.members.{member_name}", "a member name cannot contain '__'")
        model["members"] = {k: _member(v, f"{where}.members.{k}") for k, v in members.items()}
        if "final" in model:
            model["final"] = _member(model["final"], f"{where}.final")
        expect(task in ("classification", "regression") and "neutral" not in target and "reframe" not in target,
               where, "a stack predicts a binary class or a value")
    if kind == "cascade":  # Cascade (8)
        expect(task == "regression" and "reframe" not in target, where,
               "a cascade routes a regression target (typical and extreme values)")
        for part in ("router", "typical", "extreme"):
            if part in model:
                model[part] = _member(model[part], f"{where}.{part}")
        if "extreme_above" in model:
            value = model["extreme_above"]
            expect(isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}.extreme_above",
                   f"expected the target value above which a row is extreme, got {value!r}")
    if kind in ("stacking", "cascade"):
        positive_int(model.setdefault("n_splits", 5), f"{where}.n_splits", least=2)
    if "refit" in model:  # a single gradient-boosted model refits on train + valid after early stopping
        expect(kind == "gradient_boosting", f"{where}.refit", f"applies to a gradient_boosting model, not {kind}")
        expect(task in ("classification", "regression", "multiclass") and not {"reframe", "neutral"} & set(target)
               and (model["rebalance"].get("method") if isinstance(model.get("rebalance"), Mapping) else None)
               in (None, "class_weight"), f"{where}.refit",
               "applies to a single gradient-boosted model of a binary, multiclass or regression target "
               "(without reframing, a neutral class or resampling)")
        expect(isinstance(model["refit"], bool), f"{where}.refit", f"expected true or false, got {model['refit']!r}")
    if "checkpoints" in model:
        expect(kind == "wide_and_deep", f"{where}.checkpoints",
               f"applies to a network (a wide_and_deep model), not to a {kind} model")
        model["checkpoints"] = _parse_checkpoints(model["checkpoints"], f"{where}.checkpoints")
    for part in ("members", "final", "router", "typical", "extreme", "extreme_above", "n_splits"):
        expect(part not in model or kind in ("stacking", "cascade"), f"{where}.{part}",
               "only applies to a stacking or cascade model")
    expect(kind != "anomaly_detector" or (task == "classification" and "neutral" not in target), where,
           "an anomaly detector scores a rare class of a binary classification target")
    expect("reframe" not in target or kind in ("gradient_boosting", "wide_and_deep"), f"{where}.type",
           f"a reframed target takes a gradient_boosting or wide_and_deep model, got {kind!r}")
    if "rebalance" in model:  # Rebalancing (10)
        rebalance = mapping(model["rebalance"], f"{where}.rebalance", ("method", "sampling_strategy", "n_estimators"))
        expect(task == "classification" and "neutral" not in target, f"{where}.rebalance",
               "applies to a binary classification target")
        allowed = NETWORK_REBALANCE_METHODS if kind == "wide_and_deep" else tuple(
            m for m in REBALANCE_METHODS if m != "output_bias")
        expect(rebalance.get("method") in allowed, f"{where}.rebalance.method",
               f"expected one of {list(allowed)} for a {kind} model, got {rebalance.get('method')!r}")
        expect(kind in ("gradient_boosting", "random_forest", "linear", "wide_and_deep"), f"{where}.rebalance",
               f"applies to a single model, not to a {kind} model")
        if "sampling_strategy" in rebalance:
            ratio = rebalance["sampling_strategy"]
            expect(isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and 0 < ratio <= 1,
                   f"{where}.rebalance.sampling_strategy",
                   f"expected the minority/majority ratio after resampling, in (0, 1], got {ratio!r}")
        if "n_estimators" in rebalance:
            positive_int(rebalance["n_estimators"], f"{where}.rebalance.n_estimators")
        model["rebalance"] = rebalance
    if "threshold" in model:  # threshold moving, tuned on the validation split
        threshold = model["threshold"]
        expect(task in ("classification", "multilabel") and "neutral" not in target, f"{where}.threshold",
               "applies to a binary or multilabel classification target")
        if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
            expect(0 < threshold < 1, f"{where}.threshold", f"expected a number in (0, 1), got {threshold!r}")
        else:
            threshold = mapping(threshold, f"{where}.threshold", ("strategy", "min_precision"))
            expect(len(threshold) == 1 and threshold.get("strategy", "f1") == "f1", f"{where}.threshold",
                   "expected a number, 'strategy: f1' or 'min_precision: P'")
            if "min_precision" in threshold:
                value = threshold["min_precision"]
                expect(task == "classification", f"{where}.threshold.min_precision",
                       "applies to a binary target; a multilabel target uses 'strategy: f1' or a number")
                expect(isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1,
                       f"{where}.threshold.min_precision", f"expected a number in (0, 1), got {value!r}")
            model["threshold"] = threshold
    return model


def parse_distribution(raw: Any, where: str = "distribution") -> dict[str, Any]:
    """Distribution Strategy (14): how many ``torchrun`` processes train the networks, on how many nodes.

    The spec's networks train on CPUs, so the ranks talk over gloo.
    """
    distribution = mapping(raw, where, ("processes", "nodes", "rendezvous"))
    distribution.setdefault("processes", 1)
    distribution.setdefault("nodes", 1)
    for name in ("processes", "nodes"):
        positive_int(distribution[name], f"{where}.{name}")
    rendezvous = distribution.get("rendezvous")
    if distribution["nodes"] > 1:
        host, _, port = rendezvous.rpartition(":") if isinstance(rendezvous, str) else ("", "", "")
        expect(host != "" and port.isdigit() and 0 < int(port) < 65536, f"{where}.rendezvous",
               f"several nodes meet at HOST:PORT (one of the nodes, a free port), got {rendezvous!r}")
    else:
        expect(rendezvous is None, f"{where}.rendezvous", "only applies with several nodes")
    return distribution


def _check_emulators(models: dict[str, dict[str, Any]], target: dict[str, Any], split: dict[str, Any],
                     features: dict[str, Any], data: dict[str, Any]) -> None:
    """Useful Overfitting (11): emulators and 'split: none' (see mlpatterns.spec.emulator)."""
    expect(not (split.get("none") and "sample_fraction" in data), "data.sample_fraction",
           "a spec with 'split: none' trains on the whole enumerated data set; a sample breaks the enumeration")
    emulators = [name for name, model in models.items() if model["type"] == "emulator"]
    if emulators:
        from mlpatterns.spec.emulator import check_emulator

        for name in emulators:
            check_emulator(name, models[name], target, split, features)


def _parse_models(raw: Any, target: dict[str, Any], check_params: bool = True) -> dict[str, dict[str, Any]]:
    models = mapping(raw, "models")
    expect(bool(models), "models", "expected at least one model")
    for name, model in models.items():
        check_plain_name(name, f"models.{name}")
        expect(name != "heuristic_benchmark", f"models.{name}", "this name is the heuristic benchmark's")
        models[name] = _parse_model(name, model, target)
    if check_params:
        for name, model in models.items():
            check_model_params(name, model, target)
    return models


def parse_spec(raw: Any, source: str | os.PathLike[str] | None = None, *, check_params: bool = True) -> Spec:
    """Validate a spec given as a mapping (the parsed YAML).

    ``check_params=False`` leaves out the one check that imports scikit-learn (each
    model's ``params``, built and fitted on a few rows); ``mlpatterns run`` makes it with
    :func:`check_spec_params` for the models it is about to train, so a run that finds
    every step in the cache stays light.
    """
    spec = mapping(raw, "spec", _TOP_LEVEL)
    for required in ("name", "data", "target", "split", "features", "models"):
        expect(required in spec, "spec", f"missing field {required!r}")
    expect(isinstance(spec["name"], str) and spec["name"].strip() != "", "name", "expected a non-empty string")
    check_plain_name(spec["name"], "name")  # the default output folder is runs/<name>
    data = mapping(spec["data"], "data", ("dataset", "path", "sample_fraction", "null_values", "feature_store",
                                                 "bridge", "windows"))
    expect(("dataset" in data) != ("path" in data), "data", "expected exactly one of 'dataset' or 'path'")
    if "path" in data:
        expect(isinstance(data["path"], str) and data["path"].strip() != "", "data.path",
               f"expected the path of a .csv, .csv.gz, .tsv or .parquet file, got {data['path']!r}")
    if "null_values" in data:
        expect("path" in data, "data.null_values", "applies to a file (data.path), not to a built-in data set")
        markers = data["null_values"]
        markers = [markers] if isinstance(markers, str) else markers
        expect(isinstance(markers, list) and bool(markers) and all(isinstance(m, str) for m in markers),
               "data.null_values",
               f"expected the texts that mean 'no value' in the file, e.g. ['NA', ''], got {data['null_values']!r}")
        data["null_values"] = list(markers)
    if "feature_store" in data:  # Feature Store (26): see spec.feature_store
        from mlpatterns.spec.feature_store import parse_feature_store

        data["feature_store"] = parse_feature_store(data["feature_store"])
    if "windows" in data:  # Windowed Inference (24): see spec.windowed_inference
        from mlpatterns.spec.windowed_inference import parse_windows

        data["windows"] = parse_windows(data["windows"])
    if "bridge" in data:  # Bridged Schema (23): see spec.bridged_schema
        from mlpatterns.spec.bridged_schema import parse_bridge

        data["bridge"] = parse_bridge(data["bridge"])
    if "dataset" in data:
        expect(data["dataset"] in DATASETS, "data.dataset", f"expected one of {list(DATASETS)}, got {data['dataset']!r}")
    if "sample_fraction" in data:
        fraction = data["sample_fraction"]
        expect(isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction <= 1,
               "data.sample_fraction", f"expected a number in (0, 1], got {fraction!r}")
    keys = string_list(spec.get("keys", []), "keys")
    from mlpatterns.spec.heuristic_benchmark import parse_baseline

    target = _parse_target(spec["target"])
    split, features = _parse_split(spec["split"]), _parse_features(spec["features"])
    baseline = parse_baseline(spec.get("baseline"), task=target["task"], split=split)  # Heuristic Benchmark (28)
    models = _parse_models(spec["models"], target, check_params)
    _check_emulators(models, target, split, features, data)
    tuning: dict[str, Any] = {}
    if spec.get("tuning") is not None:  # Hyperparameter Tuning (15): a study over one model's parameters
        from mlpatterns.spec.tuning import parse_tuning

        tuning = parse_tuning(spec["tuning"], models, target, _parse_model)
    distribution = {} if spec.get("distribution") is None else parse_distribution(spec["distribution"])
    expect(not (tuning and distribution.get("processes", 1) * distribution.get("nodes", 1) > 1), "distribution",
           "a spec with a tuning: section runs its trials in worker processes (tuning.n_workers); "
           "train the tuned model data-parallel in a spec without tuning:")
    from mlpatterns.spec.pipeline_sections import parse_register, parse_validation

    validation = parse_validation(spec.get("validation"))
    register = {} if spec.get("register") in (None, False) else parse_register(spec["register"], spec["name"], models)
    two_phase: dict[str, Any] = {}
    if spec.get("two_phase") is not None:  # Two-Phase Predictions (19): phase 1 for one of the models
        from mlpatterns.spec.two_phase import parse_two_phase

        two_phase = parse_two_phase(spec["two_phase"], models, target)
    monitoring: dict[str, Any] = {}
    if spec.get("monitoring") is not None:  # Continued Model Evaluation (18): thresholds, alerts, retraining
        from mlpatterns.spec.monitoring import parse_monitoring

        monitoring = parse_monitoring(spec["monitoring"], spec["name"], register, split, task=target.get("task"))
    fairness: dict[str, Any] = {}
    if spec.get("fairness") is not None:  # Fairness Lens (30): sensitive slices, thresholds, mitigations
        from mlpatterns.spec.fairness_lens import parse_fairness

        fairness = parse_fairness(spec["fairness"], target, features)
    explain: dict[str, Any] = {}
    if spec.get("explain") is not None:  # Explainable Predictions (29): baseline, rows, method
        from mlpatterns.spec.explainable_predictions import parse_explain

        explain = parse_explain(spec["explain"], target, features)
    if "windows" in data:  # a window over the label reads what serving never has
        for name, body in data["windows"]["features"].items():
            expect(body["column"] not in ([target["column"]] if "column" in target else target.get("columns", [])),
                   f"data.windows.features.{name}.column",
                   f"{body['column']!r} is the target: a window over earlier labels needs them at serving time, "
                   "which a request does not carry; window a column known when each row happens")
    if "bridge" in data:  # the bridged values are categories: the model must read the column as one
        expect(data["bridge"]["column"] in features.get("categorical", {}), "data.bridge.column",
               f"expected a column of features.categorical (the bridged values are categories), got "
               f"{data['bridge']['column']!r}")
    return Spec(
        validation=validation, register=register, two_phase=two_phase, monitoring=monitoring,
        fairness=fairness, explain=explain,
        target_declared=tuple(spec["target"]) if isinstance(spec["target"], Mapping) else (),
        name=spec["name"], description=spec.get("description", ""), data=data,
        target=target, split=split, features=features, models=models, keys=keys,
        baseline=baseline, output=mapping(spec.get("output", {}) or {}, "output", ("dir", "relative_to_spec")),
        source=Path(source) if source is not None else None, tuning=tuning, distribution=distribution,
    )


def data_path(spec: Spec) -> Path | None:
    """The file a spec's ``data.path`` names (relative to the working directory, else to the spec), or None for a
    built-in data set; a missing file is a :class:`SpecError`."""
    if "path" not in spec.data:
        return None
    path = Path(spec.data["path"])
    if not path.is_absolute() and spec.source is not None and not path.exists():
        path = spec.source.parent / path
    if not path.is_file():
        raise SpecError(f"data.path: no such file {str(path)!r}")
    return path


def check_spec_params(spec: Spec, models: Any = None) -> None:
    """The check of the models' ``params`` that :func:`parse_spec` leaves out with ``check_params=False``."""
    for name in spec.models if models is None else models:
        check_model_params(name, spec.models[name], spec.target)


def load_spec(path: str | os.PathLike[str], *, check_params: bool = True) -> Spec:
    """Read and validate a YAML spec file (``check_params``: see :func:`parse_spec`)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: no such spec file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML ({error})") from error
    if raw is None:
        raise SpecError(f"{path}: the spec is empty")
    try:
        return parse_spec(raw, source=path, check_params=check_params)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
