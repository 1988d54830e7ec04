"""Tests of the Multimodal Input pattern (4): text encodings, the feature matrix, the network."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from mlpatterns._json_state import estimator_from_json
from mlpatterns.data.multimodal_estimators import MultimodalClassifier
from mlpatterns.data.multimodal_input import (
    MultimodalFeatures,
    hashed_tokens,
    text_statistics,
    tokenize,
)
from mlpatterns.data.multimodal_network import MultimodalNetwork
from mlpatterns.hashing import hash_bucket

torch.set_num_threads(1)

MOVIES = pd.DataFrame(
    {
        "title": ["Love Story", "Toy Story 2", None, "Love Actually", "Alien"],
        "year": [1970, 1999, 2001, np.nan, 1979],
        "mpaa": ["PG", "G", None, "R", "R"],
    }
)


def test_text_encodings() -> None:
    assert tokenize("Don't Look Now (1973)") == ["don", "t", "look", "now", "1973"]
    assert tokenize(None) == [] and tokenize(float("nan")) == []
    assert text_statistics(["Toy Story 2"]).tolist() == [[11.0, 3.0, 1.0]]
    tokens = hashed_tokens(["Toy Story 2", "", None, "a b c d"], 100, max_tokens=3)
    assert tokens.shape == (4, 3)
    assert tokens[0].tolist() == hash_bucket(["toy", "story", "2"], 100).tolist()
    assert tokens[1].tolist() == [100, 100, 100]  # empty and null texts are all padding
    assert tokens[3].tolist() == hash_bucket(["a", "b", "c"], 100).tolist()


def test_features_one_matrix_from_text_and_tabular() -> None:
    features = MultimodalFeatures(
        numeric_columns=["year"], categorical_columns="mpaa", text_columns=["title"], num_buckets=8
    ).fit(MOVIES)
    names = features.get_feature_names_out().tolist()
    assert names[:6] == ["year", "year_missing", "mpaa=<other>", "mpaa=G", "mpaa=PG", "mpaa=R"]
    assert names[-3:] == ["title_n_chars", "title_n_words", "title_n_digits"]
    out = features.transform(MOVIES)
    assert out.shape == (5, len(names))
    assert out[3, 1] == 1.0  # missing year: flagged, imputed with the median, standardized
    median, mean, scale = 1989.0, np.mean([1970, 1999, 2001, 1989, 1979]), features.numeric_scale_
    assert out[3, 0] == pytest.approx((median - mean) / scale[0])
    assert out[2, names.index("mpaa=<other>")] == 1.0  # null category
    words = out[:, names.index("title_hash0") : names.index("title_hash7") + 1]
    assert words.sum(axis=1).tolist() == [2, 3, 0, 2, 1]
    unseen = features.transform(MOVIES.assign(mpaa=["NC-17"] * 5))
    assert (unseen[:, names.index("mpaa=<other>")] == 1).all()
    sparse = MultimodalFeatures(text_columns=["title"], sparse_output=True).fit_transform(MOVIES)
    assert sparse.format == "csr" and sparse.shape == (5, 256 + 3)
    restored = estimator_from_json(json.loads(json.dumps(features.to_json_dict())))
    np.testing.assert_array_equal(restored.transform(MOVIES), out)


def test_min_word_count_drops_rare_words() -> None:
    frame = pd.DataFrame({"title": ["love story", "love actually", "alien"]})
    features = MultimodalFeatures(text_columns=["title"], num_buckets=4096, min_word_count=2)
    names = features.fit(frame).get_feature_names_out().tolist()
    out = features.transform(frame)
    love = names.index(f"title_hash{hash_bucket(['love'], 4096)[0]}")
    assert out[:, love].tolist() == [1, 1, 0]
    assert out[:, :4096].sum() == 2  # story, actually, alien: each in one title only


def test_declarations_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="text_columns: 'titel' is not a column of X"):
        MultimodalFeatures(text_columns=["titel"]).fit(MOVIES)
    with pytest.raises(ValueError, match="declared in both numeric_columns and text_columns"):
        MultimodalFeatures(numeric_columns=["title"], text_columns=["title"]).fit(MOVIES)
    with pytest.raises(ValueError, match="numeric_columns: column 'title' must hold numbers"):
        MultimodalFeatures(numeric_columns=["title"]).fit(MOVIES)
    with pytest.raises(ValueError, match="position 7 is out of range for 3 columns"):
        MultimodalFeatures(numeric_columns=[7]).fit(MOVIES)
    pixels = pd.DataFrame(np.ones((4, 3)), columns=["a", "b", "c"])
    with pytest.raises(ValueError, match="3 pixel values per row do not make a square image"):
        MultimodalClassifier(image_columns=["a", "b", "c"]).fit(pixels, [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"image_shape \(1, 2, 2\) does not fit the 3 pixel"):
        MultimodalClassifier(image_columns=["a", "b", "c"], image_shape=(2, 2)).fit(
            pixels, [0, 1, 0, 1]
        )


def test_network_towers_and_input_errors() -> None:
    network = MultimodalNetwork(
        n_numeric=1,
        cardinalities=[5],
        n_text=2,
        num_buckets=10,
        text_dim=4,
        image_shape=(1, 6, 6),
        n_outputs=3,
    )
    assert network.tower_widths == {"tabular": 3, "text": 8, "image": 64}
    inputs = {
        "numeric": torch.zeros(2, 1),
        "categorical": torch.tensor([[1], [4]]),
        "tokens": torch.tensor([[[1, 10], [10, 10]], [[3, 4], [5, 10]]]),
        "images": torch.rand(2, 1, 6, 6),
    }
    assert network(**inputs).shape == (2, 3)
    assert {k: v.shape[1] for k, v in network.towers(**inputs).items()} == network.tower_widths
    with pytest.raises(ValueError, match="pass images="):
        network(**{**inputs, "images": None})
    with pytest.raises(ValueError, match=r"tokens must have shape \[batch, 2, length\]"):
        network(**{**inputs, "tokens": torch.zeros(2, 3, dtype=torch.long)})
    with pytest.raises(IndexError, match=r"hash buckets in \[0, 10\]"):
        network(**{**inputs, "tokens": torch.full((2, 2, 1), 11)})


def test_image_tower_reads_real_digits() -> None:
    """load_digits: 8x8 pixels through the CNN, with a tabular feature (the ink)."""
    digits = load_digits()
    frame = pd.DataFrame(digits.data, columns=[f"p{i}" for i in range(64)])
    frame["ink"] = digits.data.sum(axis=1)
    train, test = frame.iloc[:1000], frame.iloc[1000:1600]
    y_train, y_test = digits.target[:1000], digits.target[1000:1600]
    settings = {"epochs": 15, "batch_size": 64, "learning_rate": 0.01, "random_state": 0}
    both = MultimodalClassifier(
        image_columns=[f"p{i}" for i in range(64)], numeric_columns=["ink"], **settings
    ).fit(train, y_train)
    assert both.image_shape_ == [1, 8, 8] and both.network_.tower_widths["image"] == 64
    ink_only = MultimodalClassifier(numeric_columns=["ink"], **settings).fit(train, y_train)
    assert both.score(test, y_test) > 0.85 > 0.4 > ink_only.score(test, y_test)
    cells = pd.DataFrame({"image": list(digits.images[:1000]), "ink": frame["ink"][:1000]})
    arrays = MultimodalClassifier(image_columns="image", numeric_columns=["ink"], epochs=1)
    assert arrays.fit(cells, y_train).image_shape_ == [1, 8, 8]


def test_text_and_tabular_beat_either_alone_on_movies() -> None:
    """Direction of the demo's effect on a small subsample of ggplot2movies (Comedy)."""
    from mlpatterns.datasets import load_movies

    sample = load_movies().sample(13_000, random_state=0)
    train, test = sample.iloc[:8000], sample.iloc[8000:]
    text = {"text_columns": ["title"]}
    tabular = {"numeric_columns": ["year", "length", "budget"], "categorical_columns": ["mpaa"]}
    settings = {
        "num_buckets": 4096,
        "min_word_count": 5,
        "text_dim": 8,
        "epochs": 4,
        "batch_size": 256,
        "random_state": 0,
    }
    auc = {}
    for name, columns in {"text": text, "tabular": tabular, "both": {**text, **tabular}}.items():
        model = MultimodalClassifier(**columns, **settings).fit(train, train["Comedy"])
        auc[name] = roc_auc_score(test["Comedy"], model.predict_proba(test)[:, 1])
    assert auc["both"] > max(auc["text"], auc["tabular"]) + 0.01, auc
