"""The speed of Distribution Strategy (pattern 14): data-parallel training against one process.

The model and data are those of ``bench_checkpoints.py``: the flights spec's wide-and-deep
network (33,816 parameters) on the 257,093 training flights of a repeatable 80/10/10 split
by date, trained by :class:`~mlpatterns.training.Trainer` with Adam from the same seed. Three
set-ups, each started as its own job (``benchmarks/distribution_worker.py``):

* ``1 process x 1 thread``: the baseline of every ratio;
* ``1 process x 2 threads``: the other way to use a second core (torch's intra-op threads);
* ``2 processes x 1 thread``: two ranks under ``torchrun``, every step's gradients summed
  by an all-reduce over gloo, each rank computing half of every global batch.

Each job trains, at each global batch size (the spec's 2048 and 256, where steps are eight
times shorter and the per-step all-reduce weighs more), one warm-up virtual epoch of one
pass over the training rows, then ``EPOCHS`` timed ones; the time between the ends of the
first and the last epoch holds training steps only (no start-up, data loading or warm-up;
for two ranks, the slower rank's). ``examples_per_s`` is the best over ``REPEATS``
interleaved rounds, ``median_per_s`` the median, ``vs_1x1`` the ratio of the best to the
baseline's best at the same batch size.

Agreement: in the first round the 1-process and 2-process jobs also train the same network
with dropout off (each rank draws its own dropout masks, so a network with dropout cannot
follow the single-process run) for 20 steps and for one epoch. ``diff_20_steps`` and
``diff_epoch`` are the largest differences between the two jobs' final weights, and
``agrees`` tests the first against ``TOLERANCE``, the bound of the unit test
(``tests/training/test_distribution_strategy.py``). The gradients are summed in another
order, so the weights differ by about 1e-6 from the first step on; once such a difference
moves a ReLU input across zero, the step differs by more and Adam keeps the runs apart:
the one-epoch figure shows that drift (up to 1e-3 here), which is floating point, not a
different algorithm.

Knobs: ``MLPATTERNS_BENCH_DIST_EPOCHS`` (timed epochs, default 2),
``MLPATTERNS_BENCH_DIST_REPEATS`` (rounds, default 3), ``MLPATTERNS_BENCH_DIST_ROWS``
(training rows, default 0: all), ``MLPATTERNS_BENCH_DIST_BATCHES`` (default ``2048,256``).
The defaults take about four minutes on a quiet 2-core machine.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EPOCHS = int(os.environ.get("MLPATTERNS_BENCH_DIST_EPOCHS", 2))
REPEATS = int(os.environ.get("MLPATTERNS_BENCH_DIST_REPEATS", 3))
ROWS = int(os.environ.get("MLPATTERNS_BENCH_DIST_ROWS", 0))
BATCH_SIZES = tuple(int(b) for b in os.environ.get("MLPATTERNS_BENCH_DIST_BATCHES", "2048,256").split(","))
TOLERANCE = 1e-5
"""Largest accepted difference between the 1- and 2-process weights after 20 steps (see above)."""

SETUPS = (("1 process x 1 thread", 1, 1), ("1 process x 2 threads", 1, 2), ("2 processes x 1 thread (gloo)", 2, 1))
ROOT = Path(__file__).resolve().parents[1]
WORKER = "benchmarks.distribution_worker"


def _log(message: str) -> None:
    print(f"  [distribution] {message}", file=sys.stderr, flush=True)


def launch(processes: int, threads: int, out: Path, agree_dir: Path | None) -> dict:
    """Run the worker in ``processes`` ranks (``torchrun`` for more than one); return its summary."""
    from mlpatterns.training.distribution_strategy import torchrun_command

    args = [str(out), "--threads", str(threads), "--batch-sizes", ",".join(map(str, BATCH_SIZES)),
            "--epochs", str(EPOCHS), "--rows", str(ROWS)]
    if agree_dir is not None:
        args += ["--agree-dir", str(agree_dir)]
    if processes == 1:
        command = [sys.executable, "-m", WORKER, *args]
    else:
        command = torchrun_command(WORKER, args, nproc=processes, module=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def max_abs_diff(one: Path, two: Path) -> float:
    import torch

    a, b = (torch.load(path, weights_only=True) for path in (one, two))
    assert a.keys() == b.keys(), "the two runs saved different parameters"
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def run() -> list[dict]:
    rates: dict[tuple[str, int], list[float]] = {}
    steps: dict[int, int] = {}
    diffs: dict[tuple[int, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="bench_distribution_") as tmp:
        root = Path(tmp)
        for round_index in range(REPEATS):
            for name, processes, threads in SETUPS:
                agree_dir = root / f"agree-{processes}" if round_index == 0 and threads == 1 else None
                started = time.perf_counter()
                summary = launch(processes, threads, root / f"{round_index}-{processes}x{threads}.json", agree_dir)
                for batch_size in BATCH_SIZES:
                    runs = [r for rank in summary["ranks"] for r in rank["runs"] if r["batch_size"] == batch_size]
                    seconds = max(r["seconds"] for r in runs)  # the slower rank's span
                    rates.setdefault((name, batch_size), []).append(runs[0]["examples"] / seconds)
                    steps[batch_size] = runs[0]["steps"]
                _log(f"round {round_index + 1}, {name}: " + ", ".join(
                    f"batch {b} {rates[(name, b)][-1]:,.0f} examples/s" for b in BATCH_SIZES)
                    + f" ({summary['train_rows']:,} rows; job {time.perf_counter() - started:.0f} s)")
        for batch_size in BATCH_SIZES:
            for kind in ("steps", "epoch"):
                name = f"agree-{batch_size}-{kind}.pt"
                diffs[(batch_size, kind)] = max_abs_diff(root / "agree-1" / name, root / "agree-2" / name)
    rows = []
    for batch_size in BATCH_SIZES:
        baseline = max(rates[(SETUPS[0][0], batch_size)])
        for name, processes, threads in SETUPS:
            best = max(rates[(name, batch_size)])
            row = {"batch_size": batch_size, "setup": name, "processes": processes, "threads": threads,
                   "steps": steps[batch_size], "examples_per_s": best,
                   "median_per_s": statistics.median(rates[(name, batch_size)]),
                   "ms_per_step": 1000 * batch_size / best, "vs_1x1": best / baseline,
                   "diff_20_steps": None, "diff_epoch": None, "agrees": None}
            if processes > 1:
                row["diff_20_steps"] = diffs[(batch_size, "steps")]
                row["diff_epoch"] = diffs[(batch_size, "epoch")]
                row["agrees"] = row["diff_20_steps"] <= TOLERANCE
            rows.append(row)
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(format_table(run()))
