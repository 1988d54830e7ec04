"""Multilabel: per-label thresholds tuned on validation data beat 0.5 on movie genres."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlpatterns.datasets import load_movies
from mlpatterns.problem.multilabel import (
    MultilabelClassifier,
    best_f1_threshold,
    multilabel_report,
)
from mlpatterns.reproducibility import hash_split

GENRES = ["Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short"]


@pytest.fixture(scope="module")
def movies():
    frame = load_movies().head(8_000)
    X = pd.DataFrame({
        "year": frame["year"],
        "length": np.log1p(frame["length"]),
        "budget": np.log1p(frame["budget"]),
        "rating": frame["rating"],
        "votes": np.log1p(frame["votes"]),
        **{f"mpaa_{r}": (frame["mpaa"] == r).astype(float) for r in ("PG", "PG-13", "R", "NC-17")},
    }).to_numpy(dtype=float)
    key = frame.assign(key=frame["title"] + frame["year"].astype(str))
    split = hash_split(key, "key", {"train": 0.8, "test": 0.2}).to_numpy()
    Y = frame[GENRES].to_numpy()
    return X[split == "train"], Y[split == "train"], X[split == "test"], Y[split == "test"]


def linear():
    return make_pipeline(SimpleImputer(add_indicator=True), StandardScaler(),
                         LogisticRegression(max_iter=1000))


def test_tuned_thresholds_raise_macro_f1_over_one_model_per_label_at_half(movies):
    X_train, Y_train, X_test, Y_test = movies
    baseline = MultiOutputClassifier(linear()).fit(X_train, Y_train)
    tuned = MultilabelClassifier(linear()).fit(X_train, Y_train)
    before = multilabel_report(Y_test, baseline.predict(X_test), GENRES)
    after = multilabel_report(Y_test, tuned.predict(X_test), GENRES)
    assert after["macro_f1"] > before["macro_f1"] + 0.1, (before["macro_f1"], after["macro_f1"])
    # rare genres that 0.5 never predicts are found once their threshold drops
    assert before["labels"]["Romance"]["f1"] < 0.05 < 0.2 < after["labels"]["Romance"]["f1"]
    assert np.all(tuned.thresholds_ < 1) and tuned.thresholds_.shape == (len(GENRES),)
    # a fixed 0.5 cut-off is the same parse as one model per label
    fixed = MultilabelClassifier(linear(), threshold_strategy=0.5).fit(X_train, Y_train)
    np.testing.assert_array_equal(fixed.predict(X_test), baseline.predict(X_test))
    assert tuned.predict_proba(X_test).shape == (len(X_test), len(GENRES))
    assert tuned.get_params()["estimator__logisticregression__C"] == 1.0


def test_several_labels_per_example_and_constant_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    Y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0, np.zeros(300)]).astype(int)
    model = MultilabelClassifier().fit(X, Y)
    predicted = model.predict(X)
    assert predicted[:, 2].sum() == 0 and model.estimators_[2] is None
    assert (predicted.sum(axis=1) == 2).any()  # parsed by threshold, not argmax
    assert multilabel_report(Y, predicted)["macro_f1"] > 0.6


def test_thresholds_come_from_the_validation_rows_and_refit_uses_every_row():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    Y = np.column_stack([X[:, 0] + rng.normal(0, 1, 200) > 0.5, X[:, 1] + X[:, 2] > 0]).astype(int)
    first = MultilabelClassifier(random_state=3).fit(X, Y)
    again = MultilabelClassifier(random_state=3).fit(X, Y)
    np.testing.assert_array_equal(first.thresholds_, again.thresholds_)
    # the documented split: a permutation seeded with random_state, the first 20 % held out
    order = np.random.default_rng(3).permutation(200)
    valid, train = order[:40], order[40:]
    kept = MultilabelClassifier(refit=False, random_state=3).fit(X, Y)
    for j in range(2):
        on_train = LogisticRegression(max_iter=1000).fit(X[train], Y[train, j])
        on_all = LogisticRegression(max_iter=1000).fit(X, Y[:, j])
        # refit=False keeps the models of the training part, refit=True fits them on all rows
        np.testing.assert_allclose(kept.estimators_[j].coef_, on_train.coef_)
        np.testing.assert_allclose(first.estimators_[j].coef_, on_all.coef_)
        assert not np.allclose(on_train.coef_, on_all.coef_)
        # the thresholds are tuned on the held-out rows with the training-part models
        tuned = best_f1_threshold(Y[valid, j], on_train.predict_proba(X[valid])[:, 1])
        assert first.thresholds_[j] == kept.thresholds_[j] == pytest.approx(tuned)
    # another seed holds out other rows and tunes other thresholds
    other = MultilabelClassifier(refit=False, random_state=4).fit(X, Y)
    assert not np.array_equal(other.thresholds_, kept.thresholds_)


def test_binary_y_keeps_its_classes():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 2))
    y = np.where(X[:, 0] > 0, "yes", "no")
    model = MultilabelClassifier().fit(X, y)
    assert set(model.predict(X)) == {"no", "yes"} and model.predict_proba(X).shape == (200, 2)
    assert model.score(X, y) > 0.9


def test_best_f1_threshold():
    assert best_f1_threshold([0, 1, 1, 0, 1], [0.1, 0.2, 0.3, 0.05, 0.9]) == pytest.approx(0.2)
    assert best_f1_threshold([0, 0], [0.2, 0.3]) == 0.5


def test_bad_input_is_named():
    X, Y = np.zeros((10, 1)), np.ones((10, 2), dtype=int)
    with pytest.raises(ValueError, match="threshold_strategy must be"):
        MultilabelClassifier(threshold_strategy="argmax").fit(X, Y)
    with pytest.raises(ValueError, match="threshold_strategy must be"):
        MultilabelClassifier(threshold_strategy=1.5).fit(X, Y)
    with pytest.raises(ValueError, match="validation_fraction must be"):
        MultilabelClassifier(validation_fraction=0).fit(X, Y)
    with pytest.raises(ValueError, match="0/1 label indicator"):
        MultilabelClassifier().fit(X, Y * 2)
    with pytest.raises(ValueError, match="Only binary classification"):
        MultilabelClassifier().fit(X, np.arange(10) % 3)
    with pytest.raises(ValueError, match="2-d arrays of one shape"):
        multilabel_report([1, 0], [1, 0])


def test_multilabel_head_learns_with_binary_cross_entropy():
    torch = pytest.importorskip("torch")
    from mlpatterns.problem.multilabel import MultilabelHead

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x = torch.randn(512, 4)
    y = torch.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 2] + x[:, 3] > 0], dim=1).long()
    head = MultilabelHead(4, 3)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.1)
    first = float(head.loss(head(x), y).detach())
    for _ in range(150):
        optimizer.zero_grad()
        loss = head.loss(head(x), y)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < first / 2
    predicted = head.predict(x, thresholds=[0.5, 0.5, 0.5])
    assert predicted.shape == (512, 3) and (predicted == y).float().mean() > 0.9
    assert ((head.proba(x) >= 0) & (head.proba(x) <= 1)).all()
    with pytest.raises(ValueError, match="n_labels must be a positive integer"):
        MultilabelHead(4, 0)
