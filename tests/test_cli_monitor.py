"""``mlpatterns monitor`` (Continued Model Evaluation, 18) driven as a user would, on real flights.

A linear model trained on LaGuardia's first ten days of January 2013 serves the flights of
February 1-7; its predictions go into a Parquet prediction log as ``mlpatterns predict --log``
writes them, and the truth (whether each flight arrived over 15 minutes late) comes in a CSV.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpatterns.cli import main
from mlpatterns.datasets import load_flights
from mlpatterns.lifecycle import run_spec
from mlpatterns.reproducibility.model_versioning import open_registry
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
from mlpatterns.serving.keyed_predictions import bundle_identity
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec

INPUTS = ["carrier", "dest", "dep_delay", "distance", "dep_hour"]


def _write_spec(folder, csv, monitoring, name="delays.yaml", **more):
    spec = {"name": "delays", "data": {"path": str(csv)},
            "target": {"column": "arr_delay", "positive_when": {"greater_than": 15}}, "keys": ["row_id"],
            "split": {"by": "time", "column": "time_hour", "cutoffs": {"valid": "2013-01-08", "test": "2013-01-10"}},
            "features": {"numeric": ["dep_delay", "distance", "dep_hour"], "categorical": ["carrier", "dest"]},
            "models": {"linear": {"type": "linear"}}, "output": {"dir": str(folder / "runs")},
            "monitoring": {"log": str(folder / "log"), "min_labelled": 50, **monitoring}, **more}
    path = folder / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The spec, its bundle, a log of a week of served predictions and the truth CSV."""
    folder = tmp_path_factory.mktemp("monitor")
    frame = load_flights()
    frame = frame[(frame["origin"] == "LGA") & (frame["month"] <= 2) & (frame["day"] <= 12)]
    frame = frame[["time_hour", *INPUTS, "arr_delay"]].reset_index(drop=True)
    frame.insert(0, "row_id", np.arange(len(frame)))
    train = folder / "flights.csv"  # trains on January 1-7 (the time split's cut-offs), February tests it
    frame.to_csv(train, index=False)
    spec_path = _write_spec(folder, train, {"metrics": {"roc_auc": {"min": 0.5}}})
    bundle = run_spec(load_spec(spec_path), log=lambda *a, **k: None).bundles["linear"]
    times = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_convert(None)
    week = frame[(times >= "2013-02-01") & (times < "2013-02-08")]
    serving = ServingFunction.load(bundle)
    scored = serving.predict(week[["row_id", *INPUTS]])
    version = bundle_identity(serving)[1]  # as predict --log and serve --log log a bundle folder
    with open_prediction_log(folder / "log") as log:
        log.append([
            (t.to_pydatetime(), t.to_pydatetime(), "delays", version, str(row_id),
             json.dumps(dict(zip(["row_id", *INPUTS], [None if pd.isna(v) else v for v in values], strict=True)),
                        default=lambda x: x.item()),
             json.dumps({"probability": float(p), "prediction": int(d)}), float(p), str(int(d)), 1.0, "batch")
            for t, row_id, values, p, d in zip(times[week.index], week["row_id"],
                                               week[["row_id", *INPUTS]].itertuples(index=False),
                                               scored["probability"], scored["prediction"], strict=True)])
    truth = folder / "truth.csv"
    late = (week["arr_delay"] > 15).astype(object).where(week["arr_delay"].notna(), None)
    week.assign(late=late)[["row_id", "arr_delay", "late"]].to_csv(truth, index=False)
    return {"folder": folder, "spec": spec_path, "bundle": bundle, "truth": truth, "csv": train,
            "log": str(folder / "log"), "week": week, "version": version}


@pytest.fixture(scope="module")
def labelled(served):
    assert main(["monitor", "label", str(served["truth"]), "--spec", str(served["spec"])]) == 0
    return served


def test_label_twice_changes_nothing(labelled, capsys):
    assert main(["monitor", "label", str(labelled["truth"]), "--spec", str(labelled["spec"])]) == 0
    out = capsys.readouterr().out
    assert "nothing new" in out and "unchanged" in out
    # the same truth as a label column is the same labels
    assert main(["monitor", "label", str(labelled["truth"]), "--log", labelled["log"], "--key", "row_id",
                 "--label", "late"]) == 0
    assert "nothing new" in capsys.readouterr().out


def test_label_errors_exit_2(labelled, capsys):
    code = main(["monitor", "label", str(labelled["truth"]), "--log", labelled["log"], "--key", "flight",
                 "--label", "late"])
    assert code == 2 and "no column(s) ['flight']; the file has ['row_id', 'arr_delay', 'late']" in \
        capsys.readouterr().err
    assert main(["monitor", "label", str(labelled["truth"]), "--log", labelled["log"], "--key", "row_id"]) == 2
    assert "--label COLUMN" in capsys.readouterr().err


def test_evaluate_prints_each_window(labelled, capsys):
    assert main(["monitor", "evaluate", "--spec", str(labelled["spec"]), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 7 and {r["version"] for r in records} == {labelled["version"]}
    assert all(0.6 < r["roc_auc"] < 1 and r["n_labelled"] > 50 for r in records)
    assert main(["monitor", "evaluate", "--log", labelled["log"], "--window", "7d"]) == 0
    out = capsys.readouterr().out
    assert "roc_auc" in out and "delays" in out


def test_drift_against_the_bundle(labelled, capsys):
    assert main(["monitor", "drift", "--log", labelled["log"], "--bundle", str(labelled["bundle"]), "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    columns = {r["column"] for r in records}
    assert {"dep_delay", "carrier", "prediction"} <= columns and "row_id" not in columns  # keys are new by design
    assert main(["monitor", "drift", "--log", labelled["log"], "--bundle", str(labelled["bundle"])]) == 0
    assert "psi per column and window" in capsys.readouterr().out


class _Receiver(BaseHTTPRequestHandler):
    bodies: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        type(self).bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_check_exit_status_alerts_and_webhook(labelled, capsys):
    folder = labelled["folder"]
    assert main(["monitor", "check", str(labelled["spec"]), "--at", "2013-02-08"]) == 0
    assert "0 alert(s) in the newest window, ending 2013-02-08" in capsys.readouterr().out
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        strict = _write_spec(folder, labelled["csv"], {
            "metrics": {"roc_auc": {"min": 0.99, "on": "estimate"}}, "drift": {"psi": 0.0},
            "webhook": f"http://127.0.0.1:{server.server_address[1]}/alerts"}, name="strict.yaml")
        code = main(["monitor", "check", str(strict), "--at", "2013-02-07T12:00", "--bundle", str(labelled["bundle"])])
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert code == 1 and "ALERT metric: roc_auc" in out and "in window 2013-02-06 00:00:00/2013-02-07 00:00:00" in out
    assert "ALERT drift: psi of" in out and "webhook: " in out and "drifted most: " in out
    body, = _Receiver.bodies
    assert body["model"] == "delays" and body["count"] == len(body["alerts"]) > 1
    assert main(["monitor", "check", str(strict), "--at", "2013-02-07T12:00", "--json",
                 "--bundle", str(labelled["bundle"])]) == 1  # the webhook fails now: reported, not raised
    captured = capsys.readouterr()
    assert json.loads(captured.out)["alerts"] and "webhook http://127.0.0.1" in captured.err


def test_check_alerts_on_a_window_without_predictions(labelled, capsys):
    """A server that stopped (or logs elsewhere) is an alert, not a quiet pass: the newest window has nothing."""
    assert main(["monitor", "check", str(labelled["spec"]), "--at", "2013-02-20", "--json"]) == 1
    alert, = json.loads(capsys.readouterr().out)["alerts"]
    assert alert["kind"] == "no_predictions" and alert["window"] == "2013-02-19 00:00:00/2013-02-20 00:00:00"


def test_a_model_the_log_does_not_hold_is_named_with_what_it_holds(labelled, tmp_path, capsys):
    assert main(["monitor", "evaluate", "--spec", str(labelled["spec"]), "--model", "delay"]) == 2
    assert "model 'delay': the log holds no prediction of it (nor of delay/...); it holds 'delays'" \
        in capsys.readouterr().err
    other = _write_spec(tmp_path, labelled["csv"], {"model": "elsewhere"}, name="other.yaml")
    other_spec = yaml.safe_load(other.read_text())
    other_spec["monitoring"]["log"] = labelled["log"]
    other.write_text(yaml.safe_dump(other_spec))
    assert main(["monitor", "check", str(other), "--at", "2013-02-08"]) == 2
    assert "model 'elsewhere'" in capsys.readouterr().err


def test_a_spec_watches_its_bundles_served_from_their_folders(tmp_path, capsys):
    """``mlpatterns serve NAME=run/bundles/gbm`` logs the bundle's name, SPEC/MODEL: the spec's name covers it;
    without a spec, the task comes from the log (a regression here)."""
    with open_prediction_log(tmp_path / "log") as log:
        at = pd.Timestamp("2013-02-01 10:00").to_pydatetime()
        log.append([(at, at, "prices/gbm", "abc123", str(i), json.dumps({"carat": 0.5 + i / 100}),
                     json.dumps({"prediction": 1000.0 + i}), 1000.0 + i, None, 1.0, "http") for i in range(40)])
        log.add_labels([(str(i), str(1000.0 + 2 * i)) for i in range(40)], source="truth")
    assert main(["monitor", "evaluate", "--log", str(tmp_path / "log"), "--model", "prices", "--json"]) == 0
    window, = json.loads(capsys.readouterr().out)
    assert window["model"] == "prices/gbm" and window["n_labelled"] == 40
    assert window["mae"] == pytest.approx(np.mean(np.arange(40)))  # regression, told by the log


def test_check_usage_errors_exit_2(served, tmp_path, capsys):
    bare = {k: v for k, v in yaml.safe_load(served["spec"].read_text()).items() if k != "monitoring"}
    path = tmp_path / "bare.yaml"
    path.write_text(yaml.safe_dump(bare))
    assert main(["monitor", "check", str(path)]) == 2
    assert "the spec has no 'monitoring:' section" in capsys.readouterr().err
    assert main(["monitor", "check", str(served["spec"]), "--at", "yesterday-ish"]) == 2
    assert "--at: expected a date or time" in capsys.readouterr().err


def test_report_writes_plots_and_an_index(labelled, tmp_path, capsys):
    pytest.importorskip("mlpatterns.serving.continued_evaluation.monitor_plots")
    out = tmp_path / "report"
    assert main(["monitor", "report", "--spec", str(labelled["spec"]), "--out", str(out),
                 "--bundle", str(labelled["bundle"])]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["plots"] and all((out / name).is_file() and name.endswith(".png") for name in index["plots"])
    assert all(f"]({name})" in (out / "index.md").read_text() for name in index["plots"])
    assert sorted(p.name for p in out.iterdir()) == sorted([*index["plots"], "index.json", "index.md"])


def test_check_retrains_on_an_alert_and_retrain_on_demand(labelled, tmp_path, capsys):
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    with open_registry(registry) as opened:
        opened.register(labelled["bundle"], "delays", alias="champion")
    spec = _write_spec(labelled["folder"], labelled["csv"], {
        "metrics": {"roc_auc": {"min": 0.99, "on": "estimate"}},
        "retrain": {"on_alert": True, "window": "7d", "holdout": "3d", "cooldown": "2d"}},
        name="retrain.yaml", register={"registry": registry, "gate": []})
    assert main(["monitor", "check", str(spec), "--at", "2013-02-08"]) == 1
    out = capsys.readouterr().out
    assert "ALERT metric: roc_auc" in out and "retrained 'delays' as version 2 (challenger): roc_auc" in out
    with open_registry(registry) as opened:
        version = opened.get_version("delays", 2)
        assert version.tags["retrain_trigger"].startswith("alert: roc_auc")
        assert opened.get_model("delays").aliases["champion"] == (2 if version.tags["promoted"] == "true" else 1)
    assert main(["monitor", "retrain", str(spec), "--at", "2013-02-09"]) == 0
    assert "retraining skipped: the last retraining saw data until 2013-02-08" in capsys.readouterr().out
    assert main(["monitor", "retrain", str(spec), "--at", "2013-02-12", "--output", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert "as version 3 (challenger)" in out and "no labelled predictions" in out  # nothing logged after Feb 7
    assert (tmp_path / "again" / "data.csv").is_file()


def test_label_with_a_spec_whose_run_chose_the_positive_label(labelled, tmp_path, capsys):
    raw = yaml.safe_load(labelled["spec"].read_text())
    raw.update(target={"column": "late", "task": "classification"}, output={"dir": str(tmp_path / "runs")})
    raw["monitoring"]["log"] = str(tmp_path / "log")
    path = tmp_path / "late.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["monitor", "label", str(labelled["truth"]), "--spec", str(path)]) == 2
    assert "target.positive_label: the spec does not say which label is positive" in capsys.readouterr().err
    manifest = tmp_path / "runs" / "bundles" / "linear" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"target": {"column": "late", "positive_label": "true"}}))
    assert main(["monitor", "label", str(labelled["truth"]), "--spec", str(path)]) == 0
    with open_prediction_log(tmp_path / "log") as log:
        labels = log.labels().to_pandas()
    week = labelled["week"].dropna(subset=["arr_delay"])
    assert dict(zip(labels["key"], labels["label"], strict=True)) == {
        str(k): "1" if late else "0" for k, late in zip(week["row_id"], week["arr_delay"] > 15, strict=True)}


def test_a_silent_window_alerts_but_does_not_retrain(labelled, tmp_path, capsys):
    """retrain.on_alert retrains on a metric or drift alert, never because nothing was served (an empty log here)."""
    spec = _write_spec(tmp_path, labelled["csv"], {"retrain": {"on_alert": True, "window": "7d", "holdout": "1d"}},
                       name="silent.yaml")
    assert main(["monitor", "check", str(spec), "--at", "2013-02-08"]) == 1
    out = capsys.readouterr().out
    assert "ALERT no_predictions" in out and "retrain" not in out.lower().replace("--log", "")


def test_slices_add_their_metrics_beside_the_whole_windows(labelled, tmp_path, capsys):
    """With slices, the whole window is still checked (its metric, its label coverage), and each slice as well."""
    spec = _write_spec(tmp_path, labelled["csv"], {"metrics": {"roc_auc": {"min": 0.99, "on": "estimate"}},
                                                   "slices": ["carrier"], "min_labelled": 20}, name="sliced.yaml")
    sliced = yaml.safe_load(spec.read_text())
    sliced["monitoring"]["log"] = labelled["log"]
    spec.write_text(yaml.safe_dump(sliced))
    assert main(["monitor", "check", str(spec), "--at", "2013-02-07T12:00", "--json"]) == 1
    what = [a["what"] for a in json.loads(capsys.readouterr().out)["alerts"]]
    assert "roc_auc" in what and any(w.startswith("roc_auc [carrier=") for w in what)


def test_label_a_yes_no_column_with_positive(labelled, tmp_path, capsys):
    truth = tmp_path / "yes_no.csv"
    week = labelled["week"]
    week.assign(late=np.where(week["arr_delay"] > 15, "Yes", "No"))[["row_id", "late"]].to_csv(truth, index=False)
    log = str(tmp_path / "log")
    assert main(["monitor", "label", str(truth), "--log", log, "--key", "row_id", "--label", "late",
                 "--positive", "Yes"]) == 0
    with open_prediction_log(log) as opened:
        labels = set(opened.labels()["label"].to_pylist())
    assert labels == {"1", "0"}
    assert main(["monitor", "label", str(truth), "--log", log, "--spec", str(labelled["spec"]), "--positive", "x"]) == 2
