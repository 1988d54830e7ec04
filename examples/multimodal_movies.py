"""Multimodal Input (pattern 4) on ggplot2movies: title text + year, length, budget, rating.

Predict whether a movie is a comedy (and, as a regression, its IMDb rating) from
the title, a text input, and from year, length, budget and MPAA rating, a
tabular input. Each is measured alone and combined, in both forms of the pattern:

* neural: :class:`MultimodalClassifier` / :class:`MultimodalRegressor`, one tower
  per modality (embeddings of hashed title words + title length, word and digit
  counts; standardized numbers + embedded MPAA rating) concatenated before a
  dense layer;
* non-neural: :class:`MultimodalFeatures` (hashed bag of words + the same
  tabular columns in one sparse matrix) with a logistic or ridge regression.

Run: ``.venv/bin/python examples/multimodal_movies.py`` (under a minute on 2 CPU cores).
"""

from __future__ import annotations

import time

import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.pipeline import make_pipeline

from mlpatterns.data.multimodal_estimators import MultimodalClassifier, MultimodalRegressor
from mlpatterns.data.multimodal_input import MultimodalFeatures
from mlpatterns.datasets import load_movies

TEXT = {"text_columns": ["title"]}
TABULAR = {"numeric_columns": ["year", "length", "budget"], "categorical_columns": ["mpaa"]}
INPUTS = {"text only": TEXT, "tabular only": TABULAR, "both": {**TEXT, **TABULAR}}
NETWORK = {"num_buckets": 2**14, "min_word_count": 10, "text_dim": 8, "epochs": 4,
           "batch_size": 256, "random_state": 0}  # fmt: skip
BAG = {"num_buckets": 2**14, "min_word_count": 10, "sparse_output": True}


def scores(train, test, target: str, columns: dict) -> tuple[float, float]:
    """Neural and non-neural test score: AUC for a 0/1 target, R^2 for the rating."""
    if target == "rating":
        network = MultimodalRegressor(**columns, **NETWORK).fit(train, train[target])
        linear = make_pipeline(MultimodalFeatures(**columns, **BAG), Ridge(alpha=10.0))
        linear.fit(train, train[target])
        return r2_score(test[target], network.predict(test)), r2_score(
            test[target], linear.predict(test)
        )
    network = MultimodalClassifier(**columns, **NETWORK).fit(train, train[target])
    linear = make_pipeline(
        MultimodalFeatures(**columns, **BAG), LogisticRegression(C=0.5, max_iter=2000)
    )
    linear.fit(train, train[target])
    return (
        roc_auc_score(test[target], network.predict_proba(test)[:, 1]),
        roc_auc_score(test[target], linear.predict_proba(test)[:, 1]),
    )


def main() -> None:
    torch.set_num_threads(2)
    started = time.perf_counter()
    movies = load_movies()
    test = movies.sample(10_000, random_state=1)
    train = movies.drop(test.index)
    print(f"ggplot2movies: {len(train):,} training and {len(test):,} test movies")
    for target, metric in (("Comedy", "AUC"), ("rating", "R^2")):
        print(f"\n{target} ({metric} on the test set)   network   bag+linear")
        results = {name: scores(train, test, target, columns) for name, columns in INPUTS.items()}
        for name, (network, linear) in results.items():
            print(f"  {name:<26}{network:>9.3f}{linear:>13.3f}")
        best_single = max(results["text only"][0], results["tabular only"][0])
        print(
            f"  gain of the combination (network, over the best single input): "
            f"{results['both'][0] - best_single:+.3f}"
        )
    print(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
