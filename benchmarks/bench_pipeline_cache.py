"""Workflow Pipeline (25): what the cache saves on ``examples/flights.yaml``, side by side in one run.

Three ``mlpatterns run`` processes on the same spec, each timed from start to exit (so the
Python start-up and the imports count):

* ``first``: an empty cache, every step runs (load 336,776 flights, validate, split,
  transform, the heuristic benchmark, train, evaluate, export and verify both models);
* ``cached``: the same spec again, every step from the cache (hash the data file, find
  the records, publish the bundles): the issue asks for at least 10x faster than ``first``;
* ``one_model``: one model's parameter changed (the network's epochs), so that model's
  train, evaluate, export and verify steps run and the rest come from the cache.

``speedup`` is ``first`` over the row's time. The runs go into a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

SPEC = Path(__file__).resolve().parent.parent / "examples" / "flights.yaml"


def _run(spec: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlpatterns.cli", "run", str(spec)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
    return time.perf_counter() - started


def run() -> list[dict]:
    with tempfile.TemporaryDirectory() as folder:
        spec = yaml.safe_load(SPEC.read_text())
        spec["output"] = {"dir": str(Path(folder) / "run")}
        path = Path(folder) / "flights.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        first = _run(path)
        cached = _run(path)
        spec["models"]["wide_and_deep"]["params"]["epochs"] += 1
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        one_model = _run(path)
    return [{"run": name, "seconds": round(seconds, 2), "speedup": round(first / seconds, 1)}
            for name, seconds in (("first", first), ("cached", cached), ("one_model", one_model))]


if __name__ == "__main__":
    for row in run():
        print(row)
