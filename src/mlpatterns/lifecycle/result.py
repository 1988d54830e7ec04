"""What ``mlpatterns run`` returns (:class:`RunResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunResult"]


@dataclass
class RunResult:
    spec: Any
    rows: dict[str, int]
    metrics: dict[str, dict[str, float]]
    bundles: dict[str, Path]
    output_dir: Path
    dropped_target_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    skew: dict[str, dict[str, float]] = field(default_factory=dict)
    tuning: dict[str, Any] | None = None  # the study behind the tuned model (Hyperparameter Tuning, 15)
    rank: int = 0  # this process's rank in a data-parallel job (Distribution Strategy, 14); only 0 writes
    world_size: int = 1
    plots: dict[str, Path] = field(default_factory=dict)  # each network's learning curves (PNG)
    steps: dict[str, str] = field(default_factory=dict)  # each step: "run" or "cached"
    anomalies: list[dict[str, Any]] = field(default_factory=list)  # the data's, against the previous run's
    registered: dict[str, Any] = field(default_factory=dict)  # model -> registered version or why not
    two_phase: dict[str, Any] = field(default_factory=dict)  # Two-Phase Predictions (19): folder and figures
