"""``mlpatterns serve``: the Stateless Serving Function (16) over HTTP.

Problem: a bundle on disk answers nobody; an application needs it behind a server that
TensorFlow Serving and Open Inference Protocol v2 clients already speak to.

Solution: ``mlpatterns serve [NAME=]BUNDLE ... [--host 127.0.0.1] [--port 8501]`` loads
and verifies every bundle (a tampered one stops the start) and runs
:func:`mlpatterns.serving.http.create_app` under uvicorn. A bundle given without a name
is served under its folder's name.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_serve_command", "parse_models", "serve"]


def parse_models(items: list[str]) -> dict[str, str]:
    """``[NAME=]BUNDLE`` arguments as name -> bundle folder; a repeated name is an error."""
    models: dict[str, str] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
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

    from mlpatterns.serving.http import create_app

    app = create_app(args.models)
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
                        help="a bundle folder, optionally named (default name: the folder's name)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="port (default: 8501, TF Serving's REST port)")
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(handler=serve)
    return parser
