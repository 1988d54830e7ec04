"""examples/continued_evaluation_flights.py: the July-December replay, cut to its first days."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "continued_evaluation_flights.py"


@pytest.mark.slow
def test_the_replay_logs_labels_checks_and_reports(tmp_path):
    """Ten days of July through predict --log, label and check: every strategy's log holds what it served."""
    done = subprocess.run([sys.executable, str(EXAMPLE), "--out", str(tmp_path), "--days", "10",
                           "--strategies", "never,monitor", "--figure", str(tmp_path / "plot.png")],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert 0.69 < results["limits"]["roc_auc"] < results["limits"]["test_roc_auc"]  # fixed on January-June
    assert set(results["roc_auc"]) == {"never", "monitor"}
    assert 0.6 < results["roc_auc"]["never"]["7"] < 0.8
    assert "| July |" in done.stdout and (tmp_path / "plot.png").stat().st_size > 10_000
    from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

    with open_prediction_log(tmp_path / "monitor" / "log") as log:
        predictions, labels = log.predictions(), log.labels()
    assert predictions.num_rows > 8_000 and set(predictions["source"].to_pylist()) == {"batch"}
    assert 0.8 * predictions.num_rows < labels.num_rows < predictions.num_rows  # the last day's truth not yet in
