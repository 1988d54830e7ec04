"""What ``mlpatterns run`` leaves in its output folder, and only there.

The folder holds ``bundles/<model>/``, ``test.parquet``, ``statistics.json``,
``report.json``, ``report.html`` (the same report, for a browser), ``plots/``, ``checkpoints/``, ``two_phase/`` (a spec's ``two_phase:``
section) and the pipeline's cache ``cache/``. Each
file is written beside its place and renamed into it (a reader never sees half a file,
a failure leaves the old one); a bundle folder is swapped in whole. Nothing outside
those names is written or removed: a reused folder keeps another spec's bundles.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from mlpatterns.atomic_files import replace_atomically

__all__ = ["OWNED", "check_output_folder", "clear_checkpoints", "plot_learning_curves", "remove_stale_bundles",
           "replace_atomically", "replace_folder", "write_text_atomically"]

#: what a run owns inside its output folder
OWNED = ("test.parquet", "report.json", "report.html", "statistics.json", "bundles", "plots", "checkpoints", "cache",
         "two_phase")


def check_output_folder(spec: Any) -> None:
    """Refuse, before any work, an output folder that is a file or that would overwrite the spec's own data."""
    from mlpatterns.spec import SpecError
    from mlpatterns.spec.schema import data_path

    output = spec.output_dir
    if output.exists() and not output.is_dir():
        raise SpecError(f"output.dir: {output} is a file, not a folder")
    path = data_path(spec)
    if path is None:
        return
    data, output = path.resolve(), output.resolve()
    if any(data == output / place or output / place in data.parents for place in OWNED):
        raise SpecError(f"data.path: {path} is where the run writes its own output in {spec.output_dir}; "
                        "move the data or choose another output.dir")


def write_text_atomically(path: Path, text: str) -> None:
    """Write text to ``path`` through a temporary file (see :func:`replace_atomically`)."""
    replace_atomically(path, lambda temporary: Path(temporary).write_text(text))


def copy_file(source: Path, path: Path) -> None:
    """Copy ``source`` to ``path`` through a temporary file."""
    replace_atomically(path, lambda temporary: shutil.copyfile(source, temporary))


def replace_folder(source: Path, path: Path) -> None:
    """Copy the folder ``source`` to ``path``, swapping it in whole: a copy beside it, then two renames.

    Between the renames ``path`` is briefly absent, never half written; the old folder is
    removed last.
    """
    token = uuid.uuid4().hex[:8]
    fresh = path.parent / f".{path.name}.new-{token}"
    old = path.parent / f".{path.name}.old-{token}"
    shutil.copytree(source, fresh)
    try:
        if path.exists():
            os.replace(path, old)
        os.replace(fresh, path)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def remove_stale_bundles(folder: Path, keep: dict[str, Any], spec_name: str) -> list[str]:
    """Remove the bundles of models that this spec no longer declares from a reused output folder.

    Only directories that hold a bundle this spec wrote (its manifest's name is
    ``<spec name>/<model>``) are removed; another spec's bundles and anything else in the
    folder are left alone.
    """
    from mlpatterns.serving.bundle import BUNDLE_FORMAT, MANIFEST

    removed: list[str] = []
    if not folder.is_dir():
        return removed
    for entry in sorted(folder.iterdir()):
        if entry.name in keep or entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("format") == BUNDLE_FORMAT \
                and str(manifest.get("name", "")).startswith(f"{spec_name}/"):  # this spec's, not another's
            shutil.rmtree(entry)
            removed.append(entry.name)
    return removed


def clear_checkpoints(folder: Path, checkpoints: dict[str, Any]) -> None:
    """A fresh run empties the run's own checkpoint folder of a network (Checkpoints, 12), never a
    folder the spec names (``dir``) nor the one it fine-tunes from (``init_from``)."""
    if "dir" in checkpoints or not folder.is_dir():
        return
    source = checkpoints.get("init_from")
    if source is not None and folder.resolve() in (Path(source).resolve(), *Path(source).resolve().parents):
        return
    shutil.rmtree(folder)


def plot_learning_curves(model: dict[str, Any], path: Path, title: str) -> Path | None:
    """A network's learning curves from its per-epoch history, as a PNG (None without matplotlib)."""
    history = model.get("history")
    if model.get("framework") != "torch" or not history or not isinstance(history[0], dict) \
            or "train_loss" not in history[0]:
        return None
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # the plot extra is not installed: the history stays in the manifest
        return None
    from mlpatterns.training import plot_learning_curves as plot

    path.parent.mkdir(parents=True, exist_ok=True)
    figure = plot(history, path, title=title)
    plt.close(figure)
    return path
