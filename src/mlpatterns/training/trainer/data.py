"""The training data as an endless stream of shuffled passes, with a resumable position.

Checkpoints (pattern 12) define an epoch as a fixed number of examples (a *virtual
epoch*), so the data is read as one stream: pass after pass over the rows, each pass in a
new random order, cut into batches that may straddle two passes. The position in that
stream (which pass, how far into it, and the generator state that reproduces the pass's
order) is small and is saved in every checkpoint; a resumed run draws the very same
batches as an uninterrupted one.

Examples
--------
>>> stream = ShuffledStream(5, batch_size=4, seed=0)
>>> first = [stream.next_batch().tolist() for _ in range(3)]
>>> state = stream.state_dict()
>>> following = stream.next_batch().tolist()
>>> resumed = ShuffledStream(5, batch_size=4, seed=123)
>>> resumed.load_state_dict(state)
>>> resumed.next_batch().tolist() == following
True
>>> sorted(first[0] + first[1][:1])  # the first pass holds every row once
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ShuffledStream", "TrainingData", "as_training_data"]


class ShuffledStream:
    """Batches of row indices from an endless sequence of shuffled passes over ``n_rows``."""

    def __init__(self, n_rows: int, batch_size: int, seed: int, shuffle: bool = True) -> None:
        import torch

        self.n_rows, self.batch_size, self.shuffle = n_rows, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.pass_index = 0
        self._start_pass()

    def _start_pass(self) -> None:
        import torch

        self._pass_generator_state = self.generator.get_state()
        if self.shuffle:
            self._order = torch.randperm(self.n_rows, generator=self.generator)
        else:
            self._order = torch.arange(self.n_rows)
        self.offset = 0

    def next_batch(self) -> Any:
        """The next ``batch_size`` row indices (an int64 tensor)."""
        import torch

        parts, needed = [], self.batch_size
        while needed:
            if self.offset == self.n_rows:
                self.pass_index += 1
                self._start_pass()
            taken = min(needed, self.n_rows - self.offset)
            parts.append(self._order[self.offset : self.offset + taken])
            self.offset += taken
            needed -= taken
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def state_dict(self) -> dict[str, Any]:
        """Position in the stream: the pass, the offset in it, the state that reorders it."""
        return {
            "pass": self.pass_index,
            "offset": self.offset,
            "generator": self._pass_generator_state.clone(),
            "rows": self.n_rows,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["rows"] != self.n_rows:
            raise ValueError(f"the data position is for {state['rows']} rows, the data has {self.n_rows}")
        self.generator.set_state(state["generator"])
        self.pass_index = state["pass"]
        self._start_pass()
        self.offset = state["offset"]


class TrainingData:
    """Row-indexable training data: equal-length tensors (inputs..., target) or a Dataset."""

    def __init__(self, tensors: Sequence[Any] | None = None, dataset: Any = None) -> None:
        self.tensors = None if tensors is None else tuple(tensors)
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.tensors[0]) if self.tensors is not None else len(self.dataset)

    def batch(self, rows: Any) -> tuple[Any, ...]:
        """``(inputs..., target)`` of the given rows."""
        if self.tensors is not None:
            return tuple(tensor[rows] for tensor in self.tensors)
        from torch.utils.data import default_collate

        return tuple(default_collate([self.dataset[int(i)] for i in rows]))

    def batches(self, batch_size: int) -> Any:
        """Consecutive batches in order (for evaluation)."""
        import torch

        for start in range(0, len(self), batch_size):
            yield self.batch(torch.arange(start, min(start + batch_size, len(self))))


def as_training_data(data: Any, name: str) -> TrainingData:
    """Accept ``(x1, ..., xk, y)`` as tensors or arrays, a ``TensorDataset``, or a map-style
    ``Dataset`` whose items are ``(x1, ..., xk, y)``; ``name`` goes into error messages."""
    import torch
    from torch.utils.data import Dataset, TensorDataset

    if isinstance(data, TensorDataset):
        data = data.tensors
    elif isinstance(data, Dataset):
        if not hasattr(data, "__len__"):
            raise TypeError(f"{name}: a Dataset must have a length (map-style)")
        if len(data) == 0:
            raise ValueError(f"{name}: the dataset is empty")
        return TrainingData(dataset=data)
    if not isinstance(data, (tuple, list)) or len(data) < 2:
        raise TypeError(
            f"{name}: expected (inputs..., target) as a tuple of at least two tensors or arrays, "
            f"a TensorDataset or a map-style Dataset; got {type(data).__name__}"
        )
    tensors = []
    for index, part in enumerate(data):
        if isinstance(part, np.ndarray):
            part = torch.from_numpy(np.ascontiguousarray(part))
        if not isinstance(part, torch.Tensor):
            raise TypeError(f"{name}[{index}]: expected a tensor or a NumPy array, got {type(part).__name__}")
        tensors.append(part)
    lengths = {len(t) for t in tensors}
    if len(lengths) != 1:
        raise ValueError(f"{name}: the tensors have different numbers of rows {[len(t) for t in tensors]}")
    if not lengths.pop():
        raise ValueError(f"{name}: no rows")
    return TrainingData(tensors=tensors)
