"""Files written whole or not at all, with the usual permissions (mlpatterns.atomic_files)."""

from __future__ import annotations

import os

import pytest

from mlpatterns.atomic_files import replace_atomically, save_figure, write_bytes_atomically


def test_a_file_is_replaced_whole_with_the_umask_mode(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old")
    write_bytes_atomically(path, b"new")
    umask = os.umask(0)
    os.umask(umask)
    assert path.read_bytes() == b"new" and (path.stat().st_mode & 0o777) == 0o666 & ~umask  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")

    def fail(temporary):
        with open(temporary, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(path, fail)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_a_figure_is_saved_as_png_and_closed(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots()
    axis.plot([0, 1], [1, 0])
    path = save_figure(figure, tmp_path / "line.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not plt.fignum_exists(figure.number)
