"""Distribution Strategy (pattern 14): synchronous data-parallel training with ``torch.distributed``.

Problem: one process trains too slowly on a large data set, and hand-made parallel
training (averaging models now and then, splitting the data by hand) changes what is
learned, so results stop being comparable with a single-process run.

Solution: every process (a *rank*) holds a replica of the model; each step, each rank
computes the gradient on its share of the same global batch, and an all-reduce of
``torch.distributed`` (gloo on CPUs, nccl on GPUs) combines the gradients, so every
replica takes the same step. :class:`~mlpatterns.training.Trainer` does this when it
runs in a process group of several ranks (see :mod:`mlpatterns.training.trainer.distributed`):
each rank trains on every ``world_size``-th row of each global batch of ``batch_size``
rows, weighs its mean loss by its share of the rows, and the summed gradient is exactly
the gradient of the global batch, so a 2-process run follows the single-process run
with the same global batch (up to floating-point summation order; 6e-8 measured on
scikit-learn's diabetes data). Rank 0 alone writes checkpoints; every rank resumes from
the one rank 0 chose.

Launch with ``torchrun`` (this module only builds the command and reads its
environment)::

    torchrun --standalone --nproc_per_node=2 train.py          # one machine, 2 processes
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
        --rdzv_endpoint=HOST:29500 --rdzv_id=JOB train.py       # the same on every node

where ``train.py`` calls :func:`init_distributed`, builds its ``Trainer`` and calls
``fit``. :func:`torchrun_command` writes that command line for a script or module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DistributedContext", "init_distributed", "shutdown_distributed", "torchrun_command"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in a data-parallel job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and bundles."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def current(cls) -> DistributedContext:
        """The context of an initialised process group, or a single process."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def init_distributed(backend: str | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` set up (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...).

    ``backend`` defaults to ``"nccl"`` when CUDA is available and ``"gloo"`` otherwise.
    Outside ``torchrun`` (no ``WORLD_SIZE``) this is a single process and nothing is
    initialised.
    """
    import torch
    import torch.distributed as dist

    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) == 1:
        return DistributedContext()
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"backend: expected 'gloo', 'nccl' or 'mpi', got {backend!r}")
    if not dist.is_initialized():
        dist.init_process_group(backend)
    context = DistributedContext.current()
    if backend == "nccl":
        torch.cuda.set_device(context.local_rank)
    return context


def shutdown_distributed() -> None:
    """Leave the process group, if this process is in one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def torchrun_command(target: str | os.PathLike, args: Sequence[str] = (), *, nproc: int = 2,
                     module: bool = False, nnodes: int = 1, rendezvous: str | None = None,
                     job_id: str = "mlpatterns", node_rank: int | None = None) -> list[str]:
    """The ``torchrun`` command line that starts ``target`` in ``nproc`` processes per node.

    One node (the default) uses ``--standalone``. Several nodes meet at ``rendezvous``
    (``HOST:PORT``): by default with the c10d rendezvous, which numbers the ranks itself,
    so every node runs the same command and ``job_id`` (``--rdzv_id``) tells this job from
    another one sharing the endpoint. With ``node_rank`` (0 on the node at ``HOST``), the
    static rendezvous instead: rank 0 then runs on node 0, but the set of nodes is fixed.

    >>> torchrun_command("train.py", ["--epochs", "3"], nproc=2)[3:]
    ['--standalone', '--nproc_per_node=2', 'train.py', '--epochs', '3']
    >>> torchrun_command("train.py", nproc=8, nnodes=2, rendezvous="10.0.0.1:29500", node_rank=1)[3:-1]
    ['--nnodes=2', '--nproc_per_node=8', '--node_rank=1', '--master_addr=10.0.0.1', '--master_port=29500']
    """
    for name, value in (("nproc", nproc), ("nnodes", nnodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive whole number, got {value!r}")
    command = [sys.executable, "-m", "torch.distributed.run"]
    if nnodes == 1:
        command += ["--standalone", f"--nproc_per_node={nproc}"]
    else:
        host, _, port = (rendezvous or "").rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"rendezvous: several nodes need the HOST:PORT where they meet, got {rendezvous!r}")
        command += [f"--nnodes={nnodes}", f"--nproc_per_node={nproc}"]
        if node_rank is None:
            command += ["--rdzv_backend=c10d", f"--rdzv_endpoint={rendezvous}", f"--rdzv_id={job_id}"]
        elif isinstance(node_rank, bool) or not isinstance(node_rank, int) or not 0 <= node_rank < nnodes:
            raise ValueError(f"node_rank: expected a whole number from 0 to {nnodes - 1}, got {node_rank!r}")
        else:
            command += [f"--node_rank={node_rank}", f"--master_addr={host}", f"--master_port={port}"]
    command += ["-m", str(target)] if module else [str(target)]
    return command + [str(a) for a in args]
