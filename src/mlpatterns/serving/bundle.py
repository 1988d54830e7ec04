"""The model bundle of the stateless serving function (16), re-exported for compatibility.

The bundle format (writing, reading and verifying a bundle) lives in
:mod:`mlpatterns.bundles` (:mod:`mlpatterns.bundles.format`), below both serving and
Model Versioning (27), which stores bundles. This path stays so that
``from mlpatterns.serving.bundle import read_bundle`` keeps working.
"""

from mlpatterns.bundles.format import (
    BUNDLE_FORMAT,
    DIGEST_FIELD,
    FORMAT_VERSION,
    MANIFEST,
    SIGNATURE,
    Bundle,
    BundleError,
    canonical_manifest,
    library_versions,  # noqa: F401  (public, though not in __all__)
    manifest_digest,
    read_bundle,
    write_bundle,
)

__all__ = [
    "BUNDLE_FORMAT", "DIGEST_FIELD", "FORMAT_VERSION", "MANIFEST", "SIGNATURE", "Bundle", "BundleError",
    "canonical_manifest", "manifest_digest", "read_bundle", "write_bundle",
]
