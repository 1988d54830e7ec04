"""Metrics per virtual epoch and their learning curves (Checkpoints, pattern 12).

The history is how one picks the checkpoint to keep: the validation curve shows where the
model stopped improving (early stopping), and a curve that rises again shows overfitting.
It is saved in every checkpoint, so a resumed run keeps the curve of the whole run.

Examples
--------
>>> history = History([{"epoch": 1, "train_loss": 0.9, "valid_loss": 0.8},
...                    {"epoch": 2, "train_loss": 0.7, "valid_loss": 0.75},
...                    {"epoch": 3, "train_loss": 0.6, "valid_loss": 0.78}], monitor="valid_loss")
>>> history["valid_loss"]
[0.8, 0.75, 0.78]
>>> history.best_epoch
2
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

__all__ = ["History", "plot_learning_curves"]

_NOT_PLOTTED = {"epoch", "step", "examples"}


class History:
    """One record per virtual epoch: ``epoch``, ``step``, ``examples``, ``lr``, ``train_loss``,
    ``valid_loss`` and each metric of the trainer.

    ``history[i]`` is the i-th record (a dict), ``history["valid_loss"]`` the column;
    ``best_epoch`` is the epoch with the best ``monitor`` value (``mode`` "min" or "max").
    """

    def __init__(self, records: Iterable[dict[str, Any]] = (), monitor: str | None = None, mode: str = "min") -> None:
        self.records = [dict(record) for record in records]
        self.monitor, self.mode = monitor, mode

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return [record.get(key) for record in self.records]
        return self.records[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self.records == other.records

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.items())
        return f"History({len(self)} epochs; last: {shown})"

    def append(self, record: dict[str, Any]) -> None:
        self.records.append(dict(record))

    @property
    def columns(self) -> list[str]:
        names: list[str] = []
        for record in self.records:
            names += [name for name in record if name not in names]
        return names

    @property
    def best_epoch(self) -> int | None:
        """The epoch of the best ``monitor`` value (the first one on ties); None if unknown."""
        if self.monitor is None:
            return None
        scored = [
            (r[self.monitor], r["epoch"])
            for r in self.records
            if isinstance(r.get(self.monitor), (int, float)) and not math.isnan(r[self.monitor])
        ]
        if not scored:
            return None
        best = min(v for v, _ in scored) if self.mode == "min" else max(v for v, _ in scored)
        return next(epoch for value, epoch in scored if value == best)

    def to_frame(self) -> Any:
        """The records as a pandas DataFrame, one row per epoch."""
        import pandas as pd

        return pd.DataFrame(self.records, columns=self.columns)

    def plot(self, path: str | os.PathLike | None = None, *, metrics: Sequence[str] | None = None) -> Any:
        """Learning curves; see :func:`plot_learning_curves`."""
        return plot_learning_curves(self, path, metrics=metrics)


def plot_learning_curves(
    history: History | Iterable[dict[str, Any]],
    path: str | os.PathLike | None = None,
    *,
    metrics: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    """Plot the losses (train and validation on one panel) and each other metric per epoch.

    The learning rate gets a panel when it changes.
    The best epoch of the history's monitored metric is marked. The figure is saved as a
    PNG at ``path`` when given, and returned. Needs matplotlib (``mlpatterns[plot]``);
    set ``MPLBACKEND=Agg`` where there is no display.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:  # pragma: no cover - depends on the install
        raise ImportError("learning curves need matplotlib: pip install 'mlpatterns[plot]'") from error
    if not isinstance(history, History):
        history = History(history)
    if not len(history):
        raise ValueError("history: no epochs to plot")
    columns = [c for c in history.columns if c not in _NOT_PLOTTED]
    if metrics is not None:
        unknown = sorted(set(metrics) - set(columns))
        if unknown:
            raise ValueError(f"metrics: {unknown} are not in the history; it has {columns}")
        columns = list(metrics)
    elif "lr" in columns and len(set(history["lr"])) <= 1:  # a constant learning rate says nothing
        columns.remove("lr")
    losses = [c for c in columns if c.endswith("loss")]
    panels = ([losses] if losses else []) + [[c] for c in columns if c not in losses]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.5), squeeze=False)
    epochs = history["epoch"]
    best = history.best_epoch
    for axis, names in zip(axes[0], panels, strict=True):
        for name in names:
            values = [math.nan if v is None else v for v in history[name]]
            axis.plot(epochs, values, marker="o", markersize=3, label=name)
        if best is not None:
            axis.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"best ({history.monitor})")
        axis.set_xlabel("virtual epoch")
        axis.set_title(names[0] if len(names) == 1 else "loss")
        axis.legend(fontsize="small")
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    if path is not None:
        figure.savefig(os.fspath(path), format="png", dpi=100)
    return figure
