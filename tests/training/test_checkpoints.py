"""Checkpoints (pattern 12): atomic writes, verification, fallback, and runs killed with SIGKILL."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from mlpatterns.training.checkpoints import atomic as checkpoints_io
from mlpatterns.training.checkpoints import manager as checkpoints
from mlpatterns.training.checkpoints.manager import (
    CheckpointError,
    CheckpointManager,
    CorruptCheckpointWarning,
    atomic_write,
    load_checkpoint,
)
from mlpatterns.training.checkpoints.state import (
    CheckpointMismatchError,
    capture_rng_state,
    check_weights_only,
    load_model_state,
    restore_rng_state,
)

SCRIPT = Path(__file__).with_name("resumable_run.py")
RUN_TIMEOUT_S = 120


def state(step: int) -> dict:
    return {"weights": torch.full((4,), float(step)), "meta": {"step": step, "note": "x"}}


def saved(directory: Path, steps=(10, 20, 30), keep_last=3) -> CheckpointManager:
    manager = CheckpointManager(directory, keep_last=keep_last)
    for step in steps:
        manager.save(state(step), step=step, epoch=step // 10)
    return manager


# -- atomic writes ------------------------------------------------------------------------------
def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "file.bin"
    atomic_write(target, b"old")
    atomic_write(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_a_write_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "file.bin"
    atomic_write(target, b"old")

    def fail(file, data):
        file.write(data[:3])
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints_io, "_write_fully", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new content")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


# -- the manager ---------------------------------------------------------------------------------
def test_keeps_the_last_k_and_the_best(tmp_path):
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save(state(10), step=10, epoch=1, metric=0.5, best=True)
    for step in (20, 30, 40):
        manager.save(state(step), step=step, epoch=step // 10, metric=0.9)
    assert [e["step"] for e in manager.entries()] == [10, 30, 40]
    assert manager.best()["step"] == 10
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.pt")) == [
        "ckpt-000000010.pt", "ckpt-000000030.pt", "ckpt-000000040.pt"
    ]
    path, best = manager.load_best()
    assert path.name == "ckpt-000000010.pt" and best["meta"]["step"] == 10
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["checkpoints"][0]["sha256"]) == 64


def test_load_latest_verifies_and_falls_back_on_a_truncated_file(tmp_path):
    manager = saved(tmp_path)
    newest = tmp_path / "ckpt-000000030.pt"
    newest.write_bytes(newest.read_bytes()[:100])
    with pytest.warns(CorruptCheckpointWarning, match=r"ckpt-000000030\.pt: sha256 .* truncated or damaged"):
        path, loaded = manager.load_latest()
    assert path.name == "ckpt-000000020.pt" and loaded["meta"]["step"] == 20


def test_a_single_flipped_byte_is_detected(tmp_path):
    manager = saved(tmp_path)
    newest = tmp_path / "ckpt-000000030.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0x01
    newest.write_bytes(bytes(data))
    with pytest.warns(CorruptCheckpointWarning, match="sha256"):
        path, _ = manager.load_latest()
    assert path.name == "ckpt-000000020.pt"


def test_an_unlisted_file_counts_if_it_loads(tmp_path):
    """A run killed between renaming a checkpoint and rewriting the manifest."""
    manager = saved(tmp_path, steps=(10, 20))
    manifest = (tmp_path / "manifest.json").read_bytes()
    manager.save(state(30), step=30, epoch=3)
    (tmp_path / "manifest.json").write_bytes(manifest)
    path, loaded = manager.load_latest()
    assert path.name == "ckpt-000000030.pt" and loaded["meta"]["step"] == 30
    (tmp_path / "ckpt-000000040.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.warns(CorruptCheckpointWarning, match="not a readable checkpoint"):
        path, _ = manager.load_latest()
    assert path.name == "ckpt-000000030.pt"


def test_a_damaged_manifest_is_reported_and_files_are_still_found(tmp_path):
    manager = saved(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "mlpatterns.checkp')
    with pytest.warns(CorruptCheckpointWarning, match="manifest.json is unreadable"):
        path, _ = manager.load_latest()
    assert path.name == "ckpt-000000030.pt"


def test_load_checkpoint_takes_a_file_or_a_directory(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save(state(10), step=10, epoch=1, best=True)
    manager.save(state(20), step=20, epoch=2)
    assert load_checkpoint(tmp_path)[0].name == "ckpt-000000020.pt"
    assert load_checkpoint(tmp_path, prefer="best")[0].name == "ckpt-000000010.pt"
    assert load_checkpoint(tmp_path / "ckpt-000000010.pt")[1]["meta"]["step"] == 10
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        load_checkpoint(tmp_path / "empty")


def test_only_weights_only_values_are_saved(tmp_path):
    manager = CheckpointManager(tmp_path)
    with pytest.raises(TypeError, match=r"state\['meta'\]\['array'\] holds a numpy.ndarray"):
        manager.save({"meta": {"array": np.zeros(2)}}, step=1, epoch=0)
    assert list(tmp_path.glob("ckpt-*")) == []
    with pytest.raises(TypeError, match="holds a .*Random"):
        check_weights_only({"rng": random.Random(0)})
    check_weights_only({"a": [1, 2.0, None, "s", (torch.zeros(1), torch.Size([1]), torch.float32)]})


def test_a_second_writer_is_refused_and_stray_temporaries_are_removed(tmp_path):
    manager = saved(tmp_path)
    (tmp_path / ".ckpt-000000040.pt.abc.tmp").write_bytes(b"half")
    with manager.locked():
        assert not list(tmp_path.glob("*.tmp"))
        with pytest.raises(CheckpointError, match="in use by another training process"), \
                CheckpointManager(tmp_path).locked():
            pass
    with CheckpointManager(tmp_path).locked():  # released
        pass


def test_bad_arguments_name_the_parameter(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="keep_last: expected an integer >= 1, got 0"):
        CheckpointManager(tmp_path, keep_last=0)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError, match="checkpoint_dir .*file.* not a directory"):
        CheckpointManager(blocker).prepare()
    with pytest.raises(NotADirectoryError, match="checkpoint_dir .*below.* cannot be created: Not a directory"):
        CheckpointManager(blocker / "below").prepare()
    assert CheckpointManager(tmp_path / "absent").candidates() == []

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(checkpoints.tempfile, "mkstemp", refuse)
    with pytest.raises(PermissionError, match="checkpoint_dir .* is not writable: Permission denied"):
        CheckpointManager(tmp_path / "ro").prepare()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_directory_is_refused(tmp_path):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="is not writable"):
            CheckpointManager(read_only).prepare()
    finally:
        read_only.chmod(0o700)


# -- state -----------------------------------------------------------------------------------------
def test_rng_state_round_trips_for_python_numpy_and_torch(tmp_path):
    # the legacy global NumPy generator on purpose: that is the state a checkpoint must save
    random.seed(1), np.random.seed(1), torch.manual_seed(1)  # noqa: NPY002
    np.random.normal()  # noqa: NPY002 - leaves a cached gaussian in the state
    captured = capture_rng_state()
    CheckpointManager(tmp_path).save({"rng": captured}, step=1, epoch=0)
    expected = (random.random(), np.random.normal(), np.random.random(), torch.rand(3))  # noqa: NPY002
    restore_rng_state(load_checkpoint(tmp_path)[1]["rng"])
    got = (random.random(), np.random.normal(), np.random.random(), torch.rand(3))  # noqa: NPY002
    assert expected[:3] == got[:3] and torch.equal(expected[3], got[3])


def test_another_architecture_is_refused_naming_the_keys():
    source = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    other = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 1))
    with pytest.raises(CheckpointMismatchError) as error:
        load_model_state(other, source.state_dict(), source="ckpt-1.pt")
    message = str(error.value)
    assert "ckpt-1.pt was written for a different model architecture (Sequential)" in message
    assert "missing from the checkpoint: 2.bias, 2.weight" in message
    assert "not in the model: 1.bias, 1.weight" in message
    assert "0.weight (checkpoint (4, 3), model (5, 3))" in message


# -- killed processes ------------------------------------------------------------------------------
class Zygote:
    """``resumable_run.py zygote``: imports torch once, then forks one training process per run.

    Each run is a separate process that the test kills with SIGKILL; forking from a warm
    parent spares each run the seconds of importing torch.
    """

    def __init__(self, log: Path) -> None:
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(SCRIPT), "zygote"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1,
        )
        self.lines: list[str] = []
        self.changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_line(lambda line: line == "ready")

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(line.strip())
                self.changed.notify_all()

    def wait_line(self, wanted, start: int = 0) -> str:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        with self.changed:
            while True:
                for line in self.lines[start:]:
                    if wanted(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise AssertionError(f"no such line in {self.lines}: {self.log.name}")
                self.changed.wait(min(left, 0.5))

    def start(self, directory: Path, output: Path, hang_in_write: int = 0) -> int:
        with self.changed:
            seen = len(self.lines)
        self.process.stdin.write(f"run {directory} {output} {hang_in_write or ''}\n")
        self.process.stdin.flush()
        return int(self.wait_line(lambda line: line.startswith("forked "), seen).split()[1])

    def wait_for(self, pid: int, event: str) -> str:
        def seen(line: str) -> bool:
            return line.startswith((f"{pid} {event}", f"exited {pid} "))

        line = self.wait_line(seen)
        assert line.startswith(f"{pid} {event}"), f"run {pid} ended before {event!r}: {self.log.name}"
        return line

    def exit_code(self, pid: int) -> int:
        return int(self.wait_line(lambda line: line.startswith(f"exited {pid} ")).split()[2])

    def output_of(self, pid: int) -> list[str]:
        with self.changed:
            return [line for line in self.lines if line.startswith(f"{pid} ")]

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=RUN_TIMEOUT_S)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.log.close()


def _same_state(first, second) -> bool:
    if isinstance(first, torch.Tensor):
        return isinstance(second, torch.Tensor) and torch.equal(first, second)
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_same_state(first[k], second[k]) for k in first)
    if isinstance(first, (list, tuple)):
        return len(first) == len(second) and all(_same_state(a, b) for a, b in zip(first, second, strict=True))
    return first == second


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The zygote, and the uninterrupted run, started at once in the background."""
    directory = tmp_path_factory.mktemp("uninterrupted")
    zygote = Zygote(directory / "zygote.log")
    pid = zygote.start(directory / "checkpoints", directory / "final.pt")
    result = {}

    def reference() -> dict:
        if not result:
            assert zygote.exit_code(pid) == 0, zygote.log.name
            result["final"] = torch.load(directory / "final.pt", weights_only=True)
            result["last"] = load_checkpoint(directory / "checkpoints")[1]
        return result

    zygote.reference = reference
    yield zygote
    zygote.close()


def _assert_same_end(reference: dict, directory: Path, output: Path) -> None:
    final = torch.load(output, weights_only=True)
    assert _same_state(final["model"], reference["final"]["model"])  # best weights, restored
    assert final["history"] == reference["final"]["history"]
    last = load_checkpoint(directory)[1]
    for part in ("model", "optimizer", "scheduler", "rng", "data", "progress", "best", "best_model", "history"):
        assert _same_state(last[part], reference["last"][part]), part


def test_sigkill_at_random_moments_then_resume_ends_bit_for_bit(tmp_path, runs):
    directory, output = tmp_path / "checkpoints", tmp_path / "final.pt"
    delays = random.Random(2020)
    kills, steps_at_kill = 0, []
    while kills < 4:
        pid = runs.start(directory, output)
        runs.wait_for(pid, "started")
        time.sleep(delays.uniform(0.1, 0.6))  # a quiet machine trains the whole run in about a second
        with contextlib.suppress(ProcessLookupError):  # already finished and reaped
            os.kill(pid, signal.SIGKILL)
        if runs.exit_code(pid) != -signal.SIGKILL:
            break  # the run had finished before the kill
        kills += 1
        entries = CheckpointManager(directory).entries()
        steps_at_kill.append(entries[-1]["step"] if entries else 0)
    assert kills >= 3, f"only {kills} kills landed before the run finished"
    assert steps_at_kill == sorted(steps_at_kill) and steps_at_kill[-1] > 0, steps_at_kill
    pid = runs.start(directory, output)
    assert runs.exit_code(pid) == 0, runs.log.name
    assert f"{pid} resumed_from None" not in runs.output_of(pid)
    _assert_same_end(runs.reference(), directory, output)


def test_sigkill_during_a_checkpoint_write_keeps_the_last_good_one(tmp_path, runs):
    directory, output = tmp_path / "checkpoints", tmp_path / "final.pt"
    pid = runs.start(directory, output, hang_in_write=5)
    runs.wait_for(pid, "half-written")
    partial = list(directory.glob(".ckpt-*.tmp"))
    os.kill(pid, signal.SIGKILL)
    assert runs.exit_code(pid) == -signal.SIGKILL
    assert len(partial) == 1 and partial[0].stat().st_size > 0  # killed with half a file on disk
    with pytest.raises(Exception):  # noqa: B017 - what a non-atomic write would have left
        torch.load(partial[0], weights_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no damaged file anywhere
        path, last_good = CheckpointManager(directory).load_latest()
    steps = [entry["step"] for entry in CheckpointManager(directory).entries()]
    assert last_good["progress"]["step"] == steps[-1] == int(path.stem.split("-")[1]) > 0
    pid = runs.start(directory, output)
    assert runs.exit_code(pid) == 0, runs.log.name
    assert f"{pid} resumed_from {path}" in runs.output_of(pid)
    assert not list(directory.glob("*.tmp"))
    _assert_same_end(runs.reference(), directory, output)
