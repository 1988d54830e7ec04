"""The bundle format of the Stateless Serving Function (16): a model as data, not code.

A bundle is a directory that loading never executes: the fitted transform (21) as JSON,
the model as ONNX (or several ONNX models composed by a JSON graph), and
``manifest.json`` with the serving signature, lineage, the versions that wrote it and the
sha256 of every file, plus the sha256 of the manifest itself; optionally ``manifest.sig``,
an Ed25519 signature over the manifest. Reading a bundle verifies all of it and refuses a
bundle that is not exactly what its manifest says.

- :mod:`~mlpatterns.bundles.format`: writing, reading and verifying a bundle.
- :mod:`~mlpatterns.bundles.signing`: Ed25519 keys, signing and checking a signature
  (needs ``cryptography``, imported on use).
- :mod:`~mlpatterns.bundles.graph`: the JSON graph that composes several ONNX models.

This package is foundation: it imports no chapter package and no orchestration, so both
serving (:mod:`mlpatterns.serving`, which runs a bundle) and Model Versioning (27,
:mod:`mlpatterns.reproducibility.model_versioning`, which stores bundles) build on it.
Names load on first use; reading a bundle imports neither numpy, pandas nor ONNX.
"""

from mlpatterns._lazy import lazy_exports

_EXPORTS = {
    "Bundle": "format", "BundleError": "format", "canonical_manifest": "format", "manifest_digest": "format",
    "read_bundle": "format", "write_bundle": "format",
    "generate_signing_key": "signing", "sign_bundle": "signing", "verify_bundle_signature": "signing",
    "GraphError": "graph", "leaf_files": "graph",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
