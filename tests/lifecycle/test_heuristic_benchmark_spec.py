"""The spec's ``baseline:`` section (Heuristic Benchmark, 28): its checks, and the benchmark of a run.

The run is ``mlpatterns run`` on a 5 % sample of the 2013 New York flights (whole days), split by time so
that the previous period's rule applies.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpatterns.cli import main
from mlpatterns.lifecycle.evaluation import compare_with_benchmark, heuristic_benchmark
from mlpatterns.spec import SpecError, parse_spec
from mlpatterns.spec.heuristic_benchmark import parse_baseline

SPEC = {
    "name": "flights-benchmark",
    "data": {"dataset": "flights", "sample_fraction": 0.05},
    "target": {"column": "arr_delay", "positive_when": {"greater_than": 30}},
    "keys": ["flight"],
    "split": {"by": "time", "column": "date"},
    "features": {"numeric": ["distance", "sched_dep_time"], "categorical": ["carrier", "origin"]},
    "models": {"linear": {"type": "linear"}},
    "baseline": {"levels": [["origin", "dep_hour"], ["origin"]], "period": "week", "units": "late flights",
                 "margin": 0.02},
}


@pytest.mark.parametrize(("baseline", "message"), [
    ({"margin": "x"}, r"baseline.margin: expected a number >= 0 \(in the primary metric\) or a share of the "
                      r"heuristic's value such as '1%', got 'x'"),
    ({"margin": -0.1}, "baseline.margin: expected a number >= 0"),
    ({"margin": "a%"}, "baseline.margin: expected a number >= 0 or a share"),
    ({"heuristics": ["global", "yesterday"]}, r"baseline.heuristics: unknown heuristic\(s\) \['yesterday'\]"),
    ({"heuristics": ["global", "global"]}, "baseline.heuristics: a heuristic is named twice"),
    ({"heuristics": []}, "baseline.heuristics: expected a list of some of"),
    ({"period": "fortnight"}, "baseline.period: expected one of \\['day', 'week', 'month'\\] or a positive span"),
    ({"period": 0}, "baseline.period: expected one of"),
    ({"units": ""}, "baseline.units: expected a word or two"),
    ({"metric": "auc"}, "baseline.metric: expected one of"),
    ({"decision": {"alert_rate": 1.5}}, "baseline.decision.alert_rate: expected a share of rows between 0 and 1"),
    ({"decision": {"alert_rate": 0.1, "threshold": 0.3}}, "baseline.decision: expected one of 'alert_rate'"),
    ({"decision": {"rate": 0.1}}, r"baseline.decision: unknown field\(s\) \['rate'\]"),
    ({"threshold_columns": []}, "baseline.threshold_columns: expected at least one column"),
    ({"min_count": 0}, "baseline.min_count: expected a whole number of at least 1"),
    ({"levels": "origin"}, "baseline.levels: expected a list of column lists"),
    ({"lookup": True}, r"baseline: unknown field\(s\) \['lookup'\]"),
])
def test_every_mistake_names_its_field(baseline, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**SPEC, "baseline": baseline})


def test_fields_are_checked_against_the_task_and_the_split():
    hashed = {"key": "date"}
    with pytest.raises(SpecError, match=r"baseline.heuristics: 'previous_period' needs a time split"):
        parse_baseline({"heuristics": ["previous_period"]}, task="classification", split=hashed)
    with pytest.raises(SpecError, match="baseline.period: the previous period's heuristic needs a time split"):
        parse_baseline({"period": "day"}, task="classification", split=hashed)
    with pytest.raises(SpecError, match="baseline.metric: a regression target is scored by one of"):
        parse_baseline({"metric": "roc_auc"}, task="regression", split=hashed)
    with pytest.raises(SpecError, match="baseline.decision: an alert rate applies to a binary classification"):
        parse_baseline({"decision": {"alert_rate": 0.1}}, task="regression", split=hashed)
    with pytest.raises(SpecError, match="baseline.heuristics: the single threshold applies to a classification"):
        parse_baseline({"heuristics": ["threshold"]}, task="multiclass", split=hashed)
    parsed = parse_baseline({"margin": "2%", "decision": {"alert_rate": 0.1}, "period": 3}, task="classification",
                            split={"by": "time", "column": "date"})
    assert parsed == {"margin": "2%", "decision": {"alert_rate": 0.1}, "period": 3}


def _flights_parts(spec) -> tuple[dict, dict]:
    from mlpatterns.datasets import load_flights

    flights = load_flights().dropna(subset=["arr_delay"])
    flights = flights[flights["month"] <= 4].reset_index(drop=True)
    when = pd.to_datetime(flights["date"])
    split = np.where(when < "2013-03-15", "train", np.where(when < "2013-04-01", "valid", "test"))
    parts = {s: flights[split == s].reset_index(drop=True) for s in ("train", "valid", "test")}
    data = {s: (None, (parts[s]["arr_delay"] > 30).to_numpy(dtype=np.float64)) for s in parts}
    return parts, data


def test_the_benchmark_of_a_time_split_spec_on_flights():
    spec = parse_spec(SPEC)
    parts, data = _flights_parts(spec)
    metrics, report = heuristic_benchmark(spec, parts, data, ["distance", "sched_dep_time", "carrier", "origin"])
    assert set(report["heuristics"]) == {"global", "lookup", "previous_period", "threshold"}
    assert report["margin"] == 0.02 and report["units"] == "late flights" and report["metric"] == "roc_auc"
    previous = report["heuristics"]["previous_period"]["description"]
    # the test split starts on 2013-04-01: its previous week is the end of the valid split
    assert "for the test split: 2013-03-25 to 2013-03-31" in previous and "origin x dep_hour" in previous
    assert "sched_dep_time" in report["heuristics"]["threshold"]["description"] \
        or "distance" in report["heuristics"]["threshold"]["description"]
    json.dumps(report)  # the step writes it as JSON
    assert metrics.keys() == {"roc_auc", "pr_auc", "log_loss", "brier", "positive_rate"}
    y_test = data["test"][1]
    heuristic_scores = report["heuristics"][report["chosen"]]
    # the heuristic itself as "the model": no gain, so it does not beat the margin
    same = compare_with_benchmark(spec, heuristic_scores["test"], report, name="copy")
    assert same["gain"] == 0 and not same["beats_margin"] and "does NOT beat" in same["message"]
    perfect = compare_with_benchmark(spec, {"roc_auc": 1.0}, report, test_output=y_test, y_test=y_test, name="oracle")
    assert perfect["model_share_caught"] == pytest.approx(min(1.0, report["decision"]["alert_rate"] / y_test.mean()))
    assert perfect["beats_margin"] and "oracle: flagging the" in perfect["message"]


def test_a_spec_that_asks_for_what_does_not_apply_is_refused_by_name():
    with pytest.raises(SpecError, match="baseline.heuristics: 'previous_period' needs a time split"):
        parse_spec({**SPEC, "split": {"key": "date"}, "baseline": {"heuristics": ["global", "previous_period"]}})
    spec = parse_spec({**SPEC, "baseline": {"threshold_columns": ["carrier"]}})
    parts, data = _flights_parts(spec)
    with pytest.raises(SpecError, match="baseline.threshold_columns.0.: expected a numeric column"):
        spec.check_columns(parts["train"].dtypes.to_dict())
    with pytest.raises(SpecError, match="baseline.threshold_columns: expected numeric columns, got 'carrier'"):
        heuristic_benchmark(spec, parts, data, ["distance"])


def test_mlpatterns_run_publishes_the_heuristics_tried(tmp_path):
    spec = copy.deepcopy(SPEC)
    spec["output"] = {"dir": str(tmp_path / "run")}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert main(["run", str(path)]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    section = report["heuristic_benchmark"]
    assert set(section["heuristics"]) == {"global", "lookup", "previous_period", "threshold"}
    chosen = section["chosen"]
    valid = {n: h["valid"]["roc_auc"] for n, h in section["heuristics"].items()}
    assert valid[chosen] == max(valid.values())
    assert report["metrics"]["heuristic_benchmark"]["roc_auc"] == section["heuristics"][chosen]["test"]["roc_auc"]
    linear = section["models"]["linear"]  # compare_with_benchmark, per model
    assert linear["heuristic"] == section["heuristics"][chosen]["test"]["roc_auc"]
    assert linear["model"] == report["metrics"]["linear"]["roc_auc"]
    assert linear["beats_margin"] == (linear["gain"] > 0.02)
    assert linear["message"].startswith("linear: flagging the") and "of late flights" in linear["message"]
    assert 0 <= linear["model_share_caught"] <= 1
    # drawn: the rules and the model side by side, and the share caught (a binary target): two panels
    plot = Path(section["plots"]["heuristic_benchmark"])
    assert plot == tmp_path / "run" / "plots" / "heuristic_benchmark.png"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and _png_size(plot)[0] > _png_size(plot)[1]


def _png_size(path):
    import struct

    return struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk: width, height
