"""``mlpatterns serve``'s arguments (Stateless Serving Function, 16); no server is started."""

from __future__ import annotations

import argparse
import re

import pytest

from mlpatterns.cli.serve import add_serve_command, parse_labels, parse_splits, serve
from mlpatterns.serving.http import ModelSource, TrafficSplit


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpatterns")
    add_serve_command(parser.add_subparsers(dest="command"))
    return parser


def test_named_and_unnamed_bundles_with_defaults():
    args = _parser().parse_args(["serve", "runs/flights/bundles/gbm/", "cars=runs/carseats/bundles/linear"])
    assert args.models == [ModelSource("gbm", "runs/flights/bundles/gbm/"),
                           ModelSource("cars", "runs/carseats/bundles/linear")]
    assert (args.host, args.port, args.handler) == ("127.0.0.1", 8501, serve)
    assert (args.labels, args.split, args.reload_interval, args.workers) == ({}, {}, 10.0, 1)


def test_host_and_port():
    args = _parser().parse_args(["serve", "m=b", "--host", "0.0.0.0", "--port", "9000"])
    assert (args.host, args.port) == ("0.0.0.0", 9000)


def test_versions_labels_split_reload_and_workers():
    args = _parser().parse_args(["serve", "flights/7=runs/a", "flights=runs/b", "flights/9=runs/c",
                                 "--label", "flights/stable=7", "--label", "flights/canary=9",
                                 "--split", "flights=7:90,9:10", "--reload-interval", "2.5", "--workers", "3"])
    assert args.models == [ModelSource("flights", "runs/a", 7), ModelSource("flights", "runs/b"),
                           ModelSource("flights", "runs/c", 9)]
    assert args.labels == {"flights": {"stable": 7, "canary": 9}}
    assert args.split == {"flights": TrafficSplit(((7, 90.0), (9, 10.0)))}
    assert (args.reload_interval, args.workers) == (2.5, 3)
    assert parse_labels(["a/b=2"]) == {"a": {"b": 2}}
    assert parse_splits(["a=champion:50,2:50"]) == {"a": TrafficSplit((("champion", 50.0), (2, 50.0)))}


@pytest.mark.parametrize(("argv", "message"), [
    (["serve"], "required"),
    (["serve", "a/m", "b/m"], "'m' version 1 is given twice"),
    (["serve", "m=runs/a", "m/1=runs/b"], "'m' version 1 is given twice: 'm=runs/a' and 'm/1=runs/b'"),
    (["serve", "m/x=runs/a"], "expected NAME/VERSION=BUNDLE with VERSION 1, 2, 3..., got version 'x'"),
    (["serve", "m/0=runs/a"], "got version '0'"),
    (["serve", "=b"], "expected \\[NAME\\[/VERSION\\]=\\]BUNDLE"),
    (["serve", "m=b", "--port", "x"], "--port"),
    (["serve", "m=b", "--label", "m=3"], "--label 'm=3': expected NAME/LABEL=VERSION"),
    (["serve", "m=b", "--label", "m/7x=3"], "--label 'm/7x=3': alias"),
    (["serve", "m=b", "--label", "m/a=1", "--label", "m/a=2"], "'m/a' is given twice"),
    (["serve", "m=b", "--split", "m=1:90,2:5"], "--split 'm=1:90,2:5': traffic split 1:90,2:5: the shares sum to 95"),
    (["serve", "m=b", "--split", "m"], "--split 'm': expected NAME=VERSION:PERCENT"),
    (["serve", "m=b", "--split", "m=1:50,2:50", "--split", "m=1:100"], "'m' has a split already"),
    (["serve", "m=b", "--reload-interval", "-1"], "argument --reload-interval: expected seconds >= 0"),
    (["serve", "m=b", "--drain", "-1"], "argument --drain: expected seconds >= 0"),
    (["serve", "m=b", "--drain", "inf"], "argument --drain: expected seconds >= 0"),
    (["serve", "m=b", "--workers", "0"], "--workers: expected a whole number >= 1"),
])
def test_bad_arguments_are_refused_naming_the_field(argv, message, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert re.search(message, capsys.readouterr().err)
