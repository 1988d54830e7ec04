"""``mlpatterns registry``: the model registry from the command line (Model Versioning, 27).

``list`` the models or one model's versions, ``show`` a version (its files verified first),
``register`` a bundle folder, point an ``alias`` at a version (or delete it), ``rollback`` an
alias, ``compare`` two versions, read the ``audit`` trail and ``tag`` a version. Every
subcommand takes ``--registry URL`` (default: ``$MLPATTERNS_REGISTRY``, else
``sqlite:///registry/registry.db``); a URL is always shown with its password hidden.
Commands other than ``register`` never create a registry: an SQLite file that is not there
is an error, so a mistyped path does not look like an empty registry.

:func:`resolve_bundle` gives the commands that load a bundle (``predict``) a folder for a
``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` URI; a plain path stays a path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_REGISTRY", "REGISTRY_ENV", "add_registry_commands", "registry_url", "resolve_bundle"]

# As mlpatterns.lifecycle.registration's (tested equal): not imported here, because every command
# builds this parser and importing mlpatterns.lifecycle would slow them all, `serve` included.
REGISTRY_ENV = "MLPATTERNS_REGISTRY"
DEFAULT_REGISTRY = "sqlite:///registry/registry.db"
URI_PREFIX = "models:/"
_REF_FORMS = "NAME, NAME/VERSION, models:/NAME/VERSION or models:/NAME@ALIAS"
_EPILOG = f"""REF: {_REF_FORMS} (NAME alone: the latest version).
Registry URLs: sqlite:///relative/path.db, sqlite:////absolute/path.db,
postgresql+psycopg://USER:PASSWORD@HOST/DATABASE?files=/shared/folder.
Without --registry: ${REGISTRY_ENV}, else {DEFAULT_REGISTRY}. Docs: docs/patterns/model_versioning.md"""


def registry_url(url: str | None = None) -> str:
    """``url``, else ``$MLPATTERNS_REGISTRY``, else the embedded default
    (:func:`mlpatterns.lifecycle.registration.registry_url`)."""
    from mlpatterns.lifecycle.registration import registry_url as lifecycle_registry_url

    return lifecycle_registry_url(url)


def resolve_bundle(ref: str | os.PathLike[str], registry: str | None = None) -> Path:
    """The bundle folder ``ref`` names: a ``models:/`` URI resolved (files verified) in ``registry``
    (default :func:`registry_url`), or ``Path(ref)`` unchanged.

    Only a text that starts with ``models:/`` is a URI; a :class:`~pathlib.Path` is always a path.
    """
    if isinstance(ref, str) and ref.startswith(URI_PREFIX):
        with _opened(registry) as opened:
            return opened.resolve(ref)
    return Path(ref)


# -- opening ---------------------------------------------------------------------------------------
def _require_database(url: str) -> None:
    """Refuse an SQLite registry file that does not exist (opening it would create an empty one)."""
    from mlpatterns.backends import parse_url, redact_url
    from mlpatterns.reproducibility.model_versioning import RegistryError

    try:
        parsed = parse_url(url)
    except ValueError:
        return  # open_registry says what is wrong with it
    if parsed.scheme == "sqlite" and parsed.path is not None and not parsed.path.is_file():
        raise RegistryError(f"registry {redact_url(url)}: no registry database at {parsed.path.absolute()} "
                            "(nothing registered there yet: 'mlpatterns registry register BUNDLE NAME' creates "
                            f"it); give another one with --registry URL or ${REGISTRY_ENV}")


@contextmanager
def _opened(url: str | None, *, create: bool = False) -> Iterator[Any]:
    """The registry ``url`` names (see :func:`registry_url`); database errors become ``RegistryError``."""
    from urllib.parse import urlsplit

    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from mlpatterns.backends import redact_url
    from mlpatterns.reproducibility.model_versioning import RegistryError, open_registry

    text = registry_url(url)
    if not create:
        _require_database(text)
    try:
        with open_registry(text) as registry:
            yield registry
    except SQLAlchemyError as error:
        cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
        message = " ".join(str(cause).split())
        try:
            password = urlsplit(text).password
        except ValueError:
            password = None
        if password:
            message = message.replace(password, "***")
        raise RegistryError(f"registry {redact_url(text)}: {message}") from error


# -- formatting ------------------------------------------------------------------------------------
def _console() -> Any:
    from rich.console import Console

    return Console()


def _table(title: str, *columns: str, right: Sequence[str] = ()) -> Any:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left")
    return table


def _row(table: Any, *cells: Any) -> None:
    from rich.text import Text

    table.add_row(*(Text(_cell(cell)) for cell in cells))  # Text: user text is never read as markup


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.4f}" if math.isfinite(value) else str(value)
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, int | bool):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _difference(value: float | None) -> str:
    return "-" if value is None else ("+" if value > 0 else "") + _cell(float(value))


def _when(at: str) -> str:
    """``2026-12-02T10:31:05.123456+00:00`` as ``2026-12-02 10:31:05`` (UTC)."""
    return at[:19].replace("T", " ")


def _pairs(mapping: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(mapping.items()))


def _headline(version: Any) -> dict[str, Any]:
    """The version's headline test metric for its task, else its first two numeric metrics."""
    from mlpatterns.metrics import HEADLINE_METRICS
    from mlpatterns.reproducibility.model_versioning.comparison import flatten

    metrics = flatten(version.metrics)
    key = f"test.{HEADLINE_METRICS.get(version.task or '', '')}"
    if key in metrics:
        return {key: metrics[key]}
    return dict([(name, value) for name, value in metrics.items() if _number(value)][:2])


def _column(column: Mapping[str, Any]) -> str:
    kind = column.get("type", "?")
    values = column.get("values")
    return f"{kind}: {', '.join(map(str, values))}" if values else str(kind)


def _columns(columns: Sequence[Mapping[str, Any]] | None) -> str:
    return ", ".join(f"{column.get('name')} ({_column(column)})" for column in columns or []) or "-"


def _json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


# -- refs and arguments ----------------------------------------------------------------------------
def _lookup(registry: Any, ref: str) -> Any:
    """The version ``ref`` names: NAME (latest), NAME/VERSION, models:/NAME/VERSION, models:/NAME@ALIAS."""
    from mlpatterns.reproducibility.model_versioning import RegistryError
    from mlpatterns.reproducibility.model_versioning.model_uri import check_name

    if ref.startswith(URI_PREFIX):
        return registry.lookup(ref)
    name, slash, number = ref.partition("/")
    try:
        check_name(name)
    except RegistryError:
        hint = f" (an alias: {URI_PREFIX}{ref})" if "@" in ref else ""
        raise RegistryError(f"{ref!r}: expected {_REF_FORMS}{hint}") from None
    if not slash:
        return registry.latest_version(name)
    if not (number.isascii() and number.isdigit()) or number.startswith("0"):
        raise RegistryError(f"{ref!r}: expected {_REF_FORMS} (a version is 1, 2, 3...)")
    return registry.get_version(name, int(number))


def _version_number(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or text.startswith("0"):
        raise argparse.ArgumentTypeError(f"expected a version number (1, 2, 3...), got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _key_values(pairs: Sequence[str], what: str) -> dict[str, str]:
    from mlpatterns.reproducibility.model_versioning import RegistryError

    tags: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise RegistryError(f"{what}: expected KEY=VALUE, got {pair!r}")
        tags[key] = value
    return tags


# -- handlers --------------------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    with _opened(args.registry) as registry:
        where = registry.describe()
        if args.name is None:
            models = registry.list_models()
            if not models:
                print(f"no models in the registry {where}")
                return 0
            table = _table("models", "name", "latest", "aliases", "description", "versions",
                           right=("latest", "versions"))
            for model in models:
                versions = registry.list_versions(model.name)
                description = next((v.description for v in reversed(versions) if v.description), None)
                _row(table, model.name, model.latest_version, _pairs(model.aliases) or "-", description or "",
                     len(versions))
        else:
            table = _table(f"{args.name}: versions", "version", "created (UTC)", "who", "aliases", "metrics",
                           "bundle", "tags", right=("version",))
            for version in registry.list_versions(args.name):
                metrics = ", ".join(f"{key} {_cell(value)}" for key, value in _headline(version).items())
                _row(table, version.version, _when(version.created_at), version.created_by,
                     ", ".join(version.aliases) or "-", metrics or "-", version.bundle_digest[:12],
                     _pairs(version.tags) or "-")
    print(f"registry {where}")
    _console().print(table)
    return 0


def _version_dict(registry: Any, version: Any) -> dict[str, Any]:
    return {"uri": version.uri, "name": version.name, "version": version.version, "registry": registry.describe(),
            "created_at": version.created_at, "created_by": version.created_by, "description": version.description,
            "task": version.task, "bundle_name": version.bundle_name, "bundle_digest": version.bundle_digest,
            "path": str(version.path), "verified": True, "aliases": list(version.aliases), "tags": version.tags,
            "signature": version.signature, "metrics": version.metrics, "lineage": version.lineage}


def _show(args: argparse.Namespace) -> int:
    from mlpatterns.reproducibility.model_versioning.comparison import flatten

    with _opened(args.registry) as registry:
        version = _lookup(registry, args.ref)
        registry.resolve(version.uri)  # every file's sha256 and the manifest's digest, or an error
        if args.json:
            _json(_version_dict(registry, version))
            return 0
        where = registry.describe()
    signature = version.signature
    lines = [
        f"{version.name} version {version.version} ({version.uri}) in {where}",
        f"created:     {_when(version.created_at)} UTC by {version.created_by}",
        f"description: {version.description or '-'}",
        f"aliases:     {', '.join(version.aliases) or '-'}",
        f"tags:        {_pairs(version.tags) or '-'}",
        f"task:        {version.task or '-'} (bundle {version.bundle_name or '-'})",
        f"bundle:      {version.path} (every file verified; manifest sha256 {version.bundle_digest})",
        f"inputs:      {_columns(signature.get('inputs'))}",
        f"outputs:     {_columns(signature.get('outputs'))}",
        f"keys:        {', '.join(signature.get('keys') or []) or '-'}",
    ]
    for title, values in (("metrics", version.metrics), ("lineage", version.lineage)):
        flat = flatten(values)
        lines.append(f"{title}:" + ("" if flat else "     -"))
        width = max(map(len, flat), default=0)
        lines += [f"  {key:<{width}}  {_cell(value)}" for key, value in flat.items()]
    print("\n".join(lines))
    return 0


def _register(args: argparse.Namespace) -> int:
    from mlpatterns.reproducibility.model_versioning import InterfaceChangeError

    tags = _key_values(args.tag or [], "--tag")
    with _opened(args.registry, create=True) as registry:
        try:
            version = registry.register(args.bundle, args.name, alias=args.alias, tags=tags,
                                        description=args.description, message=args.message,
                                        allow_interface_change=args.allow_interface_change)
        except InterfaceChangeError as error:
            raise InterfaceChangeError(f"{error} (mlpatterns registry register --allow-interface-change)",
                                       error.diff) from None
        change = next((entry.after.get("interface_change") for entry in reversed(registry.audit(args.name))
                       if entry.action == "register" and entry.version == version.version
                       and isinstance(entry.after, dict)), None)
        print(f"registered {args.bundle} as {version.uri} in {registry.describe()} "
              f"(manifest sha256 {version.bundle_digest[:12]})")
    if args.alias:
        print(f"{args.name}: alias {args.alias} -> version {version.version}")
    if change:
        print(f"{args.name}: interface changed from version {change.get('from_version')} (allowed): "
              + "; ".join(change.get("differences") or []))
    return 0


def _alias(args: argparse.Namespace) -> int:
    from mlpatterns.reproducibility.model_versioning import RegistryError

    if args.delete == (args.version is not None):
        raise RegistryError(f"alias {args.name} {args.alias}: give the VERSION to point it at, or --delete "
                            "(not both)")
    with _opened(args.registry) as registry:
        where = registry.describe()
        if args.delete:
            previous = registry.delete_alias(args.name, args.alias, message=args.message)
            print(f"{args.name}: alias {args.alias} deleted (it pointed at version {previous}) in {where}")
            return 0
        previous = registry.set_alias(args.name, args.alias, args.version, message=args.message)
    if previous == args.version:
        print(f"{args.name}: alias {args.alias} already points at version {args.version} in {where}; "
              "nothing changed")
    else:
        was = "a new alias" if previous is None else f"was version {previous}"
        print(f"{args.name}: alias {args.alias} -> version {args.version} ({was}) in {where}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    with _opened(args.registry) as registry:
        before = registry.get_model(args.name).aliases.get(args.alias)
        version = registry.rollback(args.name, args.alias, args.to, message=args.message)
        where = registry.describe()
    was = "was unset" if before is None else f"was version {before}"
    print(f"{args.name}: alias {args.alias} rolled back to version {version.version} ({was}) in {where}")
    return 0


def _interface_dict(diff: Any) -> dict[str, Any]:
    return {**diff.to_dict(), "inputs_added": list(diff.inputs_added), "inputs_removed": list(diff.inputs_removed),
            "inputs_changed": {k: list(v) for k, v in diff.inputs_changed.items()},
            "outputs_added": list(diff.outputs_added), "outputs_removed": list(diff.outputs_removed),
            "outputs_changed": {k: list(v) for k, v in diff.outputs_changed.items()},
            "keys_added": list(diff.keys_added), "keys_removed": list(diff.keys_removed)}


def _signature_rows(diff: Any, first: Mapping[str, Any], second: Mapping[str, Any]) -> Iterator[tuple]:
    """(part, name, first, second, change) for every input, output and key of either signature."""
    for part, plural in (("input", "inputs"), ("output", "outputs")):
        before = {c["name"]: c for c in first.get(plural) or []}
        after = {c["name"]: c for c in second.get(plural) or []}
        added, removed = getattr(diff, f"{plural}_added"), getattr(diff, f"{plural}_removed")
        changed = getattr(diff, f"{plural}_changed")
        for name in [*before, *(n for n in after if n not in before)]:
            change = ("added" if name in added else "removed" if name in removed
                      else "changed" if name in changed else "")
            yield (part, name, _column(before[name]) if name in before else None,
                   _column(after[name]) if name in after else None, change)
    keys_before, keys_after = list(first.get("keys") or []), list(second.get("keys") or [])
    for key in [*keys_before, *(k for k in keys_after if k not in keys_before)]:
        change = "added" if key in diff.keys_added else "removed" if key in diff.keys_removed else ""
        yield ("key", key, "key" if key in keys_before else None, "key" if key in keys_after else None, change)


def _compare(args: argparse.Namespace) -> int:
    with _opened(args.registry) as registry:
        comparison = registry.compare(args.name, args.first, args.second)
        first, second = (registry.get_version(args.name, v) for v in (args.first, args.second))
        where = registry.describe()
    a, b = f"v{args.first}", f"v{args.second}"
    if args.json:
        _json({"registry": where, **comparison.to_dict(), "interface": _interface_dict(comparison.interface)})
        return 0
    console = _console()
    print(f"registry {where}")
    metrics = _table(f"{args.name} {a} vs {b}: metrics", "metric", a, b, "difference",
                     right=(a, b, "difference"))
    for key, (x, y, difference) in comparison.metrics.items():
        _row(metrics, key, x, y, _difference(difference))
    console.print(metrics)
    signature = _table(f"{args.name} {a} vs {b}: signature", "part", "name", a, b, "change")
    for row in _signature_rows(comparison.interface, first.signature, second.signature):
        _row(signature, *row)
    console.print(signature)
    differences = comparison.interface.describe()
    print(f"interface: {'; '.join(differences)}" if differences
          else "interface: the same inputs, outputs, classes and keys")
    for detail in comparison.interface.details:
        print(f"  kept the interface: {detail}")
    lineage = _table(f"{args.name} {a} vs {b}: lineage", "field", a, b, "changed")
    for key, (x, y) in comparison.lineage.items():
        _row(lineage, key, x, y, "changed" if x != y else "")
    console.print(lineage)
    return 0


def _audit_value(entry: Any, value: Any) -> str:
    if value is None:
        return "-"
    if entry.action == "register" and isinstance(value, Mapping):
        parts = [f"bundle {str(value.get('bundle_digest') or '')[:12]}"]
        if value.get("tags"):
            parts.append(f"tags {_pairs(value['tags'])}")
        if value.get("interface_change"):
            parts.append(f"interface changed from version {value['interface_change'].get('from_version')}")
        return "; ".join(parts)
    if isinstance(value, Mapping):  # set_tags: None is a tag that is not there
        return ", ".join(f"{key}={'(unset)' if tag is None else tag}" for key, tag in sorted(value.items()))
    return _cell(value)


def _audit(args: argparse.Namespace) -> int:
    import dataclasses

    with _opened(args.registry) as registry:
        if args.name is not None:
            registry.get_model(args.name)  # an unknown model is an error, not an empty trail
        entries = registry.audit(args.name)
        where = registry.describe()
    if args.limit is not None:
        entries = entries[-args.limit:]
    if args.json:
        _json([dataclasses.asdict(entry) for entry in entries])
        return 0
    if not entries:
        print(f"no changes recorded in the registry {where}")
        return 0
    shown = f"the last {len(entries)}, " if args.limit is not None else ""
    print(f"registry {where}")
    table = _table(f"audit trail{' of ' + args.name if args.name else ''} ({shown}oldest first)",
                   "when (UTC)", "who", "action", "model", "version", "alias", "before", "after", "message",
                   right=("version",))
    for entry in entries:
        _row(table, _when(entry.at), entry.who, entry.action, entry.model, entry.version, entry.alias,
             _audit_value(entry, entry.before), _audit_value(entry, entry.after), entry.message or "")
    _console().print(table)
    return 0


def _tag(args: argparse.Namespace) -> int:
    from mlpatterns.reproducibility.model_versioning import RegistryError

    tags: dict[str, str | None] = dict(_key_values(args.tags, "tag"))
    for key in args.remove or []:
        if key in tags:
            raise RegistryError(f"tag: {key!r} is both set and removed")
        tags[key] = None
    if not tags:
        raise RegistryError("tag: give KEY=VALUE pairs to set, --remove KEY to remove, or both")
    with _opened(args.registry) as registry:
        version = registry.set_tags(args.name, args.version, tags, message=args.message)
        where = registry.describe()
    print(f"{args.name} version {args.version}: tags {_pairs(version.tags) or '(none)'} in {where}")
    return 0


# -- the parser ------------------------------------------------------------------------------------
def add_registry_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``registry`` and its subcommands to ``subparsers`` (``parser.add_subparsers()``); return it.

    Each subcommand sets ``handler``, a function of the parsed ``args`` that returns the exit code.
    """
    registry = subparsers.add_parser(
        "registry", help="list, show, register, alias, roll back, compare, audit and tag model versions",
        description="The model registry (Model Versioning): named models with immutable versions, aliases "
        "and an audit trail.", epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = registry.add_subparsers(dest="registry_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--registry", metavar="URL", help=f"the registry (default: ${REGISTRY_ENV}, else "
                        f"{DEFAULT_REGISTRY}); sqlite:///PATH.db or postgresql+psycopg://...?files=/shared/folder")

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=help, description=help, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.set_defaults(handler=handler)
        return parser

    listing = command("list", _list, "the models (the description is the latest one "
                      "given), or with NAME its versions")
    listing.add_argument("name", nargs="?", metavar="NAME", help="a model: list its versions")
    show = command("show", _show, "one version: signature, metrics, lineage, tags, aliases, bundle "
                   "(its files verified)")
    show.add_argument("ref", metavar="REF", help=_REF_FORMS)
    show.add_argument("--json", action="store_true", help="print it as JSON")
    register = command("register", _register, "register a bundle folder as the next version of NAME")
    register.add_argument("bundle", type=Path, metavar="BUNDLE", help="a bundle directory")
    register.add_argument("name", metavar="NAME", help="the model (created by its first version)")
    register.add_argument("--alias", help="point this alias at the new version")
    register.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a tag of the version (repeatable)")
    register.add_argument("--description", help="what this version is")
    register.add_argument("--message", help="why, for the audit trail")
    register.add_argument("--allow-interface-change", action="store_true", help="register a bundle whose "
                          "inputs, outputs, classes or keys differ from the latest version's (recorded in the "
                          "audit trail; usually a new model name is better)")
    alias = command("alias", _alias, "point an alias at a version, or --delete it")
    alias.add_argument("name", metavar="NAME")
    alias.add_argument("alias", metavar="ALIAS")
    alias.add_argument("version", nargs="?", type=_version_number, metavar="VERSION")
    alias.add_argument("--delete", action="store_true", help="delete the alias")
    alias.add_argument("--message", help="why, for the audit trail")
    rollback = command("rollback", _rollback, "move an alias back: to --to VERSION, or to where it pointed "
                       "before its latest change (from the audit trail)")
    rollback.add_argument("name", metavar="NAME")
    rollback.add_argument("alias", metavar="ALIAS")
    rollback.add_argument("--to", type=_version_number, metavar="VERSION", help="the version to move it to")
    rollback.add_argument("--message", help="why, for the audit trail")
    compare = command("compare", _compare, "two versions side by side: metrics, signature, lineage")
    compare.add_argument("name", metavar="NAME")
    compare.add_argument("first", type=_version_number, metavar="V1")
    compare.add_argument("second", type=_version_number, metavar="V2")
    compare.add_argument("--json", action="store_true", help="print it as JSON")
    audit = command("audit", _audit, "the audit trail (every change: when, who, what, why), oldest first")
    audit.add_argument("name", nargs="?", metavar="NAME", help="only this model's changes")
    audit.add_argument("--limit", type=_positive, metavar="N", help="only the last N entries")
    audit.add_argument("--json", action="store_true", help="print the entries as JSON")
    tag = command("tag", _tag, "set or remove tags of a version (the one mutable part of a version)")
    tag.add_argument("name", metavar="NAME")
    tag.add_argument("version", type=_version_number, metavar="VERSION")
    tag.add_argument("tags", nargs="*", metavar="KEY=VALUE", help="tags to set")
    tag.add_argument("--remove", action="extend", nargs="+", metavar="KEY", help="tags to remove")
    tag.add_argument("--message", help="why, for the audit trail")
    return registry
