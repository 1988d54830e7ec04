"""The declarative project: one YAML file that names data, split, features, target and models.

``mlpatterns run SPEC.yaml`` reads it with :func:`load_spec`. Every mistake is
reported with the path of the field (``features.categorical.tailnum``) and what
was expected; column names are checked against the data once it is loaded
(:meth:`Spec.check_columns`). See ``examples/flights.yaml`` for a full spec.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MODEL_TYPES", "Spec", "SpecError", "load_spec", "parse_spec"]

MODEL_TYPES = ("gradient_boosting", "wide_and_deep")
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour")  # as FeatureTransform
DATASETS = ("flights", "natality", "movies")
TASKS = ("classification", "regression")
_TOP_LEVEL = ("name", "description", "data", "target", "keys", "split", "features", "models",
              "baseline", "output")
_COMPARISONS = {"greater_than": ">", "at_least": ">=", "less_than": "<", "at_most": "<=", "equals": "=="}


class SpecError(ValueError):
    """A spec that cannot be run; the message names the field and what was expected."""


def _expect(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise SpecError(f"{where}: {message}")


def _mapping(value: Any, where: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
    _expect(isinstance(value, Mapping), where, f"expected a mapping, got {type(value).__name__}")
    if allowed is not None:
        unknown = sorted(set(value) - set(allowed))
        _expect(not unknown, where, f"unknown field(s) {unknown}; expected some of {list(allowed)}")
    return dict(value)


def _string_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    _expect(isinstance(value, list) and all(isinstance(v, str) for v in value), where,
            f"expected a column name or a list of column names, got {value!r}")
    return list(value)


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

    @property
    def task(self) -> str:
        return self.target["task"]

    @property
    def output_dir(self) -> Path:
        directory = Path(self.output.get("dir", f"runs/{self.name}"))
        if not directory.is_absolute() and self.source is not None and self.output.get("relative_to_spec"):
            directory = self.source.parent / directory
        return directory

    def feature_columns(self) -> dict[str, str]:
        """Every raw column a feature reads, with where it is declared."""
        columns: dict[str, str] = {}
        for column in self.features.get("numeric", []):
            columns[column] = f"features.numeric.{column}"
        for group in ("categorical", "bucketize", "date_parts"):
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
            _expect(column in columns, where, f"unknown column {column!r}; the data has {available}")

        known(self.target["column"], "target.column")
        for i, key in enumerate(self.keys):
            known(key, f"keys[{i}]")
        for i, key in enumerate(self.split["key"]):
            known(key, f"split.key[{i}]")
        for column, where in self.feature_columns().items():
            known(column, where)
        for i, level in enumerate(self.baseline.get("levels", [])):
            for column in level:
                known(column, f"baseline.levels[{i}]")
        numeric_needed = {c: f"features.numeric.{c}" for c in self.features.get("numeric", [])}
        numeric_needed.update({c: f"features.bucketize.{c}" for c in self.features.get("bucketize", {})})
        if self.task == "regression" or "positive_when" in self.target:
            numeric_needed[self.target["column"]] = "target.column"
        for column, where in numeric_needed.items():
            dtype = columns[column]
            _expect(pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype), where,
                    f"expected a numeric column, but {column!r} has type {dtype}")


def _parse_target(raw: Any) -> dict[str, Any]:
    target = _mapping(raw, "target", ("column", "task", "positive_when", "positive_label", "reframe"))
    _expect("column" in target, "target", "missing field 'column' (the column to predict)")
    _expect(isinstance(target["column"], str), "target.column", "expected a column name")
    task = target.setdefault("task", "classification" if "positive_when" in target else "regression")
    _expect(task in TASKS, "target.task", f"expected one of {list(TASKS)}, got {task!r}")
    if "positive_when" in target:
        _expect(task == "classification", "target.positive_when", "only applies to classification")
        rule = _mapping(target["positive_when"], "target.positive_when", tuple(_COMPARISONS))
        _expect(len(rule) == 1, "target.positive_when", f"expected exactly one of {list(_COMPARISONS)}")
        (_, threshold), = rule.items()
        _expect(isinstance(threshold, (int, float)) and not isinstance(threshold, bool),
                "target.positive_when", f"expected a number, got {threshold!r}")
    if "reframe" in target:
        _expect(task == "regression", "target.reframe", "reframes a regression target; the task is classification")
        reframe = _mapping(target["reframe"], "target.reframe", ("buckets", "strategy", "quantiles"))
        buckets = reframe.setdefault("buckets", 20)
        _expect(isinstance(buckets, int) and not isinstance(buckets, bool) and buckets >= 2,
                "target.reframe.buckets", f"expected a whole number of buckets, at least 2, got {buckets!r}")
        strategy = reframe.setdefault("strategy", "quantile")
        _expect(strategy in ("quantile", "uniform"), "target.reframe.strategy",
                f"expected 'quantile' or 'uniform', got {strategy!r}")
        quantiles = reframe.setdefault("quantiles", [0.1, 0.5, 0.9])
        _expect(isinstance(quantiles, list) and all(isinstance(q, (int, float)) and 0 < q < 1 for q in quantiles),
                "target.reframe.quantiles", f"expected numbers between 0 and 1, got {quantiles!r}")
        target["reframe"] = reframe
    return target


def _parse_split(raw: Any) -> dict[str, Any]:
    split = _mapping(raw, "split", ("key", "fractions", "num_buckets", "separator"))
    _expect("key" in split, "split", "missing field 'key' (the column(s) whose hash decides the split)")
    split["key"] = _string_list(split["key"], "split.key")
    fractions = _mapping(split.setdefault("fractions", {"train": 0.8, "valid": 0.1, "test": 0.1}),
                         "split.fractions", ("train", "valid", "test"))
    _expect(set(fractions) == {"train", "valid", "test"}, "split.fractions",
            f"expected train, valid and test fractions, got {sorted(fractions)}")
    for name, value in fractions.items():
        _expect(isinstance(value, (int, float)) and 0 < value < 1, f"split.fractions.{name}",
                f"expected a number between 0 and 1, got {value!r}")
    _expect(abs(sum(fractions.values()) - 1) < 1e-9, "split.fractions",
            f"the fractions must add up to 1, they add up to {sum(fractions.values())}")
    split["fractions"] = fractions
    return split


def _parse_features(raw: Any) -> dict[str, Any]:
    features = _mapping(raw, "features", ("numeric", "categorical", "bucketize", "crosses", "date_parts"))
    features["numeric"] = _string_list(features.get("numeric", []), "features.numeric")
    for group in ("categorical", "bucketize", "date_parts"):
        features[group] = _mapping(features.get(group, {}) or {}, f"features.{group}")
    for column, buckets in features["categorical"].items():
        _expect(isinstance(buckets, int) and not isinstance(buckets, bool) and buckets > 0,
                f"features.categorical.{column}", f"expected a positive number of hash buckets, got {buckets!r}")
    for column, how in features["bucketize"].items():
        where = f"features.bucketize.{column}"
        how = _mapping(how, where, ("quantiles", "boundaries"))
        _expect(len(how) == 1, where, "expected 'quantiles: N' or 'boundaries: [...]'")
        if "quantiles" in how:
            n = how["quantiles"]
            _expect(isinstance(n, int) and not isinstance(n, bool) and n >= 2, f"{where}.quantiles",
                    f"expected a whole number of bins, at least 2, got {n!r}")
        else:
            edges = how["boundaries"]
            _expect(isinstance(edges, list) and edges and all(isinstance(e, (int, float)) and not isinstance(e, bool)
                                                              for e in edges) and edges == sorted(set(edges)),
                    f"{where}.boundaries", f"expected increasing numbers, got {edges!r}")
    for column, parts in features["date_parts"].items():
        _expect(isinstance(parts, list) and all(isinstance(p, str) for p in parts) and parts,
                f"features.date_parts.{column}", f"expected a list of calendar parts, got {parts!r}")
        unknown = sorted(set(parts) - set(DATE_PARTS))
        _expect(not unknown, f"features.date_parts.{column}",
                f"unknown part(s) {unknown}; expected some of {list(DATE_PARTS)}")
    crosses = features.get("crosses", []) or []
    _expect(isinstance(crosses, list), "features.crosses", "expected a list of crosses")
    for i, cross in enumerate(crosses):
        where = f"features.crosses[{i}]"
        cross = _mapping(cross, where, ("columns", "buckets"))
        columns = _string_list(cross.get("columns"), f"{where}.columns")
        _expect(2 <= len(columns) <= 4, f"{where}.columns", f"expected 2 to 4 columns, got {len(columns)}")
        buckets = cross.get("buckets")
        _expect(isinstance(buckets, int) and not isinstance(buckets, bool) and buckets > 0,
                f"{where}.buckets", f"expected a positive number of hash buckets, got {buckets!r}")
    features["crosses"] = crosses
    _expect(any(features[g] for g in ("numeric", "categorical", "bucketize", "crosses", "date_parts")),
            "features", "declares no feature")
    return features


def _parse_models(raw: Any) -> dict[str, dict[str, Any]]:
    models = _mapping(raw, "models")
    _expect(bool(models), "models", "expected at least one model")
    for name, model in models.items():
        model = _mapping(model, f"models.{name}", ("type", "params"))
        _expect(model.get("type") in MODEL_TYPES, f"models.{name}.type",
                f"expected one of {list(MODEL_TYPES)}, got {model.get('type')!r}")
        _mapping(model.setdefault("params", {}), f"models.{name}.params")
        models[name] = model
    return models


def parse_spec(raw: Any, source: str | os.PathLike[str] | None = None) -> Spec:
    """Validate a spec given as a mapping (the parsed YAML)."""
    spec = _mapping(raw, "spec", _TOP_LEVEL)
    for required in ("name", "data", "target", "split", "features", "models"):
        _expect(required in spec, "spec", f"missing field {required!r}")
    _expect(isinstance(spec["name"], str) and spec["name"].strip() != "", "name", "expected a non-empty string")
    data = _mapping(spec["data"], "data", ("dataset", "path", "sample_fraction"))
    _expect(("dataset" in data) != ("path" in data), "data", "expected exactly one of 'dataset' or 'path'")
    if "dataset" in data:
        _expect(data["dataset"] in DATASETS, "data.dataset", f"expected one of {list(DATASETS)}, got {data['dataset']!r}")
    if "sample_fraction" in data:
        fraction = data["sample_fraction"]
        _expect(isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction <= 1,
                "data.sample_fraction", f"expected a number in (0, 1], got {fraction!r}")
    keys = _string_list(spec.get("keys", []), "keys")
    baseline = _mapping(spec.get("baseline", {}) or {}, "baseline", ("levels", "min_count", "statistic"))
    if "levels" in baseline:
        _expect(isinstance(baseline["levels"], list), "baseline.levels", "expected a list of column lists")
        baseline["levels"] = [_string_list(level, f"baseline.levels[{i}]") for i, level in enumerate(baseline["levels"])]
    return Spec(
        name=spec["name"], description=spec.get("description", ""), data=data,
        target=_parse_target(spec["target"]), split=_parse_split(spec["split"]),
        features=_parse_features(spec["features"]), models=_parse_models(spec["models"]), keys=keys,
        baseline=baseline, output=_mapping(spec.get("output", {}) or {}, "output", ("dir", "relative_to_spec")),
        source=Path(source) if source is not None else None,
    )


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and validate a YAML spec file."""
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
        return parse_spec(raw, source=path)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
