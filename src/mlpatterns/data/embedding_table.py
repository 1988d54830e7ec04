"""Exported embedding vectors with their labels: compare, save and reuse them (pattern 2).

A model's embedding of a categorical column is a matrix whose row ``i`` stands for
the value with index ``i``. :class:`EmbeddingTable` keeps that matrix together with
the labels of its rows (destination airports, carriers), so that the vectors can be
inspected (which airports does the delay model see as alike?), written to disk and
loaded into another model. The vectors are stored as safetensors and the labels as
JSON: loading a table never unpickles or executes anything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EmbeddingTable"]

_FORMAT = "mlpatterns.EmbeddingTable/1"
_VECTORS_FILE = "vectors.safetensors"
_LABELS_FILE = "labels.json"
METRICS = ("cosine", "dot", "euclidean")


def _plain_label(label: Any, position: int) -> Any:
    if isinstance(label, np.generic):
        label = label.item()
    if label is None or not isinstance(label, (str, int, float, bool)):
        raise TypeError(
            f"labels[{position}] must be a str, int, float or bool (JSON-able), "
            f"got {type(label).__name__}: {label!r}"
        )
    return label


class EmbeddingTable:
    """Embedding vectors, one row per label.

    Parameters
    ----------
    vectors : array-like of shape (n_labels, dim)
        The vectors, row ``i`` for ``labels[i]``; stored as float32.
    labels : sequence
        Unique str, int, float or bool labels, one per row.

    See Also
    --------
    CategoricalEmbeddings.export : the vectors a torch model learned.

    Examples
    --------
    >>> table = EmbeddingTable([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]], ["BOS", "JFK", "LAX"])
    >>> [(label, round(sim, 3)) for label, sim in table.nearest("BOS", k=2)]
    [('JFK', 0.994), ('LAX', 0.0)]
    >>> table["LAX"].tolist()
    [0.0, 1.0]
    """

    def __init__(self, vectors: Any, labels: Sequence[Any]) -> None:
        vectors = np.array(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D [n_labels, dim], got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinite values")
        labels = [_plain_label(label, i) for i, label in enumerate(labels)]
        if len(labels) != len(vectors):
            raise ValueError(
                f"got {len(labels)} labels for {len(vectors)} vectors; need one per row"
            )
        index = {label: i for i, label in enumerate(labels)}
        if len(index) != len(labels):
            duplicated = sorted({str(x) for x in labels if labels.count(x) > 1})
            raise ValueError(f"labels must be unique; repeated: {duplicated[:10]}")
        vectors.setflags(write=False)
        self._vectors = vectors
        self._labels = tuple(labels)
        self._index = index

    @classmethod
    def from_embeddings(cls, module: Any, name: str, labels: Sequence[Any]) -> EmbeddingTable:
        """The vectors of column ``name`` of a :class:`CategoricalEmbeddings` (or any
        object with ``export(name)``), labelled by ``labels`` (one per index)."""
        vectors = module.export(name)
        if len(labels) != len(vectors):
            raise ValueError(
                f"column {name!r} has {len(vectors)} vectors but {len(labels)} labels were given"
            )
        return cls(vectors, labels)

    @property
    def vectors(self) -> np.ndarray:
        """The ``[n_labels, dim]`` float32 matrix (read-only)."""
        return self._vectors

    @property
    def labels(self) -> tuple[Any, ...]:
        """The label of each row."""
        return self._labels

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    def __len__(self) -> int:
        return len(self._labels)

    def __contains__(self, label: Any) -> bool:
        return label in self._index

    def __getitem__(self, label: Any) -> np.ndarray:
        return self._vectors[self._row(label)]

    def __repr__(self) -> str:
        return f"EmbeddingTable({len(self)} labels x {self.dim} dims)"

    def _row(self, label: Any) -> int:
        try:
            return self._index[label]
        except (KeyError, TypeError):
            shown = ", ".join(map(repr, self._labels[:10]))
            more = ", ..." if len(self) > 10 else ""
            raise KeyError(
                f"label {label!r} is not in the table; labels are [{shown}{more}]"
            ) from None

    def similarities(self, label: Any, metric: str = "cosine") -> np.ndarray:
        """Similarity of ``label``'s vector to every row (higher is closer).

        ``"cosine"``: cosine similarity in [-1, 1]; ``"dot"``: inner product;
        ``"euclidean"``: minus the Euclidean distance.
        """
        query = self._vectors[self._row(label)].astype(np.float64)
        vectors = self._vectors.astype(np.float64)
        if metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
            return np.divide(vectors @ query, norms, out=np.zeros(len(self)), where=norms > 0)
        if metric == "dot":
            return vectors @ query
        if metric == "euclidean":
            return -np.linalg.norm(vectors - query, axis=1)
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")

    def nearest(self, label: Any, k: int = 5, metric: str = "cosine") -> list[tuple[Any, float]]:
        """The ``k`` labels closest to ``label`` (itself excluded), as (label, similarity)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        scores = self.similarities(label, metric)
        scores[self._row(label)] = -np.inf
        order = np.argsort(-scores, kind="stable")[: min(int(k), len(self) - 1)]
        return [(self._labels[i], float(scores[i])) for i in order]

    def save(self, path: str | Path) -> Path:
        """Write the table to the directory ``path`` (created if needed).

        It holds ``vectors.safetensors`` (the float32 matrix) and ``labels.json``.
        """
        from safetensors.numpy import save_file

        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"vectors": np.ascontiguousarray(self._vectors)}, directory / _VECTORS_FILE)
        payload = {"format": _FORMAT, "dim": self.dim, "labels": list(self._labels)}
        (directory / _LABELS_FILE).write_text(json.dumps(payload, ensure_ascii=False, indent=1))
        return directory

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingTable:
        """Read a table written by :meth:`save`."""
        from safetensors.numpy import load_file

        directory = Path(path)
        labels_path, vectors_path = directory / _LABELS_FILE, directory / _VECTORS_FILE
        for required in (labels_path, vectors_path):
            if not required.is_file():
                raise FileNotFoundError(f"{required} is missing: not an EmbeddingTable directory")
        payload = json.loads(labels_path.read_text())
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"{labels_path}: 'format' must be {_FORMAT!r}")
        if not isinstance(payload.get("labels"), list):
            raise ValueError(f"{labels_path}: 'labels' must be a list")
        tensors = load_file(vectors_path)
        if set(tensors) != {"vectors"}:
            raise ValueError(
                f"{vectors_path}: expected one tensor named 'vectors', got {sorted(tensors)}"
            )
        vectors = tensors["vectors"]
        if vectors.ndim != 2 or len(vectors) != len(payload["labels"]):
            raise ValueError(
                f"{vectors_path}: vectors of shape {vectors.shape} do not match the "
                f"{len(payload['labels'])} labels of {labels_path}"
            )
        return cls(vectors, payload["labels"])
