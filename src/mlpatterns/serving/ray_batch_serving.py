"""Batch Serving (17) on a Ray cluster, every prediction carrying its key (Keyed Predictions, 20).

Problem: a table too large for one machine's cores has to be scored by many
workers at once, and predictions that come back from many workers must still be
matched to their inputs.

Solution: Ray Data splits the rows into blocks and maps them through a pool of
actors; each actor loads and verifies the bundle once (:class:`BundleScorer`) and
scores its blocks with the same :class:`ServingFunction` as ``mlpatterns predict``.
Every output row carries its input's key columns unchanged and its problems (none
for a scored row), so bad rows are reported, not dropped. :func:`predict_dataset`
maps a Ray Dataset; :func:`predict_file_ray` writes the same output and errors files
as :func:`~mlpatterns.serving.keyed_predictions.predict_file`, in input order, with
its writers: CSV, Parquet, or an SQLite table of precomputed predictions (Batch
Serving, 17: :mod:`~mlpatterns.serving.batch_serving`).
Given a prediction log URL (``mlpatterns predict --engine ray --log URL``: Continued Model
Evaluation, 18), each actor opens its own logger on it and writes every row it scores before
returning the block (the log's backends take appends from many processes; a folder of Parquet
files must then be one every node reaches, SQLite one machine's file).
Ray is imported only when these functions run (``pip install 'mlpatterns[pipeline]'``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlpatterns.bundles.format import BundleError, manifest_digest
from mlpatterns.serving.keyed_predictions import (
    DuplicateKeyCounter,
    OutputWriter,
    PredictionSummary,
    bundle_identity,
    checked_output_paths,
    log_scored_rows,
    prediction_table_options,
)
from mlpatterns.serving.stateless_serving_function import ServingFunction, good_rows
from mlpatterns.tables import iter_frames

__all__ = ["PROBLEMS", "BundleScorer", "connect_ray", "predict_dataset", "predict_file_ray"]

PROBLEMS = "problems"
"""The output column listing a row's problems (``{"column", "problem"}`` items); empty for a scored row."""

_UNSEEN = "unseen categories"  # per batch, on its first row: {column: count} as JSON (predict_file_ray only)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ImportError("the 'ray' engine needs Ray Data: pip install 'mlpatterns[pipeline]'") from error
    return ray


def connect_ray(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Connect to a Ray cluster, or start a local one; True if this call started or joined Ray.

    ``address`` (default: ``$RAY_ADDRESS``) is a cluster's address: ``ray://HOST:10001``
    (Ray Client), ``HOST:6379`` or ``auto`` (the cluster this node belongs to). Without
    one, a local Ray instance starts with ``num_cpus`` CPUs (default: this machine's).
    Nothing happens when Ray is already initialized (False).
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, **quiet)
    return True


def _shipped(serving: ServingFunction) -> dict[str, Any]:
    """The verified bundle as bytes, for actors that may run where its folder is not."""
    bundle = serving.bundle
    files = {"manifest.json": json.dumps(bundle.manifest).encode(), **bundle.files}
    if bundle.signature is not None:
        files["manifest.sig"] = bundle.signature
    return {"name": serving.name, "files": files, "digest": manifest_digest(bundle.manifest)}


def _public_key_bytes(public_key: str | os.PathLike[str] | bytes | None) -> bytes | None:
    return public_key if public_key is None or isinstance(public_key, bytes) else Path(public_key).read_bytes()


class BundleScorer:
    """A Ray Data callable class: loads and verifies the bundle once per actor, then scores pyarrow batches.

    The bundle travels as bytes (a cluster's nodes need no shared folder), is written to a
    temporary folder and read back with :meth:`ServingFunction.load`, so every file's
    sha256 (and the signature, given ``public_key``) is checked in each actor, and the
    manifest must be the one the driver verified. Each call returns one row per input row:
    the key columns as given, the bundle's outputs (null for a bad row), ``problems``, and
    the ``passthrough`` columns unchanged. ``log`` (``url``, ``model``, ``version``, ``time_column``)
    logs every scored row to a prediction log, through a logger of this actor's own.
    """

    def __init__(self, shipped: dict[str, Any], public_key: bytes | None = None,
                 passthrough: Sequence[str] = (), count_unseen: bool = False,
                 log: dict[str, Any] | None = None) -> None:
        folder = Path(tempfile.mkdtemp(prefix="mlpatterns-bundle-"))
        try:
            for name, data in shipped["files"].items():
                (folder / name).write_bytes(data)
            self.serving = ServingFunction.load(folder, public_key=public_key)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if manifest_digest(self.serving.bundle.manifest) != shipped["digest"]:
            raise BundleError(f"model '{shipped['name']}': the actor's manifest is not the one the driver verified")
        self.passthrough, self.count_unseen = list(passthrough), count_unseen
        self.log, self.logger = log, None
        if log is not None:
            from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger

            self.logger = PredictionLogger(log["url"])  # closed at the actor's exit; each block is written at once

    def __call__(self, batch: Any) -> Any:
        return _score_batch(self.serving, batch, self.passthrough, self.count_unseen, self.logger, self.log)


def _arrow_type(dtype: np.dtype) -> Any:
    import pyarrow as pa

    return pa.from_numpy_dtype(dtype) if dtype.kind in "iuf" else pa.string()  # text for class names


def _score_batch(serving: ServingFunction, batch: Any, passthrough: list[str], count_unseen: bool,
                 logger: Any = None, log: dict[str, Any] | None = None) -> Any:
    """One pyarrow batch in, one row per input row out (see :class:`BundleScorer`)."""
    import pyarrow as pa

    frame = batch.to_pandas(integer_object_nulls=True)  # as iter_frames converts a file's chunks
    conformed, problems = serving.conform(frame)
    good = good_rows(len(frame), problems)
    result = serving.predict_conformed(frame.iloc[good], conformed.iloc[good])
    if logger is not None and log is not None:
        log_scored_rows(logger, serving, frame.iloc[good], conformed.iloc[good], result,
                        model=(log["model"], log["version"]), time_column=log.get("time_column"))
    columns = {key: batch.column(key) for key in serving.key_columns}  # keys travel as stored, untouched
    for name in serving.output_columns:
        values = result[name].to_numpy()
        full = np.zeros(len(frame), dtype=values.dtype) if values.dtype != object else np.full(len(frame), None)
        full[good] = values
        columns[name] = pa.array(full, type=_arrow_type(values.dtype), mask=~good)
    listed: list[list[dict[str, str]]] = [[] for _ in range(len(frame))]
    for p in problems:
        listed[p.row].append({"column": p.column, "problem": p.problem})
    columns[PROBLEMS] = pa.array(listed, type=_PROBLEM_TYPE())
    for name in passthrough:
        columns[name] = batch.column(name)
    if count_unseen:
        counts = getattr(serving.transform, "unseen_counts", None)
        unseen = {c: int(n) for c, n in counts(conformed.iloc[good]).items()} if counts and good.any() else {}
        first = [json.dumps(unseen)] if len(frame) else []  # summed over batches by the driver
        columns[_UNSEEN] = pa.array(first + [None] * (len(frame) - 1), type=pa.string())
    return pa.table(columns)


def _PROBLEM_TYPE() -> Any:  # noqa: N802 - a type, built where pyarrow is imported
    import pyarrow as pa

    return pa.list_(pa.struct([("column", pa.string()), ("problem", pa.string())]))


def _actor_pool(ray: Any, concurrency: int | tuple[int, int] | None) -> Any:
    if concurrency is None:
        concurrency = max(1, int(ray.cluster_resources().get("CPU", 1)))
    if isinstance(concurrency, tuple):
        return ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    return ray.data.ActorPoolStrategy(size=concurrency)


def _read_paths(ray: Any, paths: list[str], serving: ServingFunction) -> Any:
    import pyarrow as pa
    import pyarrow.csv as csv

    if all(p.lower().endswith(".parquet") for p in paths):
        dataset = ray.data.read_parquet(paths)
    elif all(p.lower().endswith(".csv") for p in paths):
        names = csv.open_csv(paths[0]).schema.names
        convert = csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
                                     null_values=serving.null_values or [""])
        dataset = ray.data.read_csv(paths, convert_options=convert)
    else:
        raise ValueError(f"{paths}: expected .parquet files or .csv files (one kind)")
    # read before the actors start: actors holding every CPU would leave none for the read tasks (a deadlock)
    dataset.context.execution_options.preserve_order = True  # the files' rows in the order given
    return dataset.materialize()


def _mapped(serving: ServingFunction, dataset: Any, *, batch_size: int, concurrency: Any,
            public_key: bytes | None, passthrough: Sequence[str] = (), count_unseen: bool = False,
            log: dict[str, Any] | None = None) -> Any:
    ray = _import_ray()
    scored = dataset.map_batches(
        BundleScorer, batch_format="pyarrow", batch_size=batch_size, compute=_actor_pool(ray, concurrency),
        num_cpus=1, udf_modifying_row_count=False,
        fn_constructor_kwargs={"shipped": _shipped(serving), "public_key": public_key,
                               "passthrough": list(passthrough), "count_unseen": count_unseen, "log": log})
    scored.context.execution_options.preserve_order = True  # output blocks in input order
    scored.context.enable_progress_bars = False
    return scored


def predict_dataset(
    bundle: str | os.PathLike[str] | ServingFunction,
    data: Any,
    *,
    batch_size: int = 10_000,
    concurrency: int | tuple[int, int] | None = None,
    public_key: str | os.PathLike[str] | bytes | None = None,
) -> Any:
    """Keyed predictions of a Ray Dataset (or of Parquet/CSV paths) by a pool of actors; a lazy Dataset.

    Each output row holds the bundle's key columns as given, its outputs (null where the
    row is bad) and ``problems``: the row's problems as ``{"column", "problem"}`` items,
    the same as :meth:`ServingFunction.conform` reports, empty for a scored row. Rows
    come out in input order (``preserve_order``), one per input row.

    Parameters
    ----------
    bundle : path or ServingFunction
        The bundle, read and verified here; every actor verifies it again.
    data : ray.data.Dataset, path or list of paths
        The rows. Paths are read by Ray Data in parallel, into the object store (which
        spills to disk), before the actors start: Parquet as stored, CSV (comma-separated,
        with a header) with every column as text and the bundle's null markers.
        :func:`predict_file_ray` reads a file exactly as the local engine does. A lazy
        Dataset whose reads need CPUs needs CPUs left free for them (``concurrency`` below
        the cluster's CPUs) or ``.materialize()`` first: actors holding every CPU would
        wait forever for blocks that no read task can produce.
    batch_size : int
        Rows per call of an actor.
    concurrency : int or (min, max), optional
        Actors (one CPU each); default: the cluster's CPUs.
    public_key : path or bytes, optional
        Refuse a bundle this Ed25519 key did not sign, on the driver and in each actor.
    """
    ray = _import_ray()
    key = _public_key_bytes(public_key)
    serving = bundle if isinstance(bundle, ServingFunction) else ServingFunction.load(bundle, public_key=key)
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    if isinstance(data, (list, tuple)):
        data = _read_paths(ray, [os.fspath(p) for p in data], serving)
    return _mapped(serving, data, batch_size=batch_size, concurrency=concurrency, public_key=key)


def _position_column(columns: Sequence[str]) -> str:
    name = "__row_position__"
    while name in columns:
        name = "_" + name
    return name


def _blocks(ray: Any, serving: ServingFunction, frames: Iterator[pd.DataFrame]) -> tuple[list[Any], str, int]:
    """The file's chunks in the object store, each with its rows' input positions; the columns are checked."""
    import pyarrow as pa

    refs, position, column = [], 0, ""
    for frame in frames:
        if not refs:
            serving.conform(frame.iloc[:0])  # missing columns raise InputError here, as locally
            column = _position_column(list(frame.columns))
        table = pa.Table.from_pandas(frame, preserve_index=False)
        table = table.append_column(column, pa.array(np.arange(position, position + len(frame), dtype=np.int64)))
        refs.append(ray.put(table))
        position += len(frame)
    return refs, column, position


def predict_file_ray(
    bundle: str | os.PathLike[str] | ServingFunction,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    batch_size: int = 10_000,
    concurrency: int | tuple[int, int] | None = None,
    public_key: str | os.PathLike[str] | bytes | None = None,
    progress: Any = None,
    overwrite: bool = False,
    address: str | None = None,
    num_cpus: int | None = None,
    prediction_log: str | None = None,
    log_time_column: str | None = None,
    log_model: tuple[str, str] | None = None,
) -> PredictionSummary:
    """:func:`~mlpatterns.serving.keyed_predictions.predict_file` with the scoring on Ray actors.

    The same contract and the same files: the input is read here with the local
    engine's reader (:func:`mlpatterns.tables.iter_frames`, so a CSV parses identically)
    in blocks of ``batch_size`` rows, the blocks are scored by a pool of actors
    (:func:`predict_dataset`), and the results stream back in input order into one output
    file and ``<output>.errors.csv`` (temporary files renamed on success, refusals before
    any reading) by the local engine's writer
    (:class:`~mlpatterns.serving.keyed_predictions.OutputWriter`). A ``.sqlite`` or ``.db``
    output is the same table of precomputed predictions as the local engine's, keyed on
    the bundle's key columns: a bundle without keys is refused before Ray starts, and a
    repeated key stops the run with the same
    :class:`~mlpatterns.serving.batch_serving.PredictionTableError`, leaving no file. The
    summary equals the local one, duplicate keys and unseen categories included.

    Ray is joined or started with :func:`connect_ray` (``address``, default
    ``$RAY_ADDRESS``; else a local instance of ``num_cpus`` CPUs, shut down at the end).

    ``prediction_log``, a prediction log URL, logs every scored row as the local engine does
    (``log_time_column``, ``log_model``: see :func:`~mlpatterns.serving.keyed_predictions.predict_file`),
    each actor through its own logger; the URL is opened here first, so that a bad one is refused
    before Ray starts.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    kind, errors_path = checked_output_paths(input_path, output_path, overwrite)
    key = _public_key_bytes(public_key)
    serving = bundle if isinstance(bundle, ServingFunction) else ServingFunction.load(bundle, public_key=key)
    table = prediction_table_options(serving, output_path) if kind in ("sqlite", "db") else None  # before Ray
    read = [*serving.key_columns, *serving.input_columns]  # only these travel
    log = None
    if prediction_log is not None:
        from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

        open_prediction_log(prediction_log).close()  # a bad URL is refused before Ray starts
        name, version = log_model or bundle_identity(serving)
        log = {"url": driver_log_url(prediction_log), "model": name, "version": version, "time_column": log_time_column}
        if log_time_column is not None and log_time_column not in read:
            read.append(log_time_column)
    total, frames = iter_frames(input_path, batch_size, null_values=serving.null_values, columns=read)
    if log is not None and log_time_column is not None:
        frames = _with_column(frames, log_time_column, input_path)
    ray = _import_ray()
    started = connect_ray(address, num_cpus=num_cpus)
    try:
        refs, position_column, rows = _blocks(ray, serving, frames)
        scored = _mapped(serving, ray.data.from_arrow_refs(refs), batch_size=batch_size, concurrency=concurrency,
                         public_key=key, passthrough=[position_column], count_unseen=True, log=log)
        return _write(serving, scored.iter_batches(batch_size=None, batch_format="pyarrow"), position_column, rows,
                      kind, table, output_path, errors_path, progress, total, input_path.name)
    finally:
        if started:
            ray.shutdown()


def driver_log_url(url: str | os.PathLike[str]) -> str:
    """A prediction log URL that names the same log in a Ray actor, whose working directory may not be the
    driver's: a plain folder path (and the default, ``predictions``) made absolute against the driver's
    current directory, and so the relative path of an ``sqlite:///PATH`` URL; any other URL as it is
    (a ``file://`` URL is absolute already)."""
    text = os.fspath(url) or "predictions"
    if "://" not in text:
        return os.path.abspath(text)
    prefix = "sqlite:///"
    if text[:len(prefix)].lower() == prefix and not text[len(prefix):].startswith("/"):
        path, mark, query = text[len(prefix):].partition("?")
        return f"{text[:len(prefix)]}{os.path.abspath(path)}{mark}{query}"
    return text


def _with_column(frames: Iterator[pd.DataFrame], column: str, input_path: Path) -> Iterator[pd.DataFrame]:
    """``frames``, refused with a clear error when they lack the prediction log's time ``column``."""
    for frame in frames:
        if column not in frame.columns:
            raise ValueError(f"{input_path}: no column {column!r}, named as the prediction log's time column "
                             f"(--log-time-column); the file has {list(frame.columns)}")
        yield frame


def _write(serving: ServingFunction, batches: Any, position_column: str, rows: int, kind: str,
           table: dict[str, Any] | None, output_path: Path, errors_path: Path, progress: Any, total: int,
           name: str) -> PredictionSummary:
    import pyarrow.compute as pc

    output_path.parent.mkdir(parents=True, exist_ok=True)
    writer = OutputWriter(output_path, kind, table)
    try:
        errors = OutputWriter(errors_path, "csv")
    except BaseException:
        writer.abort()
        raise
    keys, unseen = DuplicateKeyCounter(serving.key_columns), {}
    task_id = progress.add_task(f"scoring {name} on Ray", total=total) if progress else None
    expected = predicted = bad = 0
    add_row_key = not serving.key_columns
    try:
        for batch in batches:
            positions = batch.column(position_column).to_numpy()
            if len(positions) and positions[0] != expected:  # preserve_order failed: never write out of order
                raise RuntimeError(f"Ray returned row {positions[0]} where row {expected} was due")
            expected += len(positions)
            good = pc.equal(pc.list_value_length(batch.column(PROBLEMS)), 0).to_numpy(zero_copy_only=False)
            keys.add(batch.select(serving.key_columns).to_pandas(integer_object_nulls=True))
            result = batch.filter(good).select(serving.key_columns + serving.output_columns)
            result = result.to_pandas(integer_object_nulls=True)
            if add_row_key:
                result.insert(0, "row", positions[good])
            if len(result):
                writer.write(result, positions[good])
            listed = batch.column(PROBLEMS).to_pylist()
            problems = [{"row": int(positions[i]), **p} for i in np.flatnonzero(~good) for p in listed[i]]
            if problems:
                errors.write(pd.DataFrame(problems, columns=["row", "column", "problem"]))
            for text in batch.column(_UNSEEN).drop_null().to_pylist():
                for column, count in json.loads(text).items():
                    unseen[column] = unseen.get(column, 0) + count
            bad += int((~good).sum())
            predicted += len(result)
            if progress is not None:
                progress.advance(task_id, len(positions))
        if expected != rows:
            raise RuntimeError(f"Ray returned {expected} of {rows} rows")
        writer.commit((["row"] if add_row_key else []) + serving.key_columns + serving.output_columns)
        if bad:
            errors.commit([])
        else:
            errors.abort()
            errors_path.unlink(missing_ok=True)  # a stale errors file of an earlier run of this output
    except BaseException:
        writer.abort()
        errors.abort()
        raise
    return PredictionSummary(rows, predicted, bad, output_path, errors_path if bad else None,
                             keys.duplicates, unseen if getattr(serving.transform, "unseen_counts", None) else {})
