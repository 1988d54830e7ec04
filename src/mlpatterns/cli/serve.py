"""``mlpatterns serve``: the Stateless Serving Function (16) over HTTP.

Problem: a bundle on disk answers nobody; an application needs it behind a server that
TensorFlow Serving and Open Inference Protocol v2 clients already speak to.

Solution: ``mlpatterns serve [NAME[/VERSION]=]BUNDLE ... [--host 127.0.0.1] [--port 8501]``
loads and verifies every bundle (a tampered one stops the start) and runs
:func:`mlpatterns.serving.http.create_app` under uvicorn. A bundle given without a name
is served under its folder's name, as version 1 unless given ``NAME/VERSION=``. A
table of precomputed predictions (``scores.sqlite``, written by ``mlpatterns predict``:
Batch Serving, 17) is served as a bundle is, answered by key from the table. A
registered version serves by its reference (Model Versioning, 27): ``models:/NAME@ALIAS``
or ``models:/NAME/VERSION`` (named NAME unless given ``OTHER=models:/...``; its version
is the registry's), resolved and verified in ``--registry``. One name may be given
several times, once per version; the latest answers unless ``--split`` shares the
traffic by key. Aliases are re-resolved every ``--reload-interval`` seconds, and the
version an alias moves to is swapped in without dropping a request. ``--workers N``
runs N processes (metrics summed over them). On SIGTERM the server drains for ``--drain``
seconds, shuts down gracefully and exits 0, with one worker as with several (also when the
signal comes while the bundles load); a second SIGTERM ends the drain at once (one worker).
``--log URL`` logs every prediction (Continued Model Evaluation, 18) to a prediction log (a
folder of Parquet files, ``sqlite:///PATH.db`` or ``postgresql://...``), off the request path:
``--log-sample-rate`` keeps a share of them (by key), ``--log-flush-s`` is how often they are
written (a crash loses at most that much; a graceful stop nothing), ``--log-time-column`` names
the input whose value is each prediction's event time (a replay; default: the time served).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["add_serve_command", "parse_labels", "parse_models", "parse_splits", "serve"]


URI_PREFIX = "models:/"
DEFAULT_RELOAD_INTERVAL = 10.0  # as mlpatterns.serving.http.app's (not imported here: the CLI starts fast; tested equal)
DEFAULT_DRAIN_SECONDS = 1.0  # as mlpatterns.serving.http.graceful_drain's (tested equal)
# Explainable Predictions (29): what answers a request's `explain: true` (serving imports no explainer itself)
EXPLAINER = "mlpatterns.responsible.explainable_predictions.explained_predictions:explainer_for_serving"


def _source(name: str, path: str, version: int | None, item: str) -> Any:
    from mlpatterns.serving.http.model_sources import ModelLoadError, ModelSource  # no FastAPI yet

    try:
        return ModelSource(name, path, version)
    except ModelLoadError as error:
        raise argparse.ArgumentTypeError(f"{item!r}: {error}") from None


def parse_models(items: list[str]) -> list[Any]:
    """``[NAME[/VERSION]=]BUNDLE`` arguments as :class:`~mlpatterns.serving.http.ModelSource`.

    A name may repeat with different versions; the same name and version twice is an error
    (a registered alias's version is known, and checked, only once it is resolved).
    """
    sources = []
    seen: dict[tuple[str, int], str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        version = None
        if not sep and item.startswith(URI_PREFIX):  # served under the registered model's name
            from mlpatterns.reproducibility.model_versioning import ModelURI, RegistryError

            try:
                name, path = ModelURI.parse(item).name, item
            except RegistryError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        elif not sep:  # a folder's name; a table's (scores.sqlite) without its suffix
            given = Path(item.rstrip("/\\"))
            name, path = given.stem if given.suffix.lower() in (".sqlite", ".db") else given.name, item
        elif "/" in name:
            name, _, number = name.partition("/")
            if not (number.isascii() and number.isdigit() and not number.startswith("0")):
                raise argparse.ArgumentTypeError(f"{item!r}: expected NAME/VERSION=BUNDLE with VERSION 1, 2, 3..., "
                                                 f"got version {number!r}")
            version = int(number)
        if not name or not path:
            raise argparse.ArgumentTypeError(f"{item!r}: expected [NAME[/VERSION]=]BUNDLE_FOLDER or models:/...")
        source = _source(name, path, version, item)
        if source.uri is None or source.uri.version is not None:
            key = (name, source.version or (source.uri.version if source.uri else 1))
            if key in seen:
                raise argparse.ArgumentTypeError(f"the model '{name}' version {key[1]} is given twice: {seen[key]!r} "
                                                 f"and {item!r}; give each version once (NAME/VERSION=BUNDLE)")
            seen[key] = item
        sources.append(source)
    return sources


def parse_labels(items: list[str]) -> dict[str, dict[str, int]]:
    """``--label NAME/LABEL=VERSION`` arguments as ``{name: {label: version}}``."""
    labels: dict[str, dict[str, int]] = {}
    for item in items:
        where, _, version = item.partition("=")
        name, slash, label = where.partition("/")
        if not (name and slash and label and version.isascii() and version.isdigit() and not version.startswith("0")):
            raise argparse.ArgumentTypeError(f"--label {item!r}: expected NAME/LABEL=VERSION (flights/stable=3)")
        from mlpatterns.reproducibility.model_versioning.model_uri import RegistryError, check_alias

        try:
            check_alias(label)
        except RegistryError as error:
            raise argparse.ArgumentTypeError(f"--label {item!r}: {error}") from None
        if label in labels.get(name, {}):
            raise argparse.ArgumentTypeError(f"--label {item!r}: the label '{name}/{label}' is given twice")
        labels.setdefault(name, {})[label] = int(version)
    return labels


def parse_splits(items: list[str]) -> dict[str, Any]:
    """``--split NAME=3:90,4:10`` arguments as ``{name: TrafficSplit}``."""
    from mlpatterns.serving.http.traffic_split import SplitError, TrafficSplit

    splits: dict[str, Any] = {}
    for item in items:
        name, sep, shares = item.partition("=")
        if not (name and sep and shares):
            raise argparse.ArgumentTypeError(f"--split {item!r}: expected NAME=VERSION:PERCENT,... (flights=3:90,4:10)")
        if name in splits:
            raise argparse.ArgumentTypeError(f"--split {item!r}: the model '{name}' has a split already")
        try:
            splits[name] = TrafficSplit.parse(shares)
        except SplitError as error:
            raise argparse.ArgumentTypeError(f"--split {item!r}: {error}") from None
    return splits


def _stopped(sig: int, frame: Any) -> None:
    raise SystemExit(0)  # as mlpatterns.serving.http.workers.STOPPED_STATUS (tested equal)


def serve(args: argparse.Namespace) -> int:
    """Load the bundles and run the server until stopped; 0 once stopped by SIGTERM.

    SIGTERM exits 0 from here on (while the server modules import, before
    :func:`~mlpatterns.serving.http.workers.run_server` takes it over): a stop asked for
    before the server is ready, like one after, is no failure.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _stopped) if main_thread else None
    try:
        return _serve(args)
    finally:
        if main_thread and previous is not None:  # None: a handler not set from Python, left as it was
            signal.signal(signal.SIGTERM, previous)


def _serve(args: argparse.Namespace) -> int:
    from mlpatterns.cli.registry import registry_url, resolve_bundle
    from mlpatterns.serving.http import ModelLoadError, token_from_file
    from mlpatterns.serving.http.workers import ServerConfig, run_server

    log_options = [f for f, given in (("--log-sample-rate", getattr(args, "log_sample_rate", 1.0) != 1.0),
                                      ("--log-flush-s", getattr(args, "log_flush_s", 1.0) != 1.0),
                                      ("--log-time-column", getattr(args, "log_time_column", None) is not None)) if given]
    if log_options and getattr(args, "log", None) is None:
        print(f"mlpatterns serve: error: {', '.join(log_options)} need --log URL", file=sys.stderr)
        return 2
    token_file = getattr(args, "token_file", None)
    if token_file:
        token_from_file(token_file)  # refused here, before anything loads
    registry = None
    references = [s for s in args.models if s.uri is not None]
    if references:
        resolve_bundle(str(references[0].source), getattr(args, "registry", None))  # a clear error for a missing registry
        registry = registry_url(getattr(args, "registry", None))
    try:
        config = ServerConfig.of(args.models, registry=registry, labels=getattr(args, "labels", None) or {},
                                 split=getattr(args, "split", None) or {},
                                 reload_interval=getattr(args, "reload_interval", DEFAULT_RELOAD_INTERVAL),
                                 token_file=str(token_file) if token_file else None,
                                 drain=getattr(args, "drain", DEFAULT_DRAIN_SECONDS),
                                 log=getattr(args, "log", None), log_sample_rate=getattr(args, "log_sample_rate", 1.0),
                                 log_flush_s=getattr(args, "log_flush_s", 1.0),
                                 log_time_column=getattr(args, "log_time_column", None),
                                 online_store=getattr(args, "online_store", None),
                                 window_state=getattr(args, "window_state", None),
                                 explainer=EXPLAINER if getattr(args, "explain", False) else None)
        run_server(config, host=args.host, port=args.port, workers=getattr(args, "workers", 1),
                   log_level=args.log_level)
    except ModelLoadError as error:
        print(f"mlpatterns serve: error: {error}", file=sys.stderr)
        return 2
    return 0


def _action(parse: Any) -> type[argparse.Action]:
    class Parsed(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                     option_string: str | None = None) -> None:
            items = list(values) if isinstance(values, list) else [*getattr(namespace, f"_{self.dest}_items", []), values]
            setattr(namespace, f"_{self.dest}_items", items)
            try:
                setattr(namespace, self.dest, parse(items))
            except argparse.ArgumentTypeError as error:
                parser.error(str(error))

    return Parsed


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0 (0: off), got {text!r}")  # argparse names the flag
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    value = _seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def _workers(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"--workers: expected a whole number >= 1, got {text!r}")
    return int(text)


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to a CLI's subparsers; the parsed arguments' ``handler`` runs it."""
    parser = subparsers.add_parser(
        "serve", help="serve bundles over HTTP (TF Serving REST and Open Inference Protocol v2)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", action=_action(parse_models), metavar="[NAME[/VERSION]=]BUNDLE",
                        help="a bundle folder, models:/NAME@ALIAS or models:/NAME/VERSION, or a table of "
                             "precomputed predictions (a .sqlite or .db file of `mlpatterns predict`, answered by "
                             "key), optionally named (default name: the folder's, the file's without suffix, or "
                             "the registered model's); a folder or a table is version 1 unless given NAME/VERSION=; "
                             "give a name once per version to serve several")
    parser.add_argument("--registry", help="the registry of models:/ references (default: $MLPATTERNS_REGISTRY, "
                        "else sqlite:///registry/registry.db)")
    parser.add_argument("--label", dest="labels", action=_action(parse_labels), default={},
                        metavar="NAME/LABEL=VERSION", help="a version label (TF Serving's /labels/LABEL), besides "
                        "the registry's aliases of served versions; repeatable")
    parser.add_argument("--split", action=_action(parse_splits), default={}, metavar="NAME=VERSION:PERCENT,...",
                        help="share the requests without version between served versions (or labels) by the hash "
                        "of each row's key, e.g. flights=3:90,4:10; repeatable, one per model")
    parser.add_argument("--reload-interval", type=_seconds, default=DEFAULT_RELOAD_INTERVAL, metavar="SECONDS",
                        help="re-resolve models:/NAME@ALIAS this often and swap in the version it points at "
                        f"(default: {DEFAULT_RELOAD_INTERVAL:g}; 0: never)")
    parser.add_argument("--workers", type=_workers, default=1, help="worker processes (default: 1)")
    parser.add_argument("--drain", type=_seconds, default=DEFAULT_DRAIN_SECONDS, metavar="SECONDS",
                        help="on SIGTERM, keep answering this long, not ready and closing each connection after "
                        f"its answer, before shutting down (default: {DEFAULT_DRAIN_SECONDS:g}; 0: none)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501, TF Serving's REST port)")
    parser.add_argument("--token-file", type=Path, help="require 'Authorization: Bearer TOKEN' (the file's content, "
                        "mode 0600) on every endpoint but the health probes; off by default")
    parser.add_argument("--log", metavar="URL", help="log every prediction to this prediction log (a folder of "
                        "Parquet files, sqlite:///PATH.db or postgresql://...), off the request path, for "
                        "`mlpatterns monitor`; off by default")
    parser.add_argument("--log-sample-rate", type=_share, default=1.0, metavar="RATE",
                        help="with --log: the share of predictions logged, by key hash when the model has keys "
                        "(default: 1, every prediction)")
    parser.add_argument("--log-flush-s", type=_positive_seconds, default=1.0, metavar="SECONDS",
                        help="with --log: write the logged predictions this often (a crash loses at most this "
                        "much; a graceful stop nothing; default: 1)")
    parser.add_argument("--log-time-column", metavar="COLUMN", help="with --log: the input or key column whose "
                        "value is each prediction's event time (a replay or backfill; default: the time served)")
    parser.add_argument("--online-store", metavar="URL", help="where models trained on stored features "
                        "(data.feature_store) read them by key: sqlite:///PATH.db or redis://HOST:PORT/DB (default: "
                        "the online store their feature repository names)")
    parser.add_argument("--window-state", metavar="URL", help="where models with window features (data.windows) "
                        "keep their stream's state, per event: sqlite:///PATH.db or redis://HOST:PORT/DB (default: in "
                        "memory, lost at a restart)")
    parser.add_argument("--explain", action="store_true",
                        help="answer 'explain: true' in a request with each row's attributions (Explainable "
                             "Predictions; a permutation explanation costs hundreds of predictions a row, so it is "
                             "off unless asked for)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(handler=serve)
    return parser
