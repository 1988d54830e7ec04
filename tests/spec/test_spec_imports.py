"""Loading a spec stays light: it imports neither pandas, scikit-learn, SciPy, torch nor ONNX.

One check needs scikit-learn: a scikit-learn model's ``params`` are checked by building
the model and fitting it on a few synthetic rows (:mod:`mlpatterns.spec.params`), so a
typo or a wrong value fails when the spec loads, before any data is read. scikit-learn
imports SciPy and pandas. A spec that declares such a model imports them there and
nowhere else; a spec without one (the emulator of ``examples/solar_day_length.yaml``)
imports none of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HEAVY = ("pandas", "sklearn", "scipy", "torch", "onnx", "skl2onnx", "onnxruntime")
SKLEARN_CHECK = ("pandas", "sklearn", "scipy")  # what the scikit-learn parameter check imports
SKLEARN_TYPES = ("gradient_boosting", "random_forest", "linear", "anomaly_detector")

# Records, for each heavy library, the mlpatterns source lines of the stack that first imports it (innermost last).
SCRIPT = """
import json, sys, traceback

HEAVY = {heavy!r}
first = {{}}

class Recorder:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in HEAVY and top not in first:
            ours = [f for f in traceback.extract_stack() if "/mlpatterns/" in f.filename]
            first[top] = [f.filename.rpartition("/src/")[2] + ":" + str(f.lineno) for f in ours]
        return None

sys.meta_path.insert(0, Recorder())
from mlpatterns.spec import load_spec

load_spec({path!r})
print(json.dumps(first))
"""


def _declares_sklearn_model(path: Path) -> bool:
    models = yaml.safe_load(path.read_text())["models"].values()
    parts = [m for model in models for m in [model, *(model.get("members") or {}).values(),
                                             *(model[p] for p in ("final", "router", "typical", "extreme") if p in model)]]
    return any(part.get("type") in SKLEARN_TYPES for part in parts) or any(
        model["type"] in ("stacking", "cascade") for model in models)  # their default parts are scikit-learn's


def _first_importers(path: Path) -> dict[str, list[str]]:
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(heavy=HEAVY, path=str(path))],
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


SPECS = sorted(EXAMPLES.glob("*.yaml"))


def test_the_examples_cover_both_kinds():
    assert len(SPECS) >= 5
    assert {_declares_sklearn_model(path) for path in SPECS} == {True, False}


@pytest.mark.parametrize("path", SPECS, ids=lambda path: path.name)
def test_loading_an_example_spec_imports_no_heavy_library(path):
    first = _first_importers(path)
    outside = {library: stack[-1:] for library, stack in first.items()
               if library not in SKLEARN_CHECK or not any(line.startswith("mlpatterns/spec/params.py:") for line in stack)}
    assert outside == {}, f"loading {path.name} imports these libraries (first importer shown)"
    if not _declares_sklearn_model(path):
        assert first == {}, f"{path.name} declares no scikit-learn model, yet loading it imports {sorted(first)}"


def test_importing_mlpatterns_is_quick():
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mlpatterns"], capture_output=True,
                          text=True, timeout=60, check=True)
    own = [line for line in done.stderr.splitlines() if line.rstrip().endswith("| mlpatterns")]
    cumulative_us = int(own[-1].split("|")[1])
    assert cumulative_us < 300_000, f"import mlpatterns took {cumulative_us / 1e6:.2f} s"
