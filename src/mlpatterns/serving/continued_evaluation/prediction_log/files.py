"""The embedded prediction log: a folder of Parquet files (Continued Model Evaluation, 18).

``file:///srv/predictions`` (or a plain folder path). Each writer process writes files of
its own, one per :meth:`~PredictionLog.append`, as
``predictions/<host>-<pid>-<random>-<seq>.parquet``: written under a temporary name in the
same folder, flushed to disk and renamed into place, so an append is atomic and writers never
touch each other's files or take a lock. Ground truth goes to ``labels/<source>.parquet``, one
file per source (the sha256 of the truth data).

A worker flushing every second writes 86,400 small files a day: :meth:`~PredictionLog.compact`
(run by one process, e.g. ``mlpatterns monitor compact`` from cron) merges the closed ones into
one file per UTC day under ``predictions/_compacted/``, with a manifest that hides the merged
files (:mod:`.parquet_compaction` says what a concurrent reader sees and why a crash is safe).
A read therefore takes the manifest's day files plus the live files it does not hide (pyarrow
for the Arrow reads; DuckDB's ``read_parquet`` over that list for :meth:`register`), never the
folder's raw listing. Labels are not compacted: they are one file per truth file, not per flush.

The folder suits one machine or a shared file system that renames atomically.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from mlpatterns.backends import BackendURL, parse_url
from mlpatterns.serving.continued_evaluation.prediction_log import parquet_compaction
from mlpatterns.serving.continued_evaluation.prediction_log._base import (
    CompactionResult,
    LabelCounts,
    PredictionLog,
    PredictionLogError,
    arrow_schema,
    utc_now,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

__all__ = ["ParquetPredictionLog"]

_ONE_US = dt.timedelta(microseconds=1)


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _empty_select(table: str) -> str:
    types = {"timestamp[us]": "TIMESTAMP", "double": "DOUBLE", "string": "VARCHAR"}
    columns = ", ".join(f"CAST(NULL AS {types[str(f.type)]}) AS {f.name}" for f in arrow_schema(table))
    return f"SELECT {columns} WHERE false"


class ParquetPredictionLog(PredictionLog):
    """A prediction log in a folder of Parquet files (see the module docstring)."""

    def __init__(self, url: str | BackendURL | os.PathLike[str]) -> None:
        if isinstance(url, os.PathLike):
            path = Path(url)
        else:
            parsed = parse_url(url)
            if parsed.scheme != "file" or parsed.path is None:
                raise PredictionLogError(f"prediction log: expected 'file:///FOLDER', got {parsed.redacted()!r}")
            path = Path(unquote(str(parsed.path)))
        self.root = path.resolve()
        self.url = self.root.as_uri()
        self._folders = {"predictions": self.root / "predictions", "labels": self.root / "labels"}
        for folder in self._folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        self._pid = -1
        self._prefix = ""
        self._seq = 0
        import pyarrow.parquet  # noqa: F401 - now, so that the first append is as quick as the others

    # -- writes ---------------------------------------------------------------------------------
    def _file_prefix(self) -> str:
        if self._pid != os.getpid():  # a forked child writes files of its own
            self._pid = os.getpid()
            host = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"
            self._prefix, self._seq = f"{host}-{self._pid}-{uuid.uuid4().hex[:12]}", 0
        self._seq += 1
        return f"{self._prefix}-{self._seq:09d}"

    def _write(self, table: pa.Table, target: Path) -> None:
        import pyarrow.parquet as pq

        temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(temporary, "wb") as file:
                pq.write_table(table, file, compression="zstd")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _append(self, columns: dict[str, list[Any]], rows: int) -> None:
        import pyarrow as pa

        table = pa.Table.from_pydict(columns, schema=arrow_schema("predictions"))
        self._write(table, self._folders["predictions"] / f"{self._file_prefix()}.parquet")

    def _add_labels(self, labels: dict[str, str], source: str) -> LabelCounts:
        import pyarrow as pa
        import pyarrow.compute as pc

        current = self._latest_labels(self._labels())
        added = changed = 0
        new: dict[str, str] = {}
        latest = None
        for key, label in labels.items():
            before = current.get(key)
            if before is None:
                added += 1
            elif before[0] != label:
                changed += 1
                latest = before[1] if latest is None else max(latest, before[1])
            else:
                continue
            new[key] = label
        if new:
            now = utc_now()
            labelled_at = now if latest is None or now > latest else latest + _ONE_US  # a change wins the join
            table = pa.table({"key": list(new), "label": list(new.values()),
                              "labelled_at": [labelled_at] * len(new), "source": [source] * len(new)},
                             schema=arrow_schema("labels"))
            target = self._folders["labels"] / f"{source}.parquet"
            if target.exists():  # this source again, with changes since: keep its other rows
                old = self._read([target], "labels")
                old = old.filter(pc.invert(pc.is_in(old["key"], value_set=table["key"])))
                table = pa.concat_tables([old, table])
            self._write(table, target)
        return LabelCounts(added, changed, len(labels) - added - changed)

    @staticmethod
    def _latest_labels(table: pa.Table) -> dict[str, tuple[str, dt.datetime]]:
        latest: dict[str, tuple[str, dt.datetime]] = {}
        for key, label, at in zip(*(table[c].to_pylist() for c in ("key", "label", "labelled_at")), strict=True):
            before = latest.get(key)
            if before is None or (at, label) > (before[1], before[0]):
                latest[key] = (label, at)
        return latest

    # -- reads ----------------------------------------------------------------------------------
    def _files(self, table: str) -> list[Path]:
        return sorted(self._folders[table].glob("*.parquet"))

    def _read(self, files: list[Path], table: str, expression: Any = None) -> pa.Table:
        import pyarrow.dataset as ds

        schema = arrow_schema(table)
        if not files:
            return schema.empty_table()
        data = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
        return data.to_table(filter=expression).cast(schema)

    def _predictions(self, since: dt.datetime | None, until: dt.datetime | None) -> pa.Table:
        import pyarrow.dataset as ds

        expression = None
        for bound, test in ((since, lambda f, b: f >= b), (until, lambda f, b: f < b)):
            if bound is not None:
                term = test(ds.field("event_time"), bound)
                expression = term if expression is None else expression & term
        files = parquet_compaction.snapshot(self._folders["predictions"])
        day = dt.timedelta(days=1)
        compacted = [path for path in files.compacted  # a day file outside [since, until) is not opened
                     if (since is None or dt.datetime.combine(files.days[path], dt.time()) + day > since)
                     and (until is None or dt.datetime.combine(files.days[path], dt.time()) < until)]
        return self._read(compacted + files.live, "predictions", expression)

    def _labels(self) -> pa.Table:
        return self._read(self._files("labels"), "labels")

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Views ``predictions`` and ``labels`` over the log's files (``read_parquet``).

        ``predictions`` reads the files that make up the log now (the compacted day files and the
        live files the manifest does not hide), so a concurrent compaction never shows it a row twice
        or hides one; rows appended later are not in it (register again to see them), and after a
        compaction's ``grace`` (ten minutes by default) the files it names may be gone: register
        again for queries that come later. ``labels`` (never compacted) reads the folder's files at
        each query. A table with no files yet gets a view of no rows."""
        self._check_open("register")
        names = {table: ", ".join(arrow_schema(table).names) for table in ("predictions", "labels")}
        files = parquet_compaction.snapshot(self._folders["predictions"]).files
        queries = {"predictions": f"SELECT {names['predictions']} FROM read_parquet([{', '.join(map(_quoted, files))}])"
                   if files else _empty_select("predictions"),
                   "labels": f"SELECT {names['labels']} FROM read_parquet({_quoted(self._folders['labels'] / '*.parquet')})"
                   if self._files("labels") else _empty_select("labels")}
        for table, query in queries.items():
            con.execute(f"CREATE OR REPLACE VIEW {table} AS {query}")

    def _compact(self, older_than: dt.timedelta, grace: dt.timedelta) -> CompactionResult:
        """Merge the closed prediction files into one file per UTC day (see :mod:`.parquet_compaction`);
        delete the stale temporary files of killed writers in ``labels/`` as well."""
        import dataclasses
        import time

        result = parquet_compaction.compact(self._folders["predictions"], older_than=older_than, grace=grace)
        if result.skipped:
            return result
        stale = parquet_compaction.remove_stale_temps(self._folders["labels"], time.time() - older_than.total_seconds())
        return dataclasses.replace(result, files_deleted=result.files_deleted + stale)

