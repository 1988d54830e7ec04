"""examples/distribution_strategy_flights.py: two torchrun ranks train what one process trains."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mlpatterns.training.distribution_strategy import torchrun_command

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "distribution_strategy_flights.py"


@pytest.mark.slow
def test_the_example_under_torchrun_matches_one_process(tmp_path):
    """10 steps of the flights network without dropout: 2 gloo ranks = 1 process within 1e-5 (about 25 s)."""
    args = ["--dropout", "0", "--epochs", "2", "--examples-per-epoch", "10240"]
    runs = {"one": [sys.executable, str(EXAMPLE), "--out", str(tmp_path / "one"), *args],
            "two": torchrun_command(EXAMPLE, ["--out", str(tmp_path / "two"), *args], nproc=2)}
    for name, command in runs.items():
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "epoch 2: step 10" in done.stdout
        assert done.stdout.count("epoch 2: step 10") == 1  # rank 0 alone prints
        assert (tmp_path / name / "checkpoints" / "manifest.json").exists()
    one, two = (torch.load(tmp_path / name / "model.pt", weights_only=True) for name in runs)
    for key, value in one.items():
        torch.testing.assert_close(two[key], value, rtol=1e-5, atol=1e-5)
    histories = [json.loads((tmp_path / name / "history.json").read_text()) for name in runs]
    for first, second in zip(*histories, strict=True):
        assert first["step"] == second["step"]
        assert first["valid_loss"] == pytest.approx(second["valid_loss"], abs=1e-5)
