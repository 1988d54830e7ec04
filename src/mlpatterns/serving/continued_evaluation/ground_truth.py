"""Ground truth that arrives late, joined to the logged predictions by key (Continued Model Evaluation, 18).

Problem: a deployed model's predictions can only be evaluated once the truth is known, often
hours or days later (a flight lands, a loan defaults), and in files that come whenever they
come, sometimes twice. Solution: read the truth file, turn each row into the key text the
prediction log used (:func:`mlpatterns.reproducibility.split_keys.row_key_text` with
``separator="|"``) and the label text (:func:`~mlpatterns.serving.continued_evaluation.
prediction_log.label_text`), and add the pairs to the log's ``labels`` table, tagged with
the sha256 of the file. The log joins every prediction of a key to its label whenever the
label arrives, and adding the same file again changes nothing.

The label is a label column, or the raw target column turned into the label by a rule given
as plain data, as a spec's target does: ``{"greater_than": 30}`` (also ``at_least``,
``less_than``, ``at_most``, ``equals``) makes "1" or "0", ``{"positive_label": "Yes"}``
makes "1" for that text and "0" for any other.

A CSV is read as text, as batch serving reads it, so a key is the very text of the file
(``007`` stays ``007``); Parquet values keep their types and become text as a key column
casts them (``CAST(x AS STRING)``): a timestamp ``2013-07-01 05:00:00`` (``+00`` when it
has a time zone), the key text ``mlpatterns predict --log`` logs for a typed timestamp key. A
request to the HTTP server sends a timestamp key as JSON text, which is logged as sent (see
:mod:`mlpatterns.serving.http.prediction_logging`).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COMPARISONS", "GroundTruthError", "LabelIngestion", "add_ground_truth", "read_ground_truth"]

COMPARISONS = {"greater_than": ">", "at_least": ">=", "less_than": "<", "at_most": "<=", "equals": "=="}
_CSV = (".csv", ".csv.gz", ".tsv")


class GroundTruthError(ValueError):
    """A truth file that cannot be read or used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class LabelIngestion:
    """What one truth file brought: its rows, the (key, label) pairs added and how the log took them.

    ``counts`` is the log's ``LabelCounts`` (added, changed, unchanged); ``no_label`` counts the rows
    whose label (or target) is null, which add nothing; ``repeated_keys`` the rows whose key came again
    later in the file (the last row of a key wins).
    """

    path: Path
    source: str
    rows: int
    labels: int
    no_label: int
    repeated_keys: int
    counts: Any = None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_columns(path: Path, columns: Sequence[str], null_values: Sequence[str] | None) -> dict[str, list[Any]]:
    """The named columns of a CSV (as text) or Parquet file (typed), as Python lists."""
    import duckdb

    if not path.is_file():
        raise GroundTruthError(f"{path}: no such truth file")
    name = path.name.lower()
    if not (name.endswith(".parquet") or name.endswith(_CSV)):
        raise GroundTruthError(f"{path}: expected a .csv, .csv.gz, .tsv or .parquet truth file")
    if path.stat().st_size == 0:
        raise GroundTruthError(f"{path}: the truth file is empty (no header, no rows)")
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        try:
            if name.endswith(".parquet"):
                relation = connection.read_parquet(str(path))
            else:
                options: dict[str, Any] = {} if not null_values else {"na_values": list(null_values)}
                relation = connection.read_csv(str(path), all_varchar=True, **options)
            available = list(relation.columns)
            missing = [c for c in columns if c not in available]
            if missing:
                raise GroundTruthError(f"{path}: no column(s) {missing}; the file has {available}")
            table = relation.select(*[duckdb.ColumnExpression(c) for c in dict.fromkeys(columns)]).arrow()
            table = table.read_all() if hasattr(table, "read_all") else table
        except duckdb.Error as error:
            raise GroundTruthError(f"{path}: cannot be read as a table ({' '.join(str(error).split())})") from None
    finally:
        connection.close()
    if table.num_rows == 0:
        raise GroundTruthError(f"{path}: the truth file has a header but no rows")
    return {c: table.column(c).to_pylist() for c in dict.fromkeys(columns)}


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_number(value: Any, where: str, row: int) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GroundTruthError(f"{where}: expected numbers for the rule, row {row} holds {value!r}") from None


def _typed(value: Any) -> Any:
    """A CSV cell's text as the value a typed reader would give (``1.0`` -> 1.0, ``true`` -> True)."""
    if not isinstance(value, str):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def _check_rule(rule: Mapping[str, Any] | None) -> tuple[str, Any] | None:
    if rule is None:
        return None
    allowed = (*COMPARISONS, "positive_label")
    if not isinstance(rule, Mapping) or len(rule) != 1 or next(iter(rule)) not in allowed:
        raise GroundTruthError(f"rule: expected exactly one of {list(allowed)} (e.g. {{'greater_than': 30}}), "
                               f"got {rule!r}")
    (kind, threshold), = rule.items()
    if kind != "positive_label" and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise GroundTruthError(f"rule.{kind}: expected a number, got {threshold!r}")
    return kind, threshold


def _labels(values: list[Any], rule: tuple[str, Any] | None, where: str) -> list[str | None]:
    """Each row's label text (None for a null label), by the rule or as the column's own value."""
    import operator

    from mlpatterns.serving.continued_evaluation.prediction_log import label_text

    compare = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
    out: list[str | None] = []
    for row, value in enumerate(values, start=1):
        if _is_null(value):
            out.append(None)
        elif rule is None:
            out.append(label_text(_typed(value)))
        elif rule[0] == "positive_label":
            out.append("1" if label_text(_typed(value)) == label_text(_typed(rule[1])) else "0")
        else:
            out.append("1" if compare[COMPARISONS[rule[0]]](_as_number(value, where, row), rule[1]) else "0")
    return out


def read_ground_truth(path: str | os.PathLike[str], keys: Sequence[str] | str, *, label: str | None = None,
                      target: str | None = None, rule: Mapping[str, Any] | None = None,
                      null_values: Sequence[str] | None = None) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """The (key text, label text) rows of a truth file, the last row of each key, and what was left out.

    Give ``label`` (a column holding the label) or ``target`` (the raw target column) with an optional
    ``rule`` (see the module's docstring). Raises :class:`GroundTruthError` for a missing column (named,
    with the file's columns), an empty file, a null key (how many, and the first row, counted from 1)
    or a file that cannot be read.
    """
    from mlpatterns.reproducibility.split_keys import concat_key_texts, key_value_text
    from mlpatterns.serving.continued_evaluation.prediction_log import KEY_SEPARATOR

    path = Path(path)
    keys = [keys] if isinstance(keys, str) else list(keys)
    if not keys:
        raise GroundTruthError("keys: name at least one key column (the prediction log's key)")
    if (label is None) == (target is None):
        raise GroundTruthError("expected a label column or a target column (with a rule), not both or neither")
    if label is not None and rule is not None:
        raise GroundTruthError("rule: applies to a raw target column, not to a label column")
    checked = _check_rule(rule)
    column = label if label is not None else target
    assert column is not None
    data = _read_columns(path, [*keys, column], null_values)
    import numpy as np

    parts = []
    for key in keys:
        part = np.empty(len(data[key]), dtype=object)
        part[:] = [key_value_text(v) for v in data[key]]
        parts.append(part)
    texts = concat_key_texts(parts, KEY_SEPARATOR)  # row_key_text(row, keys, separator="|"), row by row
    nulls = [i for i, text in enumerate(texts) if text is None]
    if nulls:
        raise GroundTruthError(f"{path}: key {keys if len(keys) > 1 else keys[0]!r} is null in {len(nulls)} row(s), "
                               f"the first in row {nulls[0] + 1} (counted from 1 after the header); "
                               "every truth row needs its key")
    labels = _labels(data[column], checked, f"{path}: {column}")
    latest: dict[str, str] = {}
    no_label = 0
    for text, value in zip(texts, labels, strict=True):
        key_text = text.decode() if isinstance(text, bytes) else str(text)
        if value is None:
            no_label += 1
            continue
        latest.pop(key_text, None)  # the last row of a key wins, in file order
        latest[key_text] = value
    repeated = len(texts) - no_label - len(latest)
    return list(latest.items()), {"rows": len(texts), "no_label": no_label, "repeated_keys": repeated}


def add_ground_truth(log: Any, path: str | os.PathLike[str], keys: Sequence[str] | str, *,
                     label: str | None = None, target: str | None = None, rule: Mapping[str, Any] | None = None,
                     null_values: Sequence[str] | None = None) -> LabelIngestion:
    """Read a truth file (:func:`read_ground_truth`) and add its labels to a prediction log, idempotently.

    ``log`` is a :class:`~mlpatterns.serving.continued_evaluation.prediction_log.PredictionLog`; the
    labels' source is the sha256 of the file's bytes, so the same file twice adds nothing.

    Examples
    --------
    >>> from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
    >>> with open_prediction_log("logs/predictions") as log:  # doctest: +SKIP
    ...     add_ground_truth(log, "truth/2013-07-02.csv", ["carrier", "flight", "time_hour"],
    ...                      target="arr_delay", rule={"greater_than": 30})
    """
    path = Path(path)
    rows, info = read_ground_truth(path, keys, label=label, target=target, rule=rule, null_values=null_values)
    source = _sha256(path)
    counts = log.add_labels(rows, source=source) if rows else None
    return LabelIngestion(path=path, source=source, rows=info["rows"], labels=len(rows), no_label=info["no_label"],
                          repeated_keys=info["repeated_keys"], counts=counts)
