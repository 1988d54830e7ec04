"""A small training run that the kill tests start, SIGKILL and resume (not a test module).

Usage: ``python resumable_run.py run CHECKPOINT_DIR OUTPUT [--hang-in-write N]``, or
``python resumable_run.py zygote``, which forks such a run for each ``run DIR OUTPUT [N]``
line on its standard input (see :func:`zygote`), or under ``torchrun``
``resumable_run.py data-parallel CHECKPOINT_DIR OUTPUT [--epochs N]``.

A run always calls ``fit(resume=True)``, so the same command continues a killed run. The
model draws noise from Python's ``random``, NumPy and torch (dropout) while training, so
a resume that missed any generator would not end where the uninterrupted run ends. Each
step sleeps a little so that the run lasts a few seconds whatever the machine's load.
``--hang-in-write N`` makes the N-th checkpoint write of this process stop half way
(after flushing the first half to disk), print ``PID half-written`` and hang, so that the
test can kill it in the middle of a write. OUTPUT receives the final weights and history.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import sys
import time
import traceback

import numpy as np
import torch
from torch import nn

from mlpatterns.training.checkpoints import atomic as checkpoints_io
from mlpatterns.training.checkpoints.state import seed_everything
from mlpatterns.training.trainer.loop import Trainer

ROWS, FEATURES = 2000, 12
STEP_PAUSE_S = 0.004


class NoisyNet(nn.Module):
    """An MLP whose training-time input noise uses all three global generators."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(FEATURES, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            noise = np.random.normal(0.0, 0.05, size=tuple(x.shape))  # noqa: NPY002 - on purpose
            noise = torch.from_numpy(noise.astype(np.float32))
            x = x * (1.0 + 0.01 * random.random()) + noise
            time.sleep(STEP_PAUSE_S)
        return self.net(x)


def data() -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(ROWS, FEATURES, generator=generator)
    logit = x[:, 0] - 2 * x[:, 1] + x[:, 2] * x[:, 3]
    y = (logit + 0.5 * torch.randn(ROWS, generator=generator) > 0).float().reshape(-1, 1)
    cut = int(ROWS * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def trainer(checkpoint_dir: str, max_epochs: int = 12) -> Trainer:
    seed_everything(0)
    return Trainer(
        NoisyNet(),
        nn.functional.binary_cross_entropy_with_logits,
        optimizer=lambda params: torch.optim.AdamW(params, lr=3e-3),
        scheduler=lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.7),
        batch_size=32,
        examples_per_epoch=1000,  # 32 steps per virtual epoch; the 1,600 rows make 50
        max_epochs=max_epochs,
        seed=3,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=6,
        keep_last=2,
    )


def say(line: str) -> None:
    """One line on stdout in one write, so the lines of concurrent runs never interleave."""
    os.write(sys.stdout.fileno(), (line + "\n").encode())


def hang_in_write(n: int) -> None:
    """Make the n-th checkpoint file write stop half way and hang."""
    original = checkpoints_io._write_fully
    count = 0

    def write(file, data: bytes) -> None:
        nonlocal count
        if data[:2] == b"PK":  # a torch.save zip, not the JSON manifest
            count += 1
            if count == n:
                file.write(data[: len(data) // 2])
                file.flush()
                say(f"{os.getpid()} half-written")
                time.sleep(120)
        original(file, data)

    checkpoints_io._write_fully = write


def run(checkpoint_dir: str, output: str, hang_in_write_n: int = 0) -> None:
    """Train (resuming from ``checkpoint_dir`` if it holds checkpoints); save the end to ``output``."""
    torch.set_num_threads(1)
    if hang_in_write_n:
        hang_in_write(hang_in_write_n)
    trained = trainer(checkpoint_dir)
    train, valid = data()
    say(f"{os.getpid()} started")
    trained.fit(train, valid, resume=True)
    say(f"{os.getpid()} resumed_from {trained.resumed_from}")
    torch.save({"model": trained.model.state_dict(), "history": trained.history.records}, output)
    say(f"{os.getpid()} done")


def zygote() -> None:
    """Fork a training process for each ``run DIR OUTPUT [N]`` line read from stdin.

    Importing torch takes seconds; a forked child starts training at once, so the test's
    kills land in training. Prints ``forked PID`` and, once reaped, ``exited PID CODE``
    (CODE is minus the signal number for a killed child, as subprocess reports it).
    """
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)  # imports torch._dynamo once, here
    say("ready")
    children: set[int] = set()
    open_input = True
    while open_input or children:
        if open_input and select.select([sys.stdin], [], [], 0.02)[0]:
            line = sys.stdin.readline()
            if not line:
                open_input = False
            elif line.split()[0] == "run":
                _, directory, output, *hang = line.split()
                pid = os.fork()
                if pid == 0:
                    code = 0
                    try:
                        run(directory, output, int(hang[0]) if hang else 0)
                    except BaseException:
                        traceback.print_exc()
                        code = 1
                    finally:
                        os._exit(code)
                children.add(pid)
                say(f"forked {pid}")
        elif not open_input:
            time.sleep(0.02)
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                say(f"exited {pid} {code}")


def data_parallel(checkpoint_dir: str, output: str, max_epochs: int) -> None:
    """One rank of a ``torchrun`` job: the same training, data-parallel over gloo."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    trained = trainer(checkpoint_dir, max_epochs)
    trained.fit(*data(), resume=True)
    if dist.get_rank() == 0:
        torch.save({"model": trained.model.state_dict(), "history": trained.history.records}, output)
    dist.destroy_process_group()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run", "zygote", "data-parallel"])
    parser.add_argument("checkpoint_dir", nargs="?")
    parser.add_argument("output", nargs="?")
    parser.add_argument("--hang-in-write", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)
    if args.command == "zygote":
        zygote()
    elif args.command == "data-parallel":
        data_parallel(args.checkpoint_dir, args.output, args.epochs)
    else:
        run(args.checkpoint_dir, args.output, args.hang_in_write)


if __name__ == "__main__":
    main(sys.argv[1:])
