"""End to end: `mlpatterns run` on real data, then `mlpatterns predict` with the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpatterns.cli import main
from mlpatterns.serving.bundle import manifest_digest
from mlpatterns.serving.stateless_serving_function import ServingFunction

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def small_spec(tmp_path: Path, name: str, **changes) -> Path:
    spec = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    spec["output"] = {"dir": str(tmp_path / "run")}
    for model in spec["models"].values():
        if model["type"] == "gradient_boosting":
            model["params"] = {"max_iter": 30}
        else:
            model["params"] = {"epochs": 1, "batch_size": 1024, "hidden": [16]}
    spec.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def flights_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("flights")
    spec = yaml.safe_load(small_spec(tmp_path, "flights").read_text())
    spec["data"]["sample_fraction"] = 0.15  # a repeatable 15 % of the days
    path = tmp_path / "flights.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    return tmp_path / "run"


def test_run_writes_bundles_report_and_test_rows(flights_run):
    report = json.loads((flights_run / "report.json").read_text())
    assert set(report["metrics"]) == {"heuristic_benchmark", "gradient_boosting", "wide_and_deep"}
    for name in ("gradient_boosting", "wide_and_deep"):
        assert (flights_run / "bundles" / name / "manifest.json").is_file()
        assert report["skew"][name]["features_identical"] == 1.0
        assert report["skew"][name]["max_score_difference"] < 1e-4
        assert 0.5 < report["metrics"][name]["roc_auc"] <= 1
    assert report["rows"]["train"] > report["rows"]["test"] > 0


def test_split_keeps_each_day_in_one_split(flights_run):
    test_days = set(pd.read_parquet(flights_run / "test.parquet")["date"].astype(str))
    bundle = ServingFunction.load(flights_run / "bundles" / "gradient_boosting")
    assert bundle.bundle.manifest["lineage"]["split"]["key"] == ["date"]
    assert 0 < len(test_days) < 40


def test_predict_passes_keys_through(flights_run, tmp_path):
    out = tmp_path / "predictions.parquet"
    assert main(["predict", str(flights_run / "bundles" / "gradient_boosting"),
                 str(flights_run / "test.parquet"), str(out), "--chunk-rows", "500"]) == 0
    test = pd.read_parquet(flights_run / "test.parquet")
    predictions = pd.read_parquet(out)
    keys = ["year", "month", "day", "carrier", "flight", "origin"]
    assert list(predictions.columns) == [*keys, "probability", "prediction"]
    pd.testing.assert_frame_equal(predictions[keys], test[keys], check_dtype=False)
    assert predictions["probability"].between(0, 1).all()


def test_predict_reports_bad_rows_and_scores_the_rest(flights_run, tmp_path):
    rows = pd.read_parquet(flights_run / "test.parquet").head(50).astype({"distance": object})
    rows.loc[[3, 17], "distance"] = ["far", "?"]
    source = tmp_path / "rows.csv"
    rows.to_csv(source, index=False)
    out = tmp_path / "out.csv"
    assert main(["predict", str(flights_run / "bundles" / "wide_and_deep"), str(source), str(out)]) == 1
    assert len(pd.read_csv(out)) == 48
    errors = pd.read_csv(tmp_path / "out.csv.errors.csv")
    assert errors["row"].tolist() == [3, 17]
    assert set(errors["column"]) == {"distance"}


def test_predict_names_a_missing_column(flights_run, tmp_path, capsys):
    rows = pd.read_parquet(flights_run / "test.parquet").head(5).drop(columns=["tailnum"])
    source = tmp_path / "rows.parquet"
    rows.to_parquet(source)
    assert main(["predict", str(flights_run / "bundles" / "gradient_boosting"), str(source),
                 str(tmp_path / "o.csv")]) == 2
    assert "missing column(s) ['tailnum']" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()  # nothing half-written is left behind


def test_predict_refuses_a_tampered_bundle(flights_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(flights_run / "bundles" / "gradient_boosting", copy)
    transform = json.loads((copy / "transform.json").read_text())
    transform["state"]["numeric"]["distance"]["mean"] += 1
    (copy / "transform.json").write_text(json.dumps(transform))
    assert main(["predict", str(copy), str(flights_run / "test.parquet"), str(tmp_path / "o.csv")]) == 2
    assert "transform.json: sha256 does not match" in capsys.readouterr().err


def test_served_predictions_equal_in_memory_ones(flights_run):
    serving = ServingFunction.load(flights_run / "bundles" / "gradient_boosting")
    rows = pd.read_parquet(flights_run / "test.parquet").head(200)
    once = serving.predict(rows)
    shuffled = serving.predict(rows.sample(frac=1, random_state=1))
    merged = once.merge(shuffled, on=serving.key_columns, suffixes=("", "_shuffled"))
    assert len(merged) == len(once)
    assert np.allclose(merged["probability"], merged["probability_shuffled"])


def test_served_decisions_use_the_threshold_moved_on_valid(flights_run):
    """The demo spec moves each model's threshold to its best validation F1 (Rebalancing, 10)."""
    report = json.loads((flights_run / "report.json").read_text())
    serving = ServingFunction.load(flights_run / "bundles" / "gradient_boosting")
    assert 0 < serving.threshold < 0.5  # about 15 % of flights are late: the cut moves down
    assert report["metrics"]["gradient_boosting"]["threshold"] == serving.threshold
    predictions = serving.predict(pd.read_parquet(flights_run / "test.parquet"))
    np.testing.assert_array_equal(predictions["prediction"], predictions["probability"] >= serving.threshold)


def test_bad_spec_exits_with_the_field(tmp_path, capsys):
    path = small_spec(tmp_path, "flights")
    spec = yaml.safe_load(path.read_text())
    spec["features"]["categorical"]["tailnumber"] = 16
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 2
    assert "features.categorical.tailnumber: unknown column 'tailnumber'" in capsys.readouterr().err


def test_natality_regression_runs_and_reads_booleans_as_text(tmp_path):
    assert main(["run", str(small_spec(tmp_path, "natality"))]) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    assert report["metrics"]["gradient_boosting"]["rmse"] < report["metrics"]["heuristic_benchmark"]["rmse"]
    rows = pd.read_parquet(run / "test.parquet").head(500)
    bundle = str(run / "bundles" / "gradient_boosting")
    assert main(["predict", bundle, str(run / "test.parquet"), str(tmp_path / "a.parquet")]) == 0
    text_rows = rows.astype({"is_male": object})
    text_rows["is_male"] = rows["is_male"].map({True: "True", False: "false"})
    text_rows.loc[7, "is_male"] = "maybe"
    text_rows.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["predict", bundle, str(tmp_path / "rows.csv"), str(tmp_path / "b.parquet")]) == 1
    a = pd.read_parquet(tmp_path / "a.parquet").head(500).drop(index=7)
    b = pd.read_parquet(tmp_path / "b.parquet")
    assert np.allclose(a["prediction"].to_numpy(), b["prediction"].to_numpy(), rtol=0, atol=1e-6)
    errors = pd.read_csv(tmp_path / "b.parquet.errors.csv")
    assert errors[["row", "column"]].values.tolist() == [[7, "is_male"]]


def test_csv_and_parquet_input_give_identical_predictions(flights_run, tmp_path):
    bundle = str(flights_run / "bundles" / "gradient_boosting")
    rows = pd.read_parquet(flights_run / "test.parquet").head(3000)
    rows["flight"] = rows["flight"].astype("Int64")
    rows.loc[[5, 9], "flight"] = pd.NA  # integer keys with nulls must pass through unchanged
    rows.to_parquet(tmp_path / "rows.parquet")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert main(["predict", bundle, str(tmp_path / "rows.parquet"), str(tmp_path / "a.parquet")]) == 1
    assert main(["predict", bundle, str(tmp_path / "rows.csv"), str(tmp_path / "b.parquet")]) == 1
    a, b = pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    assert len(a) == len(b) == len(rows) - 2  # the two rows without their key are reported, not scored
    assert np.array_equal(a["probability"].to_numpy(), b["probability"].to_numpy())
    assert a["flight"].astype(str).tolist() == b["flight"].astype(str).tolist()
    assert "." not in "".join(a["flight"].astype(str)) + "".join(b["flight"].astype(str))


def test_invalid_dates_are_bad_rows_not_nulls(flights_run, tmp_path):
    rows = pd.read_parquet(flights_run / "test.parquet").head(20).astype({"date": object})
    rows.loc[4, "date"] = "2013-02-30"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    out = tmp_path / "out.csv"
    assert main(["predict", str(flights_run / "bundles" / "gradient_boosting"), str(tmp_path / "rows.csv"), str(out)]) == 1
    errors = pd.read_csv(tmp_path / "out.csv.errors.csv")
    assert errors[["row", "column"]].values.tolist() == [[4, "date"]]


def test_chunk_rows_must_be_positive(flights_run, tmp_path, capsys):
    assert main(["predict", str(flights_run / "bundles" / "gradient_boosting"),
                 str(flights_run / "test.parquet"), str(tmp_path / "o.csv"), "--chunk-rows", "0"]) == 2
    assert "chunk_rows must be a positive integer" in capsys.readouterr().err


def test_a_symlinked_file_is_refused(flights_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(flights_run / "bundles" / "gradient_boosting", copy)
    (tmp_path / "model.onnx").write_bytes((copy / "model.onnx").read_bytes())
    (copy / "model.onnx").unlink()
    (copy / "model.onnx").symlink_to(tmp_path / "model.onnx")
    assert main(["predict", str(copy), str(flights_run / "test.parquet"), str(tmp_path / "o.csv")]) == 2
    assert "is a symbolic link" in capsys.readouterr().err


def test_a_malformed_transform_with_a_valid_digest_is_refused(flights_run, tmp_path, capsys):
    import hashlib
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(flights_run / "bundles" / "gradient_boosting", copy)
    transform = json.loads((copy / "transform.json").read_text())
    transform["state"]["numeric"]["distance"]["std"] = 0
    data = json.dumps(transform).encode()
    (copy / "transform.json").write_bytes(data)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["transform.json"] = hashlib.sha256(data).hexdigest()
    manifest["manifest_sha256"] = manifest_digest(manifest)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["predict", str(copy), str(flights_run / "test.parquet"), str(tmp_path / "o.csv")]) == 2
    assert "the transform cannot be rebuilt" in capsys.readouterr().err


@pytest.mark.slow
def test_full_flights_demo_beats_the_heuristic(tmp_path):
    """`make demo` on all 336,776 flights: both models beat the route-and-hour late rate."""
    spec = yaml.safe_load((EXAMPLES / "flights.yaml").read_text())
    spec["output"] = {"dir": str(tmp_path / "run")}
    path = tmp_path / "flights.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    metrics = json.loads((tmp_path / "run" / "report.json").read_text())["metrics"]
    for model in ("gradient_boosting", "wide_and_deep"):
        assert metrics[model]["roc_auc"] > metrics["heuristic_benchmark"]["roc_auc"]
        assert metrics[model]["pr_auc"] > metrics["heuristic_benchmark"]["pr_auc"]


def test_reframed_regression_serves_a_distribution(tmp_path):
    """Reframing (5) from the spec: bucket classifier in the bundle, quantiles in the output."""
    path = small_spec(tmp_path, "natality")
    spec = yaml.safe_load(path.read_text())
    spec["target"]["reframe"] = {"buckets": 20, "quantiles": [0.1, 0.5, 0.9]}
    spec["models"] = {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 50}},
                      "net": {"type": "wide_and_deep", "params": {"epochs": 2, "batch_size": 512, "hidden": [16]}}}
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    run = tmp_path / "run"
    report = json.loads((run / "report.json").read_text())
    for model in ("gbm", "net"):  # the boosted classifier and the network's softmax head
        assert abs(report["metrics"][model]["coverage_q10_q90"] - 0.8) < 0.06
        assert report["metrics"][model]["rmse"] < report["metrics"]["heuristic_benchmark"]["rmse"]
    out = tmp_path / "p.parquet"
    assert main(["predict", str(run / "bundles" / "gbm"), str(run / "test.parquet"), str(out)]) == 0
    predictions = pd.read_parquet(out)
    assert list(predictions.columns) == ["row_id", "prediction", "q10", "q50", "q90"]
    assert (predictions["q10"] <= predictions["q50"]).all() and (predictions["q50"] <= predictions["q90"]).all()
    truth = pd.read_parquet(run / "test.parquet")["weight_pounds"].to_numpy()
    inside = np.mean((truth >= predictions["q10"]) & (truth <= predictions["q90"]))
    assert inside == pytest.approx(report["metrics"]["gbm"]["coverage_q10_q90"], abs=1e-9)
