"""Signed bundles: a loader with the trusted public key refuses what the manifest digest cannot stop."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import sys

import pytest

from mlpatterns.serving.bundle import BundleError, manifest_digest, read_bundle, write_bundle
from mlpatterns.serving.bundle_signing import (
    generate_signing_key,
    public_key_id,
    sign_bundle,
    verify_bundle_signature,
)

MANIFEST = {
    "name": "demo", "task": "classification", "model": {"file": "model.onnx"}, "threshold": 0.5,
    "transform": "transform.json",
    "signature": {"inputs": [{"name": "distance", "type": "number"}], "keys": ["flight_id"],
                  "outputs": ["probability", "prediction"]},
}


@pytest.fixture
def keys(tmp_path):
    return generate_signing_key(tmp_path / "keys" / "bundle.pem", tmp_path / "keys" / "bundle.pub")


@pytest.fixture
def other_keys(tmp_path):
    return generate_signing_key(tmp_path / "other" / "bundle.pem", tmp_path / "other" / "bundle.pub")


@pytest.fixture
def bundle(tmp_path):
    files = {"model.onnx": b"\x08\x07onnx-bytes", "transform.json": b'{"format": "x"}'}
    return write_bundle(tmp_path / "bundle", files, MANIFEST)


@pytest.fixture
def signed(bundle, keys):
    sign_bundle(bundle, keys[0])
    return bundle


def test_key_files_are_pem_and_the_private_one_is_private(keys):
    private, public = keys
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_key_files_are_never_overwritten(keys, tmp_path):
    private, public = keys
    before = private.read_bytes(), public.read_bytes()
    with pytest.raises(FileExistsError, match="bundle.pem already exists"):
        generate_signing_key(private, tmp_path / "new.pub")
    with pytest.raises(FileExistsError, match="bundle.pub already exists"):
        generate_signing_key(tmp_path / "new.pem", public)
    assert (private.read_bytes(), public.read_bytes()) == before
    assert not (tmp_path / "new.pem").exists() and not (tmp_path / "new.pub").exists()


def test_sign_then_load_with_the_public_key(signed, keys):
    loaded = read_bundle(signed, public_key=keys[1])
    assert loaded.files["model.onnx"] == b"\x08\x07onnx-bytes"
    record = json.loads(loaded.signature)
    assert record["algorithm"] == "ed25519"
    assert record["key_id"] == public_key_id(keys[1])
    assert len(base64.b64decode(record["signature"])) == 64
    assert sorted(p.name for p in signed.parent.iterdir() if p.name.startswith(".")) == []  # no temp file left


def test_public_key_may_be_given_as_pem_or_raw_bytes(signed, keys):
    pem = keys[1].read_bytes()
    assert read_bundle(signed, public_key=pem).manifest["name"] == "demo"
    from cryptography.hazmat.primitives import serialization

    raw = serialization.load_pem_public_key(pem).public_bytes(serialization.Encoding.Raw,
                                                              serialization.PublicFormat.Raw)
    assert read_bundle(signed, public_key=raw).manifest["name"] == "demo"


def test_signed_bundle_loads_without_a_key(signed):
    assert read_bundle(signed).signature is not None


def test_unsigned_bundle_is_refused_when_a_key_is_given(bundle, keys):
    with pytest.raises(BundleError, match=r"the bundle is not signed \(manifest\.sig is missing\)"):
        read_bundle(bundle, public_key=keys[1])


def test_bundle_signed_by_another_key_is_refused(bundle, keys, other_keys):
    sign_bundle(bundle, other_keys[0])
    with pytest.raises(BundleError, match=r"manifest\.sig: the Ed25519 signature does not verify.*another key"):
        read_bundle(bundle, public_key=keys[1])


def test_deliberate_edit_with_every_digest_recomputed_is_refused_only_by_the_signature(signed, keys):
    """Lower the threshold and recompute every digest: the digests all agree, the signature does not."""
    path = signed / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["threshold"] = 0.01
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((signed / name).read_bytes()).hexdigest()
    manifest["manifest_sha256"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True))

    assert read_bundle(signed).manifest["threshold"] == 0.01  # digests alone let the edit through
    with pytest.raises(BundleError, match="manifest.json was changed after the bundle was signed"):
        read_bundle(signed, public_key=keys[1])


def test_replaced_model_with_recomputed_digests_is_refused(signed, keys):
    (signed / "model.onnx").write_bytes(b"another model")
    path = signed / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"]["model.onnx"] = hashlib.sha256(b"another model").hexdigest()
    manifest["manifest_sha256"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="changed after the bundle was signed"):
        read_bundle(signed, public_key=keys[1])


def test_tampered_signature_is_refused(signed, keys):
    path = signed / "manifest.sig"
    record = json.loads(path.read_text())
    raw = bytearray(base64.b64decode(record["signature"]))
    raw[0] ^= 1
    record["signature"] = base64.b64encode(bytes(raw)).decode()
    path.write_text(json.dumps(record))
    with pytest.raises(BundleError, match="does not verify with the trusted key: the signature file was altered"):
        read_bundle(signed, public_key=keys[1])


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"algorithm": "rsa"}',
                                     b'{"algorithm": "ed25519", "signature": "c2hvcnQ="}'])
def test_malformed_signature_file_is_refused(signed, keys, content):
    (signed / "manifest.sig").write_bytes(content)
    with pytest.raises(BundleError, match=r"manifest\.sig: not a valid signature file"):
        read_bundle(signed, public_key=keys[1])


def test_rewritten_bundle_drops_its_old_signature(signed, keys):
    write_bundle(signed, {"model.onnx": b"new", "transform.json": b"{}"}, MANIFEST, overwrite=True)
    with pytest.raises(BundleError, match="not signed"):
        read_bundle(signed, public_key=keys[1])


def test_damaged_bundle_is_not_signed(bundle, keys):
    (bundle / "model.onnx").write_bytes(b"damaged")
    with pytest.raises(BundleError, match="sha256 does not match"):
        sign_bundle(bundle, keys[0])
    assert not (bundle / "manifest.sig").exists()


def test_verify_bundle_signature_takes_a_path_or_a_bundle(signed, keys, other_keys):
    assert verify_bundle_signature(signed, keys[1]).manifest["name"] == "demo"
    loaded = read_bundle(signed)
    assert verify_bundle_signature(loaded, keys[1]) is loaded
    with pytest.raises(BundleError, match="another key"):
        verify_bundle_signature(loaded, other_keys[1])


def test_a_key_that_is_not_ed25519_is_refused(signed, tmp_path):
    path = tmp_path / "not-a-key.pub"
    path.write_bytes(b"ssh-ed25519 AAAA")
    with pytest.raises(ValueError, match="public key file .*not-a-key.pub: not a PEM public key"):
        read_bundle(signed, public_key=path)


def test_missing_cryptography_is_an_import_error_with_the_hint(signed, keys, monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "cryptography"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'mlpatterns\[sign\]'"):
        read_bundle(signed, public_key=keys[1])
