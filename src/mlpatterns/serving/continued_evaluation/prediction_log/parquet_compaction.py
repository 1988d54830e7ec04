"""Compaction of the Parquet prediction log (Continued Model Evaluation, 18).

Problem: each writer process of the Parquet log writes one file per flush, so a server worker
flushing every second leaves 86,400 small files a day; every read lists and opens them all,
and DuckDB's ``read_parquet`` slows down as the folder grows. Writers killed mid-append leave
hidden temporary files behind.

Solution: :func:`compact` merges the closed files into one file per UTC day of ``event_time``
(sorted by ``event_time``, row groups of DuckDB's own size, so a window query skips whole row
groups), while writers keep appending and readers keep reading. The layout::

    predictions/<host>-<pid>-<random>-<seq>.parquet     live files, one per append (writers)
    predictions/_compacted/<YYYY-MM-DD>.g<gen>.parquet  merged files, one per day and generation
    predictions/_compacted/manifest.json                the committed state (below)
    predictions/_compacted/.lock                        held (flock) by the one running compaction

The manifest names the merged file of each day (``files``), the live files whose rows those
hold (``hidden``, not read any more) and the merged files a later generation replaced
(``retired``), each with the time it was hidden or retired. It is replaced in one
``os.replace``, the commit point of a compaction.

What a reader sees: a read (:func:`snapshot`) loads the manifest first, then lists the live
files, and reads the manifest's day files plus the live files it does not hide. A compaction
writes its day files under names no committed manifest lists (so no reader opens them), then
commits the manifest that lists them and hides their sources in one rename, and deletes hidden
and retired files only once they have been so for ``grace``. A read therefore sees either the
state before a commit (the sources as live files, the earlier day files) or the state after it
(the new day files, sources hidden): every row exactly once, and every row an earlier read saw.
Live files renamed into place after the listing are in the next read. The one condition: a read
opens its files within ``grace`` of loading the manifest (the default is ``older_than``, ten
minutes); a slower one fails with a file-not-found error, never with wrong rows.

Crash safety: a compaction killed before its commit leaves day files and temporary files no
manifest lists; the next compaction deletes them (undoing the attempt) and merges the same
sources again. Killed after the commit, it leaves files to delete, which the next one deletes
(finishing it). A file is deleted before the manifest stops naming it, so a source never comes
back. Data files and the manifest are fsynced before the rename that makes them count.

Two compactions: an exclusive ``fcntl.flock`` on ``_compacted/.lock`` (released by the kernel
when the holder dies, so a crash leaves no stale lock); a second compaction returns at once
with ``skipped=True``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpatterns.serving.continued_evaluation.prediction_log._base import (
    PREDICTION_COLUMNS,
    CompactionResult,
    PredictionLogError,
)

__all__ = ["COMPACTED", "COMPACTION_STEPS", "MANIFEST", "ROW_GROUP_ROWS", "Snapshot", "compact", "read_manifest",
           "remove_stale_temps", "snapshot"]

COMPACTED = "_compacted"
MANIFEST = "manifest.json"
ROW_GROUP_ROWS = 122_880  # DuckDB's own row group size: the unit it scans in parallel and prunes by statistics
COMPACTION_STEPS = ("merged", "renamed", "manifest_written", "committed", "deleted")
STEP_HOOK: Callable[[str], None] | None = None
"""For tests: called with each name in :data:`COMPACTION_STEPS` as a compaction passes it (to inject a crash)."""

_WRITER_TEMP = re.compile(r"\.(?P<host>[A-Za-z0-9._-]+?)-(?P<pid>\d+)-[0-9a-f]{12}-\d{9}\.parquet\.[0-9a-f]{8}\.tmp")
_DAY_FILE = re.compile(r"(?P<day>\d{4}-\d{2}-\d{2})\.g(?P<gen>\d{6,})\.parquet")


def _step(name: str) -> None:
    if STEP_HOOK is not None:
        STEP_HOOK(name)


def _quoted(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _fsync(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The committed state of ``folder``'s compaction (empty when it was never compacted)."""
    path = folder / COMPACTED / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"format": 1, "generation": 0, "files": {}, "hidden": {}, "retired": {}}
    except ValueError as error:
        raise PredictionLogError(f"prediction log: {path} is not a compaction manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != 1:
        raise PredictionLogError(f"prediction log: {path}: expected a compaction manifest of format 1")
    return manifest


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    target = folder / COMPACTED / MANIFEST
    temporary = target.with_name(f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(manifest, file, sort_keys=True, separators=(",", ":"))
        file.flush()
        os.fsync(file.fileno())
    _step("manifest_written")
    os.replace(temporary, target)  # the commit point
    _fsync(target.parent, directory=True)
    _step("committed")


def _live_files(folder: Path) -> list[os.DirEntry]:
    with os.scandir(folder) as entries:
        return [e for e in entries if e.name.endswith(".parquet") and not e.name.startswith(".") and e.is_file()]


@dataclass(frozen=True)
class Snapshot:
    """The files that make up the log at one moment: the committed day files and the live files
    not hidden. ``days`` gives each day file's UTC day."""

    compacted: list[Path]
    live: list[Path]
    days: dict[Path, dt.date]

    @property
    def files(self) -> list[Path]:
        return self.compacted + self.live


def snapshot(folder: Path) -> Snapshot:
    """The files a read of ``folder`` takes: the manifest first, then the listing (see the module docstring)."""
    manifest = read_manifest(folder)
    hidden = manifest["hidden"]
    live = sorted(Path(e.path) for e in _live_files(folder) if e.name not in hidden)
    days = {folder / COMPACTED / name: dt.date.fromisoformat(day) for day, name in sorted(manifest["files"].items())}
    return Snapshot(list(days), live, days)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[bool]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows has no flock
        raise PredictionLogError("prediction log: compaction needs fcntl.flock (POSIX)") from None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the flock


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _writer_alive(name: str) -> bool:
    """Whether the temp file ``name`` belongs to a process of this host that still runs."""
    match = _WRITER_TEMP.fullmatch(name)
    if match is None or match["host"] != re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64]:
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(folder: Path, stale_before: float) -> int:
    """Delete the writers' temporary files in ``folder`` untouched since ``stale_before`` (a time.time())
    whose writer does not run on this host (a writer killed mid-append left them); count them."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat().st_mtime <= stale_before and not _writer_alive(entry.name):
                        removed += _unlink(Path(entry.path))
    return removed


def _remove_leftovers(folder: Path, manifest: dict[str, Any]) -> int:
    """Undo what a killed compaction left: its temporary files and the day files no manifest lists."""
    removed = 0
    kept = set(manifest["files"].values()) | set(manifest["retired"])
    with os.scandir(folder / COMPACTED) as entries:
        for entry in entries:
            if entry.name.endswith(".tmp") and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            elif entry.name.endswith(".tmp") or (_DAY_FILE.fullmatch(entry.name) and entry.name not in kept):
                removed += _unlink(Path(entry.path))
    return removed


def _delete_expired(folder: Path, manifest: dict[str, Any], grace: dt.timedelta) -> int:
    """Delete hidden and retired files older than ``grace``; then commit a manifest without them."""
    cutoff = time.time() - grace.total_seconds()
    expired = {kind: [n for n, at in manifest[kind].items() if at <= cutoff] for kind in ("hidden", "retired")}
    if not any(expired.values()):
        return 0
    deleted = 0
    for kind, where in (("hidden", folder), ("retired", folder / COMPACTED)):
        for name in expired[kind]:
            deleted += _unlink(where / name)
            _step("deleted")
    _fsync(folder, directory=True)  # the deletions last before the manifest stops hiding those names
    _fsync(folder / COMPACTED, directory=True)
    for kind, names in expired.items():  # only now: a hidden file must be gone before it stops being hidden
        for name in names:
            del manifest[kind][name]
    _write_manifest(folder, manifest)
    return deleted


def compact(folder: Path, *, older_than: dt.timedelta, grace: dt.timedelta) -> CompactionResult:
    """Merge the live files of ``folder`` not modified for ``older_than`` into one file per UTC day.

    See the module docstring for what readers see and for crash safety. ``grace``: how long
    replaced files stay on disk for reads that loaded the manifest before the commit.
    """
    compacted = folder / COMPACTED
    compacted.mkdir(exist_ok=True)
    with _locked(compacted / ".lock") as held:
        if not held:
            return CompactionResult(skipped=True, note=f"another compaction of {folder} is running; nothing done")
        started = time.time()
        manifest = read_manifest(folder)
        removed = _remove_leftovers(folder, manifest) + remove_stale_temps(folder, started - older_than.total_seconds())
        sources = sorted((e for e in _live_files(folder) if e.name not in manifest["hidden"]
                          and e.stat().st_mtime <= started - older_than.total_seconds()), key=lambda e: e.name)
        merged = _merge(folder, manifest, [Path(e.path) for e in sources]) if sources else None
        removed += _delete_expired(folder, manifest, grace)
    if merged is None:
        return CompactionResult(files_deleted=removed, note=f"no live file older than {older_than} to merge")
    return CompactionResult(**merged, files_deleted=removed)


def _merge(folder: Path, manifest: dict[str, Any], sources: list[Path]) -> dict[str, Any]:
    """Write the day files of ``sources`` (with the earlier day files of those days), commit them."""
    import duckdb

    generation = manifest["generation"] + 1
    spill = folder / COMPACTED / f".spill-{uuid.uuid4().hex[:8]}.tmp"  # DuckDB sorts a large day on disk here
    con = duckdb.connect(config={"temp_directory": str(spill)})
    try:
        listed = "[" + ", ".join(_quoted(s) for s in sources) + "]"
        ranges = con.execute(f"SELECT filename, count(*), CAST(min(event_time) AS DATE), CAST(max(event_time) AS DATE) "
                             f"FROM read_parquet({listed}, filename=true) GROUP BY filename").fetchall()
        rows_in = sum(count for _, count, _, _ in ranges)
        days = sorted({first + dt.timedelta(days=n) for _, _, first, last in ranges
                       for n in range((last - first).days + 1)})
        earlier = [folder / COMPACTED / manifest["files"][d.isoformat()] for d in days
                   if d.isoformat() in manifest["files"]]
        if earlier:
            rows_in += con.execute(f"SELECT count(*) FROM read_parquet([{', '.join(map(_quoted, earlier))}])"
                                   ).fetchone()[0]
        written: dict[str, Path] = {}
        rows_out = 0
        for day in days:
            name = f"{day.isoformat()}.g{generation:06d}.parquet"
            inputs = [Path(file) for file, _, first, last in ranges if first <= day <= last]
            if day.isoformat() in manifest["files"]:
                inputs.append(folder / COMPACTED / manifest["files"][day.isoformat()])
            temporary = folder / COMPACTED / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
            since, until = dt.datetime.combine(day, dt.time()), dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
            rows = con.execute(
                f"COPY (SELECT {', '.join(PREDICTION_COLUMNS)} FROM read_parquet([{', '.join(map(_quoted, inputs))}]) "
                f"WHERE event_time >= ? AND event_time < ? ORDER BY event_time, served_at) TO {_quoted(temporary)} "
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})", [since, until]).fetchone()[0]
            if rows == 0:  # a day inside a file's span that has no row
                temporary.unlink()
                continue
            rows_out += rows
            _fsync(temporary)
            _step("merged")
            os.replace(temporary, folder / COMPACTED / name)
            written[day.isoformat()] = folder / COMPACTED / name
            _step("renamed")
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    if rows_out != rows_in:  # nothing is committed: the next compaction deletes these files
        raise PredictionLogError(f"prediction log: compaction of {folder} read {rows_in} rows but wrote {rows_out}; "
                                 "nothing committed")
    _fsync(folder / COMPACTED, directory=True)
    now = time.time()
    for day, path in written.items():
        if day in manifest["files"]:
            manifest["retired"][manifest["files"][day]] = now
        manifest["files"][day] = path.name
    manifest["hidden"].update((s.name, now) for s in sources)
    manifest["generation"] = generation
    _write_manifest(folder, manifest)
    return {"files_merged": len(sources) + len(earlier), "rows": rows_out, "files_written": len(written),
            "bytes_before": sum(p.stat().st_size for p in [*sources, *earlier]),
            "bytes_after": sum(p.stat().st_size for p in written.values())}
