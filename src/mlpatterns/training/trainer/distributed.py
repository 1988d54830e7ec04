"""The Trainer's side of data-parallel training (Distribution Strategy, 14, with Checkpoints, 12).

When :class:`~mlpatterns.training.trainer.loop.Trainer` runs in an initialised
``torch.distributed`` process group of several ranks (``torchrun``; see
:mod:`mlpatterns.training.distribution_strategy`), every rank draws the same global
batch from the same shuffled stream and trains on its share (every ``world_size``-th
row from its rank). Each rank weighs its mean loss by its share of the rows, and the
gradients are summed over the ranks, so every replica takes the step of the global
batch's mean loss: the single-process step, up to the order of floating-point sums.

Rank 0 alone writes checkpoints; the others send it their random-generator states so
that each rank resumes exactly, and all ranks resume from the checkpoint rank 0 chose.
Outside a process group (or with one rank, or with ``data_parallel=False``, for a model
that one rank trains alone) :class:`Replicas` does nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Replicas"]


class Replicas:
    """This process's place among the data-parallel ranks of a ``torch.distributed`` group."""

    def __init__(self, data_parallel: bool = True) -> None:
        from mlpatterns.training.distribution_strategy import DistributedContext

        context = DistributedContext.current() if data_parallel else DistributedContext()
        self.active = context.distributed
        self.rank, self.world_size = context.rank, context.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0, the rank that writes checkpoints and shows progress."""
        return self.rank == 0

    def local_rows(self, rows: Any) -> Any:
        """This rank's share of a global batch."""
        return rows[self.rank :: self.world_size] if self.active else rows

    def sum_gradients(self, parameters: list[Any], loss_sum: float) -> float:
        """Sum the (share-weighted) gradients over the ranks; return the global loss sum.

        A parameter without a gradient on every rank keeps none, as in a single process
        (so the optimizer skips it there too). The loss sum and the has-a-gradient flags
        travel in the same all-reduce as the gradients (one round trip per step) when the
        gradients are all float32 or float64, on the parameters' device (nccl reduces
        only GPU tensors).
        """
        import torch
        import torch.distributed as dist

        if not self.active:
            return loss_sum
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        dtypes = {g.dtype for g in grads}
        dtype = dtypes.pop() if len(dtypes) == 1 and dtypes <= {torch.float32, torch.float64} else None
        device = parameters[0].device if parameters else torch.device("cpu")
        flags = torch.tensor([loss_sum] + [float(p.grad is not None) for p in parameters],
                             dtype=dtype or torch.float64, device=device)
        if dtype is not None:
            flat = torch.cat([g.reshape(-1) for g in grads] + [flags])
            dist.all_reduce(flat)
            *grads, flags = torch.split(flat, [g.numel() for g in grads] + [len(flags)])
        else:
            for grad in grads:
                dist.all_reduce(grad)
            dist.all_reduce(flags)
        for parameter, grad, flag in zip(parameters, grads, flags[1:].tolist(), strict=True):
            parameter.grad = grad.reshape(parameter.shape) if flag > 0 else None
        return float(flags[0])

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable value sent between processes, never loaded from disk)."""
        import torch.distributed as dist

        if not self.active:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        import torch.distributed as dist

        if not self.active:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values
