"""A data-parallel training job for the Distribution Strategy tests (run directly or under torchrun).

``python ddp_worker.py OUT [--epochs N] [--checkpoints DIR] [--resume]`` trains a small
network on scikit-learn's diabetes data with a global batch of 32 rows and writes the
final weights to OUT (rank 0 only).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.datasets import load_diabetes

from mlpatterns.training.distribution_strategy import init_distributed, shutdown_distributed
from mlpatterns.training.trainer.loop import Trainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--checkpoints")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    context = init_distributed("gloo")
    torch.set_num_threads(1)
    X, y = load_diabetes(return_X_y=True)
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    y = ((y - y.mean()) / y.std()).astype(np.float32).reshape(-1, 1)
    torch.manual_seed(0)  # the same initial weights on every rank and in a single process
    model = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    trainer = Trainer(model, torch.nn.functional.mse_loss, optimizer=lambda p: torch.optim.Adam(p, lr=0.01),
                      batch_size=32, max_epochs=args.epochs, seed=0, checkpoint_dir=args.checkpoints,
                      checkpoint_every=5)
    trainer.fit((torch.from_numpy(X[:350]), torch.from_numpy(y[:350])),
                valid=(torch.from_numpy(X[350:]), torch.from_numpy(y[350:])), resume=args.resume)
    if context.is_main:
        torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, args.out)
        torch.save(torch.tensor([r["train_loss"] for r in trainer.history.records]), args.out + ".loss")
    shutdown_distributed()


if __name__ == "__main__":
    main()
