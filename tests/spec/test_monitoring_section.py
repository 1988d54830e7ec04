"""The spec's ``monitoring:`` section (Continued Model Evaluation, 18): defaults, shorthands and clear errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mlpatterns.serving.continued_evaluation.alerts import DRIFT_LIMITS
from mlpatterns.spec import SpecError, parse_spec
from mlpatterns.spec.monitoring import (
    MONITOR_METRICS,
    TASK_METRICS,
    duration_seconds,
    parse_monitoring,
)

BASE = {"name": "flights", "data": {"dataset": "flights"},
        "target": {"column": "arr_delay", "positive_when": {"greater_than": 30}},
        "split": {"by": "time", "column": "time_hour"}, "features": {"numeric": ["distance"]},
        "models": {"linear": {"type": "linear"}}}


def _spec(monitoring):
    return parse_spec({**BASE, "monitoring": monitoring}, check_params=False)


def test_defaults_and_shorthand():
    spec = _spec({"log": "logs/predictions", "metrics": {"roc_auc": 0.7, "log_loss": 0.6},
                  "retrain": {"on_alert": True}})
    monitoring = spec.monitoring
    assert monitoring["model"] == "flights" and monitoring["window"] == monitoring["step"] == "1d"
    assert monitoring["metrics"] == {"roc_auc": {"min": 0.7, "on": "bound"}, "log_loss": {"max": 0.6, "on": "bound"}}
    assert monitoring["drift"] == {"columns": {}}
    assert monitoring["retrain"] == {"on_alert": True, "window": "30d", "holdout": "1d", "time_column": "time_hour",
                                     "promote_margin": 0.0}


def test_no_section_is_empty():
    assert parse_spec(BASE, check_params=False).monitoring == {}


def test_model_defaults_to_the_registered_name():
    spec = parse_spec({**BASE, "register": {"name": "delays"}, "monitoring": {"log": "x"}}, check_params=False)
    assert spec.monitoring["model"] == "delays"


def test_full_section():
    section = parse_monitoring({
        "log": "sqlite:///log.db", "window": "7d", "step": "1d", "min_labelled": 50, "confidence": 0.9,
        "min_label_coverage": 0.5, "metrics": {"roc_auc": {"min": 0.6, "max": 0.99, "on": "estimate"}},
        "drift": {"psi": 0.25, "ks": 0.2, "missing": 0.1, "columns": {"tailnum": {"psi": None}}},
        "features": ["distance"], "ignore": ["tailnum"], "slices": "origin",
        "webhook": "http://127.0.0.1:9/hook",
        "retrain": {"on_alert": True, "window": "30d", "time_column": "t", "cooldown": "7d", "promote_margin": 0.01,
                    "metric": "roc_auc"}}, "x")
    assert section["drift"] == {"psi": 0.25, "ks": 0.2, "missing": 0.1, "columns": {"tailnum": {"psi": None}}}
    assert section["slices"] == ["origin"] and section["retrain"]["cooldown"] == "7d"


@pytest.mark.parametrize(("section", "field"), [
    ({}, "monitoring: missing field 'log'"),
    ({"log": ""}, "monitoring.log"),
    ({"log": "x", "window": "1 day"}, "monitoring.window"),
    ({"log": "x", "step": "0d"}, "monitoring.step"),
    ({"log": "x", "min_labelled": 0}, "monitoring.min_labelled"),
    ({"log": "x", "confidence": 1}, "monitoring.confidence"),
    ({"log": "x", "metrics": {"roc_acu": 0.7}}, "monitoring.metrics: unknown field(s) ['roc_acu']"),
    ({"log": "x", "metrics": {"roc_auc": {"on": "bound"}}}, "monitoring.metrics.roc_auc"),
    ({"log": "x", "metrics": {"positive_rate": 0.2}}, "monitoring.metrics.positive_rate: positive_rate has no"),
    ({"log": "x", "metrics": {"roc_auc": {"min": 0.7, "on": "upper"}}}, "monitoring.metrics.roc_auc.on"),
    ({"log": "x", "metrics": {"roc_auc": {"min": 0.9, "max": 0.7}}}, "monitoring.metrics.roc_auc"),
    ({"log": "x", "drift": {"psi": -1}}, "monitoring.drift.psi"),
    ({"log": "x", "drift": {"chi2": 1}}, "monitoring.drift: unknown field(s) ['chi2']"),
    ({"log": "x", "drift": {"columns": {"a": {"ks": "big"}}}}, "monitoring.drift.columns.a.ks"),
    ({"log": "x", "features": ["a"], "ignore": ["a"]}, "monitoring.ignore"),
    ({"log": "x", "sample_rate": 0.1}, "monitoring"),  # the server samples (--log-sample-rate); rows carry their rate
    ({"log": "x", "webhook": "ftp://x"}, "monitoring.webhook"),
    ({"log": "x", "retrain": {"on_alert": "yes"}}, "monitoring.retrain.on_alert"),
    ({"log": "x", "retrain": {"window": "month"}}, "monitoring.retrain.window"),
    ({"log": "x", "retrain": {"holdout": "-1d"}}, "monitoring.retrain.holdout"),
    ({"log": "x", "retrain": {"promote_margin": -0.1}}, "monitoring.retrain.promote_margin"),
    ({"log": "x", "retrain": {"metric": "auc"}}, "monitoring.retrain.metric"),
    ({"log": "x", "surprise": 1}, "monitoring: unknown field(s) ['surprise']"),
])
def test_errors_name_the_field(section, field):
    with pytest.raises(SpecError, match=re.escape(field)):
        _spec(section)


def test_retraining_needs_a_time_column():
    raw = {**BASE, "split": {"key": "date"}, "monitoring": {"log": "x", "retrain": {"on_alert": True}}}
    with pytest.raises(SpecError, match="monitoring.retrain.time_column"):
        parse_spec(raw, check_params=False)


def test_durations():
    assert duration_seconds("30d") == 30 * 86400 and duration_seconds("90m") == 5400
    assert duration_seconds("2w") == 14 * 86400


def test_metric_names_match_the_metrics_module():
    from mlpatterns.metrics import METRIC_DIRECTIONS
    from mlpatterns.serving.continued_evaluation.evaluation_windows import (
        WINDOW_METRICS,
        metric_direction,
    )

    directed = {name: value for name, value in MONITOR_METRICS.items() if value is not None}
    assert {name: direction == "maximize" for name, direction in METRIC_DIRECTIONS.items()} == directed
    for name in {m for metrics in WINDOW_METRICS.values() for m in metrics}:  # every metric the monitor computes
        direction = metric_direction(name)
        assert MONITOR_METRICS[name] == (None if direction is None else direction == "maximize"), name


def test_drift_limits_are_the_alerts_names():
    limits = {name: 0.1 for name in DRIFT_LIMITS}
    section = parse_monitoring({"log": "x", "drift": {**limits, "columns": {"a": limits}}}, "x")
    assert section["drift"] == {**limits, "columns": {"a": limits}}
    with pytest.raises(SpecError, match=re.escape("monitoring.drift.columns.a: unknown field(s) ['js']")):
        parse_monitoring({"log": "x", "drift": {"columns": {"a": {"js": 0.1}}}}, "x")  # drift_windows' column name


def test_loading_a_spec_imports_no_pandas():
    code = ("import sys; from mlpatterns.spec import parse_spec; "
            f"parse_spec({dict(BASE, monitoring={'log': 'x', 'drift': {'psi': 0.2}})!r}, check_params=False); "
            "print(sorted(m for m in ('pandas', 'numpy', 'duckdb') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def test_task_metrics_are_what_the_evaluation_computes():
    from mlpatterns.serving.continued_evaluation.evaluation_windows import WINDOW_METRICS

    assert TASK_METRICS == WINDOW_METRICS


def test_a_metric_the_task_does_not_have_is_refused_at_load():
    with pytest.raises(SpecError, match=r"monitoring\.metrics\.roc_auc: the monitor computes \['rmse'"):
        parse_monitoring({"log": "x", "metrics": {"roc_auc": 0.7}}, "prices", task="regression")
    assert parse_monitoring({"log": "x", "metrics": {"rmse": 800}}, "prices", task="regression")["metrics"] == \
        {"rmse": {"max": 800, "on": "bound"}}
