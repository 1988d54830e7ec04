"""The training job that ``bench_distribution.py`` times, in one process or in each rank under ``torchrun``.

``python -m benchmarks.distribution_worker OUT.json --threads T --batch-sizes 2048,256 --epochs E
[--rows N] [--agree-dir DIR]``, run from the repository root, alone or under ``torchrun``.

For each batch size it trains the flights wide-and-deep network of ``bench_checkpoints.py``
(the same data, model, optimizer and seed) with :class:`~mlpatterns.training.Trainer` for
one warm-up virtual epoch and ``E`` timed ones, a virtual epoch being one pass over the
training rows (the first ``N``, if given). A callback stamps the end of each epoch, so
the timed span holds training steps only: no start-up, data loading or warm-up. The
ranks' spans are gathered and rank 0 writes them, with the run's settings, to OUT.json.

``--agree-dir`` adds, per batch size, two runs of the same network with dropout off (a
rank draws its own dropout masks, so only a network without dropout can follow the
single-process run): ``AGREE_STEPS`` steps, and one virtual epoch; rank 0 saves their
final weights there as ``agree-BATCH-steps.pt`` and ``agree-BATCH-epoch.pt``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

AGREE_STEPS = 20


def train(data: tuple, batch_size: int, epochs: int, examples_per_epoch: int | None = None,
          **model_options: Any) -> tuple[Any, list[float]]:
    """Train ``epochs`` virtual epochs; return the trainer and the time stamp of each epoch's end."""
    import torch

    from benchmarks.bench_checkpoints import flights_model, flights_optimizer
    from mlpatterns.training.trainer.loop import Trainer

    stamps: list[float] = []
    trainer = Trainer(
        flights_model(data, **model_options), torch.nn.functional.binary_cross_entropy_with_logits,
        optimizer=flights_optimizer, batch_size=batch_size, examples_per_epoch=examples_per_epoch,
        max_epochs=epochs, restore_best=False,
        checkpoint_every=None, callbacks=[lambda epoch, metrics: stamps.append(time.perf_counter())],
    )
    trainer.fit(data[0])
    return trainer, stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", default="2048,256")
    parser.add_argument("--epochs", type=int, default=3, help="timed virtual epochs, after one warm-up epoch")
    parser.add_argument("--rows", type=int, default=0, help="training rows to use (0: all)")
    parser.add_argument("--agree-dir", type=Path, default=None)
    parser.add_argument("--backend", default="gloo")
    args = parser.parse_args()

    import torch
    import torch.distributed as dist

    from benchmarks.bench_checkpoints import flights_tensors
    from mlpatterns.training.distribution_strategy import init_distributed, shutdown_distributed

    context = init_distributed(args.backend)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_data, valid_data, cardinalities = flights_tensors()
    if args.rows:
        train_data = tuple(t[: args.rows] for t in train_data)
    data = (train_data, valid_data, cardinalities)
    load_s = time.perf_counter() - started

    runs = []
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        trainer, stamps = train(data, batch_size, 1 + args.epochs)
        steps = args.epochs * trainer.steps_per_epoch
        runs.append({"batch_size": batch_size, "steps": steps, "examples": steps * batch_size,
                     "seconds": stamps[-1] - stamps[0], "final_train_loss": trainer.history[-1]["train_loss"]})
        for kind, examples in (("steps", AGREE_STEPS * batch_size), ("epoch", None)):
            if args.agree_dir is None:
                break
            trainer, _ = train(data, batch_size, 1, examples, dropout=0.0)
            if context.is_main:
                args.agree_dir.mkdir(parents=True, exist_ok=True)
                weights = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
                torch.save(weights, args.agree_dir / f"agree-{batch_size}-{kind}.pt")

    record = {"rank": context.rank, "threads": torch.get_num_threads(), "load_s": load_s, "runs": runs}
    records = [record]
    if context.distributed:
        records = [None] * context.world_size
        dist.all_gather_object(records, record)
    if context.is_main:
        summary = {"world_size": context.world_size, "backend": context.backend, "train_rows": len(train_data[0]),
                   "torch": torch.__version__, "ranks": records}
        args.out.write_text(json.dumps(summary, indent=1))
    shutdown_distributed()


if __name__ == "__main__":
    main()
