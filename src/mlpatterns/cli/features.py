"""``mlpatterns features``: the Feature Store (26) from the command line.

* ``check REPOSITORY``: read the definitions file and each view's source; list the views.
* ``materialize REPOSITORY [--view NAME] [--start T] [--end T] [--online-store URL]``: copy the
  latest values per key with event time in ``[start, end)`` into the online store (a full load
  without ``--start``, an incremental one with it; re-running a window changes nothing).
* ``get REPOSITORY --view NAME --key COLUMN=VALUE ... [--at T] [--online-store URL]``: what
  serving reads for one entity (TTL applied at ``--at``), as JSON.
* ``join REPOSITORY ENTITIES OUTPUT --event-timestamp COLUMN --features REF ...``: the offline
  store's point-in-time join of an entity file, written to a new CSV or Parquet file
  (training data or a backfill).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_features_command"]

_EPILOG = """\
examples:
  mlpatterns features check features.yaml
  mlpatterns features materialize features.yaml --end 2013-07-01T00:00:00
  mlpatterns features materialize features.yaml --start 2013-07-01T00:00:00
  mlpatterns features get features.yaml --view weather --key origin=JFK --at 2013-06-30T18:00:00
  mlpatterns features join features.yaml flights.parquet train.parquet --event-timestamp scheduled \\
      --features weather planes:seats
"""


def _time(text: str | None, option: str) -> dt.datetime | None:
    from mlpatterns.reproducibility.feature_store.online_store import as_datetime

    return None if text is None else as_datetime(text, option)


def _repository(path: Path) -> Any:
    from mlpatterns.reproducibility.feature_store.repository import load_repository

    return load_repository(path)


def _store(repository: Any, url: str | None, **options: Any) -> Any:
    from mlpatterns.reproducibility.feature_store.online_store import (
        OnlineStoreError,
        open_online_store,
    )

    url = url or repository.online_store
    if url is None:
        raise ValueError(f"{repository.path}: names no online_store; give --online-store URL")
    try:
        return open_online_store(url, **options)
    except OnlineStoreError as error:
        raise ValueError(str(error)) from None


def _views(repository: Any, names: list[str] | None) -> list[Any]:
    return [repository.view(n) for n in names] if names else list(repository.views.values())


def _check(args: argparse.Namespace) -> int:
    import duckdb

    from mlpatterns.reproducibility.feature_store.offline_store import source_rows

    repository = _repository(args.repository)
    print(f"{repository.path} (sha256 {repository.sha256[:12]}): {len(repository.entities)} entities, "
          f"{len(repository.views)} feature views; online store {repository.online_store or '(none)'}")
    for view in repository.views.values():
        con = duckdb.connect()
        try:
            source_rows(con, view, "rows")
            count, first, last = con.execute("SELECT count(*), min(__mlp_ts), max(__mlp_ts) FROM rows").fetchone()
        except (TypeError, ValueError) as error:  # they name the view already
            raise ValueError(str(error)) from None
        except duckdb.Error as error:
            raise ValueError(f"feature view {view.name!r}: {error}") from None
        finally:
            con.close()
        ttl = "no TTL" if view.ttl is None else f"TTL {view.ttl}"
        print(f"  {view.name}: keys {list(view.join_keys)}, features {list(view.features)}, {ttl}; "
              f"{count:,} rows from {first} to {last} in {view.source}")
    return 0


def _materialize(args: argparse.Namespace) -> int:
    import time

    from mlpatterns.reproducibility.feature_store.materialization import materialize

    repository = _repository(args.repository)
    start, end = _time(args.start, "--start"), _time(args.end, "--end")
    views = _views(repository, args.view)
    with _store(repository, args.online_store) as store:
        for view in views:
            began = time.perf_counter()
            written = materialize(store, view, start=start, end=end)
            seconds = time.perf_counter() - began
            print(f"{view.name}: {written:,} key(s) written to {store.url} in {seconds:.2f} s "
                  f"(event times in [{start or '-inf'}, {end or '+inf'}))")
    return 0


def _get(args: argparse.Namespace) -> int:
    repository = _repository(args.repository)
    view = repository.view(args.view)
    row: dict[str, Any] = {}
    for item in args.key:
        column, sep, value = item.partition("=")
        if not sep or column not in view.join_keys:
            raise ValueError(f"--key: expected COLUMN=VALUE for the join keys {list(view.join_keys)}, got {item!r}")
        row[column] = json.loads(value) if value[:1] in "0123456789-[" and _is_json(value) else value
    missing = [k for k in view.join_keys if k not in row]
    if missing:
        raise ValueError(f"--key: give every join key of {view.name!r}: missing {missing}")
    with _store(repository, args.online_store, create=False) as store:  # a reader: never an empty new store
        [values] = store.read(view, [row], now=_time(args.at, "--at"))
    print(json.dumps({**row, **values}, default=str))
    return 0


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _join(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from mlpatterns.reproducibility.feature_store.feature_service import FeatureService
    from mlpatterns.tables import read_frame

    output = Path(args.output)
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"OUTPUT: expected a .csv or .parquet path, got {str(output)!r}")
    if output.exists() and not args.overwrite:
        raise ValueError(f"OUTPUT: {output} exists; give --overwrite to replace it")
    if output.resolve() == Path(args.entities).resolve():
        raise ValueError("OUTPUT: is the entity file itself; write the join elsewhere")
    repository = _repository(args.repository)
    service = FeatureService.from_repository(repository, args.features, args.event_timestamp, where="--features")
    frame = read_frame(Path(args.entities))
    joined = service.historical(frame)
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(handle)
    try:
        if output.suffix.lower() == ".csv":
            joined.to_csv(temporary, index=False)
        else:
            joined.to_parquet(temporary, index=False)
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    found = joined[service.features].notna().mean()
    shares = ", ".join(f"{name} {share:.1%}" for name, share in found.items())
    print(f"{len(joined):,} rows with {len(service.features)} stored feature(s) into {output} (rows with a value: "
          f"{shares})", file=sys.stderr)
    return 0


def add_features_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``features`` and its subcommands to the ``mlpatterns`` parser."""
    features = subparsers.add_parser("features", help="feature store: check a repository, materialize to the "
                                     "online store, read an entity, point-in-time join", epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = features.add_subparsers(dest="features_command", required=True)

    def command(name: str, handler: Any, help: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("repository", type=Path, help="the feature repository file (YAML)")
        parser.set_defaults(handler=handler)
        return parser

    command("check", _check, "read the definitions and every view's source; list the views")
    materialize = command("materialize", _materialize, "copy the latest values per key into the online store")
    materialize.add_argument("--view", action="append", metavar="NAME", help="only this view (repeatable; "
                             "default: every view)")
    materialize.add_argument("--start", help="only event times at or after this (ISO 8601; default: a full load)")
    materialize.add_argument("--end", help="only event times before this (ISO 8601; default: no bound)")
    materialize.add_argument("--online-store", metavar="URL", help="default: the repository's online_store")
    get = command("get", _get, "the stored values of one entity, as serving reads them (JSON)")
    get.add_argument("--view", required=True, metavar="NAME", help="the feature view")
    get.add_argument("--key", action="append", required=True, metavar="COLUMN=VALUE", help="a join key value "
                     "(repeatable; numbers are read as numbers)")
    get.add_argument("--at", help="apply the TTL as of this time (ISO 8601; default: no TTL)")
    get.add_argument("--online-store", metavar="URL", help="default: the repository's online_store")
    join = command("join", _join, "point-in-time join of an entity file (offline store) into a new file")
    join.add_argument("entities", type=Path, help="a .csv or .parquet file with the join keys and event times")
    join.add_argument("output", type=Path, help="the .csv or .parquet file to write")
    join.add_argument("--event-timestamp", required=True, metavar="COLUMN", help="the entity file's event time")
    join.add_argument("--features", nargs="+", required=True, metavar="REF", help="'view' or 'view:feature'")
    join.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    return features
