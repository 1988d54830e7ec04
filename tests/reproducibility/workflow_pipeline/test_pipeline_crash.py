"""Workflow Pipeline (25): a run killed with SIGKILL anywhere resumes to the same artifacts."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpatterns.reproducibility.workflow_pipeline import PAUSE_VARIABLE, Store, file_digest
from mlpatterns.reproducibility.workflow_pipeline.digests import artifact_digest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

SCRIPT = Path(__file__).with_name("crashable_pipeline.py")
STEPS = ["load", "split", "train", "evaluate"]


def load_script():
    spec = importlib.util.spec_from_file_location("crashable_pipeline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "data.csv"
    rows = [f"{i},{i % 7},{(i * 37) % 11}" for i in range(200)]
    path.write_text("id,x,y\n" + "\n".join(rows) + "\n")
    return path


def start(store, data, result, **env):
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(store), str(data), str(result)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    assert process.stdout.readline().strip() == "started"
    return process


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def kill(process):
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    process.stdout.close()


def recorded_steps(root: Path) -> set[str]:
    """Steps with a record; every record's artifacts exist whole (re-hashed)."""
    store = Store(root)
    steps = set()
    for record in store.records():
        for output in record.outputs.values():
            path = store.artifact_path(output)
            assert artifact_digest(path)[0] == output["digest"], path
        steps.add(record.step)
    return steps


def test_killed_inside_a_step_and_inside_a_commit_resumes_to_the_same_digests(tmp_path, data):
    baseline = load_script().summary(load_script().pipeline(data).run(Store(tmp_path / "base")))
    root, result = tmp_path / "store", tmp_path / "result.json"
    signal_file = tmp_path / "hanging"

    # 1. killed while step "split" writes its output: load is recorded, split is not
    process = start(root, data, result, HANG_IN="split", HANG_SIGNAL=str(signal_file))
    wait_for(signal_file.exists)
    kill(process)
    assert recorded_steps(root) == {"load"}
    leftovers = list((root / "tmp").iterdir())
    assert leftovers and all(p.name.startswith(f"{process.pid}-") for p in leftovers)

    # 2. killed after train's artifact is committed, before its record is written
    process = start(root, data, result, **{PAUSE_VARIABLE: "train:600"})
    wait_for(lambda: any((root / "artifacts").glob("*/model.json")))
    kill(process)
    assert recorded_steps(root) == {"load", "split"}
    assert not any(path.exists() for path in leftovers)  # run 2 removed run 1's temporary folder

    # 3. resumed: only the steps without a record run; the artifacts equal an uninterrupted run's
    process = start(root, data, result)
    assert process.wait(timeout=120) == 0
    process.stdout.close()
    resumed = json.loads(result.read_text())
    assert resumed["statuses"] == {
        "load": "cached", "split": "cached", "train": "ran", "evaluate": "ran"
    }  # fmt: skip
    assert resumed["keys"] == baseline["keys"]
    assert resumed["digests"] == baseline["digests"]
    assert recorded_steps(root) == set(STEPS)
    [model] = (root / "artifacts").glob("*/model.json")
    assert file_digest(model) == baseline["digests"]["model.json"]  # committed once, reused
    assert not list((root / "tmp").iterdir())


def test_killed_at_arbitrary_moments_never_leaves_a_record_without_its_artifacts(tmp_path, data):
    baseline = load_script().summary(load_script().pipeline(data).run(Store(tmp_path / "base")))
    root, result = tmp_path / "store", tmp_path / "result.json"
    recorded = set()
    for delay in (0.05, 0.3, 0.55):
        process = start(root, data, result, STEP_SLEEP="0.2")
        time.sleep(delay)
        if process.poll() is None:
            kill(process)
        now = recorded_steps(root)
        assert recorded <= now  # records are never lost
        assert now == set(STEPS[: len(now)])  # a prefix of the chain
        recorded = now
    process = start(root, data, result)
    assert process.wait(timeout=120) == 0
    process.stdout.close()
    resumed = json.loads(result.read_text())
    assert {s for s, status in resumed["statuses"].items() if status == "cached"} == recorded
    assert resumed["digests"] == baseline["digests"]
