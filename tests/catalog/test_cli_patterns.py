"""``mlpatterns patterns``: list, search, show and graph the catalogue from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

from mlpatterns.cli.patterns import add_patterns_command

ROOT = Path(__file__).resolve().parents[2]
REGISTERED = "add_patterns_command" in (ROOT / "src" / "mlpatterns" / "cli" / "__init__.py").read_text()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``mlpatterns patterns ...`` the way ``mlpatterns.cli.main`` does (errors: exit 2 and the message)."""
    if REGISTERED:
        from mlpatterns.cli import main

        code = main(["patterns", *argv])
    else:
        parser = argparse.ArgumentParser(prog="mlpatterns")
        add_patterns_command(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(["patterns", *argv])
        try:
            code = args.handler(args)
        except (ValueError, KeyError) as error:
            message = error.args[0] if isinstance(error, KeyError) else error
            print(f"mlpatterns patterns: error: {message}", file=sys.stderr)
            code = 2
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_lists_the_30_patterns(capsys):
    code, out, _ = _run(capsys)
    assert code == 0
    for name in ("Hashed Feature", "Stateless Serving Function", "Continued Model Evaluation", "Fairness Lens"):
        assert name in out
    assert "Data Representation" in out and "30 patterns." in out
    assert "categorical values unknown at training time" in out  # the problem's one-liner
    assert _run(capsys, "list")[1] == out


def test_list_as_json(capsys):
    code, out, _ = _run(capsys, "--json")
    data = json.loads(out)
    assert code == 0 and [p["number"] for p in data] == list(range(1, 31))
    assert data[0]["related"][0] == {"pattern": "Embeddings", "relation": data[0]["related"][0]["relation"]}
    assert json.loads(_run(capsys, "list", "--json")[1]) == data


def test_search(capsys):
    code, out, _ = _run(capsys, "search", "training serving skew")
    assert code == 0
    assert out.index("Transform") < out.index("Windowed Inference")
    assert "match 'training serving skew'" in out
    code, out, _ = _run(capsys, "search", "--use-case", "computer vision", "--chapter", "4")
    assert code == 0 and "Transfer Learning" in out and "Checkpoints" not in out
    data = json.loads(_run(capsys, "search", "hash", "--json")[1])
    assert data[0]["name"] == "Hashed Feature" and data[0]["score"] > data[1]["score"]
    assert "name" in data[0]["matched"]
    code, out, _ = _run(capsys, "search", "xyzzy")
    assert code == 0 and "no pattern matches 'xyzzy'" in out


def test_search_refuses_an_unknown_filter_value(capsys):
    code, _, err = _run(capsys, "search", "--stage", "production")
    assert code == 2 and "stage: expected one of discovery, development, deployment, monitoring" in err


@pytest.mark.parametrize("key", ["hashed feature", "Hashed_Feature", "1"])
def test_show_by_name_or_number(capsys, key):
    code, out, _ = _run(capsys, "show", key)
    assert code == 0
    assert out.startswith("1. Hashed Feature  (chapter 2: Data Representation)")
    for part in ("Problem", "Solution", "Trade-offs", "collide", "-> Hashed Feature captures relationships",
                 "<- Repeatable Splitting splits by the same hash as a Hashed Feature",
                 "life-cycle stages: development", "mlpatterns.data.hashed_feature:HashedFeature",
                 "spec: features.categorical", "docs: docs/patterns/hashed_feature.md"):
        assert part in out, part


def test_show_as_json_and_a_python_only_spec(capsys):
    data = json.loads(_run(capsys, "show", "16", "--json")[1])
    assert data["name"] == "Stateless Serving Function" and data["spec"] is None
    assert {"pattern": "Transform", "relation": "adds its fitted artifacts to the"} in data["related_from"]
    out = _run(capsys, "show", "stateless serving function")[1]
    assert "(no spec field" in out and "commands: mlpatterns serve" in out


def test_show_an_unknown_pattern(capsys):
    code, out, err = _run(capsys, "show", "hashd featur")
    assert code == 2 and out == ""
    assert "no pattern named 'hashd featur'; did you mean 'Hashed Feature'" in err


def test_graph_writes_a_png(capsys, tmp_path):
    image = pytest.importorskip("PIL.Image")
    output = tmp_path / "around.png"
    code, out, _ = _run(capsys, "graph", "--around", "keyed predictions", "--depth", "1", "--output", str(output))
    assert code == 0 and out.strip() == f"wrote {output} (3 patterns, 2 links)"
    with image.open(output) as opened:
        assert opened.format == "PNG"
        assert len(opened.convert("L").getcolors(maxcolors=1 << 16) or ()) > 10  # not blank
    before = output.read_bytes()
    code, _, err = _run(capsys, "graph", "--output", str(output))  # an existing file is not replaced silently
    assert code == 2 and "exists; pass --force" in err and output.read_bytes() == before
    code, out, _ = _run(capsys, "graph", "--output", str(output), "--force")
    assert code == 0 and out.strip() == f"wrote {output} (30 patterns, 44 links)"


def test_json_before_or_after_the_subcommand(capsys):
    first = json.loads(_run(capsys, "--json", "search", "hashing")[1])
    assert first == json.loads(_run(capsys, "search", "hashing", "--json")[1]) and first[0]["number"] == 1


def test_graph_refuses_bad_outputs(capsys, tmp_path):
    code, _, err = _run(capsys, "graph", "--output", str(tmp_path))
    assert code == 2 and "is a directory" in err
    code, _, err = _run(capsys, "graph", "--output", str(tmp_path / "graph.pdf"))
    assert code == 2 and "expected a file name ending in .png or .svg" in err
    code, _, err = _run(capsys, "graph", "--depth", "2", "--output", str(tmp_path / "g.png"))
    assert code == 2 and "--depth: only with --around" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not REGISTERED, reason="the lead registers add_patterns_command in mlpatterns.cli")
def test_registered_in_mlpatterns(capsys):
    from mlpatterns.cli import build_parser

    assert "patterns" in build_parser()._subparsers._group_actions[0].choices
