"""Checkpoints (pattern 12): keep the full training state on disk so that training survives.

Problem: long training dies (preemption, a crash, a full disk, a killed job), and the best
model is often not the last one. Restarting from scratch wastes the work done; restarting
from the weights alone does not continue the same run (the optimizer's moments, the
learning-rate schedule, the random generators and the position in the data are lost).

Solution: save the *full* state periodically, each save written atomically so that a
process killed in the middle of a write never damages the last good checkpoint; keep the
last few and the best; verify each file on load (a sha256 in a small manifest) and fall
back to the previous good one when a file is damaged. :class:`CheckpointManager` is that
directory; :class:`~mlpatterns.training.trainer.loop.Trainer` decides what goes into a state and
when to save.

A checkpoint holds only tensors and plain containers (``dict``, ``list``, ``tuple``,
``str``, numbers, ``None``) and is read with ``torch.load(..., weights_only=True)``:
loading one never unpickles an arbitrary object.

Examples
--------
>>> import tempfile, torch
>>> directory = tempfile.mkdtemp()
>>> manager = CheckpointManager(directory, keep_last=2)
>>> for step in (10, 20, 30):
...     _ = manager.save({"weights": torch.full((2,), float(step))}, step=step, epoch=step // 10)
>>> [entry["step"] for entry in manager.entries()]
[20, 30]
>>> path, state = manager.load_latest()
>>> path.name, state["weights"].tolist()
('ckpt-000000030.pt', [30.0, 30.0])
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlpatterns.training.checkpoints.atomic import atomic_write
from mlpatterns.training.checkpoints.state import check_weights_only

__all__ = [
    "CheckpointError",
    "CheckpointManager",
    "CorruptCheckpointWarning",
    "atomic_write",
    "load_checkpoint",
]

MANIFEST = "manifest.json"
LOCK = ".lock"
_MANIFEST_FORMAT = "mlpatterns.checkpoints/1"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """No usable checkpoint, or a checkpoint directory that cannot be used."""


class CorruptCheckpointWarning(UserWarning):
    """A checkpoint file failed verification and an older one is used instead."""


def _read_verified(path: Path, sha256: str | None) -> dict[str, Any]:
    """Load one checkpoint file; raise CheckpointError saying what is wrong with it."""
    import torch

    try:
        data = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from error
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise CheckpointError(
                f"{path}: sha256 {actual[:12]}... does not match the manifest's {sha256[:12]}... "
                f"(the file is truncated or damaged)"
            )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict of training state, got {type(state).__name__}")
    return state


class CheckpointManager:
    """A directory of training checkpoints: the last ``keep_last`` and the best, verified.

    Files are ``ckpt-<step>.pt`` (``torch.save`` of a weights-only state) next to
    ``manifest.json``, which lists each kept file with its step, epoch, monitored metric
    and sha256, and names the best one. Every file, the manifest included, is written with
    :func:`atomic_write`. :meth:`load_latest` returns the newest file that passes
    verification and warns (:class:`CorruptCheckpointWarning`) about each newer one that
    does not.

    One process writes a directory at a time: :meth:`locked` takes an exclusive lock
    (``fcntl.flock`` on ``.lock``, released by the kernel when the process dies) and
    refuses a second writer.

    Parameters
    ----------
    directory : str or path
        Created (with its parents) at the first write if missing; it must be writable.
    keep_last : int
        How many of the newest checkpoints to keep, at least 1. The best checkpoint is
        kept as well, whatever its age.
    """

    def __init__(self, directory: str | os.PathLike, keep_last: int = 3) -> None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise ValueError(f"keep_last: expected an integer >= 1, got {keep_last!r}")
        self.directory = Path(directory)
        self.keep_last = keep_last
        self._ready = False

    def prepare(self) -> None:
        """Create the directory if missing and check that it is writable (done before a write)."""
        if self._ready:
            return
        where = f"checkpoint_dir {str(self.directory)!r}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError as error:
            raise NotADirectoryError(f"{where} exists and is not a directory") from error
        except OSError as error:  # keeps the kind: PermissionError, NotADirectoryError...
            raise type(error)(f"{where} cannot be created: {error.strerror or error}") from error
        try:
            fd, probe = tempfile.mkstemp(prefix=".probe.", suffix=".tmp", dir=self.directory)
            os.close(fd)
            os.unlink(probe)
        except OSError as error:
            raise PermissionError(
                f"{where} is not writable: {error.strerror or error}; choose a directory you can write to"
            ) from error
        self._ready = True

    # -- manifest -------------------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"format": _MANIFEST_FORMAT, "checkpoints": [], "best": None}
        path = self.directory / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            return empty
        except (OSError, ValueError) as error:
            warnings.warn(
                f"{path} is unreadable ({error}); checkpoint files are used without sha256 verification",
                CorruptCheckpointWarning,
                stacklevel=3,
            )
            return empty
        if not isinstance(manifest, dict) or manifest.get("format") != _MANIFEST_FORMAT:
            raise CheckpointError(f"{path}: not a {_MANIFEST_FORMAT} manifest")
        return manifest

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write(self.directory / MANIFEST, json.dumps(manifest, indent=1).encode())

    def entries(self) -> list[dict[str, Any]]:
        """The kept checkpoints as manifest entries, oldest first."""
        return sorted(self._read_manifest()["checkpoints"], key=lambda entry: entry["step"])

    def best(self) -> dict[str, Any] | None:
        """The manifest entry of the best checkpoint, or None."""
        return self._read_manifest()["best"]

    def path_of(self, entry: dict[str, Any]) -> Path:
        return self.directory / entry["file"]

    # -- writing --------------------------------------------------------------------------------
    def save(
        self,
        state: dict[str, Any],
        *,
        step: int,
        epoch: int,
        metric: float | None = None,
        best: bool = False,
    ) -> Path:
        """Write ``state`` as the checkpoint of ``step``; mark it best if ``best``; prune old ones.

        ``state`` must be weights-only loadable (tensors and plain containers); anything
        else raises ``TypeError`` naming where it sits, before any file is touched.
        """
        import torch

        check_weights_only(state)
        self.prepare()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        name = f"ckpt-{step:09d}.pt"
        # One directory fsync, after the manifest's rename, makes both renames durable; were
        # the manifest's to persist without this one, loading falls back to the previous file.
        atomic_write(self.directory / name, data, sync_directory=False)
        entry = {
            "file": name,
            "step": int(step),
            "epoch": int(epoch),
            "metric": None if metric is None else float(metric),
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
        manifest = self._read_manifest()
        kept = [e for e in manifest["checkpoints"] if e["file"] != name and e["step"] < step]
        kept = sorted([*kept, entry], key=lambda e: e["step"])
        if best:
            manifest["best"] = entry
        elif manifest["best"] is not None and manifest["best"]["step"] >= step:
            manifest["best"] = None  # a re-run past an old best: that file is being overwritten
        keep = {e["file"] for e in kept[-self.keep_last :]}
        if manifest["best"] is not None:
            keep.add(manifest["best"]["file"])
        manifest["checkpoints"] = [e for e in kept if e["file"] in keep]
        self._write_manifest(manifest)
        for path in self.directory.iterdir():  # also files a killed run wrote but never listed
            if _NAME.match(path.name) and path.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return self.directory / name

    def forget_after(self, step: int, best_step: int | None) -> None:
        """Drop entries newer than ``step`` (a run resumed from an older, good checkpoint).

        The best entry is kept only if it is the checkpoint of ``best_step``.
        """
        manifest = self._read_manifest()
        manifest["checkpoints"] = [e for e in manifest["checkpoints"] if e["step"] <= step]
        best = manifest["best"]
        if best is not None and (best["step"] > step or best["step"] != best_step):
            manifest["best"] = None
        self._write_manifest(manifest)

    @contextlib.contextmanager
    def locked(self) -> Iterator[CheckpointManager]:
        """Hold the directory's writer lock; remove temporary files left by killed writers."""
        self.prepare()
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            fcntl = None
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError as error:
                    raise CheckpointError(
                        f"checkpoint_dir {str(self.directory)!r} is in use by another training "
                        f"process (lock {LOCK}); give each run its own directory"
                    ) from error
            for stray in self.directory.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    stray.unlink()
            yield self
        finally:
            os.close(fd)  # releases the flock

    # -- reading --------------------------------------------------------------------------------
    def candidates(self) -> list[tuple[Path, str | None]]:
        """Checkpoint files newest first, with the manifest's sha256 where it lists them.

        Files present but not listed (a run killed between writing a file and updating the
        manifest) are candidates too; a complete rename is their only guarantee, so they
        are verified by loading alone.
        """
        if not self.directory.is_dir():
            return []
        listed = {e["file"]: e for e in self._read_manifest()["checkpoints"]}
        found = {p.name for p in self.directory.iterdir() if _NAME.match(p.name)}
        names = sorted(set(listed) | found, key=lambda n: int(_NAME.match(n).group(1)), reverse=True)
        return [(self.directory / n, listed[n]["sha256"] if n in listed else None) for n in names]

    def load_latest(self) -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that verifies, as ``(path, state)``; None if there is none.

        Each newer file that fails (sha256 mismatch, truncated, unreadable) is reported with
        a :class:`CorruptCheckpointWarning` naming the file and the reason.
        """
        for path, sha256 in self.candidates():
            try:
                return path, _read_verified(path, sha256)
            except CheckpointError as error:
                warnings.warn(
                    f"skipping damaged checkpoint: {error}; trying the previous one",
                    CorruptCheckpointWarning,
                    stacklevel=2,
                )
        return None

    def load_best(self) -> tuple[Path, dict[str, Any]] | None:
        """The best checkpoint as ``(path, state)`` if it verifies; None if there is none."""
        best = self.best()
        if best is None:
            return None
        path = self.path_of(best)
        return path, _read_verified(path, best["sha256"])


def load_checkpoint(path: str | os.PathLike, *, prefer: str = "latest") -> tuple[Path, dict[str, Any]]:
    """Read a checkpoint: a ``ckpt-*.pt`` file, or a checkpoint directory.

    For a directory, ``prefer="latest"`` gives the newest good checkpoint (as resuming
    does) and ``prefer="best"`` the best one, falling back to the latest. A file listed in
    its directory's manifest is checked against its sha256. Raises
    :class:`CheckpointError` when nothing usable is found.
    """
    if prefer not in ("latest", "best"):
        raise ValueError(f"prefer: expected 'latest' or 'best', got {prefer!r}")
    path = Path(path)
    if path.is_dir():
        manager = CheckpointManager(path)
        found = None
        if prefer == "best":
            try:
                found = manager.load_best()
            except CheckpointError as error:
                warnings.warn(f"best checkpoint unusable: {error}; using the latest", CorruptCheckpointWarning, stacklevel=2)
        found = found or manager.load_latest()
        if found is None:
            raise CheckpointError(f"{path}: no usable checkpoint in this directory")
        return found
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    listed = {}
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        manifest = json.loads((path.parent / MANIFEST).read_text())
        listed = {e["file"]: e["sha256"] for e in manifest["checkpoints"]}
        if manifest.get("best"):
            listed[manifest["best"]["file"]] = manifest["best"]["sha256"]
    return path, _read_verified(path, listed.get(path.name))
