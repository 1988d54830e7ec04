"""Bridged Schema (23) from a spec: old-schema rows bridged into train, measured on the new schema only.

Natality's plurality, coarsened to ``Multiple(2+)`` for a simulated older 75 % of the
births (the true finer values are known, so the bridge can be checked against them).
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from mlpatterns.datasets import load_natality
from mlpatterns.lifecycle import run_spec
from mlpatterns.spec import SpecError, load_spec

MULTIPLE = ["Twins(2)", "Triplets(3)", "Quadruplets(4)", "Quintuplets(5)"]


def _project(folder, bridge: str):
    births = load_natality().sample(20000, random_state=3).reset_index(drop=True)
    old = np.random.default_rng(5).random(len(births)) < 0.75
    births["true_plurality"] = births["plurality"]
    births.loc[old & births["plurality"].isin(MULTIPLE), "plurality"] = "Multiple(2+)"
    births.to_csv(folder / "births.csv", index=False)
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: births
        data:
          path: births.csv
          {bridge}
        target: {{column: weight_pounds, task: regression}}
        keys: [row_id]
        split: {{key: row_id, fractions: {{train: 0.8, valid: 0.1, test: 0.1}}}}
        features:
          numeric: [gestation_weeks, mother_age]
          categorical: [plurality, is_male]
        models:
          gbm: {{type: gradient_boosting, params: {{max_iter: 50}}}}
        output: {{dir: {folder / "runs"}}}
        """))
    return spec, births, old


def test_old_rows_train_only_bridged_and_the_served_vocabulary_is_the_new_one(tmp_path):
    bridge = ("bridge: {column: plurality, mapping: {Multiple(2+): [Twins(2), Triplets(3), Quadruplets(4), "
              "Quintuplets(5)]}, seed: 1}")
    spec, births, _ = _project(tmp_path, bridge)
    lines = []
    run_spec(load_spec(spec), log=lambda *a, **k: lines.append(" ".join(map(str, a))))
    bundle = tmp_path / "runs" / "bundles" / "gbm"
    transform = (bundle / "transform.json").read_text()
    assert "Multiple(2+)" not in transform and "Twins(2)" in transform  # never learns what serving never sends
    test_rows = pd.read_parquet(tmp_path / "runs" / "test.parquet")["row_id"]
    assert (births.loc[births["row_id"].isin(test_rows), "plurality"] != "Multiple(2+)").all()  # new schema only
    report = json.loads((tmp_path / "runs" / "report.json").read_text())
    old_train = [line for line in lines if line.startswith("data.bridge:")]
    assert old_train and "bridged into train" in old_train[0] and report["bridge"]["message"] == old_train[0]
    shares = report["bridge"]["shares"]["Multiple(2+)"]
    truth = births.loc[births["true_plurality"].isin(MULTIPLE), "true_plurality"].value_counts(normalize=True)
    assert abs(shares["Twins(2)"] - truth["Twins(2)"]) < 0.03  # learned on train's new rows, near the truth
    assert sum(shares.values()) == pytest.approx(1.0)


def test_bridge_mistakes_are_named(tmp_path):
    spec, _, _ = _project(tmp_path, "bridge: {column: plurality, mapping: {Multiple(2+): [Twins(2)]}, "
                                    "strategy: static}")
    with pytest.raises(SpecError, match="data.bridge.strategy: expected 'probabilistic'"):
        load_spec(spec)
    spec.write_text(spec.read_text().replace("strategy: static", "old_rows: -3"))
    with pytest.raises(SpecError, match="data.bridge.old_rows"):
        load_spec(spec)
    spec.write_text(spec.read_text().replace("old_rows: -3", "old_rows: 10").replace(
        "[Twins(2)]", "[Multiple(2+), Twins(2)]"))
    with pytest.raises(SpecError, match=r"data.bridge.mapping.Multiple\(2\+\): the old value"):
        load_spec(spec)
    spec.write_text(spec.read_text().replace("[Multiple(2+), Twins(2)]", "[Twins(2)]").replace(
        "column: plurality", "column: mother_age"))
    with pytest.raises(SpecError, match="data.bridge.column: expected a column of features.categorical"):
        load_spec(spec)
    spec.write_text(spec.read_text().replace("column: mother_age", "column: plurality").replace(
        "[Twins(2)]", "[Sextuplets(6)]"))
    with pytest.raises(SpecError, match="data.bridge: the train split's new-schema rows cannot bridge"):
        run_spec(load_spec(spec), log=lambda *a, **k: None)
