"""The serving chapter's lazy exports: each name resolves to its module's object; the package imports cheaply."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module

import pytest

import mlpatterns.serving as serving

HEAVY = ("pandas", "numpy", "pyarrow", "onnxruntime", "sklearn", "duckdb", "ray", "torch", "httpx", "matplotlib")


@pytest.mark.parametrize("name", serving.__all__)
def test_each_exported_name_resolves_to_its_modules_object(name):
    value = getattr(serving, name)
    module = import_module(value.__module__)  # where it is defined (the bundle format: mlpatterns.bundles)
    assert module.__name__.startswith(("mlpatterns.serving.", "mlpatterns.bundles.")) and name in module.__all__
    assert getattr(module, name) is value and getattr(serving, name) is value  # stored: looked up once


def test_the_recently_added_names_are_exported():
    assert {"OnlinePredictor", "PrecomputedPredictions", "PredictionTableError", "predict_dataset",
            "predict_file_ray", "TwoPhaseModel", "HttpPhaseTwo"} <= set(serving.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'predict_everything'"):
        serving.predict_everything  # noqa: B018


def test_importing_the_package_imports_no_heavy_library():
    code = ("import json, sys, mlpatterns.serving; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(done.stdout) == []
