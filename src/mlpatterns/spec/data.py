"""The data a spec names: reading it as serving will read it, and its target as numbers.

:func:`read_data` reads a built-in data set or a CSV/Parquet file with the one reader of
:mod:`mlpatterns.tables` (which serving uses too), with the spec's null markers, and
records how it read each true/false column (``Yes``/``No``) so that the bundle accepts
those texts back. :func:`make_target` turns the target column into 0/1 (binary), class
codes (multiclass), values (regression) or a 0/1 matrix (multilabel), naming labels by
the text the user sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.input_types import to_boolean
from mlpatterns.spec._checks import SpecError
from mlpatterns.spec.schema import COMPARISONS, Spec, data_path
from mlpatterns.tables import label_text, label_texts, read_frame

__all__ = ["data_path", "explain_text_columns", "join_stored_features", "load_data", "make_target",
           "neutral_mask", "read_data", "with_spec_option"]


def load_data(spec: Spec) -> pd.DataFrame:
    """The spec's data: a built-in data set or a CSV/Parquet file (read with DuckDB)."""
    return read_data(spec)[0]


def read_data(spec: Spec) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The spec's data, and how it was read: the null markers and, for each true/false column of a CSV, the
    texts that meant true and false (``Yes``/``No``), which serving must accept back."""
    from mlpatterns import datasets
    from mlpatterns.tables import TableError, boolean_texts

    reading: dict[str, Any] = {"null_values": spec.data.get("null_values"), "boolean_texts": {}}
    path = data_path(spec)
    if path is None:
        frame = getattr(datasets, f"load_{spec.data['dataset']}")()
    else:
        try:
            frame = read_frame(path, null_values=reading["null_values"])
            if len(frame) == 0:
                raise SpecError(f"data.path: {path} holds no data rows"
                                + ("" if len(frame.columns) > 1 else " (nor a header)"))
            # every true/false column, not only those the features use: the read does not depend on the
            # features, so the Workflow Pipeline re-runs from the transform when a feature changes
            flags = [c for c in frame.columns if pd.api.types.is_bool_dtype(frame[c].dtype)]
            reading["boolean_texts"] = boolean_texts(path, flags, null_values=reading["null_values"])
        except TableError as error:
            raise SpecError(f"data.path: {error}") from None
    if "windows" in spec.data:  # Windowed Inference (24): windows over every row of the file, before a sample
        from mlpatterns.spec.windowed_inference import join_window_features

        frame = join_window_features(spec.data["windows"], frame)
    fraction = spec.data.get("sample_fraction")
    if fraction is not None:
        from mlpatterns.reproducibility.repeatable_splitting import repeatable_sample

        # Sample on a finer bucketing than the split's (a multiple of it), so the sampled
        # keys still spread evenly over the split's buckets.
        buckets = spec.split.get("num_buckets", 100) * 100
        key = spec.split["key"] or [spec.split["column"]]  # a time split samples whole time points
        try:
            frame = repeatable_sample(frame, key, fraction, num_buckets=buckets, nulls=spec.split.get("nulls", "raise"),
                                      separator=spec.split.get("separator", ""))
        except ValueError as error:
            raise SpecError(f"data.sample_fraction: {with_spec_option(str(error))}") from None
        frame = frame.reset_index(drop=True)
    if "feature_store" in spec.data:  # Feature Store (26): the stored features as of each row's event time
        frame = join_stored_features(spec, frame)
    return frame, reading


def join_stored_features(spec: Spec, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the features of ``data.feature_store`` joined point in time correct (the offline store)."""
    from mlpatterns.spec.feature_store import feature_service

    service = feature_service(spec)
    try:
        return service.historical(frame)
    except (TypeError, ValueError) as error:
        raise SpecError(f"data.feature_store: {error}") from None


def explain_text_columns(spec: Spec, frame: pd.DataFrame) -> None:
    """A column the spec needs as numbers but the file gave as text: name the row and the value that did it."""
    from mlpatterns.tables import TableError, describe_bad_values

    path = data_path(spec)
    if path is None:
        return
    needed = {c: f"features.numeric.{c}" for c in spec.features.get("numeric", [])}
    needed.update({c: f"features.bucketize.{c}" for c in spec.features.get("bucketize", {})})
    if spec.task == "regression" or "positive_when" in spec.target:
        needed[spec.target["column"]] = "target.column"
    for column, where in needed.items():
        if column not in frame.columns or pd.api.types.is_numeric_dtype(frame[column].dtype) \
                or pd.api.types.is_bool_dtype(frame[column].dtype):
            continue
        try:
            bad = describe_bad_values(path, column, "number", null_values=spec.data.get("null_values"))
        except TableError:  # not a column of the file: a stored or window feature
            raise SpecError(f"{where}: expected numbers, but {column!r} (not a column of {path.name}: a feature "
                            f"joined from data.feature_store or data.windows) holds "
                            f"{frame[column].dtype} values; declare it in features.categorical") from None
        if bad is not None:
            raise SpecError(f"{where}: expected numbers, but {column!r} is read as text: in {path.name}, {bad}; "
                            f"fix that value, or declare it a null marker in data.null_values "
                            f"(e.g. null_values: {[*(spec.data.get('null_values') or ['']), bad.value]!r})")


def make_target(spec: Spec, frame: pd.DataFrame, reading: dict[str, Any] | None = None,
                ) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Rows with a known target, and the target as numbers (0/1 for classification, class codes for multiclass).

    A multilabel target is a matrix, one 0/1 column per label (Multilabel, 6). Labels are
    the text the user sees: a ``Yes``/``No`` column that the CSV reader took for booleans
    has the labels ``Yes`` and ``No`` (from ``reading``, see :func:`read_data`).
    """
    if spec.task == "multilabel":
        return _multilabel_target(spec, frame)
    column = frame[spec.target["column"]]
    flags = ((reading or {}).get("boolean_texts") or {}).get(spec.target["column"])  # Yes/No read as booleans
    if flags and spec.task != "regression" and "positive_when" not in spec.target:
        column = column.map({True: flags["true"][0], False: flags["false"][0]}, na_action="ignore") \
            if flags["true"] and flags["false"] else column
    known = column.notna().to_numpy()
    frame, column = frame.loc[known].reset_index(drop=True), column[known].reset_index(drop=True)
    if spec.task == "regression":
        return frame, column.to_numpy(dtype=np.float64), int((~known).sum())
    if spec.task == "multiclass":
        labels = label_texts(column)
        classes = _sorted_labels(column, labels)
        if len(classes) < 2:
            raise SpecError(f"target.column: a multiclass target needs at least two classes; "
                            f"{spec.target['column']!r} only holds {classes}")
        spec.target["classes"] = classes  # recorded in the manifest: the served class names
        codes = {label: i for i, label in enumerate(classes)}
        return frame, labels.map(codes).to_numpy(dtype=np.float64), int((~known).sum())
    if "positive_when" in spec.target:
        (rule, threshold), = spec.target["positive_when"].items()
        values = column.to_numpy(dtype=np.float64)
        target = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
                  "==": np.equal}[COMPARISONS[rule]](values, threshold)
    else:
        texts = label_texts(column)
        labels = _sorted_labels(column, texts)
        if "positive_label" in spec.target:
            label = spec.target["positive_label"]
            if isinstance(label, bool) and flags and flags["true" if label else "false"]:
                # YAML reads an unquoted Yes as true: the file's text for it
                label = flags["true" if label else "false"][0]
            label = label_text(label)
            if label not in labels:
                raise SpecError(f"target.positive_label: {spec.target['positive_label']!r} never occurs in "
                                f"{spec.target['column']!r}; its labels are {labels[:20]}")
        elif len(labels) != 2:
            hint = " (set task: multiclass for one class among several)" if len(labels) > 2 else ""
            raise SpecError(
                f"target.column: a classification target needs exactly two classes or a "
                f"'positive_when'/'positive_label' rule; {spec.target['column']!r} has {len(labels)} "
                f"value(s), e.g. {labels[:10]}{hint}"
            )
        else:
            label = labels[1]  # the second in sorted order; the run says so
            spec.target["positive_label_chosen"] = True
        spec.target["positive_label"] = label  # recorded in the manifest, as text
        spec.target["labels"] = labels
        target = (texts == label).to_numpy()
    return frame, target.astype(np.float64), int((~known).sum())


def _sorted_labels(column: pd.Series, texts: pd.Series) -> list[str]:
    """The distinct labels as text, in the order of their values: numbers by value, text alphabetically."""
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        values = sorted(column.unique().tolist())
        return list(dict.fromkeys(label_text(v) for v in values))
    return sorted(texts.unique().tolist())


def _multilabel_target(spec: Spec, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, int]:
    columns = spec.target["columns"]
    known = frame[columns].notna().all(axis=1).to_numpy()
    frame = frame.loc[known].reset_index(drop=True)
    labels = frame[columns].to_numpy(dtype=np.float64)
    for j, column in enumerate(columns):
        values = np.unique(labels[:, j])
        if not np.isin(values, (0.0, 1.0)).all():
            raise SpecError(f"target.columns[{j}]: expected 0/1 or true/false values in {column!r}, "
                            f"got e.g. {values[~np.isin(values, (0.0, 1.0))][:5].tolist()}")
    return frame, labels, int((~known).sum())


def neutral_mask(spec: Spec, frame: pd.DataFrame) -> np.ndarray | None:
    """Neutral Class (9): the rows whose binary label is arbitrary, or None without a neutral rule."""
    rule = spec.target.get("neutral")
    if rule is None:
        return None
    if "band" in rule:
        low, high = rule["band"]
        values = frame[spec.target["column"]].to_numpy(dtype=np.float64)
        return (values >= low) & (values <= high)
    column = frame[rule["column"]]
    values = column.map(to_boolean, na_action="ignore")
    bad = values.isna() & column.notna()
    if bad.any():
        raise SpecError(f"target.neutral.column: expected true/false values in {rule['column']!r}, "
                        f"got e.g. {column[bad].iloc[0]!r}")
    return values.fillna(False).to_numpy(dtype=bool)


def with_spec_option(message: str) -> str:
    """A component's advice in the spec's words: ``nulls='exclude'`` is ``split: {nulls: exclude}``."""
    return message.replace("pass nulls='exclude'", "set split: {nulls: exclude}").replace(
        "nulls='exclude'", "split: {nulls: exclude}")
