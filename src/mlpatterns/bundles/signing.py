"""Signed bundles: Ed25519 signatures over the manifest of a stateless serving function (16).

The manifest digest (``manifest_sha256``) catches an edited or damaged bundle, but a
digest stored beside what it covers can be recomputed by whoever edits it. A signature
cannot: :func:`sign_bundle` writes ``manifest.sig`` into the bundle, an Ed25519
signature over :func:`~mlpatterns.bundles.format.canonical_manifest`, whose bytes hold
every file's sha256, so it vouches for every byte of the bundle. A loader that is given
the trusted public key (``read_bundle(path, public_key=...)``) refuses an unsigned
bundle, a bundle signed by another key and a manifest changed after signing.

``manifest.sig`` is JSON: ``algorithm`` (``"ed25519"``), ``key_id`` (the sha256 of the
signer's 32 raw public-key bytes), ``manifest_sha256`` (the digest of the manifest that
was signed) and ``signature`` (base64). Only ``signature`` is trusted; the other fields
let an error say what went wrong. Keys are PEM files (PKCS#8 private key, unencrypted,
mode 0600; SubjectPublicKeyInfo public key). Needs ``cryptography``
(``pip install 'mlpatterns[sign]'``), imported only when a function here is called.

Examples
--------
>>> generate_signing_key("keys/bundle.pem", "keys/bundle.pub")  # doctest: +SKIP
>>> sign_bundle("runs/flights/bundles/gradient_boosting", "keys/bundle.pem")  # doctest: +SKIP
>>> read_bundle("runs/flights/bundles/gradient_boosting", public_key="keys/bundle.pub")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlpatterns.bundles.format import (
    DIGEST_FIELD,
    SIGNATURE,
    Bundle,
    BundleError,
    canonical_manifest,
    manifest_digest,
    read_bundle,
)

__all__ = ["generate_signing_key", "public_key_id", "sign_bundle", "verify_bundle_signature",
           "verify_manifest_signature"]

ALGORITHM = "ed25519"
PublicKeyLike = str | os.PathLike[str] | bytes


def _crypto() -> tuple[Any, Any, type[Exception]]:
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as error:
        raise ImportError(
            "signing and verifying bundles needs the cryptography library: pip install 'mlpatterns[sign]'"
        ) from error
    return ed25519, serialization, InvalidSignature


def _raw(public_key: Any) -> bytes:
    _, serialization, _ = _crypto()
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_id(public_key: Any) -> str:
    """The key id recorded in ``manifest.sig``: the sha256 (hex) of the 32 raw public-key bytes."""
    return hashlib.sha256(_raw(_load_public_key(public_key))).hexdigest()


def _load_public_key(public_key: Any) -> Any:
    ed25519, serialization, _ = _crypto()
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key
    if isinstance(public_key, bytes):
        source, data = "public key bytes", public_key
        if len(data) == 32 and not data.startswith(b"-----BEGIN"):
            return ed25519.Ed25519PublicKey.from_public_bytes(data)
    elif isinstance(public_key, (str, os.PathLike)):
        source, data = f"public key file {os.fspath(public_key)}", Path(public_key).read_bytes()
    else:
        raise TypeError(f"public_key: expected a path, PEM bytes or 32 raw bytes, got {type(public_key).__name__}")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise ValueError(f"{source}: not a PEM public key ({error})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ValueError(f"{source}: expected an Ed25519 public key, got {type(key).__name__}")
    return key


def _load_private_key(private_key_path: str | os.PathLike[str]) -> Any:
    ed25519, serialization, _ = _crypto()
    path = Path(private_key_path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:  # TypeError: the key is encrypted
        raise ValueError(f"private key file {path}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"private key file {path}: expected an Ed25519 private key, got {type(key).__name__}")
    return key


def generate_signing_key(
    private_path: str | os.PathLike[str], public_path: str | os.PathLike[str]
) -> tuple[Path, Path]:
    """Make an Ed25519 key pair: a PEM private key (mode 0600) and its PEM public key.

    Refuses (``FileExistsError``) to overwrite either file: losing a signing key is
    not undone. Returns the two paths.
    """
    ed25519, serialization, _ = _crypto()
    private, public = Path(private_path), Path(public_path)
    for path in (private, public):
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path} already exists; refusing to overwrite a key file")
    key = ed25519.Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    written: list[Path] = []
    try:
        for path, data, mode in ((private, private_pem, 0o600), (public, public_pem, 0o644)):
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            written.append(path)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.chmod(path, mode)  # the umask may have narrowed the public key's mode
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return private, public


def sign_bundle(bundle_dir: str | os.PathLike[str], private_key_path: str | os.PathLike[str]) -> Path:
    """Sign a verified bundle: write ``manifest.sig`` atomically (a temporary file renamed into place).

    The bundle is read and verified first, so a damaged bundle is never signed. An
    existing signature is replaced. Returns the path of ``manifest.sig``.
    """
    _crypto()  # fail before touching anything when cryptography is missing
    bundle = read_bundle(bundle_dir)
    key = _load_private_key(private_key_path)
    record = {
        "algorithm": ALGORITHM,
        "key_id": hashlib.sha256(_raw(key.public_key())).hexdigest(),
        DIGEST_FIELD: bundle.manifest[DIGEST_FIELD],
        "signature": base64.b64encode(key.sign(canonical_manifest(bundle.manifest))).decode("ascii"),
    }
    target = bundle.path / SIGNATURE
    # The temporary file lives beside the bundle, not in it, so a concurrent reader never sees a stray file.
    descriptor, temporary = tempfile.mkstemp(prefix=f".{bundle.path.name}.{SIGNATURE}.", dir=bundle.path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write((json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def verify_manifest_signature(
    directory: str | os.PathLike[str], manifest: Mapping[str, Any], signature: bytes | None,
    public_key: PublicKeyLike,
) -> None:
    """Check ``signature`` (the bytes of ``manifest.sig``) over ``manifest`` with a trusted key.

    Raises :class:`~mlpatterns.bundles.format.BundleError` saying whether the bundle is
    unsigned, the signature file is malformed, it was signed by another key, or the
    manifest changed after signing. :func:`read_bundle` calls this when given a key.
    """
    _, _, invalid_signature = _crypto()
    key = _load_public_key(public_key)
    path = Path(directory) / SIGNATURE
    if signature is None:
        raise BundleError(f"{Path(directory)}: the bundle is not signed ({SIGNATURE} is missing), but a trusted "
                          "public key was given; refusing an unsigned bundle")
    try:
        record = json.loads(signature)
        if not isinstance(record, dict) or record.get("algorithm") != ALGORITHM:
            raise ValueError(f"expected a JSON object with algorithm {ALGORITHM!r}")
        raw = base64.b64decode(record.get("signature", ""), validate=True)
        if len(raw) != 64:
            raise ValueError(f"an Ed25519 signature is 64 bytes, this one is {len(raw)}")
    except (ValueError, TypeError, binascii.Error) as error:  # JSONDecodeError is a ValueError
        raise BundleError(f"{path}: not a valid signature file ({error}); it was edited or damaged") from None
    try:
        key.verify(raw, canonical_manifest(manifest))
        return
    except invalid_signature:
        pass
    trusted = hashlib.sha256(_raw(key)).hexdigest()
    if record.get("key_id") != trusted:
        reason = (f"it was signed by another key (key id {str(record.get('key_id'))[:16]}...), "
                  f"not the trusted key (key id {trusted[:16]}...)")
    elif record.get(DIGEST_FIELD) != manifest_digest(manifest):
        reason = "manifest.json was changed after the bundle was signed"
    else:
        reason = "the signature file was altered"
    raise BundleError(f"{path}: the Ed25519 signature does not verify with the trusted key: {reason}")


def verify_bundle_signature(bundle: str | os.PathLike[str] | Bundle, public_key: PublicKeyLike) -> Bundle:
    """Verify a bundle and its signature with a trusted public key; return the verified :class:`Bundle`.

    A path is read with ``read_bundle(path, public_key=public_key)``; a :class:`Bundle`
    already read is checked against the signature bytes it was read with.
    """
    if isinstance(bundle, Bundle):
        verify_manifest_signature(bundle.path, bundle.manifest, bundle.signature, public_key)
        return bundle
    return read_bundle(bundle, public_key=public_key)
