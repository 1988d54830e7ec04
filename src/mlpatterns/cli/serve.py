"""``mlpatterns serve``: the Stateless Serving Function (16) over HTTP.

Problem: a bundle on disk answers nobody; an application needs it behind a server that
TensorFlow Serving and Open Inference Protocol v2 clients already speak to.

Solution: ``mlpatterns serve [NAME=]BUNDLE ... [--host 127.0.0.1] [--port 8501]`` loads
and verifies every bundle (a tampered one stops the start) and runs
:func:`mlpatterns.serving.http.create_app` under uvicorn. A bundle given without a name
is served under its folder's name. A registered version serves by its reference
(Model Versioning, 27): ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` (named NAME
unless given ``OTHER=models:/...``), resolved and verified in ``--registry``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_serve_command", "parse_models", "serve"]


URI_PREFIX = "models:/"


def parse_models(items: list[str]) -> dict[str, str]:
    """``[NAME=]BUNDLE`` arguments as name -> bundle folder or ``models:/`` reference; a repeated name is an error."""
    models: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep and item.startswith(URI_PREFIX):  # served under the registered model's name
            from mlpatterns.reproducibility.model_versioning import ModelURI, RegistryError

            try:
                name, path = ModelURI.parse(item).name, item
            except RegistryError as error:
                raise argparse.ArgumentTypeError(str(error)) from None
        elif not sep:
            name, path = Path(item.rstrip("/\\")).name, item
        if not name or not path:
            raise argparse.ArgumentTypeError(f"{item!r}: expected [NAME=]BUNDLE_FOLDER")
        if name in models:
            raise argparse.ArgumentTypeError(f"the model name '{name}' is given twice; name them NAME=BUNDLE")
        models[name] = path
    return models


def serve(args: argparse.Namespace) -> int:
    """Load the bundles and run the server until interrupted."""
    import uvicorn

    from mlpatterns.cli.registry import resolve_bundle
    from mlpatterns.serving.http import create_app, token_from_file

    token = token_from_file(args.token_file) if getattr(args, "token_file", None) else None
    models = {name: resolve_bundle(ref, getattr(args, "registry", None)) for name, ref in args.models.items()}
    app = create_app(models, token=token)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


class _Models(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        try:
            setattr(namespace, self.dest, parse_models(list(values)))
        except argparse.ArgumentTypeError as error:
            parser.error(str(error))


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to a CLI's subparsers; the parsed arguments' ``handler`` runs it."""
    parser = subparsers.add_parser(
        "serve", help="serve bundles over HTTP (TF Serving REST and Open Inference Protocol v2)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", action=_Models, metavar="[NAME=]BUNDLE",
                        help="a bundle folder, or models:/NAME@ALIAS or models:/NAME/VERSION, optionally named "
                             "(default name: the folder's, or the registered model's)")
    parser.add_argument("--registry", help="the registry of models:/ references (default: $MLPATTERNS_REGISTRY, "
                        "else sqlite:///registry/registry.db)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501, TF Serving's REST port)")
    parser.add_argument("--token-file", type=Path, help="require 'Authorization: Bearer TOKEN' (the file's content, "
                        "mode 0600) on every endpoint but the health probes; off by default")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(handler=serve)
    return parser
