"""The content-addressed store of the Workflow Pipeline (pattern 25).

Layout of a store root (a folder the store created, marked by a ``PIPELINE_STORE`` file)::

    PIPELINE_STORE                      marker; clear() refuses a folder without it
    artifacts/<digest>/<artifact name>  immutable outputs (a file or a directory)
    steps/<key>.json                    one record per step key (StepRecord)
    latest/<step name>.json             copy of the record a step last used (explains misses)
    tmp/<pid>-<hex>-<step name>/        outputs being written; removed once the process is gone

Commit order makes a crash harmless: outputs are written into ``tmp/``, digested, renamed
into ``artifacts/<digest>/`` (an existing copy wins, the new one is dropped), and only then
is the record written to a temporary file and renamed to ``steps/<key>.json``. A process
killed at any point leaves no record (the step reruns) or a complete one whose artifacts
exist. Renames need ``tmp/`` and ``artifacts/`` on one file system: they are in one root.

Thread and process safety: several processes on one machine (the Ray engine's workers,
two runs) may commit into one store at the same time; identical outputs are kept once and
the last record of a key wins (both are complete). Temporary folders are named after their
process id; a run removes only those of processes that no longer exist, so a store shared
by several machines over a network file system is not supported. Do not :meth:`clear` a
store while a run uses it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlpatterns._processes import process_exists
from mlpatterns.reproducibility.workflow_pipeline.records import StepRecord
from mlpatterns.reproducibility.workflow_pipeline.step import check_name

__all__ = ["ClearReport", "Store", "StoreEntry"]

MARKER = "PIPELINE_STORE"
MARKER_TEXT = "mlpatterns workflow pipeline store, layout 1\n"
DIGEST = re.compile(r"[0-9a-f]{64}")
TEMP = re.compile(r"(\d+)-[0-9a-f]{8}-.+")


@dataclass(frozen=True)
class StoreEntry:
    """One record in :meth:`Store.list`: step, key, finish time, bytes of its outputs."""

    step: str
    key: str
    finished: str
    size: int
    latest: bool


@dataclass(frozen=True)
class ClearReport:
    """What :meth:`Store.clear` removed."""

    records: int
    artifacts: int
    bytes: int


def tree_size(path: Path) -> int:
    """Bytes of a file, or of the files under a directory."""
    if path.is_dir():
        return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
    return path.stat().st_size


def remove(path: Path) -> None:
    """Remove a file, link or directory tree (not following links)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def fsync_directory(path: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(path: Path) -> None:
    """Flush a file, or every file under a directory, to disk."""
    files = [item for item in path.rglob("*") if item.is_file()] if path.is_dir() else [path]
    for file in files:
        descriptor = os.open(file, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


class Store:
    """A folder of content-addressed artifacts and step records.

    Parameters
    ----------
    root : path
        Created with its marker when it does not exist or is empty; an existing folder
        with other content and no ``PIPELINE_STORE`` marker is refused.
    durable : bool, default True
        Flush each artifact (its files, then the rename) and each record to disk before
        the record is renamed into place, so that a power loss, not only a killed
        process, leaves no record without its data (three fsyncs per step).
    create : bool, default True
        Create the folder when it does not exist. ``False`` (what a dry run uses) reads
        a missing store as an empty one and writes nothing.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, durable: bool = True, create: bool = True
    ) -> None:
        self.root = Path(root).absolute()
        self.durable = durable
        marker = self.root / MARKER
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"pipeline store {self.root} is a file, not a folder")
        if not marker.is_file():
            if self.root.is_dir() and any(self.root.iterdir()):
                raise ValueError(
                    f"{self.root} is not a pipeline store (no {MARKER} file) and is not empty; "
                    "give a new or empty folder"
                )
            if not create:
                return
            self.root.mkdir(parents=True, exist_ok=True)
            marker.write_text(MARKER_TEXT, encoding="utf-8")
        for folder in ("artifacts", "steps", "latest", "tmp"):
            (self.root / folder).mkdir(exist_ok=True)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # records -------------------------------------------------------------------------

    def record_path(self, key: str) -> Path:
        return self.root / "steps" / f"{key}.json"

    def read_record(self, key: str) -> StepRecord | None:
        """The record of a key, or ``None`` when there is none (or it cannot be read)."""
        record = self.read_record_file(self.record_path(key))
        return record if record is not None and record.key == key else None

    @staticmethod
    def read_record_file(path: Path) -> StepRecord | None:
        try:
            return StepRecord.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def latest(self, step: str) -> StepRecord | None:
        """The record that step ``step`` last ran or reused, or ``None``."""
        return self.read_record_file(self.root / "latest" / f"{check_name(step, 'step')}.json")

    def records(self) -> Iterator[StepRecord]:
        """Every readable record of the store."""
        for path in sorted((self.root / "steps").glob("*.json")):
            record = self.read_record_file(path)
            if record is not None:
                yield record

    def artifact_path(self, output: dict[str, Any]) -> Path:
        """The committed path of a record's output entry."""
        return self.root / output["path"]

    def missing_outputs(self, record: StepRecord) -> list[str]:
        """Problems that make a record unusable: each output whose artifact is absent."""
        problems = []
        for argument, output in record.outputs.items():
            path = self.artifact_path(output)
            kind_ok = path.is_dir() if output["kind"] == "directory" else path.is_file()
            if not kind_ok:
                problems.append(f"artifact {output['artifact']!r} ({argument}) is missing: {path}")
        return problems

    # writing -------------------------------------------------------------------------

    def new_temp(self, label: str) -> Path:
        """A fresh folder under ``tmp/`` named after this process."""
        path = self.root / "tmp" / f"{os.getpid()}-{secrets.token_hex(4)}-{label}"
        path.mkdir()
        return path

    def clean_temp(self) -> int:
        """Remove temporary folders and files left by processes that no longer exist."""
        removed = 0
        for path in (self.root / "tmp").iterdir():
            match = TEMP.fullmatch(path.name)
            if match and int(match[1]) != os.getpid() and not process_exists(int(match[1])):
                remove(path)
                removed += 1
        return removed

    def commit_artifact(self, temporary: Path, digest: str, kind: str, name: str) -> str:
        """Move a written output to ``artifacts/<digest>/<name>``; return that path, root-relative.

        When the artifact is already there (same content, same name), the new copy is dropped.
        """
        if not DIGEST.fullmatch(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        target = self.root / "artifacts" / digest / check_name(name, "artifact")
        relative = target.relative_to(self.root).as_posix()
        if target.exists():
            remove(temporary)
            return relative
        if self.durable:
            fsync_tree(temporary)
        target.parent.mkdir(exist_ok=True)
        try:
            os.rename(temporary, target)
        except OSError:
            if not target.exists():
                raise
            remove(temporary)  # a concurrent writer committed the same content first
        if self.durable:
            fsync_directory(target.parent)  # the rename is on disk before the record is
        return relative

    def write_json(self, path: Path, data: dict[str, Any], sync: bool = False) -> None:
        """Write JSON to a temporary file under ``tmp/`` and rename it to ``path``.

        ``sync`` flushes the file before the rename, so that a power loss leaves the old
        file or the whole new one. The directory is not flushed: losing a record only
        makes its step run again.
        """
        temporary = self.root / "tmp" / f"{os.getpid()}-{secrets.token_hex(4)}-{path.name}"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
            handle.write("\n")
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)

    def write_record(self, record: StepRecord) -> None:
        """Write ``steps/<key>.json`` (last step of a commit), then ``latest/<step>.json``."""
        self.write_json(self.record_path(record.key), record.to_dict(), sync=self.durable)
        self.set_latest(record)

    def set_latest(self, record: StepRecord) -> None:
        """Point ``latest/<step>.json`` at a record (a copy; only explains misses)."""
        self.write_json(self.root / "latest" / f"{record.step}.json", record.to_dict())

    # management ----------------------------------------------------------------------

    def list(self) -> list[StoreEntry]:
        """Every record: step, key, finish time, total bytes of its outputs; oldest first."""
        latest = {}
        for path in (self.root / "latest").glob("*.json"):
            record = self.read_record_file(path)
            if record is not None:
                latest[record.step] = record.key
        entries = [
            StoreEntry(r.step, r.key, r.finished, r.size, latest.get(r.step) == r.key)
            for r in self.records()
        ]
        return sorted(entries, key=lambda entry: (entry.finished, entry.step))

    def clear(self, step: str | None = None) -> ClearReport:
        """Remove the records of ``step`` (all records when ``None``), then unreferenced artifacts.

        Only this store's own layout is touched; a folder without the ``PIPELINE_STORE``
        marker is refused.
        """
        if not (self.root / MARKER).is_file():
            raise ValueError(f"refusing to clear {self.root}: no {MARKER} marker")
        removed_records = 0
        for path in sorted((self.root / "steps").glob("*.json")):
            record = self.read_record_file(path)
            if step is None or (record is not None and record.step == step):
                path.unlink(missing_ok=True)
                removed_records += 1
        for path in (self.root / "latest").glob("*.json"):
            if step is None or path.stem == step:
                path.unlink(missing_ok=True)
        referenced = {
            (output["digest"], output["artifact"])
            for record in self.records()
            for output in record.outputs.values()
        }
        removed_artifacts = removed_bytes = 0
        for folder in (self.root / "artifacts").iterdir():
            if not (DIGEST.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink()):
                continue
            for artifact in list(folder.iterdir()):
                if (folder.name, artifact.name) not in referenced:
                    removed_bytes += tree_size(artifact) if not artifact.is_symlink() else 0
                    remove(artifact)
                    removed_artifacts += 1
            if not any(folder.iterdir()):
                folder.rmdir()
        self.clean_temp()
        return ClearReport(removed_records, removed_artifacts, removed_bytes)

    def lineage(self, target: str | StepRecord):
        """Trace an artifact digest (or a prefix of 8+ characters), key or record to its sources.

        See :func:`~mlpatterns.reproducibility.workflow_pipeline.lineage.lineage`.
        """
        from mlpatterns.reproducibility.workflow_pipeline.lineage import lineage

        return lineage(self, target)
