"""The retraining trigger end to end on real flights (Continued Model Evaluation, 18): retrain on the newest
window, register a challenger, compare it with the champion on logged, labelled predictions, promote only a
winner, with both numbers in the registry's audit trail."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpatterns.datasets import load_flights
from mlpatterns.lifecycle import run_spec
from mlpatterns.lifecycle.retraining import labelled_predictions, retrain
from mlpatterns.reproducibility.model_versioning import open_registry
from mlpatterns.serving.continued_evaluation.ground_truth import add_ground_truth
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import load_spec

INPUTS = ["carrier", "dest", "dep_delay", "distance", "dep_hour"]


@pytest.fixture(scope="module")
def flights(tmp_path_factory):
    """LaGuardia's flights of January and February 2013, with a row_id key, as a CSV."""
    folder = tmp_path_factory.mktemp("retraining")
    frame = load_flights()
    frame = frame[(frame["month"] <= 2) & (frame["origin"] == "LGA")]
    frame = frame[["time_hour", *INPUTS, "arr_delay"]].reset_index(drop=True)
    frame.insert(0, "row_id", np.arange(len(frame)))
    csv = folder / "flights.csv"
    frame.to_csv(csv, index=False)
    return folder, frame, csv


def _spec(folder, csv, **retrain_options):
    spec = {"name": "delays", "data": {"path": str(csv)},
            "target": {"column": "arr_delay", "positive_when": {"greater_than": 15}}, "keys": ["row_id"],
            "split": {"by": "time", "column": "time_hour", "cutoffs": {"valid": "2013-01-11", "test": "2013-01-14"}},
            "features": {"numeric": ["dep_delay", "distance", "dep_hour"], "categorical": ["carrier", "dest"]},
            "models": {"linear": {"type": "linear"}}, "output": {"dir": str(folder / "runs")},
            "register": {"registry": f"sqlite:///{folder / 'registry.db'}", "gate": []},
            "monitoring": {"log": str(folder / "log"), "window": "1d",
                           "retrain": {"on_alert": True, "window": "14d", "holdout": "7d", **retrain_options}}}
    path = folder / "delays.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(path)


def _log_served_predictions(bundle, frame, log, since, until):
    """What `mlpatterns predict` with logging would write: the champion's predictions of the rows in [since, until)."""
    times = pd.to_datetime(frame["time_hour"], utc=True).dt.tz_convert(None)
    rows = frame[(times >= since) & (times < until)]
    scored = ServingFunction.load(bundle).predict(rows[["row_id", *INPUTS]])
    served = pd.Timestamp("2013-03-02").to_pydatetime()
    log.append([
        (served, time.to_pydatetime(), "delays", "1", str(row_id),
         json.dumps({c: (None if pd.isna(v) else v) for c, v in zip(["row_id", *INPUTS], values, strict=True)},
                    default=lambda x: x.item()),
         json.dumps({"probability": float(p), "prediction": int(d)}), float(p), str(int(d)), 1.0, "batch")
        for time, row_id, values, p, d in zip(times[rows.index], rows["row_id"],
                                              rows[["row_id", *INPUTS]].itertuples(index=False),
                                              scored["probability"], scored["prediction"], strict=True)])
    return rows


def test_retrain_registers_a_challenger_and_promotes_only_a_winner(flights):
    folder, frame, csv = flights
    spec = _spec(folder, csv, cooldown="3d")
    first = run_spec(spec, log=lambda *a, **k: None)
    assert first.registered  # version 1, the champion
    with open_prediction_log(folder / "log") as log:
        rows = _log_served_predictions(first.bundles["linear"], frame, log, pd.Timestamp("2013-02-15"),
                                       pd.Timestamp("2013-03-01"))
        truth = folder / "truth.csv"
        rows[["row_id", "arr_delay"]].to_csv(truth, index=False)
        ingested = add_ground_truth(log, truth, ["row_id"], target="arr_delay", rule={"greater_than": 15})
        assert ingested.labels == rows["arr_delay"].notna().sum() > 500
        inputs, labels = labelled_predictions(log, "delays", pd.Timestamp("2013-02-22"), pd.Timestamp("2013-03-01"))
    assert len(inputs) == len(labels) > 100 and set(inputs.columns) == {"row_id", *INPUTS}

    result = retrain(spec, end="2013-03-01", trigger="alert: roc_auc below 0.9", log=lambda *a, **k: None)
    assert result.ran and result.version == 2 and result.champion_version == 1 and result.metric == "roc_auc"
    assert result.rows == len(labels)
    assert 0.5 < result.challenger_value < 1 and 0.5 < result.champion_value < 1
    assert result.promoted == (result.challenger_value - result.champion_value > 0)
    assert result.period["train_from"] == "2013-02-08 00:00:00" and result.period["compare_from"] == "2013-02-22 00:00:00"
    trained_on = pd.read_csv(result.output_dir / "data.csv")  # the window's very lines of the CSV
    times = pd.to_datetime(trained_on["time_hour"], utc=True)
    assert times.min() >= pd.Timestamp("2013-02-08", tz="UTC") and times.max() < pd.Timestamp("2013-02-22", tz="UTC")
    with open_registry(spec.register["registry"]) as registry:
        model = registry.get_model("delays")
        assert model.aliases["challenger"] == 2 and model.aliases["champion"] == (2 if result.promoted else 1)
        tags = registry.get_version("delays", 2).tags
        assert float(tags["challenger_roc_auc"]) == pytest.approx(result.challenger_value, abs=1e-6)
        assert float(tags["champion_roc_auc"]) == pytest.approx(result.champion_value, abs=1e-6)
        assert tags["retrain_trigger"] == "alert: roc_auc below 0.9"
        audit = [e for e in registry.audit("delays") if e.action == "set_tags"]
        assert f"{result.challenger_value:.4f}" in audit[-1].message and f"{result.champion_value:.4f}" in audit[-1].message
    assert result.message().startswith("retrained 'delays' as version 2 (challenger): roc_auc")

    again = retrain(spec, end="2013-03-01", log=lambda *a, **k: None)  # the cooldown (data time) holds it back
    assert not again.ran and "cooldown 3d" in again.reason

    strict = _spec(folder, csv, promote_margin=0.5)  # no model beats another by 0.5 of ROC-AUC
    champion_before = model.aliases["champion"]
    third = retrain(strict, end="2013-02-28", log=lambda *a, **k: None)
    assert third.ran and third.version == 3 and not third.promoted and "by more than 0.5" in third.reason
    with open_registry(spec.register["registry"]) as registry:
        assert registry.get_model("delays").aliases == {"champion": champion_before, "challenger": 3}
        assert registry.get_version("delays", 3).tags["promoted"] == "false"


def test_labelled_predictions_match_the_bundles_of_a_spec_logged_as_name_slash_model(tmp_path):
    """A bundle scored from its folder is logged as SPEC/MODEL: the spec's name takes those rows, as the monitor
    watches them, and no other name that merely starts with the same letters (nor a LIKE wildcard)."""
    import datetime as dt

    start = dt.datetime(2013, 2, 22)

    def rows(model: str, keys: range) -> list[tuple]:
        return [(start, start + dt.timedelta(hours=i), model, "1", f"k{i}", json.dumps({"distance": i}),
                 json.dumps({"probability": 0.5}), 0.5, "1", 1.0, "batch") for i in keys]

    with open_prediction_log(tmp_path / "log") as log:
        log.append(rows("delays/linear", range(5)) + rows("delays", range(5, 8))
                   + rows("delays_x/linear", range(8, 10)) + rows("delaysX", range(10, 12)))
        log.add_labels([(f"k{i}", str(i % 2)) for i in range(12)], source="truth")
        inputs, labels = labelled_predictions(log, "delays", pd.Timestamp("2013-02-22"), pd.Timestamp("2013-03-01"))
        assert sorted(inputs["distance"]) == list(range(8)) and len(labels) == 8
        inputs, _ = labelled_predictions(log, "delays_", pd.Timestamp("2013-02-22"), pd.Timestamp("2013-03-01"))
        assert len(inputs) == 0  # '_' is no wildcard: 'delays/linear' and 'delaysX' are not 'delays_'
        inputs, _ = labelled_predictions(log, "delays/linear", pd.Timestamp("2013-02-22"), pd.Timestamp("2013-03-01"))
        assert sorted(inputs["distance"]) == list(range(5))
