"""The model bundle: a directory of data that is the stateless serving function (16).

A bundle holds everything needed to serve a model and nothing that executes on
load: the fitted transform (21) as JSON, the model as ONNX (networks too: they are
exported to ONNX, so serving needs neither torch nor scikit-learn), and ``manifest.json`` with the signature (input
columns, key columns passed through, outputs), the versions of the libraries that
wrote it, lineage, metrics and the sha256 of every file. Loading never unpickles.

The manifest is covered too: its field ``manifest_sha256`` is the sha256 of
:func:`canonical_manifest`, the canonical JSON of every other field (sorted keys, no
spaces, UTF-8), so an edited or damaged manifest (a threshold, a key column, the
signature, a file digest) is refused like a changed model file. A digest stored beside
what it covers only guards against accidents: whoever edits a field can recompute it.
Against deliberate edits a bundle can be signed (Ed25519, see
:mod:`mlpatterns.bundles.signing`): ``manifest.sig``, written after the bundle,
signs the canonical manifest, which holds every file's digest, and
``read_bundle(path, public_key=...)`` refuses an unsigned or wrongly signed bundle.

:func:`read_bundle` refuses a bundle that is not exactly what its manifest says:
a missing manifest or file (incomplete), a manifest whose content does not match its
digest (edited or damaged), a file whose digest differs (tampered or truncated), a
file the manifest does not list, a name that leaves the directory, a symbolic link,
or an unknown format version. The error says which file and what is wrong.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlpatterns.bundles.graph import GraphError, leaf_files

__all__ = [
    "BUNDLE_FORMAT", "DIGEST_FIELD", "FORMAT_VERSION", "MANIFEST", "SIGNATURE", "Bundle", "BundleError",
    "canonical_manifest", "manifest_digest", "read_bundle", "write_bundle",
]

BUNDLE_FORMAT = "mlpatterns-bundle"
FORMAT_VERSION = 2  # 2: the manifest carries manifest_sha256; a bundle may carry manifest.sig
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
DIGEST_FIELD = "manifest_sha256"
_REQUIRED_FIELDS = ("format", "format_version", "name", "task", "model", "transform", "signature", "files")
_VERSIONED = ("mlpatterns", "numpy", "pandas", "scikit-learn", "onnx", "onnxruntime", "skl2onnx", "torch",
              "tokenizers")


class BundleError(ValueError):
    """A bundle that cannot be trusted or used; the message names the file and the problem."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest, the bytes of every file it lists and its signature file, if any.

    ``signature`` holds the bytes of ``manifest.sig`` as read; it has been checked only
    when :func:`read_bundle` was given a ``public_key``.
    """

    path: Path
    manifest: dict[str, Any]
    files: dict[str, bytes]
    signature: bytes | None = None

    def json(self, name: str) -> Any:
        try:
            return json.loads(self.files[name])
        except json.JSONDecodeError as error:
            raise BundleError(f"{self.path / name}: not valid JSON ({error})") from error


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The bytes that the manifest digest and the signature cover: every field but ``manifest_sha256``.

    Canonical JSON (sorted keys, no spaces, UTF-8 text), so the same content gives the
    same bytes whatever the indentation of ``manifest.json``.
    """
    content = {key: value for key, value in manifest.items() if key != DIGEST_FIELD}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """The sha256 (hex) of :func:`canonical_manifest`: the value ``manifest_sha256`` must hold."""
    return _sha256(canonical_manifest(manifest))


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name in (MANIFEST, SIGNATURE):
        raise BundleError(f"invalid file name {name!r} in a bundle: expected a plain file name")


def write_bundle(
    directory: str | os.PathLike[str],
    files: Mapping[str, bytes],
    manifest: Mapping[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Write a bundle atomically: into a temporary directory, then renamed into place.

    ``files`` maps plain file names to their bytes; ``manifest`` gives the fields
    of ``manifest.json`` (the format, versions, creation time, the files' digests and
    the manifest's own digest are added; a ``manifest_sha256`` given is recomputed).
    A reader never sees a half-written bundle. Replacing a bundle drops its signature:
    sign the new one with :func:`mlpatterns.bundles.signing.sign_bundle`.
    """
    target = Path(directory)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it")
    for name in files:
        _check_name(name)
    full = {
        "format": BUNDLE_FORMAT,
        "format_version": FORMAT_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": library_versions(),
        **manifest,
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    missing = [f for f in _REQUIRED_FIELDS if f not in full]
    if missing:
        raise ValueError(f"bundle manifest is missing field(s) {missing}")
    full[DIGEST_FIELD] = manifest_digest(full)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; a bundle is an ordinary directory
    try:
        for name, data in files.items():
            (staging / name).write_bytes(data)
        (staging / MANIFEST).write_bytes((json.dumps(full, indent=2, sort_keys=True) + "\n").encode())
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def read_bundle(
    directory: str | os.PathLike[str],
    *,
    public_key: str | os.PathLike[str] | bytes | None = None,
) -> Bundle:
    """Read and verify a bundle; raise :class:`BundleError` saying what is wrong.

    Parameters
    ----------
    directory : path
        The bundle directory.
    public_key : path or bytes, optional
        A trusted Ed25519 public key (a PEM file, PEM bytes or the 32 raw bytes). Given
        one, the bundle must carry ``manifest.sig`` signed by its private key: an unsigned
        bundle, a signature by another key or a signature that does not match the
        manifest is refused (this needs ``cryptography``: ``pip install 'mlpatterns[sign]'``).
        Without one, a signature file is allowed but not checked.
    """
    path = Path(directory)
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle directory (it does not exist or is a file)")
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{path}: incomplete bundle, {MANIFEST} is missing")
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{manifest_path}: not valid JSON ({error}); the manifest was edited or damaged") from error
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: expected a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{manifest_path}: format is {manifest.get('format')!r}, expected {BUNDLE_FORMAT!r}")
    if manifest.get("format_version") == 1:
        raise BundleError(
            f"{manifest_path}: format_version 1 is no longer read (its manifest carries no digest of "
            f"itself); re-run `mlpatterns run` to write the bundle again as version {FORMAT_VERSION}"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: format_version {manifest.get('format_version')!r} is not supported "
            f"(this mlpatterns reads version {FORMAT_VERSION})"
        )
    if manifest.get(DIGEST_FIELD) != manifest_digest(manifest):
        found = "has no" if DIGEST_FIELD not in manifest else "does not match its"
        raise BundleError(
            f"{manifest_path}: its content {found} {DIGEST_FIELD}; the manifest was edited or damaged "
            "after the bundle was written"
        )
    signature = _read_signature(path)
    if public_key is not None:
        from mlpatterns.bundles.signing import verify_manifest_signature

        verify_manifest_signature(path, manifest, signature, public_key)
    missing = [f for f in _REQUIRED_FIELDS if f not in manifest]
    if missing:
        raise BundleError(f"{manifest_path}: missing field(s) {missing}")
    listed = manifest["files"]
    if not isinstance(listed, dict) or not listed:
        raise BundleError(f"{manifest_path}: 'files' must map file names to sha256 digests")
    files: dict[str, bytes] = {}
    for name, digest in listed.items():
        try:
            _check_name(name)
        except BundleError as error:
            raise BundleError(f"{manifest_path}: {error}") from None
        file_path = path / name
        if file_path.is_symlink():
            raise BundleError(f"{file_path}: is a symbolic link; a bundle holds its own files")
        if not file_path.is_file():
            raise BundleError(f"{path}: incomplete bundle, {name} is listed in the manifest but missing")
        data = file_path.read_bytes()
        if _sha256(data) != digest:
            raise BundleError(
                f"{file_path}: sha256 does not match the manifest; the file was modified or "
                f"truncated ({len(data)} bytes now)"
            )
        files[name] = data
    extra = sorted(p.name for p in path.iterdir() if p.name not in (MANIFEST, SIGNATURE) and p.name not in listed)
    if extra:
        raise BundleError(f"{path}: file(s) {extra} are not listed in the manifest; refusing the bundle")
    if not isinstance(manifest["transform"], str):
        raise BundleError(f"{manifest_path}: transform must name a file, got {manifest['transform']!r}")
    if manifest["transform"] not in files:
        raise BundleError(f"{manifest_path}: transform names {manifest['transform']!r}, which is not in 'files'")
    model = manifest["model"] if isinstance(manifest["model"], dict) else {}
    if "graph" in model:  # several ONNX models composed (see mlpatterns.bundles.graph)
        try:
            model_files = leaf_files(model["graph"], "model.graph")
        except GraphError as error:
            raise BundleError(f"{manifest_path}: {error}") from None
    else:
        model_files = [model.get("file")]
    for model_file in model_files:
        if model_file not in files:
            raise BundleError(f"{manifest_path}: the model names {model_file!r}, which is not in 'files'")
    return Bundle(path=path, manifest=manifest, files=files, signature=signature)


def _read_signature(path: Path) -> bytes | None:
    signature_path = path / SIGNATURE
    if signature_path.is_symlink():
        raise BundleError(f"{signature_path}: is a symbolic link; a bundle holds its own files")
    if not signature_path.exists():
        return None
    if not signature_path.is_file():
        raise BundleError(f"{signature_path}: expected a signature file")
    return signature_path.read_bytes()
