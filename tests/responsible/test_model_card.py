"""Model cards (Fairness Lens, 30): intended use, data, metrics overall and by slice, limitations."""

from __future__ import annotations

import json

import numpy as np

from mlpatterns.responsible.fairness_lens import check_thresholds, data_balance, model_slices
from mlpatterns.responsible.model_card import model_card


def _fairness():
    rng = np.random.default_rng(0)
    sex = rng.choice(["Female", "Male"], size=2000, p=[0.35, 0.65])
    race = np.where(rng.random(2000) < 0.01, "Other", "White")
    y = (rng.random(2000) < np.where(sex == "Male", 0.3, 0.1)).astype(int)
    pred = ((y == 1) & (rng.random(2000) < np.where(sex == "Male", 0.7, 0.4))).astype(int)
    result = model_slices({"sex": sex, "race": race}, y, pred, "classification", min_rows=30)
    result["split"] = "test"
    result["crossings"] = [c.to_dict() for c in check_thresholds(result, {"false_negative_rate_difference": 0.1})]
    balance = data_balance({"sex": sex}, y, "classification", min_rows=30)
    return result, balance


def test_card_with_fairness_has_slices_and_limitations():
    fairness, balance = _fairness()
    card = model_card(name="adult/gbm", task="classification", rows={"train": 2000, "valid": 300, "test": 800},
                      metrics={"accuracy": 0.86, "roc_auc": 0.9, "confusion": [[1, 2], [3, 4]]},
                      description="Income above 50K.", intended_use="Auditing only.", data="adult",
                      heuristic={"beats_margin": False, "message": "gbm: 0.01 better than 'global'"},
                      fairness_data=balance, fairness=fairness, registered={"name": "adult", "version": 3},
                      limitations=["1994 census data"])
    assert json.loads(json.dumps(card)) == card  # JSON-able
    assert card["intended_use"] == "Auditing only."
    assert card["data"] == {"source": "adult", "rows_train": 2000, "rows_valid": 300, "rows_test": 800}
    assert card["metrics"] == {"accuracy": 0.86, "roc_auc": 0.9}  # nested values left out of the flat table
    by_slice = {(r["sensitive"], r["slice"]): r for r in card["metrics_by_slice"]}
    female = next(s for s in fairness["columns"]["sex"]["slices"] if s["slice"] == "Female")
    assert by_slice[("sex", "Female")]["false_negative_rate"] == female["false_negative_rate"]
    assert by_slice[("race", "Other")]["tiny"] is True
    text = "\n".join(card["limitations"])
    assert "1994 census data" in text
    assert "Does not beat the heuristic benchmark" in text
    assert "Fairness threshold crossed (model): false_negative_rate_difference across 'sex'" in text
    assert "race: slice(s) ['Other'] have fewer than 30 rows in the test split" in text
    assert "sex: the false negative rate differs by" in text
    assert "Tested on 800 rows only" in text
    assert card["registered"] == {"name": "adult", "version": 3}
    assert {r["slice"] for r in card["data_by_slice"]} == {"Female", "Male"}


def test_card_without_fairness_says_what_was_not_measured():
    card = model_card(name="natality/gbm", task="regression", rows={"train": 50000, "valid": 6000, "test": 6500},
                      metrics={"rmse": 1.07, "mae": float("nan")}, description="Baby weight in pounds.")
    assert card["intended_use"] == "Baby weight in pounds."
    assert card["metrics"] == {"rmse": 1.07, "mae": None}
    assert "metrics_by_slice" not in card and "heuristic_benchmark" not in card
    assert any("No fairness slices were measured" in line for line in card["limitations"])
    assert json.loads(json.dumps(card)) == card
