"""Workflow Pipeline (25) on Ray: independent steps overlap; records and digests equal the local run's."""

from __future__ import annotations

import os
import time

import pytest

from mlpatterns.reproducibility.workflow_pipeline import Pipeline, Step, StepError, Store

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray(local_ray):
    """The session's Ray (tests/conftest.py), once two of its workers answer at the same time."""
    task = ray.remote(num_cpus=1)(worker_pid)
    deadline = time.monotonic() + 60
    while len(set(ray.get([task.remote(), task.remote()]))) < 2:  # two workers ready
        assert time.monotonic() < deadline
    return local_ray


def worker_pid():
    time.sleep(0.5)
    return os.getpid()


def prepare(inputs, outputs, params):
    outputs["numbers"].write_text("\n".join(str(i) for i in range(100)))


def model(inputs, outputs, params):
    time.sleep(params["seconds"])
    numbers = [int(line) for line in inputs["numbers"].read_text().splitlines()]
    outputs["model"].write_text(str(sum(n ** params["power"] for n in numbers)))
    return {"power": params["power"]}


def compare(inputs, outputs, params):
    outputs["summary"].mkdir()
    for name, path in inputs.items():
        (outputs["summary"] / name).write_text(path.read_text())


def fail(inputs, outputs, params):
    raise RuntimeError("no luck")


def pipeline(seconds=1.0):
    return Pipeline([
        Step("prepare", prepare, outputs=["numbers"]),
        Step("model.a", model, {"numbers": "numbers"}, {"model": "model.a"}, {"power": 1, "seconds": seconds}),
        Step("model.b", model, {"numbers": "numbers"}, {"model": "model.b"}, {"power": 2, "seconds": seconds}),
        Step("compare", compare, {"a": "model.a", "b": "model.b"}, ["summary"]),
    ])  # fmt: skip


def test_independent_steps_overlap_and_match_the_local_engine(local_ray, tmp_path):
    events = []
    on_ray = pipeline().run(
        Store(tmp_path / "ray"), engine="ray", progress=lambda *e: events.append(e)
    )
    a, b = on_ray.records["model.a"], on_ray.records["model.b"]
    assert a.start_time < b.end_time and b.start_time < a.end_time  # the two models overlapped
    assert events.index(("model.b", "start")) < events.index(("model.a", "done"))
    local = pipeline().run(Store(tmp_path / "local"))
    assert on_ray.digests == local.digests
    assert {n: r.key for n, r in on_ray.records.items()} == {
        n: r.key for n, r in local.records.items()
    }
    assert on_ray.records["model.b"].facts == {"power": 2}
    assert (on_ray.artifacts["summary"] / "b").read_text() == str(sum(n * n for n in range(100)))
    again = pipeline().run(Store(tmp_path / "ray"), engine="ray")
    assert set(again.statuses.values()) == {"cached"}


def test_a_failing_step_on_ray_names_the_step(local_ray, tmp_path):
    broken = Pipeline([*pipeline(seconds=0).steps[:2], Step("bad", fail, {"n": "numbers"}, ["x"])])
    with pytest.raises(StepError, match="step 'bad': failed: RuntimeError: no luck"):
        broken.run(Store(tmp_path / "store"), engine="ray")
    records = {record.step for record in Store(tmp_path / "store").records()}
    assert records == {"prepare", "model.a"}  # what was running was committed
