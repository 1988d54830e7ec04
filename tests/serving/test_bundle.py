"""A bundle is refused when it is not exactly what its manifest says."""

from __future__ import annotations

import hashlib
import json

import pytest

from mlpatterns.serving.bundle import (
    FORMAT_VERSION,
    BundleError,
    canonical_manifest,
    manifest_digest,
    read_bundle,
    write_bundle,
)

MANIFEST = {
    "name": "demo", "task": "classification", "model": {"file": "model.onnx"}, "threshold": 0.5,
    "transform": "transform.json",
    "signature": {"inputs": [{"name": "distance", "type": "number"}], "keys": ["flight_id"],
                  "outputs": ["probability", "prediction"]},
}


def edit_manifest(bundle, change, *, reseal=False):
    """Edit manifest.json in place; with ``reseal``, recompute its digest as a careful editor would."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    if reseal:
        manifest["manifest_sha256"] = manifest_digest(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


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
    assert loaded.manifest["format_version"] == FORMAT_VERSION == 2
    assert loaded.signature is None


def test_manifest_records_the_digest_of_its_canonical_content(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    content = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_manifest(manifest) == canonical
    assert manifest["manifest_sha256"] == hashlib.sha256(canonical).hexdigest()


def test_reformatting_the_manifest_keeps_it_valid(bundle):
    edit_manifest(bundle, lambda m: None)  # same content, other indentation and key order
    assert read_bundle(bundle).manifest["threshold"] == 0.5


@pytest.mark.parametrize("edit", [
    pytest.param(lambda m: m.update(threshold=0.05), id="threshold"),
    pytest.param(lambda m: m["signature"]["keys"].append("tail_number"), id="keys"),
    pytest.param(lambda m: m["signature"]["inputs"].clear(), id="signature"),
    pytest.param(lambda m: m["files"].update({"model.onnx": "0" * 64}), id="file-digest"),
    pytest.param(lambda m: m.pop("manifest_sha256"), id="digest-removed"),
])
def test_edited_manifest_is_refused(bundle, edit):
    edit_manifest(bundle, edit)
    with pytest.raises(BundleError, match=r"manifest\.json: its content (does not match its|has no) "
                                          r"manifest_sha256; the manifest was edited or damaged"):
        read_bundle(bundle)


def test_truncated_manifest_is_refused(bundle):
    data = (bundle / "manifest.json").read_bytes()
    (bundle / "manifest.json").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"manifest\.json: not valid JSON .*edited or damaged"):
        read_bundle(bundle)


def test_a_resealed_edit_loads_without_a_key(bundle):
    """The digest stops accidents only: an editor who recomputes it gets through (signing stops that)."""
    edit_manifest(bundle, lambda m: m.update(threshold=0.05), reseal=True)
    assert read_bundle(bundle).manifest["threshold"] == 0.05


def test_version_1_bundle_asks_to_rerun(bundle):
    edit_manifest(bundle, lambda m: m.update(format_version=1), reseal=True)
    with pytest.raises(BundleError, match=r"format_version 1 is no longer read.*re-run `mlpatterns run`"):
        read_bundle(bundle)


def test_write_recomputes_a_stale_digest_it_is_given(bundle, tmp_path):
    old = read_bundle(bundle).manifest
    fields = {k: v for k, v in old.items() if k not in ("files", "format", "format_version")}
    fields["threshold"] = 0.7
    copy = write_bundle(tmp_path / "copy", {"model.onnx": b"m", "transform.json": b"{}"}, fields)
    assert read_bundle(copy).manifest["threshold"] == 0.7


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


def test_signature_name_is_reserved(tmp_path):
    with pytest.raises(BundleError, match="invalid file name 'manifest.sig'"):
        write_bundle(tmp_path / "b", {"manifest.sig": b"", "transform.json": b"{}"}, MANIFEST)


def test_unlisted_file_is_refused(bundle):
    (bundle / "extra.pkl").write_bytes(b"not listed")
    with pytest.raises(BundleError, match=r"\['extra.pkl'\] are not listed"):
        read_bundle(bundle)


def test_path_traversal_in_manifest_is_refused(bundle):
    edit_manifest(bundle, lambda m: m["files"].update({"../outside": "0" * 64}), reseal=True)
    with pytest.raises(BundleError, match="invalid file name '../outside'"):
        read_bundle(bundle)


def test_unknown_format_version_is_refused(bundle):
    edit_manifest(bundle, lambda m: m.update(format_version=99), reseal=True)
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
