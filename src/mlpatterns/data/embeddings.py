"""Embeddings (pattern 2): a learned dense vector for every value of a categorical input.

Problem: one-hot encoding a high-cardinality input (105 destination airports, 4,000
aircraft) gives wide, sparse vectors in which every value is equally far from every
other: the model cannot share what it learns about one airport with a similar one.

Solution: map every value to a short dense vector, learned together with the task.
Values that behave alike for the task end up close together, so the vectors can be
compared (nearest neighbours), exported and reused by another model (transfer of
embeddings), or fed as dense features to a model that cannot learn them itself.
The book's rule of thumb sizes each vector at about the fourth root of the number
of values (:func:`embedding_dim`).

This module holds the torch side, :class:`CategoricalEmbeddings` (one
``nn.Embedding`` per categorical column, concatenated), and re-exports the
torch-free parts: :class:`~mlpatterns.data.embedding_table.EmbeddingTable`
(exported vectors with their labels) and
:class:`~mlpatterns.data.embedding_encoder.EmbeddingEncoder` (a scikit-learn
transformer that learns the vectors and outputs them as features).

Examples
--------
>>> import torch
>>> layer = CategoricalEmbeddings([105, 16], names=["dest", "carrier"])
>>> layer.dims, layer.output_dim
((4, 2), 6)
>>> layer(torch.tensor([[3, 1], [104, 0]])).shape
torch.Size([2, 6])
>>> layer.export("dest").shape
(105, 4)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mlpatterns.data.embedding_encoder import EmbeddingEncoder, embedding_dim
from mlpatterns.data.embedding_table import EmbeddingTable

__all__ = ["CategoricalEmbeddings", "EmbeddingEncoder", "EmbeddingTable", "embedding_dim"]


def _check_sizes(values: Sequence[int], what: str) -> tuple[int, ...]:
    sizes = []
    for position, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{what}[{position}] must be a positive integer, got {value!r}")
        sizes.append(int(value))
    return tuple(sizes)


class CategoricalEmbeddings(nn.Module):
    """One learnable embedding per categorical column, concatenated.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of distinct indices of each column; column ``j`` takes indices in
        ``[0, cardinalities[j])``.
    dims : sequence of int, optional
        Vector length of each column. By default :func:`embedding_dim` of its
        cardinality (about the fourth root, between 2 and 64).
    names : sequence of str, optional
        Column names, used by :meth:`export`, :meth:`load_vectors` and in error
        messages. By default ``x0, x1, ...``.

    Attributes
    ----------
    names, cardinalities, dims : tuple
        One entry per column.
    output_dim : int
        Width of the output, ``sum(dims)``.
    embeddings : torch.nn.ModuleList
        The ``nn.Embedding`` of each column, in column order.

    See Also
    --------
    EmbeddingTable : exported vectors with their labels, nearest neighbours, saving.
    EmbeddingEncoder : the same idea as a scikit-learn transformer.

    Examples
    --------
    >>> import numpy as np
    >>> layer = CategoricalEmbeddings([3, 5], dims=[2, 3], names=["a", "b"])
    >>> layer.load_vectors("a", np.ones((3, 2)), freeze=True)
    >>> layer(torch.tensor([[0, 4]]))[0, :2].tolist()
    [1.0, 1.0]
    >>> layer(torch.tensor([[3, 0]]))
    Traceback (most recent call last):
    ...
    IndexError: column 'a' (position 0): index 3 is out of range [0, 3) in 1 row(s), first at row 0
    """

    def __init__(
        self,
        cardinalities: Sequence[int],
        dims: Sequence[int] | None = None,
        names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        cardinalities = _check_sizes(list(cardinalities), "cardinalities")
        if dims is None:
            dims = tuple(embedding_dim(c) for c in cardinalities)
        dims = _check_sizes(list(dims), "dims")
        names = tuple(str(n) for n in names) if names is not None else None
        names = names or tuple(f"x{j}" for j in range(len(cardinalities)))
        for what, values in (("dims", dims), ("names", names)):
            if len(values) != len(cardinalities):
                raise ValueError(
                    f"{what} has {len(values)} entries but cardinalities has {len(cardinalities)}"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"names must be unique, got {list(names)}")
        self.names = names
        self.cardinalities = cardinalities
        self.dims = dims
        self.output_dim = int(sum(dims))
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, d) for c, d in zip(cardinalities, dims, strict=True)
        )

    def _position(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"no embedding column named {name!r}; columns are {list(self.names)}"
            ) from None

    def _check_indices(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return  # data-dependent checks cannot be traced; exported graphs skip them
        if x.dim() != 2 or x.shape[1] != len(self.names):
            raise ValueError(
                f"expected indices of shape [batch, {len(self.names)}] for columns "
                f"{list(self.names)}, got {tuple(x.shape)}"
            )
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise TypeError(f"expected integer (LongTensor) indices, got {x.dtype}")
        limits = torch.as_tensor(self.cardinalities, device=x.device)
        bad = (x < 0) | (x >= limits)
        if bool(bad.any()):
            column = int(bad.any(dim=0).nonzero()[0])
            rows = bad[:, column].nonzero().flatten()
            value = int(x[rows[0], column])
            raise IndexError(
                f"column {self.names[column]!r} (position {column}): index {value} is out of "
                f"range [0, {self.cardinalities[column]}) in {len(rows)} row(s), "
                f"first at row {int(rows[0])}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Look up every column's vector; ``[batch, n_columns]`` -> ``[batch, output_dim]``."""
        self._check_indices(x)
        if not self.names:
            return torch.zeros(x.shape[0], 0, device=x.device)
        x = x.long()
        return torch.cat([table(x[:, j]) for j, table in enumerate(self.embeddings)], dim=1)

    def export(self, name: str) -> np.ndarray:
        """The learned vectors of column ``name`` as a ``[cardinality, dim]`` NumPy array."""
        weight = self.embeddings[self._position(name)].weight
        return weight.detach().cpu().numpy().copy()

    def load_vectors(
        self, name: str, vectors: np.ndarray | torch.Tensor, freeze: bool = False
    ) -> None:
        """Replace column ``name``'s vectors, for example with those another model learned.

        With ``freeze=True`` the vectors stop receiving gradients (their
        ``requires_grad`` is switched off), so training leaves them as loaded.
        """
        position = self._position(name)
        table = self.embeddings[position]
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.detach().to(dtype=table.weight.dtype, device=table.weight.device)
        else:
            vectors = torch.tensor(np.array(vectors, dtype=np.float32), dtype=table.weight.dtype)
        expected = (self.cardinalities[position], self.dims[position])
        if tuple(vectors.shape) != expected:
            raise ValueError(
                f"vectors for column {name!r} must have shape {expected} "
                f"[cardinality, dim], got {tuple(vectors.shape)}"
            )
        if not bool(torch.isfinite(vectors).all()):
            raise ValueError(f"vectors for column {name!r} contain NaN or infinite values")
        with torch.no_grad():
            table.weight.copy_(vectors)
        table.weight.requires_grad_(not freeze)

    def extra_repr(self) -> str:
        columns = ", ".join(
            f"{n}: {c}x{d}"
            for n, c, d in zip(self.names, self.cardinalities, self.dims, strict=True)
        )
        return f"columns=[{columns}], output_dim={self.output_dim}"
