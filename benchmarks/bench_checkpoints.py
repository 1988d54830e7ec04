"""The cost of Checkpoints (pattern 12): training time with checkpoints against without.

The model is the flights spec's wide-and-deep network (``examples/flights.yaml``: the same
features, hashed categories and crosses, ``hidden=[64, 32]``, dropout 0.1, 33,816
parameters) on the 257,093 training flights of a repeatable 80/10/10 split by date. Each
run trains ``EPOCHS`` virtual epochs of one pass over the training rows with the validation
loss after each, from the same seed, at two batch sizes: the spec's 2048, and 256, where
steps are eight times shorter and a checkpoint weighs more against them.

Cadences, each run against ``no checkpoints`` measured in the same rounds:

* ``default``: ``checkpoint_every=DEFAULT_CHECKPOINT_EVERY`` steps plus each epoch end;
* ``every 100 steps``, ``every 10 steps``: more frequent saves, for the trend.

``best_s`` is the best wall time over ``REPEATS`` interleaved rounds and ``vs_none`` its
ratio to the best run without checkpoints (noisy where other processes share the
machine). ``overhead_pct`` is the steadier estimate: in each run, the time spent inside
``CheckpointManager.save`` (serialise, sha256, write, fsync, manifest, prune) over the rest
of that run's time, both measured under the same load; the median over the rounds.
Every run must end with the same weights as the run without checkpoints (checked).
torch runs ``MLPATTERNS_BENCH_THREADS`` intra-op threads (default 1: on a shared 2-core
machine two OpenMP threads stall each other).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

EPOCHS = int(os.environ.get("MLPATTERNS_BENCH_CKPT_EPOCHS", 2))
REPEATS = int(os.environ.get("MLPATTERNS_BENCH_CKPT_REPEATS", 5))
THREADS = int(os.environ.get("MLPATTERNS_BENCH_THREADS", 1))
BATCH_SIZES = (2048, 256)

FLIGHTS_SPEC = Path(__file__).resolve().parents[1] / "examples" / "flights.yaml"  # its features are the transform


def _log(message: str) -> None:
    print(f"  [checkpoints] {message}", file=sys.stderr, flush=True)


def flights_tensors() -> tuple[Any, Any, list[int]]:
    """Training and validation tensors ``(numeric, categorical, late)`` and the cardinalities."""
    import torch

    from mlpatterns.datasets import load_flights
    from mlpatterns.reproducibility import hash_split_frames
    from mlpatterns.spec import load_spec

    flights = load_flights().dropna(subset=["arr_delay"])
    splits = hash_split_frames(flights, "date", {"train": 0.8, "valid": 0.1, "test": 0.1})
    transform = load_spec(FLIGHTS_SPEC).feature_transform().fit(splits["train"])

    def tensors(frame):
        features = transform.transform(frame)
        late = torch.tensor((frame["arr_delay"] > 30).to_numpy(np.float32)).reshape(-1, 1)
        return torch.from_numpy(features.numeric), torch.from_numpy(features.categorical), late

    cardinalities = transform.transform(splits["train"].head()).cardinalities
    return tensors(splits["train"]), tensors(splits["valid"]), cardinalities


def flights_model(data: tuple, **overrides: Any) -> Any:
    """The flights spec's wide-and-deep network for ``data``, from seed 0 (the same weights every call)."""
    from mlpatterns.models.wide_and_deep import WideAndDeep
    from mlpatterns.training.checkpoints.state import seed_everything

    train, _, cardinalities = data
    seed_everything(0)
    return WideAndDeep(train[0].shape[1], cardinalities, **{"hidden": (64, 32), "dropout": 0.1, **overrides})


def flights_optimizer(params: Any) -> Any:
    """The flights spec's optimizer: Adam, learning rate 0.002, weight decay 1e-5."""
    import torch

    return torch.optim.Adam(params, lr=0.002, weight_decay=1e-5)


def train_once(data: tuple, batch_size: int, checkpoint_every: Any, directory: str | None) -> dict:
    """One training run; returns its wall time, time inside save, checkpoints and weights."""
    import torch

    from mlpatterns.training.checkpoints.manager import CheckpointManager
    from mlpatterns.training.trainer.loop import Trainer

    train, valid, _ = data
    model = flights_model(data)
    trainer = Trainer(
        model, torch.nn.functional.binary_cross_entropy_with_logits, optimizer=flights_optimizer,
        batch_size=batch_size, max_epochs=EPOCHS, checkpoint_dir=directory,
        checkpoint_every=checkpoint_every, keep_last=3, restore_best=False,
    )
    saves: list[float] = []
    sizes: list[int] = []
    if trainer.checkpoints is not None:
        manager: CheckpointManager = trainer.checkpoints
        original = manager.save

        def timed_save(state, **options):
            started = time.perf_counter()
            path = original(state, **options)
            saves.append(time.perf_counter() - started)
            sizes.append(path.stat().st_size)
            return path

        manager.save = timed_save
    started = time.perf_counter()
    trainer.fit(train, valid)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "saves": saves, "sizes": sizes, "steps": trainer.step,
            "weights": {k: v.clone() for k, v in model.state_dict().items()}}


def run() -> list[dict]:
    import torch

    from mlpatterns.training.trainer.loop import DEFAULT_CHECKPOINT_EVERY

    torch.set_num_threads(THREADS)
    started = time.perf_counter()
    data = flights_tensors()
    _log(f"flights features built in {time.perf_counter() - started:.1f} s; {len(data[0][0]):,} training rows")
    cadences = [("no checkpoints", None), (f"default: every {DEFAULT_CHECKPOINT_EVERY} steps + epoch ends",
                                          DEFAULT_CHECKPOINT_EVERY),
                ("every 100 steps + epoch ends", 100), ("every 10 steps + epoch ends", 10)]
    train_once(data, 256, None, None)  # warm-up: the first optimizer imports torch._dynamo
    best: dict[tuple[int, str], dict] = {}
    overheads: dict[tuple[int, str], list[float]] = {}
    root = tempfile.mkdtemp(prefix="bench_checkpoints_")
    try:
        for round_index in range(REPEATS):
            for batch_size in BATCH_SIZES:
                for name, every in cadences:
                    directory = None if name == "no checkpoints" else os.path.join(root, f"{batch_size}-{every}-{round_index}")
                    result = train_once(data, batch_size, every, directory)
                    if directory is not None:
                        shutil.rmtree(directory)
                    _log(f"round {round_index + 1}, batch {batch_size}, {name}: {result['seconds']:.2f} s, "
                         f"{len(result['saves'])} checkpoints")
                    key = (batch_size, name)
                    saved = sum(result["saves"])
                    overheads.setdefault(key, []).append(saved / (result["seconds"] - saved))
                    if key not in best or result["seconds"] < best[key]["seconds"]:
                        best[key] = result
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for batch_size in BATCH_SIZES:
        baseline = best[(batch_size, "no checkpoints")]
        for name, _ in cadences:
            result = best[(batch_size, name)]
            same = all(torch.equal(v, baseline["weights"][k]) for k, v in result["weights"].items())
            assert same, f"checkpoints changed the training result ({name}, batch {batch_size})"
            saves = result["saves"]
            rows.append({
                "batch_size": batch_size,
                "cadence": name,
                "steps": result["steps"],
                "checkpoints": len(saves),
                "ckpt_mb": (np.mean(result["sizes"]) / 1e6) if saves else None,
                "ms_per_ckpt": (1000 * np.median(saves)) if saves else None,
                "best_s": result["seconds"],
                "vs_none": result["seconds"] / baseline["seconds"],
                "overhead_pct": 100 * float(np.median(overheads[(batch_size, name)])),
                "same_weights": same,
            })
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(format_table(run()))
