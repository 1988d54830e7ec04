"""Fixtures shared by test files in more than one folder of tests/."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance with 2 CPUs for every test of this test process that needs one; yields ``ray``.

    Starting Ray (its processes, then workers that import this package) takes seconds to tens
    of seconds on a small machine, so the Ray tests of tests/serving and
    tests/reproducibility/workflow_pipeline share one instead of each module starting its own.
    It is started by :func:`~mlpatterns.reproducibility.workflow_pipeline.init_ray`, whose
    workers get this process's ``sys.path`` (step functions defined in test modules import
    there); Batch Serving's ``connect_ray`` joins it. Shut down at the end of the session if
    this fixture started it.
    """
    ray = pytest.importorskip("ray")
    from mlpatterns.reproducibility.workflow_pipeline import init_ray

    started = init_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()
