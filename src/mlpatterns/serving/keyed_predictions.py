"""Keyed Predictions (20) in batch: score a file, every output row carrying its input's key.

Problem: batch and asynchronous predictions come back split across workers or in
another order, and a client cannot match an output to its input.

Solution: the client's key columns pass through the stateless serving function
unchanged, next to each prediction. :func:`predict_file` streams a CSV or Parquet
file through a bundle in chunks (with progress), writes keys and predictions
(CSV, Parquet, or an SQLite table of precomputed predictions looked up by key: Batch
Serving, 17, :mod:`~mlpatterns.serving.batch_serving`), and writes every bad row, with its position, column and problem, to an errors
file instead of dropping it silently. It counts the keys that repeat and the
categories the model never saw, and it never loses a file: the output appears
only when the whole run succeeds. Given a prediction logger, it logs every scored row
(``source="batch"``) for Continued Model Evaluation (18), each chunk written to the log
before the next is scored.
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.serving.serving_contract import json_value
from mlpatterns.serving.stateless_serving_function import RowProblem, ServingFunction, good_rows
from mlpatterns.tables import iter_frames

__all__ = [
    "DuplicateKeyCounter",
    "OutputWriter",
    "PredictionSummary",
    "FrameRows",
    "bundle_identity",
    "checked_output_paths",
    "log_scored_rows",
    "predict_file",
    "prediction_table_options",
]

_OUTPUTS = (".csv", ".parquet", ".sqlite", ".db")


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


class OutputWriter:
    """Writes an output in chunks to a temporary file next to ``path``; :meth:`commit` renames it into place.

    The temporary file (``.<name>.<pid>-<random>.part``) is created exclusively, so an
    existing file is never written to; :meth:`abort` deletes only it. ``kind`` is
    ``"csv"`` (written as ``DataFrame.to_csv(index=False)`` writes it) or ``"parquet"``;
    ``table`` (:func:`prediction_table_options`) makes an SQLite table of precomputed
    predictions instead
    (:class:`~mlpatterns.serving.batch_serving.PredictionTableWriter`, which refuses a
    repeated key). Used by :func:`predict_file` and the Ray engine
    (:func:`~mlpatterns.serving.ray_batch_serving.predict_file_ray`), for outputs and
    errors files alike; one thread at a time.
    """

    def __init__(self, path: Path, kind: str, table: dict[str, Any] | None = None) -> None:
        self.path, self.kind = path, kind
        # created here, exclusively, with the permissions any new file gets (mkstemp's are 0600)
        self.temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
        self.temporary.open("x").close()
        self._parquet: Any = None
        self._table: Any = None
        if table is not None:
            from mlpatterns.serving.batch_serving import PredictionTableWriter

            try:
                self._table = PredictionTableWriter(self.temporary, shown_as=path, **table)
            except BaseException:
                self.temporary.unlink(missing_ok=True)
                raise
        self._started = False

    def write(self, frame: pd.DataFrame, rows: np.ndarray | None = None) -> None:
        """Append ``frame``; ``rows`` are its rows' input positions (a table names them in its errors)."""
        if self._table is not None:
            self._table.write(frame, rows)
        elif self.kind == "csv":
            text = _csv_text(frame, header=not self._started)
            if text is None:
                frame.to_csv(self.temporary, mode="a" if self._started else "w", header=not self._started, index=False)
            else:
                with self.temporary.open("ab" if self._started else "wb") as file:
                    file.write(text)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.temporary, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self._started = True

    def commit(self, empty_columns: list[str]) -> None:
        """Close the file and rename it into place; ``empty_columns`` head a CSV or Parquet file of no rows."""
        if not self._started and self._table is None:
            self.write(pd.DataFrame({c: [] for c in empty_columns}))
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._table is not None:
            self._table.close()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        """Close and delete the temporary file; whatever ``path`` held stays as it was."""
        if self._parquet is not None:
            self._parquet.close()
        if self._table is not None:
            self._table.abort()
        self.temporary.unlink(missing_ok=True)  # only ever our own temporary file


def _csv_text(frame: pd.DataFrame, *, header: bool) -> bytes | None:
    """The CSV that ``frame.to_csv(index=False)`` writes, byte for byte, by Arrow's writer; ``None``
    for a frame it cannot write alike (a column other than integers, float64 and text, or a text
    that needs quotes).

    Floats are formatted as pandas formats them (NumPy's shortest repr, the same as Python's
    ``repr``; a null as the empty field), then written as text with no quoting.
    """
    import io

    import pyarrow as pa
    import pyarrow.csv as pcsv

    columns = {}
    for name in frame.columns:
        values = frame[name]
        dtype = values.dtype
        if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            columns[name] = pa.array(values, from_pandas=True)
        elif dtype == np.float64:
            texts = np.array(list(map(repr, values.tolist())), dtype=object)
            texts[np.isnan(values.to_numpy())] = None
            columns[name] = pa.array(texts, type=pa.string())
        elif isinstance(dtype, pd.StringDtype) or (pd.api.types.is_object_dtype(dtype) and
                                                    pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")):
            columns[name] = pa.array(values, type=pa.string(), from_pandas=True)
        else:
            return None
    buffer = io.BytesIO()
    try:
        pcsv.write_csv(pa.table(columns) if columns else pa.table({}), buffer,
                       pcsv.WriteOptions(include_header=False, quoting_style="none"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # a text with a comma, quote or line break
        return None
    head = frame.head(0).to_csv(index=False).encode() if header else b""
    return head + buffer.getvalue()


class DuplicateKeyCounter:
    """Counts rows whose key repeats an earlier row's key, keeping one 64-bit print per distinct key.

    :meth:`add` takes the chunks of one file in order (the ``keys`` columns at least);
    ``duplicates`` is the count so far. A row with a null in a key column has no key
    and is not counted; without key columns nothing is.

    A row's print combines a vectorized hash of each key column (:func:`_key_prints`); the
    prints of the keys seen so far sit in a few sorted runs, two runs merged when they
    reach about the same size (as in a log-structured merge), so each print is merged
    about log2(chunks) times and a chunk is checked with one binary search per run. The
    memory is 8 bytes per distinct key: 80 MB for 10 million keys.
    """

    def __init__(self, keys: list[str]) -> None:
        self.keys, self.duplicates = keys, 0
        self._runs: list[np.ndarray] = []  # sorted uint64, sizes decreasing

    def add(self, frame: pd.DataFrame) -> None:
        """Count the rows of ``frame`` whose key repeats one of this chunk or of an earlier one."""
        if not self.keys or not len(frame):
            return
        complete = frame[self.keys].notna().all(axis=1).to_numpy()
        prints = np.sort(_key_prints(frame.loc[complete, self.keys]) if complete.any() else np.zeros(0, np.uint64))
        distinct = prints[np.concatenate([[True], prints[1:] != prints[:-1]])] if len(prints) else prints
        self.duplicates += len(prints) - len(distinct)
        for run in self._runs:
            if not len(distinct):
                break
            at = np.minimum(np.searchsorted(run, distinct), len(run) - 1)
            known = run[at] == distinct
            self.duplicates += int(known.sum())
            distinct = distinct[~known]
        if not len(distinct):
            return
        self._runs.append(distinct)
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            merged = np.concatenate([self._runs[-2], self._runs.pop()])
            merged.sort(kind="stable")  # two sorted runs: timsort merges them in linear time, in place
            self._runs[-1] = merged


_PRIME = np.uint64(0x100000001B3)  # FNV's 64-bit prime, to combine the columns' hashes


def _key_prints(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit print (uint64) of each row's key, from the key columns of ``frame`` (no nulls).

    Rows whose key columns hold the same BigQuery texts get the same print: each column
    is hashed in its own type, which is the same in every chunk of a file (CSV columns
    are text; a Parquet column has one type, its integers arriving as Python objects in
    a chunk with nulls are hashed as integers too), with
    :func:`pandas.util.hash_array`; other types (floats, dates, mixtures) are cast to
    BigQuery text first, each distinct value once. Different keys share a print with
    probability about 2**-64 per pair.
    """
    combined = np.zeros(len(frame), dtype=np.uint64)
    for position in range(frame.shape[1]):
        combined = combined * _PRIME + _column_prints(frame.iloc[:, position])
    return combined


def _column_prints(values: pd.Series) -> np.ndarray:
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return pd.util.hash_array(values.to_numpy(dtype=np.uint8))
    if pd.api.types.is_integer_dtype(dtype):  # 8 bytes, whatever the width: as Python integers give
        unsigned = pd.api.types.is_unsigned_integer_dtype(dtype)
        return pd.util.hash_array(values.to_numpy(dtype=np.uint64 if unsigned else np.int64))
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind == "string":  # str, object strings: each distinct one hashed once
        codes, uniques = pd.factorize(values)
        return pd.util.hash_array(np.asarray(uniques, dtype=object))[codes]
    if kind == "boolean":
        return pd.util.hash_array(values.to_numpy(dtype=np.uint8))
    if kind == "integer":  # Python integers: the same 8 bytes as an int64 or uint64 column of them
        for exact in (np.int64, np.uint64):
            try:
                return pd.util.hash_array(np.array(values.tolist(), dtype=exact))
            except OverflowError:
                pass
    from mlpatterns.hashing import to_bigquery_strings

    if kind in ("floating", "date", "mixed-integer-float"):  # equal values, equal texts
        codes, uniques = pd.factorize(values)
        texts = np.array([str(t) for t in to_bigquery_strings(uniques)], dtype=object)
        return pd.util.hash_array(texts)[codes] if len(texts) else np.zeros(len(values), dtype=np.uint64)
    return pd.util.hash_array(np.array([str(t) for t in to_bigquery_strings(values)], dtype=object))


def prediction_table_options(serving: ServingFunction, output_path: Path) -> dict[str, Any]:
    """The keyword arguments of a table of precomputed predictions for ``serving``'s outputs.

    Keys, outputs, the outputs' SQL types (from the signature) and the meta (the bundle's
    name, path and manifest sha256), for :class:`OutputWriter`'s ``table``
    (:class:`~mlpatterns.serving.batch_serving.PredictionTableWriter`). A bundle without
    key columns is refused with a ``ValueError`` naming ``output_path``: a lookup table
    needs keys.
    """
    if not serving.key_columns:
        raise ValueError(f"{output_path}: a .sqlite or .db output is a table of predictions looked up by key, "
                         f"and the bundle '{serving.name}' has no key columns (the spec's `keys:`); "
                         "write a .csv or .parquet output instead (its rows carry a `row` column)")
    manifest = serving.bundle.manifest
    from mlpatterns.bundles.format import manifest_digest

    sql = {"number": "REAL", "integer": "INTEGER", "text": "TEXT"}
    return {"keys": serving.key_columns, "outputs": serving.output_columns,
            "types": {o["name"]: sql[o["type"]] for o in serving.signature["outputs"] if o.get("type") in sql},
            "meta": {"bundle": serving.name, "bundle_path": str(serving.bundle.path),
                     "manifest_sha256": manifest.get("manifest_sha256") or manifest_digest(manifest)}}


class FrameRows:
    """Rows held as columns (``{name: list}``, e.g. :meth:`of` a frame), read as dicts of JSON values
    (:func:`json_value`), each built only when read: a prediction logger reads them in its flush
    thread. ``start`` and ``stop`` bound the rows; a slice is such a view too."""

    __slots__ = ("_columns", "_start", "_stop")

    def __init__(self, columns: dict[str, list[Any]], start: int = 0, stop: int | None = None) -> None:
        self._columns, self._start = columns, start
        self._stop = stop if stop is not None else len(next(iter(columns.values()), []))

    @classmethod
    def of(cls, frame: pd.DataFrame, columns: list[str]) -> FrameRows:
        """The rows of ``columns`` of ``frame``."""
        return cls({c: frame[c].tolist() for c in dict.fromkeys(columns)}, 0, len(frame))

    def __len__(self) -> int:
        return self._stop - self._start

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return FrameRows(self._columns, self._start + start, self._start + max(start, stop))
        length = len(self)
        if not -length <= index < length:
            raise IndexError(index)
        at = self._start + (index % length)
        return {name: json_value(values[at]) for name, values in self._columns.items()}


def log_scored_rows(logger: Any, serving: ServingFunction, raw: pd.DataFrame, conformed: pd.DataFrame,
                    result: pd.DataFrame, *, model: tuple[str, str], time_column: str | None = None) -> None:
    """Hand one scored chunk to a prediction logger (Continued Model Evaluation, 18) and write it.

    Each row's inputs are the model's input columns as conformed (the trained types: a CSV's
    numbers as numbers), its keys and the ``time_column`` as read; its outputs the result's
    output columns; ``model`` is the (name, version) the log records; ``source="batch"``. The
    logger is flushed at once, so that no row waits in (or overflows) its buffer.
    """
    if not len(result):
        return
    inputs = conformed[serving.input_columns].reset_index(drop=True)
    extra = [c for c in (*serving.key_columns, *([time_column] if time_column else [])) if c not in inputs.columns]
    for column in extra:
        inputs[column] = raw[column].to_numpy()
    names = [c for c in result.columns if c not in serving.key_columns and c != "row"]
    rows, outputs = FrameRows.of(inputs, list(inputs.columns)), FrameRows.of(result, names)
    keys = logged_key_texts(inputs, serving.key_columns)
    step = max(int(getattr(logger, "max_buffer_rows", len(result))), 1)  # a chunk larger than the buffer: in parts
    for start in range(0, len(result), step):
        logger.log_rows(model=model[0], version=model[1], source="batch", rows=rows[start:start + step],
                        outputs=outputs[start:start + step], key_columns=serving.key_columns, task=serving.task,
                        event_time_column=time_column, keys=None if keys is None else keys[start:start + step])
        logger.flush()


def logged_key_texts(frame: pd.DataFrame, key_columns: list[str] | tuple[str, ...]) -> list[str | None] | None:
    """Each row's key text for a prediction log, from the typed values of ``frame``'s key columns
    (None without key columns): ``row_key_text(row, key_columns, separator="|")``, the text
    :func:`~mlpatterns.serving.continued_evaluation.ground_truth.read_ground_truth` makes of a
    truth file's key, so that a timestamp key is ``2013-07-01 05:00:00`` on both sides (the row's
    JSON value, ISO text with a ``T``, would join no label); a null in any key column makes the key null."""
    if not key_columns:
        return None
    from mlpatterns.reproducibility.split_keys import concat_key_texts, key_value_text
    from mlpatterns.serving.continued_evaluation.prediction_log import KEY_SEPARATOR

    parts = []
    for column in key_columns:
        part = np.empty(len(frame), dtype=object)
        part[:] = [None if json_value(v) is None else key_value_text(v) for v in frame[column].tolist()]
        parts.append(part)
    texts = concat_key_texts(parts, KEY_SEPARATOR)
    return [t.decode("utf-8", "backslashreplace") if isinstance(t, bytes) else t for t in texts]


def bundle_identity(serving: ServingFunction) -> tuple[str, str]:
    """The (model, version) a prediction log records for a bundle: its name and the first 12 hex
    digits of its manifest digest."""
    from mlpatterns.bundles.format import manifest_digest

    manifest = serving.bundle.manifest
    return serving.name, str(manifest.get("manifest_sha256") or manifest_digest(manifest))[:12]


_ERRORS_HEADER = "row,column,problem"


def _is_errors_file(path: Path) -> bool:
    """Whether ``path`` is an errors file that :func:`predict_file` wrote (its header is ours)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.readline().strip() == _ERRORS_HEADER
    except OSError:
        return False


def checked_output_paths(input_path: Path, output_path: Path, overwrite: bool) -> tuple[str, Path]:
    """The output's kind (``csv``, ``parquet``, ``sqlite`` or ``db``) and its errors file ``<output>.errors.csv``.

    Refuses (``ValueError``), before anything is read, what would lose a file: another
    suffix, an output or errors file that is the input or a folder, an existing output
    unless ``overwrite``, an existing errors file that :func:`predict_file` did not write
    (its first line is not ``row,column,problem``), and an empty (0-byte) input.
    """
    suffix = next((s for s in _OUTPUTS if output_path.name.lower().endswith(s)), None)
    if suffix is None:
        raise ValueError(f"{output_path}: expected a .csv, .parquet, .sqlite or .db output file")
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
    prediction_log: Any = None,
    log_time_column: str | None = None,
    log_model: tuple[str, str] | None = None,
) -> PredictionSummary:
    """Score ``input_path`` with a bundle; write keyed predictions and an errors file.

    The errors file (``<output>.errors.csv``) lists each bad row's position in the
    input (0-based), the column and the problem; good rows are scored whatever the
    others hold, in every chunk. A CSV is read as text with the bundle's null markers
    (``signature["null_values"]``) and converted to the types the model was trained on
    (see :meth:`ServingFunction.conform`); a file without rows gives an output without
    rows once its columns are checked.

    A ``.sqlite`` or ``.db`` output is a table of precomputed predictions keyed by the
    bundle's key columns (:class:`~mlpatterns.serving.batch_serving.PrecomputedPredictions`
    reads it); a bundle without keys is refused for it, and so is a repeated key. The
    model and the writing run on a second thread while the next chunk is read, checked
    and transformed; two chunks are held at most.

    Nothing is lost: the output and the errors file are written to temporary files in
    the output's folder and renamed into place only when the whole run succeeds; a
    failed run (missing columns, an unreadable file, an interruption) leaves any
    earlier output and errors file untouched. An output path that is the input, or
    that does not end in ``.csv``, ``.parquet``, ``.sqlite`` or ``.db``, is refused before anything is read,
    and so is an existing output unless ``overwrite=True``: a file this function did not
    write is never replaced by accident. An existing ``<output>.errors.csv`` must be one
    that this function wrote (its header is ``row,column,problem``); a successful run
    replaces it, or removes it when there are no bad rows, so that it cannot be taken
    for this run's.

    ``prediction_log``, a :class:`~mlpatterns.serving.continued_evaluation.prediction_logger.PredictionLogger`,
    logs every scored row (:func:`log_scored_rows`) as ``log_model`` (name, version; default
    :func:`bundle_identity`), its event time from the input column ``log_time_column`` (a replay or
    a backfill; default: the time scored). The log is written as the chunks are scored and is not
    undone by a failed run (those predictions were made).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    kind, errors_path = checked_output_paths(input_path, output_path, overwrite)
    serving = bundle if isinstance(bundle, ServingFunction) else ServingFunction.load(bundle)
    table = prediction_table_options(serving, output_path) if kind in ("sqlite", "db") else None
    read = [*serving.key_columns, *serving.input_columns]
    if prediction_log is not None and log_time_column is not None and log_time_column not in read:
        read.append(log_time_column)
    identity = (log_model or bundle_identity(serving)) if prediction_log is not None else None
    total, frames = iter_frames(input_path, chunk_rows, null_values=serving.null_values, columns=read)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    writer = OutputWriter(output_path, kind, table)
    try:
        errors = OutputWriter(errors_path, "csv")
    except BaseException:
        writer.abort()
        raise
    keys, unseen_counts = DuplicateKeyCounter(serving.key_columns), getattr(serving.transform, "unseen_counts", None)
    unseen: dict[str, int] = {}
    task_id = progress.add_task(f"scoring {input_path.name}", total=total) if progress else None
    position = predicted = bad = 0
    add_row_key = not serving.key_columns

    def score(raw: pd.DataFrame, conformed: pd.DataFrame, features: Any, rows: np.ndarray) -> int:
        result = serving.predict_conformed(raw, conformed, features=features)
        if prediction_log is not None:
            log_scored_rows(prediction_log, serving, raw, conformed, result, model=identity,
                            time_column=log_time_column)
        if add_row_key:
            result.insert(0, "row", rows)
        if len(result):
            writer.write(result, rows)
        return len(result)

    def finish(scoring: Future[int], problems: list[RowProblem], size: int) -> None:
        nonlocal predicted, bad
        scored = scoring.result()
        if problems:
            errors.write(pd.DataFrame([{"row": p.row, "column": p.column, "problem": p.problem} for p in problems]))
        bad += len({p.row for p in problems})
        predicted += scored
        if progress is not None:
            progress.advance(task_id, size)

    # A second thread runs the model on a chunk's features and writes its predictions (ONNX Runtime
    # and Arrow release the GIL) while this one reads, checks and transforms the next: two chunks held.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlpatterns-predict")
    pending: tuple[Any, ...] | None = None
    try:
        for frame in frames:
            if identity is not None and log_time_column is not None and log_time_column not in frame.columns:
                raise ValueError(f"{input_path}: no column {log_time_column!r}, named as the prediction log's time "
                                 f"column (--log-time-column); the file has {list(frame.columns)}")
            conformed, problems = serving.conform(frame)
            good = good_rows(len(frame), problems)
            features = serving.features(conformed.iloc[good]) if good.any() else None
            scoring = pool.submit(score, frame.iloc[good], conformed.iloc[good], features, position + np.flatnonzero(good))
            if unseen_counts is not None and good.any():
                for column, count in unseen_counts(conformed.iloc[good]).items():
                    unseen[column] = unseen.get(column, 0) + int(count)
            keys.add(frame)
            shifted = [RowProblem(position + p.row, p.column, p.problem) for p in problems]
            if pending is not None:
                finish(*pending)
            pending = (scoring, shifted, len(frame))
            position += len(frame)
        if pending is not None:
            finish(*pending)
        writer.commit((["row"] if add_row_key else []) + serving.key_columns + serving.output_columns)
        if bad:
            errors.commit([])
        else:
            errors.abort()
            errors_path.unlink(missing_ok=True)  # a stale errors file of an earlier run of this output
    except BaseException:
        pool.shutdown(cancel_futures=True)  # waits for a chunk being scored: nothing writes after the abort
        writer.abort()  # only our temporary files go; an earlier output stays as it was
        errors.abort()
        raise
    finally:
        pool.shutdown()
    return PredictionSummary(position, predicted, bad, output_path, errors_path if bad else None,
                             keys.duplicates, unseen)
