"""Keyed Predictions (20) in batch: score a file, every output row carrying its input's key.

Problem: batch and asynchronous predictions come back split across workers or in
another order, and a client cannot match an output to its input.

Solution: the client's key columns pass through the stateless serving function
unchanged, next to each prediction. :func:`predict_file` streams a CSV or Parquet
file through a bundle in chunks (with progress), writes keys and predictions,
and writes every bad row, with its position, column and problem, to an errors
file instead of dropping it silently. It counts the keys that repeat and the
categories the model never saw, and it never loses a file: the output appears
only when the whole run succeeds.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.serving.stateless_serving_function import ServingFunction, good_rows
from mlpatterns.tables import iter_frames

__all__ = ["PredictionSummary", "predict_file"]

_OUTPUTS = (".csv", ".parquet")


@dataclass(frozen=True)
class PredictionSummary:
    """What a batch run did: rows read, scored and refused, and where the files are.

    ``duplicate_keys`` counts the rows whose key repeats an earlier row's key (across
    chunks); ``unseen_categories`` counts, per vocabulary column, the scored rows whose
    category the model never saw in training (empty when the transform cannot tell).
    """

    rows: int
    predicted: int
    bad_rows: int
    output: Path
    errors: Path | None
    duplicate_keys: int = 0
    unseen_categories: dict[str, int] = field(default_factory=dict)


class _Writer:
    """Writes chunks to a temporary file next to ``path``; :meth:`commit` renames it into place."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        # created here, exclusively, with the permissions any new file gets (mkstemp's are 0600)
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
        self.temporary.open("x").close()
        self._parquet: Any = None
        self._started = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(self.temporary, mode="a" if self._started else "w", header=not self._started, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.temporary, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self._started = True

    def commit(self, empty_columns: list[str]) -> None:
        if not self._started:
            self.write(pd.DataFrame({c: [] for c in empty_columns}))
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.temporary.unlink(missing_ok=True)  # only ever our own temporary file


class _KeyCounter:
    """Counts rows whose key repeats an earlier one, keeping one 64-bit fingerprint per distinct key."""

    def __init__(self, keys: list[str]) -> None:
        self.keys, self.duplicates = keys, 0
        self._seen = np.zeros(0, dtype=np.uint64)  # sorted

    def add(self, frame: pd.DataFrame) -> None:
        if not self.keys or not len(frame):
            return
        from mlpatterns.hashing import to_bigquery_strings

        complete = frame[self.keys].notna().all(axis=1).to_numpy()
        texts = [to_bigquery_strings(frame[k].iloc[complete]) for k in self.keys]
        joined = np.array(["\x1f".join(map(str, parts)) for parts in zip(*texts, strict=True)], dtype=object)
        prints = pd.util.hash_array(joined) if len(joined) else np.zeros(0, dtype=np.uint64)
        distinct = np.unique(prints)
        self.duplicates += len(prints) - len(distinct)
        if len(self._seen):
            at = np.minimum(np.searchsorted(self._seen, distinct), len(self._seen) - 1)
            known = self._seen[at] == distinct
            self.duplicates += int(known.sum())
            distinct = distinct[~known]
        # two sorted runs: the stable sort merges them in linear time
        self._seen = np.sort(np.concatenate([self._seen, distinct]), kind="stable")


_ERRORS_HEADER = "row,column,problem"


def _is_errors_file(path: Path) -> bool:
    """Whether ``path`` is an errors file that :func:`predict_file` wrote (its header is ours)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.readline().strip() == _ERRORS_HEADER
    except OSError:
        return False


def _checked_paths(input_path: Path, output_path: Path, overwrite: bool) -> tuple[str, Path]:
    """The output's kind and the errors file; refuse paths that would lose the input or another file."""
    suffix = next((s for s in _OUTPUTS if output_path.name.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{output_path}: expected a .csv or .parquet output file")
    errors_path = output_path.with_name(output_path.name + ".errors.csv")
    source = input_path.resolve()
    for path, what in ((output_path, "output"), (errors_path, "errors file")):
        if path.resolve() == source or (path.exists() and input_path.exists() and os.path.samefile(path, input_path)):
            raise ValueError(f"{path}: the {what} is the input file; write it somewhere else")
        if path.is_dir():
            raise ValueError(f"{path}: the {what} is a folder; give a file name")
    if output_path.exists() and not overwrite:
        raise ValueError(f"{output_path}: the output file exists; pass overwrite=True "
                         "(mlpatterns predict --overwrite) to replace it")
    if errors_path.exists() and not _is_errors_file(errors_path):
        raise ValueError(f"{errors_path}: a file that is not an errors file of mlpatterns predict has the name "
                         "of this output's errors file; move it or write the output elsewhere")
    if input_path.is_file() and input_path.stat().st_size == 0:
        raise ValueError(f"{input_path}: the file is empty (no header, no rows)")
    return suffix[1:], errors_path


def predict_file(
    bundle: str | os.PathLike[str] | ServingFunction,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 100_000,
    progress: Any = None,
    overwrite: bool = False,
) -> PredictionSummary:
    """Score ``input_path`` with a bundle; write keyed predictions and an errors file.

    The errors file (``<output>.errors.csv``) lists each bad row's position in the
    input (0-based), the column and the problem; good rows are scored whatever the
    others hold, in every chunk. A CSV is read as text with the bundle's null markers
    (``signature["null_values"]``) and converted to the types the model was trained on
    (see :meth:`ServingFunction.conform`); a file without rows gives an output without
    rows once its columns are checked.

    Nothing is lost: the output and the errors file are written to temporary files in
    the output's folder and renamed into place only when the whole run succeeds; a
    failed run (missing columns, an unreadable file, an interruption) leaves any
    earlier output and errors file untouched. An output path that is the input, or
    that does not end in ``.csv`` or ``.parquet``, is refused before anything is read,
    and so is an existing output unless ``overwrite=True``: a file this function did not
    write is never replaced by accident. An existing ``<output>.errors.csv`` must be one
    that this function wrote (its header is ``row,column,problem``); a successful run
    replaces it, or removes it when there are no bad rows, so that it cannot be taken
    for this run's.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    kind, errors_path = _checked_paths(input_path, output_path, overwrite)
    serving = bundle if isinstance(bundle, ServingFunction) else ServingFunction.load(bundle)
    total, frames = iter_frames(input_path, chunk_rows, null_values=serving.null_values)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    writer = _Writer(output_path, kind)
    try:
        errors = _Writer(errors_path, "csv")
    except BaseException:
        writer.abort()
        raise
    keys, unseen_counts = _KeyCounter(serving.key_columns), getattr(serving.transform, "unseen_counts", None)
    unseen: dict[str, int] = {}
    task_id = progress.add_task(f"scoring {input_path.name}", total=total) if progress else None
    position = predicted = bad = 0
    add_row_key = not serving.key_columns
    try:
        for frame in frames:
            conformed, problems = serving.conform(frame)
            good = good_rows(len(frame), problems)
            result = serving.predict_conformed(frame.iloc[good], conformed.iloc[good])
            if unseen_counts is not None and good.any():
                for column, count in unseen_counts(conformed.iloc[good]).items():
                    unseen[column] = unseen.get(column, 0) + int(count)
            keys.add(frame)
            if add_row_key:
                result.insert(0, "row", position + np.flatnonzero(good))
            if len(result):
                writer.write(result)
            if problems:
                errors.write(pd.DataFrame(
                    [{"row": position + p.row, "column": p.column, "problem": p.problem} for p in problems]))
            bad += len({p.row for p in problems})
            predicted += len(result)
            position += len(frame)
            if progress is not None:
                progress.advance(task_id, len(frame))
        writer.commit((["row"] if add_row_key else []) + serving.key_columns + serving.output_columns)
        if bad:
            errors.commit([])
        else:
            errors.abort()
            errors_path.unlink(missing_ok=True)  # a stale errors file of an earlier run of this output
    except BaseException:
        writer.abort()  # only our temporary files go; an earlier output stays as it was
        errors.abort()
        raise
    return PredictionSummary(position, predicted, bad, output_path, errors_path if bad else None,
                             keys.duplicates, unseen)
