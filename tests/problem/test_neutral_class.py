"""Neutral Class: a neutral band around 5.5 lb makes decisive low-birth-weight calls more precise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpatterns.datasets import load_natality
from mlpatterns.problem.neutral_class import NeutralClassClassifier, band_codes, decisive_report
from mlpatterns.reproducibility import hash_split


@pytest.fixture(scope="module")
def natality():
    frame = load_natality().head(20_000)
    X = pd.DataFrame({
        "is_male": frame["is_male"].astype(float),
        "mother_age": frame["mother_age"],
        "gestation_weeks": frame["gestation_weeks"],
        "plurality": frame["plurality"].astype("category").cat.codes,
        "mother_race": frame["mother_race"],
    }).to_numpy(dtype=float)
    split = hash_split(frame, "row_id", {"train": 0.8, "test": 0.2}).to_numpy()
    weight = frame["weight_pounds"].to_numpy()
    return X[split == "train"], weight[split == "train"], X[split == "test"], weight[split == "test"]


def trees():
    return HistGradientBoostingClassifier(max_iter=50, random_state=0)


def test_decisive_predictions_get_more_precise(natality):
    X_train, w_train, X_test, w_test = natality
    low = lambda w: np.where(w < 5.5, -1, 1)  # noqa: E731
    binary = NeutralClassClassifier(trees()).fit(X_train, low(w_train))
    neutral = NeutralClassClassifier(trees(), band=(4.0, 7.0)).fit(X_train, w_train)
    assert list(neutral.classes_) == [-1, 0, 1] and 0.3 < neutral.neutral_share_ < 0.5
    before = decisive_report(low(w_test), binary.predict(X_test))
    after = decisive_report(low(w_test), neutral.predict(X_test))
    assert before["undecided_share"] == 0 and 0.05 < after["undecided_share"] < 0.4
    assert after["accuracy"] > before["accuracy"] + 0.02, (before, after)
    assert after["precision"][-1] > before["precision"][-1] + 0.02
    assert after["precision"][1] > before["precision"][1]


def test_a_neutral_mask_is_the_same_problem_as_a_band(natality):
    X_train, w_train, X_test, _ = natality
    X_train, w_train = X_train[:3000], w_train[:3000]
    linear = make_pipeline(StandardScaler(), LogisticRegression())
    banded = NeutralClassClassifier(linear, band=(5.0, 6.0))
    masked = NeutralClassClassifier(linear)
    banded.fit(np.nan_to_num(X_train), w_train)
    masked.fit(np.nan_to_num(X_train), np.where(w_train < 5.5, "low", "normal"),
               neutral_mask=(w_train >= 5.0) & (w_train <= 6.0))
    np.testing.assert_array_equal(masked.decisive_classes_, ["low", "normal"])
    np.testing.assert_array_equal(banded.predict(np.nan_to_num(X_test)),
                                  masked.predict(np.nan_to_num(X_test)))
    assert masked.predict_proba(np.nan_to_num(X_test[:4])).shape == (4, 3)


def test_neutral_label_keeps_the_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = np.where(X[:, 0] > 0, "yes", "no")
    disagree = np.abs(X[:, 0]) < 0.3
    model = NeutralClassClassifier(LogisticRegression(), neutral_label="unsure")
    model.fit(X, y, neutral_mask=disagree)
    assert set(model.classes_) == {"no", "unsure", "yes"}
    assert decisive_report(y, model.predict(X), neutral="unsure")["accuracy"] > 0.95
    codes = NeutralClassClassifier(LogisticRegression(), neutral_label=-1)
    assert set(codes.fit(X, (X[:, 0] > 0).astype(int), neutral_mask=disagree).classes_) == {-1, 0, 1}


def test_band_codes_and_report():
    np.testing.assert_array_equal(band_codes([1, 2, 3], (2, 2)), [-1, 0, 1])
    report = decisive_report([1, 1, -1, -1], [1, 0, 0, 1])
    assert report["precision"] == {1: 0.5} and report["undecided_share"] == 0.5
    assert np.isnan(decisive_report([1], [0])["accuracy"])


def test_bad_input_is_named():
    X, y = np.zeros((6, 1)), np.arange(6.0)
    with pytest.raises(ValueError, match="band must be a pair"):
        NeutralClassClassifier(band=(2, 1)).fit(X, y)
    with pytest.raises(ValueError, match="band must be a pair"):
        NeutralClassClassifier(band=3).fit(X, y)
    with pytest.raises(ValueError, match="neutral_mask must be a boolean array"):
        NeutralClassClassifier().fit(X, y % 2, neutral_mask=[1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="exactly two labels"):
        NeutralClassClassifier().fit(X, y, neutral_mask=np.zeros(6, bool))
    with pytest.raises(ValueError, match="neutral_label=1 is already a label"):
        NeutralClassClassifier(neutral_label=1).fit(X, y % 2, neutral_mask=np.zeros(6, bool))
    with pytest.raises(ValueError, match="neutral_label applies to a neutral_mask"):
        NeutralClassClassifier(band=(1, 2), neutral_label="n").fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        NeutralClassClassifier().fit(X, y + 0.5)
