"""The model registry's abstract base (Model Versioning, 27): primitives and what derives from them."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlpatterns.bundles.format import (
    DIGEST_FIELD,
    MANIFEST,
    SIGNATURE,
    Bundle,
    BundleError,
    read_bundle,
)
from mlpatterns.reproducibility.model_versioning.comparison import (
    InterfaceDiff,
    VersionComparison,
    compare_versions,
    interface_diff,
)
from mlpatterns.reproducibility.model_versioning.model_uri import (
    ModelURI,
    RegistryError,
    check_alias,
    check_name,
)

__all__ = ["ANY", "AuditEntry", "InterfaceChangeError", "ModelNotFoundError", "ModelRegistry", "ModelVersion",
           "RegisteredModel", "TEST_PAUSE_ENV"]

TEST_PAUSE_ENV = "MLPATTERNS_REGISTRY_TEST_PAUSE_S"  # test hook: seconds to sleep before a version commits
STAGING = ".staging"
ID_FILE = ".registry-id"
STALE_STAGING_S = 24 * 3600
ANY: Any = object()  # _move_alias: whatever the alias points at now


class ModelNotFoundError(RegistryError, LookupError):
    """No such model, version or alias."""


class InterfaceChangeError(RegistryError):
    """A bundle whose signature differs from the model's latest version: a new model, not a version."""

    def __init__(self, message: str, diff: InterfaceDiff) -> None:
        super().__init__(message)
        self.diff = diff


@dataclass(frozen=True)
class ModelVersion:
    """One registered, immutable version; ``tags`` and ``aliases`` are as they were when read."""

    name: str
    version: int
    path: Path
    bundle_digest: str
    signature: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    task: str | None = None
    bundle_name: str | None = None
    description: str | None = None
    created_at: str = ""
    created_by: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return str(ModelURI(self.name, version=self.version))


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    created_at: str
    created_by: str
    latest_version: int | None
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditEntry:
    """One change: who, when (UTC, ISO 8601), what (``action`` on model/version/alias, before/after), why."""

    id: int
    at: str
    who: str
    action: str
    model: str
    version: int | None
    alias: str | None
    before: Any
    after: Any
    message: str | None


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class ModelRegistry(ABC):
    """Named models with immutable integer versions, aliases and an audit trail (Model Versioning, 27).

    A backend keeps the metadata (a database) and the bundles (a folder, ``files_root``:
    ``NAME/VERSION/`` for each version, ``.staging/`` for copies in progress) and
    implements six primitives: :meth:`_add_version`, :meth:`_models`, :meth:`_versions`,
    :meth:`_move_alias`, :meth:`_update_tags`, :meth:`_audit`. Everything else derives
    from them.

    **Thread and process safety.** A registry object may be shared by the threads of a
    process; other processes open their own from :attr:`url` (never carry one across a
    fork). Every change is one transaction that first locks its model, so changes to
    one model happen one at a time and in order, whichever process makes them; readers
    do not wait and see only committed versions. A registration copies and verifies the
    bundle *before* taking the lock, then, holding it: allocates the next version,
    inserts its rows and audit entries, renames the copy into ``NAME/VERSION`` and
    commits. A process killed before the commit leaves no version: the database rolls
    the transaction back, and the folder it may have renamed into place is an orphan
    that the next registration of that model (which gets the same number) removes.
    (A test hook: the environment variable ``MLPATTERNS_REGISTRY_TEST_PAUSE_S`` makes a
    registration sleep that many seconds at that point, renamed and not yet committed.)
    """

    url: str
    files_root: Path
    user: str

    # -- primitives ------------------------------------------------------------------------------
    @abstractmethod
    def _add_version(self, name: str, stage: Path, record: Mapping[str, Any], *,
                     check: Callable[[int | None, dict | None], dict | None], alias: str | None,
                     message: str | None) -> int:
        """Atomically give ``name`` its next version: lock the model (creating it), call
        ``check(latest_version, latest_signature)`` (it raises, or returns what the audit
        entry adds), insert the version with ``record`` and its audit entry (and move
        ``alias``), :meth:`_place` ``stage``, commit; return the version."""

    @abstractmethod
    def _models(self, name: str | None = None) -> list[RegisteredModel]:
        """All models by name, or the one named (an empty list when there is none)."""

    @abstractmethod
    def _versions(self, name: str, version: int | None = None) -> list[ModelVersion]:
        """The versions of ``name`` in order, or the one asked for (an empty list when there is none)."""

    @abstractmethod
    def _move_alias(self, name: str, alias: str, version: int | None, *, action: str, expected: Any,
                    message: str | None) -> int | None:
        """Point ``alias`` at ``version`` (``None``: delete it) with an audit entry, if it points at
        ``expected`` now (:data:`ANY`: whatever); return what it pointed at. Unknown versions raise."""

    @abstractmethod
    def _update_tags(self, name: str, version: int, tags: Mapping[str, str | None], message: str | None) -> None:
        """Set (or, for ``None``, remove) the tags of a version, with an audit entry."""

    @abstractmethod
    def _audit(self, name: str | None = None) -> list[AuditEntry]:
        """The audit entries in the order they were made, of one model or all."""

    def close(self) -> None:  # noqa: B027 - a backend without connections has nothing to close
        """Release connections; the registry is not used afterwards."""

    # -- reading ---------------------------------------------------------------------------------
    def list_models(self) -> list[RegisteredModel]:
        return self._models()

    def get_model(self, name: str) -> RegisteredModel:
        models = self._models(check_name(name))
        if not models:
            raise ModelNotFoundError(f"{name}: no such model in the registry {self.describe()}")
        return models[0]

    def list_versions(self, name: str) -> list[ModelVersion]:
        self.get_model(name)
        return self._versions(name)

    def get_version(self, name: str, version: int) -> ModelVersion:
        found = self._versions(check_name(name), int(version))
        if not found:
            self.get_model(name)
            raise ModelNotFoundError(f"{name}: no version {version}")
        return found[0]

    def latest_version(self, name: str) -> ModelVersion:
        latest = self.get_model(name).latest_version
        if latest is None:
            raise ModelNotFoundError(f"{name}: no version registered")
        return self.get_version(name, latest)

    def lookup(self, uri: str | ModelURI) -> ModelVersion:
        """The version a ``models:/`` URI names (an alias as it points now), without checking its files."""
        parsed = ModelURI.parse(uri)
        if parsed.version is not None:
            return self.get_version(parsed.name, parsed.version)
        version = self.get_model(parsed.name).aliases.get(parsed.alias)
        if version is None:
            raise ModelNotFoundError(f"{parsed}: {parsed.name} has no alias {parsed.alias!r}")
        return self.get_version(parsed.name, version)

    def resolve(self, uri: str | ModelURI, *, public_key: str | os.PathLike[str] | bytes | None = None) -> Path:
        """The bundle folder of the version ``uri`` names, after checking every file's sha256.

        A bundle edited, truncated or replaced after registration is refused with
        :class:`RegistryError`, naming the version and the file. Given a ``public_key``,
        the bundle must also carry a valid Ed25519 signature by its private key (see
        :func:`~mlpatterns.bundles.format.read_bundle`).
        """
        version = self.lookup(uri)
        try:
            bundle = read_bundle(version.path, public_key=public_key)
        except BundleError as error:
            raise RegistryError(f"{uri} ({version.name} version {version.version}): the registered bundle "
                                f"fails verification: {error}") from error
        if bundle.manifest[DIGEST_FIELD] != version.bundle_digest:
            raise RegistryError(f"{uri} ({version.name} version {version.version}): {version.path} holds another "
                                f"bundle than the one registered (manifest sha256 {bundle.manifest[DIGEST_FIELD]}, "
                                f"registered {version.bundle_digest})")
        return version.path

    def audit(self, name: str | None = None) -> list[AuditEntry]:
        return self._audit(None if name is None else check_name(name))

    def compare(self, name: str, first: int, second: int) -> VersionComparison:
        """Two versions side by side: metrics with differences, interface changes, lineage."""
        return compare_versions(self.get_version(name, first), self.get_version(name, second))

    def describe(self) -> str:
        """The URL with any password hidden (for logs and manifests)."""
        from mlpatterns.backends import redact_url

        return redact_url(self.url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- changing --------------------------------------------------------------------------------
    def register(self, bundle_path: str | os.PathLike[str], name: str, *, alias: str | None = None,
                 tags: Mapping[str, str] | None = None, description: str | None = None,
                 message: str | None = None, allow_interface_change: bool = False) -> ModelVersion:
        """Register a bundle as the next version of ``name`` (created with version 1 if new).

        The bundle is verified, copied into the registry and verified again; its
        signature must match the latest version's (see :func:`interface_diff`) unless
        ``allow_interface_change``, which the audit trail records. ``alias`` is moved to
        the new version in the same transaction.
        """
        check_name(name)
        if alias is not None:
            check_alias(alias)
        tags = self._check_tags(tags or {})
        try:
            source = read_bundle(bundle_path)
        except BundleError as error:
            raise RegistryError(f"{name}: cannot register {bundle_path}: {error}") from error

        def check(latest: int | None, signature: dict | None) -> dict | None:
            if latest is None:
                return None
            diff = interface_diff(signature or {}, source.manifest["signature"])
            if diff.compatible:
                return None
            if not allow_interface_change:
                raise InterfaceChangeError(
                    f"{name}: the bundle's interface differs from version {latest} ("
                    + "; ".join(diff.describe()) + "); a changed interface is a new model: register it "
                    "under another name, or pass allow_interface_change=True", diff)
            return {"interface_change": {"from_version": latest, **diff.to_dict()}}

        models = self._models(name)
        if models and models[0].latest_version is not None:  # fail before copying; checked again when locked
            check(models[0].latest_version, self._versions(name, models[0].latest_version)[0].signature)
        stage = self._stage(source)
        manifest = source.manifest
        record = {"bundle_digest": manifest[DIGEST_FIELD], "signature": manifest["signature"],
                  "metrics": manifest.get("metrics") or {}, "lineage": manifest.get("lineage") or {},
                  "task": manifest.get("task"), "bundle_name": manifest.get("name"),
                  "description": description, "tags": tags, "source": str(Path(bundle_path).resolve())}
        try:
            version = self._add_version(name, stage, record, check=check, alias=alias, message=message)
        finally:
            shutil.rmtree(stage, ignore_errors=True)  # gone already when the version was placed
        return self.get_version(name, version)

    def set_alias(self, name: str, alias: str, version: int, *, message: str | None = None) -> int | None:
        """Point ``alias`` at ``version`` atomically; return the version it pointed at before."""
        return self._move_alias(check_name(name), check_alias(alias), int(version), action="set_alias",
                                expected=ANY, message=message)

    def delete_alias(self, name: str, alias: str, *, message: str | None = None) -> int:
        """Remove ``alias``; return the version it pointed at."""
        previous = self._move_alias(check_name(name), check_alias(alias), None, action="delete_alias",
                                    expected=ANY, message=message)
        if previous is None:
            raise ModelNotFoundError(f"{name}: no alias {alias!r}")
        return previous

    def rollback(self, name: str, alias: str, to_version: int | None = None, *,
                 message: str | None = None) -> ModelVersion:
        """Move ``alias`` back: to ``to_version``, or to where it pointed before its latest change.

        The previous value comes from the audit trail, so a second rollback undoes the
        first. If the alias moves meanwhile, the rollback is refused rather than lost.
        """
        check_name(name)
        check_alias(alias)
        current = self.get_model(name).aliases.get(alias)
        if to_version is None:
            changes = [e for e in self._audit(name) if e.alias == alias and e.action in ALIAS_ACTIONS]
            if not changes or changes[-1].before is None:
                raise RegistryError(f"{name}: alias {alias!r} has no earlier version to roll back to")
            to_version = int(changes[-1].before)
        self._move_alias(name, alias, int(to_version), action="rollback", expected=current, message=message)
        return self.get_version(name, to_version)

    def set_tags(self, name: str, version: int, tags: Mapping[str, str | None], *,
                 message: str | None = None) -> ModelVersion:
        """Set tags of a version (a value ``None`` removes the tag); the bundle itself never changes."""
        self.get_version(name, version)
        self._update_tags(name, int(version), self._check_tags(tags, removable=True), message)
        return self.get_version(name, version)

    # -- helpers for backends ---------------------------------------------------------------------
    @staticmethod
    def _check_tags(tags: Mapping[str, str | None], removable: bool = False) -> dict[str, str | None]:
        if not isinstance(tags, Mapping):
            raise RegistryError(f"tags: expected a mapping of names to text, got {tags!r}")
        for key, value in tags.items():
            check_name(key, "tag name")
            if not isinstance(value, str) and not (removable and value is None):
                raise RegistryError(f"tags.{key}: expected text{' or None' if removable else ''}, got {value!r}")
        return dict(tags)

    def version_path(self, name: str, version: int) -> Path:
        return self.files_root / name / str(version)

    def _claim_files_root(self, registry_id: str) -> None:
        """Tie ``files_root`` to this registry's database, so two registries never share one folder."""
        self.files_root.mkdir(parents=True, exist_ok=True)
        marker = self.files_root / ID_FILE
        if not marker.exists():
            written = self.files_root / f"{ID_FILE}.{uuid.uuid4().hex}"
            written.write_text(registry_id + "\n", encoding="utf-8")
            try:
                os.link(written, marker)  # appears complete, and only if there was none
            except FileExistsError:
                pass
            finally:
                written.unlink()
        found = marker.read_text(encoding="utf-8").strip()
        if found != registry_id:
            raise RegistryError(f"{self.files_root} holds the bundles of another registry (id {found}, "
                                f"this one is {registry_id}); give this registry its own folder")

    def _stage(self, bundle: Bundle) -> Path:
        """A verified copy of ``bundle`` in ``files_root/.staging`` (on the file system of the versions)."""
        staging = self.files_root / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        for old in staging.iterdir():  # copies left by killed processes
            try:
                if time.time() - old.stat().st_mtime > STALE_STAGING_S:
                    shutil.rmtree(old, ignore_errors=True)
            except FileNotFoundError:
                continue
        stage = staging / uuid.uuid4().hex
        stage.mkdir()
        contents = {**bundle.files, MANIFEST: (bundle.path / MANIFEST).read_bytes()}
        if bundle.signature is not None:
            contents[SIGNATURE] = bundle.signature
        try:
            for file_name, data in contents.items():  # the bytes read_bundle verified
                target = stage / file_name
                target.write_bytes(data)
                _fsync(target)
                target.chmod(0o444)  # a registered file is never edited in place
            copied = read_bundle(stage)
            if copied.manifest[DIGEST_FIELD] != bundle.manifest[DIGEST_FIELD]:
                raise RegistryError(f"{bundle.path}: the bundle changed while it was being registered")
            _fsync(stage)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return stage

    def _place(self, stage: Path, name: str, version: int) -> Path:
        """Rename ``stage`` to ``NAME/VERSION``; the caller holds the model's lock and has not committed.

        A folder already there belongs to no committed version (its registration died
        before committing), so it is removed first.
        """
        target = self.version_path(name, version)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        stage.rename(target)
        _fsync(target.parent)
        pause = os.environ.get(TEST_PAUSE_ENV)
        if pause:
            time.sleep(float(pause))
        return target


ALIAS_ACTIONS = ("set_alias", "delete_alias", "rollback")
