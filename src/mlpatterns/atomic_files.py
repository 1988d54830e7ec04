"""Files written whole or not at all: the one way mlpatterns replaces a file a person or a program reads.

A report, a plot or a JSON file written in place can be read half written, and a failure
while writing leaves a broken file where a good one was. Here every file is written beside
its place under a unique temporary name and renamed into it (``os.replace``, atomic on
POSIX and Windows); on failure the temporary file is removed and the old file stays. The
new file gets the usual permissions (the user's umask), not ``mkstemp``'s private 0600.

Checkpoints, which must also survive a power cut, add an fsync of the file and its folder:
:func:`mlpatterns.training.checkpoints.atomic.atomic_write`.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["replace_atomically", "save_figure", "write_bytes_atomically"]


def replace_atomically(path: str | os.PathLike[str], write: Callable[[str], Any]) -> None:
    """``write(temporary)`` a file beside ``path``, then rename it into place: a reader never sees half a file,
    and a failure leaves the old one. The file gets the usual permissions (``mkstemp`` makes it private)."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file (:func:`replace_atomically`)."""
    replace_atomically(path, lambda temporary: Path(temporary).write_bytes(data))


def save_figure(figure: Any, path: str | os.PathLike[str], **savefig: Any) -> Path:
    """Render a matplotlib ``figure`` as PNG and write it to ``path`` whole (:func:`write_bytes_atomically`);
    the figure is closed either way. ``savefig`` options (``dpi``, ``bbox_inches``) go to ``Figure.savefig``."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", **savefig)
    finally:
        plt.close(figure)
    path = Path(path)
    write_bytes_atomically(path, buffer.getvalue())
    return path
