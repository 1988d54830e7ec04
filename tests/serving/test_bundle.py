"""A bundle is refused when it is not exactly what its manifest says."""

from __future__ import annotations

import json

import pytest

from mlpatterns.serving.bundle import BundleError, read_bundle, write_bundle

MANIFEST = {
    "name": "demo", "task": "classification", "model": {"file": "model.onnx"},
    "transform": "transform.json", "signature": {"inputs": [], "keys": [], "outputs": []},
}


@pytest.fixture
def bundle(tmp_path):
    files = {"model.onnx": b"\x08\x07onnx-bytes", "transform.json": b'{"format": "x"}'}
    return write_bundle(tmp_path / "bundle", files, MANIFEST)


def test_round_trip_keeps_every_file_and_records_digests(bundle):
    loaded = read_bundle(bundle)
    assert loaded.files["model.onnx"] == b"\x08\x07onnx-bytes"
    assert set(loaded.manifest["files"]) == {"model.onnx", "transform.json"}
    assert loaded.manifest["versions"]["python"]
    assert len(loaded.manifest["files"]["model.onnx"]) == 64


def test_tampered_file_is_refused(bundle):
    (bundle / "transform.json").write_bytes(b'{"format": "y"}')
    with pytest.raises(BundleError, match=r"transform\.json: sha256 does not match"):
        read_bundle(bundle)


def test_truncated_file_is_refused(bundle):
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[:3])
    with pytest.raises(BundleError, match=r"model\.onnx: sha256 does not match.*3 bytes"):
        read_bundle(bundle)


def test_missing_file_is_refused(bundle):
    (bundle / "model.onnx").unlink()
    with pytest.raises(BundleError, match="incomplete bundle, model.onnx is listed"):
        read_bundle(bundle)


def test_missing_manifest_is_refused(bundle):
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        read_bundle(bundle)


def test_corrupt_manifest_is_refused(bundle):
    (bundle / "manifest.json").write_text('{"format": "mlpatterns-bundle", ')
    with pytest.raises(BundleError, match="not valid JSON"):
        read_bundle(bundle)


def test_unlisted_file_is_refused(bundle):
    (bundle / "extra.pkl").write_bytes(b"not listed")
    with pytest.raises(BundleError, match=r"\['extra.pkl'\] are not listed"):
        read_bundle(bundle)


def test_path_traversal_in_manifest_is_refused(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["../outside"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="invalid file name '../outside'"):
        read_bundle(bundle)


def test_unknown_format_version_is_refused(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["format_version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format_version 99 is not supported"):
        read_bundle(bundle)


def test_write_refuses_to_overwrite_unless_asked(bundle):
    with pytest.raises(FileExistsError):
        write_bundle(bundle, {"model.onnx": b"a", "transform.json": b"{}"}, MANIFEST)
    write_bundle(bundle, {"model.onnx": b"a", "transform.json": b"{}"}, MANIFEST, overwrite=True)
    assert read_bundle(bundle).files["model.onnx"] == b"a"


def test_write_rejects_names_that_leave_the_directory(tmp_path):
    with pytest.raises(BundleError, match="invalid file name"):
        write_bundle(tmp_path / "b", {"../x": b"", "transform.json": b"{}"}, MANIFEST)
