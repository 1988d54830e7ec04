"""Atomic file replacement: the write that makes Checkpoints (pattern 12) survive a kill.

A checkpoint overwritten in place is destroyed by a process killed half way through the
write, and with it the run it was meant to save. Writing to a temporary file in the same
directory, syncing it, and renaming it over the old name replaces the file in one step:
readers see the old file or the new one, never a mix.

Examples
--------
>>> import pathlib, tempfile
>>> target = pathlib.Path(tempfile.mkdtemp()) / "state.bin"
>>> atomic_write(target, b"first"); atomic_write(target, b"second")
>>> target.read_bytes()
b'second'
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write"]


def _write_fully(file: Any, data: bytes) -> None:
    """Write ``data`` to an open file (a seam for the kill-during-write test)."""
    file.write(data)


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes, *, sync_directory: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new, never a mix.

    The bytes go to a temporary file in the same directory, which is flushed and fsynced,
    renamed over ``path`` (``os.replace``, atomic on POSIX and Windows), and the directory
    is fsynced so that the rename survives a power cut (``sync_directory=False`` leaves that
    to a later write in the same directory). A process killed at any moment leaves at worst
    a stray ``.<name>.*.tmp`` file, which the next
    :meth:`mlpatterns.training.checkpoints.manager.CheckpointManager.locked` removes.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_fully(file, data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_directory:
        _fsync_directory(path.parent)
