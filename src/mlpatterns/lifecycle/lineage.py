"""``mlpatterns lineage REF``: from a bundle or a registered version back to the data (Workflow Pipeline, 25).

Every bundle's manifest records its lineage: the data file's digest and row count, the
split, the seed, the spec, the project's git commit, the library versions, and the
pipeline store of the run that made it. When that store is still there, the bundle's
digest finds the export step's record, and the records lead back through verify, train,
transform, split and load to the data file: every step's parameters, code digest and
inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["bundle_lineage", "lineage_of"]


def lineage_of(ref: str | Path, registry: str | None = None) -> dict[str, Any]:
    """The lineage of a bundle folder or a ``models:/`` reference, as data."""
    from mlpatterns.reproducibility.workflow_pipeline import Store, directory_digest
    from mlpatterns.serving.bundle import read_bundle

    folder = Path(ref)
    if isinstance(ref, str) and ref.startswith("models:/"):  # MLflow's form: never a path
        from mlpatterns.lifecycle.registration import registry_url
        from mlpatterns.reproducibility.model_versioning import open_registry

        with open_registry(registry_url(registry)) as opened:
            folder = opened.resolve(ref)
    bundle = read_bundle(folder)  # verified: every file's digest
    manifest = bundle.manifest
    lineage = dict(manifest.get("lineage", {}))
    result: dict[str, Any] = {"bundle": str(folder), "name": manifest.get("name"),
                              "manifest_sha256": manifest.get("manifest_sha256"),
                              "created": manifest.get("created"), "versions": manifest.get("versions"),
                              "lineage": lineage, "steps": None}
    store_root = lineage.get("pipeline_store")
    if store_root and (Path(store_root) / "PIPELINE_STORE").is_file():
        store = Store(store_root, create=False)
        try:
            result["steps"] = store.lineage(directory_digest(folder)).to_dict()
        except LookupError:
            result["steps_note"] = f"the run's store {store_root} no longer holds the steps that made this bundle"
    else:
        result["steps_note"] = "the store of the run that made this bundle is not here" + (
            f" ({store_root})" if store_root else "")
    return result


def bundle_lineage(ref: str | Path, registry: str | None = None, as_json: bool = False) -> str:
    """:func:`lineage_of` as indented text, or as JSON."""
    from mlpatterns.reproducibility.workflow_pipeline import Store, directory_digest, format_lineage

    found = lineage_of(ref, registry)
    if as_json:
        return json.dumps(found, indent=2, default=str)
    lineage = found["lineage"]
    lines = [f"bundle {found['bundle']}: {found['name']} (manifest sha256 {str(found['manifest_sha256'])[:16]}, "
             f"created {found['created']})"]
    data = lineage.get("data_path") or lineage.get("data", {}).get("dataset")
    lines.append(f"  data: {data}, sha256 {str(lineage.get('data_sha256'))[:16]}, {lineage.get('data_rows', '?')} "
                 f"rows; split {json.dumps(lineage.get('split'), default=str)}; rows {lineage.get('rows')}; "
                 f"seed {lineage.get('seed')}")
    lines.append(f"  spec {lineage.get('spec')}; git commit {lineage.get('git_commit')}; versions "
                 + ", ".join(f"{k} {v}" for k, v in (found.get("versions") or {}).items()))
    if found["steps"] is None:
        lines.append(f"  steps: {found.get('steps_note')}")
    else:
        store = Store(lineage["pipeline_store"], create=False)
        lines.append("  steps:")
        tree = format_lineage(store.lineage(directory_digest(found["bundle"])))
        lines += ["    " + line for line in tree.splitlines()]
    return "\n".join(lines)
