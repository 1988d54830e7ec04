"""A killed ``mlpatterns run`` resumes at the first step not committed and gives the same bundles; the Ray
engine runs the models side by side with the local engine's results (Workflow Pipeline, 25)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pipeline_run import carseats  # the same folder (pytest puts it on the path)

from mlpatterns.cli import main
from mlpatterns.reproducibility.workflow_pipeline import PAUSE_VARIABLE, Store

MODEL_FILES = ("model.onnx", "transform.json", "statistics.json")


def cli(path: Path, output: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mlpatterns.cli", "run", str(path), "--output", str(output)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200", **(env or {})})


def comparable(manifest: dict) -> dict:
    """A manifest without what differs between two runs by design: times, where the run kept its cache."""
    manifest = json.loads(json.dumps(manifest))
    for field in ("created", "manifest_sha256"):
        manifest.pop(field, None)
    manifest["lineage"].pop("pipeline_store", None)
    return manifest


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole")
    path = carseats(folder)
    done = cli(path, folder / "run")
    assert done.wait(timeout=600) == 0, done.stdout.read()
    return path, folder / "run"


def wait_for(condition, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# each step and the artifact whose commit it pauses after
KILL_POINTS = {"benchmark": "benchmark_metrics", "train.boosted": "trained.boosted", "export.linear": "bundle.linear",
               "verify.boosted": "verified.boosted"}


@pytest.mark.parametrize("killed_in", list(KILL_POINTS))
def test_a_run_killed_inside_a_step_commit_resumes_and_gives_the_same_bundles(uninterrupted, tmp_path, killed_in):
    """SIGKILL after a step's artifact is committed and before its record: that step runs again, no step before it
    does, and the bundles are those of an uninterrupted run."""
    path, reference = uninterrupted
    output = tmp_path / "run"
    process = cli(path, output, {PAUSE_VARIABLE: f"{killed_in}:600"})
    wait_for(lambda: any((output / "cache" / "artifacts").glob(f"*/{KILL_POINTS[killed_in]}")))
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    steps = [json.loads(p.read_text())["step"] for p in (output / "cache" / "steps").glob("*.json")]
    assert killed_in not in steps and "load" in steps  # committed before: kept; the one killed: no record
    resumed = cli(path, output)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out
    report = json.loads((output / "report.json").read_text())
    assert report["steps"][killed_in] == "ran"
    assert all(report["steps"][step] == "cached" for step in steps)
    for model in ("linear", "boosted"):
        ours, theirs = output / "bundles" / model, reference / "bundles" / model
        for name in MODEL_FILES:
            assert (ours / name).read_bytes() == (theirs / name).read_bytes(), (model, name)
        assert comparable(json.loads((ours / "manifest.json").read_text())) == comparable(
            json.loads((theirs / "manifest.json").read_text()))


def test_two_runs_of_a_spec_write_byte_identical_model_and_transform_files(uninterrupted, tmp_path):
    path, reference = uninterrupted
    done = cli(path, tmp_path / "again")
    assert done.wait(timeout=600) == 0
    for model in ("linear", "boosted"):
        for name in MODEL_FILES:
            assert (tmp_path / "again" / "bundles" / model / name).read_bytes() == (
                reference / "bundles" / model / name).read_bytes()


def test_the_ray_engine_trains_the_models_side_by_side_with_the_local_results(local_ray, tmp_path):
    """``mlpatterns run --engine ray`` in this process, on the session's Ray (tests/conftest.py): starting a
    Ray of its own in a new process took as long again as the runs."""
    models = {"linear": {"type": "linear"},  # long enough (a few seconds each) to see them overlap
              "boosted": {"type": "gradient_boosting", "params": {"max_iter": 300, "early_stopping": False}}}
    path = carseats(tmp_path, models=models)
    for engine in ("local", "ray"):
        assert main(["run", str(path), "--output", str(tmp_path / engine), "--engine", engine]) == 0, engine
    assert local_ray.is_initialized()  # the engine joined the session's Ray and left it running
    reference = tmp_path / "local"
    records = {record.step: record for record in Store(tmp_path / "ray" / "cache", create=False).records()}
    linear, boosted = records["train.linear"], records["train.boosted"]
    assert linear.start_time < boosted.end_time and boosted.start_time < linear.end_time  # they overlapped
    for model in ("linear", "boosted"):
        for name in MODEL_FILES:
            assert (tmp_path / "ray" / "bundles" / model / name).read_bytes() == (
                reference / "bundles" / model / name).read_bytes()


def test_a_steps_own_error_comes_back_from_a_ray_worker(local_ray, tmp_path, capsys):
    """A wrong feature found in a Ray worker is the same named error (exit 2) as with the local engine."""
    path = carseats(tmp_path, features={"numeric": ["Price", "Nonexistent"], "categorical": ["ShelveLoc"]})
    assert main(["run", str(path), "--engine", "ray"]) == 2
    assert "features.numeric.Nonexistent: unknown column 'Nonexistent'" in capsys.readouterr().err
