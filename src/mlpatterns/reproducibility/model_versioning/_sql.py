"""The registry's tables and their queries in SQLAlchemy Core, shared by the SQLite and PostgreSQL backends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from mlpatterns.reproducibility.model_versioning._base import (
    ANY,
    AuditEntry,
    ModelNotFoundError,
    ModelRegistry,
    ModelVersion,
    RegisteredModel,
    now,
)
from mlpatterns.reproducibility.model_versioning.model_uri import RegistryError

SCHEMA_VERSION = "1"


class _JSONText(sa.types.TypeDecorator):
    """JSON kept as text: the same on every database, NaN and infinities included (the manifests hold them)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


_JSON = _JSONText()
metadata = sa.MetaData()
meta = sa.Table("mlp_registry_meta", metadata,
                sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text, nullable=False))
models = sa.Table("mlp_registry_models", metadata,
                  sa.Column("name", sa.String(128), primary_key=True),
                  sa.Column("created_at", sa.String(40), nullable=False),
                  sa.Column("created_by", sa.String(256), nullable=False))
versions = sa.Table(
    "mlp_registry_versions", metadata,
    sa.Column("name", sa.String(128), sa.ForeignKey(models.c.name), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("bundle_digest", sa.String(64), nullable=False),
    sa.Column("signature", _JSON, nullable=False), sa.Column("metrics", _JSON, nullable=False),
    sa.Column("lineage", _JSON, nullable=False), sa.Column("task", sa.String(64)),
    sa.Column("bundle_name", sa.Text), sa.Column("description", sa.Text), sa.Column("source", sa.Text),
    sa.Column("created_at", sa.String(40), nullable=False), sa.Column("created_by", sa.String(256), nullable=False))
tags = sa.Table("mlp_registry_tags", metadata,
                sa.Column("name", sa.String(128), primary_key=True),
                sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
                sa.Column("key", sa.String(128), primary_key=True), sa.Column("value", sa.Text, nullable=False),
                sa.ForeignKeyConstraint(["name", "version"], [versions.c.name, versions.c.version]))
aliases = sa.Table("mlp_registry_aliases", metadata,
                   sa.Column("name", sa.String(128), primary_key=True),
                   sa.Column("alias", sa.String(128), primary_key=True),
                   sa.Column("version", sa.Integer, nullable=False),
                   sa.Column("updated_at", sa.String(40), nullable=False),
                   sa.ForeignKeyConstraint(["name", "version"], [versions.c.name, versions.c.version]))
audit = sa.Table("mlp_registry_audit", metadata,
                 sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                 sa.Column("at", sa.String(40), nullable=False), sa.Column("who", sa.String(256), nullable=False),
                 sa.Column("action", sa.String(32), nullable=False),
                 sa.Column("model", sa.String(128), nullable=False, index=True),
                 sa.Column("version", sa.Integer), sa.Column("alias", sa.String(128)),
                 sa.Column("before", _JSON), sa.Column("after", _JSON), sa.Column("message", sa.Text),
                 sqlite_autoincrement=True)
_RETRIES = 5


class SQLModelRegistry(ModelRegistry):
    """The primitives over SQLAlchemy Core; a backend provides the engines and the schema lock.

    ``_writer`` runs each change in a transaction whose first statement locks the model
    row (``SELECT ... FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE`` locks the whole file
    instead) at READ COMMITTED or stricter; ``_reader`` reads a consistent snapshot.
    """

    _engine: sa.Engine
    _writer: sa.Engine
    _reader: sa.Engine

    def _schema_lock(self, connection: sa.Connection) -> None:
        """Serialise creating the tables across processes (inside the transaction that creates them)."""

    def _insert(self, table: sa.Table) -> Any:
        """An INSERT that supports ``on_conflict_do_nothing`` in this dialect."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to insert without conflicts")

    def _open_schema(self) -> None:
        with self._writer.begin() as connection:
            self._schema_lock(connection)
            metadata.create_all(connection)
            found = dict(connection.execute(sa.select(meta.c.key, meta.c.value)).all())
            if "registry_id" not in found:
                found = {"registry_id": uuid.uuid4().hex, "schema_version": SCHEMA_VERSION}
                connection.execute(meta.insert(), [{"key": k, "value": v} for k, v in found.items()])
        if found.get("schema_version") != SCHEMA_VERSION:
            raise RegistryError(f"{self.describe()}: registry schema version {found.get('schema_version')!r}; "
                                f"this mlpatterns reads version {SCHEMA_VERSION}")
        self.registry_id = found["registry_id"]
        self._claim_files_root(self.registry_id)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _locked(self, name: str, create: bool = False) -> Iterator[sa.Connection]:
        with self._writer.begin() as connection:
            if create:
                connection.execute(self._insert(models).values(
                    name=name, created_at=now(), created_by=self.user).on_conflict_do_nothing())
            found = connection.execute(sa.select(models.c.name).where(models.c.name == name).with_for_update())
            if found.first() is None:
                raise ModelNotFoundError(f"{name}: no such model in the registry {self.describe()}")
            yield connection

    def _log(self, connection: sa.Connection, action: str, name: str, *, version: int | None = None,
             alias: str | None = None, before: Any = None, after: Any = None, message: str | None = None) -> None:
        connection.execute(audit.insert().values(at=now(), who=self.user, action=action, model=name,
                                                 version=version, alias=alias, before=before, after=after,
                                                 message=message))

    def _set_alias_row(self, connection: sa.Connection, name: str, alias: str, version: int | None) -> int | None:
        key = (aliases.c.name == name) & (aliases.c.alias == alias)
        before = connection.execute(sa.select(aliases.c.version).where(key)).scalar()
        if version is None:
            connection.execute(aliases.delete().where(key))
        elif before is None:
            connection.execute(aliases.insert().values(name=name, alias=alias, version=version, updated_at=now()))
        else:
            connection.execute(aliases.update().where(key).values(version=version, updated_at=now()))
        return before

    # -- primitives ------------------------------------------------------------------------------
    def _add_version(self, name: str, stage, record: Mapping[str, Any], *,
                     check: Callable[[int | None, dict | None], dict | None], alias: str | None,
                     message: str | None) -> int:
        for attempt in range(_RETRIES):
            placed = None
            try:
                with self._locked(name, create=True) as connection:
                    latest = connection.execute(
                        sa.select(sa.func.max(versions.c.version)).where(versions.c.name == name)).scalar()
                    signature = None if latest is None else connection.execute(
                        sa.select(versions.c.signature).where(
                            (versions.c.name == name) & (versions.c.version == latest))).scalar()
                    extra = check(latest, signature)
                    version = (latest or 0) + 1
                    row = {k: v for k, v in record.items() if k != "tags"}
                    connection.execute(versions.insert().values(name=name, version=version, created_at=now(),
                                                                created_by=self.user, **row))
                    if record["tags"]:
                        connection.execute(tags.insert(), [{"name": name, "version": version, "key": k, "value": v}
                                                           for k, v in record["tags"].items()])
                    self._log(connection, "register", name, version=version, message=message,
                              after={"bundle_digest": record["bundle_digest"], "source": record.get("source"),
                                     "tags": dict(record["tags"]), "description": record.get("description"),
                                     **(extra or {})})
                    if alias is not None:
                        before = self._set_alias_row(connection, name, alias, version)
                        self._log(connection, "set_alias", name, version=version, alias=alias, before=before,
                                  after=version, message=message)
                    placed = self._place(stage, name, version)
                return version
            except IntegrityError:  # raised by an insert, before the rename: retry with a fresh number
                if placed is not None:
                    placed.rename(stage)
                if attempt == _RETRIES - 1:
                    raise
            # Any other failure leaves a folder it renamed into place (if it got that far): if the
            # commit did not happen, it is an orphan that the next registration of the model removes.
        raise AssertionError("unreachable")  # pragma: no cover

    def _models(self, name: str | None = None) -> list[RegisteredModel]:
        latest = (sa.select(versions.c.name, sa.func.max(versions.c.version).label("latest"))
                  .group_by(versions.c.name).subquery())
        query = (sa.select(models, latest.c.latest).select_from(models.outerjoin(latest, latest.c.name == models.c.name))
                 .order_by(models.c.name))
        alias_query = sa.select(aliases.c.name, aliases.c.alias, aliases.c.version).order_by(aliases.c.alias)
        if name is not None:
            query, alias_query = query.where(models.c.name == name), alias_query.where(aliases.c.name == name)
        with self._reader.connect() as connection:
            rows = connection.execute(query).all()
            pointers: dict[str, dict[str, int]] = {}
            for model, alias, version in connection.execute(alias_query):
                pointers.setdefault(model, {})[alias] = version
        return [RegisteredModel(name=r.name, created_at=r.created_at, created_by=r.created_by,
                                latest_version=r.latest, aliases=pointers.get(r.name, {})) for r in rows]

    def _versions(self, name: str, version: int | None = None) -> list[ModelVersion]:
        def of(table: sa.Table) -> list[Any]:
            return [table.c.name == name] + ([] if version is None else [table.c.version == version])

        with self._reader.connect() as connection:
            rows = connection.execute(sa.select(versions).where(*of(versions)).order_by(versions.c.version)).all()
            labels: dict[int, dict[str, str]] = {}
            for _, number, key, value in connection.execute(sa.select(tags).where(*of(tags)).order_by(tags.c.key)):
                labels.setdefault(number, {})[key] = value
            pointers: dict[int, list[str]] = {}
            for alias, number in connection.execute(
                    sa.select(aliases.c.alias, aliases.c.version).where(*of(aliases)).order_by(aliases.c.alias)):
                pointers.setdefault(number, []).append(alias)
        return [ModelVersion(name=r.name, version=r.version, path=self.version_path(r.name, r.version),
                             bundle_digest=r.bundle_digest, signature=r.signature, metrics=r.metrics,
                             lineage=r.lineage, task=r.task, bundle_name=r.bundle_name, description=r.description,
                             created_at=r.created_at, created_by=r.created_by, tags=labels.get(r.version, {}),
                             aliases=tuple(pointers.get(r.version, ()))) for r in rows]

    def _move_alias(self, name: str, alias: str, version: int | None, *, action: str, expected: Any,
                    message: str | None) -> int | None:
        with self._locked(name) as connection:
            if version is not None and connection.execute(sa.select(versions.c.version).where(
                    (versions.c.name == name) & (versions.c.version == version))).first() is None:
                raise ModelNotFoundError(f"{name}: no version {version}")
            current = connection.execute(sa.select(aliases.c.version).where(
                (aliases.c.name == name) & (aliases.c.alias == alias))).scalar()
            if expected is not ANY and current != expected:
                raise RegistryError(f"{name}: alias {alias!r} moved meanwhile (from {expected} to {current}); "
                                    "look again and retry")
            if current == version:
                return current
            self._set_alias_row(connection, name, alias, version)
            self._log(connection, action, name, version=version if version is not None else current, alias=alias,
                      before=current, after=version, message=message)
        return current

    def _update_tags(self, name: str, version: int, new: Mapping[str, str | None], message: str | None) -> None:
        with self._locked(name) as connection:
            where = (tags.c.name == name) & (tags.c.version == version)
            old = dict(connection.execute(sa.select(tags.c.key, tags.c.value).where(where)).all())
            changed = {k: v for k, v in new.items() if old.get(k) != v}
            if not changed:
                return
            connection.execute(tags.delete().where(where & tags.c.key.in_(list(changed))))
            rows = [{"name": name, "version": version, "key": k, "value": v} for k, v in changed.items() if v is not None]
            if rows:
                connection.execute(tags.insert(), rows)
            self._log(connection, "set_tags", name, version=version, message=message,
                      before={k: old.get(k) for k in changed}, after=changed)

    def _audit(self, name: str | None = None) -> list[AuditEntry]:
        query = sa.select(audit).order_by(audit.c.id)
        if name is not None:
            query = query.where(audit.c.model == name)
        with self._reader.connect() as connection:
            rows = connection.execute(query).all()
        return [AuditEntry(id=r.id, at=r.at, who=r.who, action=r.action, model=r.model, version=r.version,
                           alias=r.alias, before=r.before, after=r.after, message=r.message) for r in rows]
