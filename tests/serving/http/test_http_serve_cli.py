"""``mlpatterns serve``'s arguments (Stateless Serving Function, 16); no server is started."""

from __future__ import annotations

import argparse

import pytest

from mlpatterns.cli.serve import add_serve_command, serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpatterns")
    add_serve_command(parser.add_subparsers(dest="command"))
    return parser


def test_named_and_unnamed_bundles_with_defaults():
    args = _parser().parse_args(["serve", "runs/flights/bundles/gbm/", "cars=runs/carseats/bundles/linear"])
    assert args.models == {"gbm": "runs/flights/bundles/gbm/", "cars": "runs/carseats/bundles/linear"}
    assert (args.host, args.port, args.handler) == ("127.0.0.1", 8501, serve)


def test_host_and_port():
    args = _parser().parse_args(["serve", "m=b", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)


@pytest.mark.parametrize("argv", [["serve"], ["serve", "a/m", "b/m"], ["serve", "=b"], ["serve", "m=b", "--port", "x"]])
def test_bad_arguments_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
