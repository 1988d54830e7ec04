"""Workflow Pipeline (25): the store's marker, listing, clearing, temporary folders and digests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from mlpatterns.reproducibility.workflow_pipeline import (
    Pipeline,
    Step,
    Store,
    directory_digest,
    file_digest,
)
from mlpatterns.reproducibility.workflow_pipeline.digests import code_digests, module_files


def write(inputs, outputs, params):
    outputs["out"].write_text(params["text"] * params.get("repeat", 1))


def pipeline(**params):
    return Pipeline([
        Step("first", write, outputs=["out"], params={"text": "a", **params}),
        Step("second", write, outputs={"out": "other"}, params={"text": "b"}),
    ])  # fmt: skip


def test_a_store_refuses_a_foreign_folder_and_a_file(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a pipeline store"):
        Store(tmp_path / "mine")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        Store(tmp_path / "file")
    store = Store(tmp_path / "new" / "store")
    assert (store.root / "PIPELINE_STORE").is_file()
    assert Store(store.root).root == store.root  # reopened


def test_list_and_clear_one_step_then_all(tmp_path):
    store = Store(tmp_path / "store")
    pipeline(repeat=1).run(store)
    pipeline(repeat=3).run(store)
    entries = store.list()
    assert [(e.step, e.size, e.latest) for e in entries] == [
        ("first", 1, False), ("second", 1, True), ("first", 3, True)
    ]  # fmt: skip
    report = store.clear("first")
    assert (report.records, report.artifacts, report.bytes) == (2, 2, 4)
    assert [e.step for e in store.list()] == ["second"]
    assert store.latest("first") is None and store.latest("second") is not None
    assert pipeline().plan(store)[0].reasons == ("no record for this key",)
    assert pipeline().run(store).statuses == {"first": "ran", "second": "cached"}
    report = store.clear()
    assert report.records == 2 and not list((store.root / "artifacts").iterdir())
    assert (store.root / "PIPELINE_STORE").is_file()


def test_clear_refuses_a_folder_without_the_marker(tmp_path):
    store = Store(tmp_path / "store")
    (store.root / "PIPELINE_STORE").unlink()
    with pytest.raises(ValueError, match="refusing to clear"):
        store.clear()


def test_clear_keeps_what_is_not_its_own(tmp_path):
    store = Store(tmp_path / "store")
    pipeline().run(store)
    outside = tmp_path / "outside.txt"
    outside.write_text("mine")
    (store.root / "artifacts" / "README").write_text("not a digest folder")
    (store.root / "artifacts" / ("0" * 64)).mkdir()
    (store.root / "artifacts" / ("0" * 64) / "link").symlink_to(outside)
    store.clear()
    assert outside.read_text() == "mine"
    assert (store.root / "artifacts" / "README").exists()
    assert not (store.root / "artifacts" / ("0" * 64)).exists()


def test_temporary_folders_of_dead_processes_are_removed_others_kept(tmp_path):
    store = Store(tmp_path / "store")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    left = store.root / "tmp" / f"{dead_pid}-0123abcd-train"
    left.mkdir()
    (left / "model.bin").write_bytes(b"partial")
    alive = store.new_temp("running")
    foreign = store.root / "tmp" / "someone-elses"
    foreign.mkdir()
    pipeline().run(store)
    assert not left.exists() and alive.exists() and foreign.exists()


def test_file_and_directory_digests_are_content_only(tmp_path):
    data = tmp_path / "a.bin"
    data.write_bytes(b"x" * 3_000_000)
    assert file_digest(data) == hashlib.sha256(b"x" * 3_000_000).hexdigest()
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "f.txt").write_text("1")
    before = directory_digest(folder)
    os.utime(folder / "sub" / "f.txt", ns=(5, 5))
    assert directory_digest(folder) == before
    moved = tmp_path / "moved"
    folder.rename(moved)
    assert directory_digest(moved) == before
    (moved / "empty").mkdir()
    with_empty = directory_digest(moved)
    assert with_empty != before
    (moved / "sub" / "f.txt").rename(moved / "sub" / "g.txt")
    assert directory_digest(moved) != with_empty


def test_code_digests_hash_module_sources_without_importing(tmp_path, monkeypatch):
    package = tmp_path / "wp_package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [p.name for p in module_files("wp_package")] == ["__init__.py", "helpers.py"]
    before = code_digests(write, ["wp_package"])
    (package / "helpers.py").write_text("X = 2\n")
    after = code_digests(write, ["wp_package"])
    assert before["function"] == after["function"]
    assert before["modules"]["wp_package"] != after["modules"]["wp_package"]
    assert "wp_package" not in sys.modules
    with pytest.raises(ValueError, match="'wp_no_such_module' cannot be found"):
        code_digests(write, ["wp_no_such_module"])
