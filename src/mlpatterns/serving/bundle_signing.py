"""Signed bundles (Ed25519 over the manifest), re-exported for compatibility.

Signing and verifying a bundle lives in :mod:`mlpatterns.bundles.signing`, beside the
bundle format (:mod:`mlpatterns.bundles.format`). This path stays so that
``from mlpatterns.serving.bundle_signing import sign_bundle`` keeps working.
"""

from mlpatterns.bundles.signing import (
    ALGORITHM,  # noqa: F401  (public, though not in __all__)
    PublicKeyLike,  # noqa: F401
    generate_signing_key,
    public_key_id,
    sign_bundle,
    verify_bundle_signature,
    verify_manifest_signature,
)

__all__ = ["generate_signing_key", "public_key_id", "sign_bundle", "verify_bundle_signature",
           "verify_manifest_signature"]
