"""Test-session settings shared by ``tests/`` and the doctests in ``src/``.

``make test`` runs two pytest-xdist workers on two cores. OpenMP (torch,
HistGradientBoosting) starts one thread per core in each worker by default, and
four spinning threads on two cores run some fits forty times slower than one
thread each. Each worker therefore computes on one thread; set the variables
yourself to override.
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
