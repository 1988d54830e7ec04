"""Keyed Predictions (20) in batch: score a file, every output row carrying its input's key.

Problem: batch and asynchronous predictions come back split across workers or in
another order, and a client cannot match an output to its input.

Solution: the client's key columns pass through the stateless serving function
unchanged, next to each prediction. :func:`predict_file` streams a CSV or Parquet
file through a bundle in chunks (with progress), writes keys and predictions,
and writes every bad row, with its position, column and problem, to an errors
file instead of dropping it silently.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.tables import iter_frames

__all__ = ["PredictionSummary", "predict_file"]


@dataclass(frozen=True)
class PredictionSummary:
    rows: int
    predicted: int
    bad_rows: int
    output: Path
    errors: Path | None


class _Writer:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = "parquet" if path.name.lower().endswith(".parquet") else "csv"
        if self.kind == "csv" and not path.name.lower().endswith(".csv"):
            raise ValueError(f"{path}: expected a .csv or .parquet output file")
        self._parquet: Any = None
        self._started = False

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "csv":
            frame.to_csv(self.path, mode="a" if self._started else "w", header=not self._started, index=False)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self._started = True

    def close(self, empty_columns: list[str]) -> None:
        if not self._started:
            self.write(pd.DataFrame({c: [] for c in empty_columns}))
        if self._parquet is not None:
            self._parquet.close()

    def abort(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        self.path.unlink(missing_ok=True)


def predict_file(
    bundle: str | os.PathLike[str] | ServingFunction,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    chunk_rows: int = 100_000,
    progress: Any = None,
) -> PredictionSummary:
    """Score ``input_path`` with a bundle; write keyed predictions and an errors file.

    The errors file (``<output>.errors.csv``) lists each bad row's position in the
    input (0-based), the column and the problem; it is only written when there
    are bad rows. Missing input columns, or any other error, stop the run and leave
    no output file behind. CSV input is read as text and converted to the types the
    model was trained on (see :meth:`ServingFunction.conform`).
    """
    serving = bundle if isinstance(bundle, ServingFunction) else ServingFunction.load(bundle)
    input_path, output_path = Path(input_path), Path(output_path)
    total, frames = iter_frames(input_path, chunk_rows)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    errors_path = output_path.with_name(output_path.name + ".errors.csv")
    errors_path.unlink(missing_ok=True)
    writer = _Writer(output_path)
    task_id = progress.add_task(f"scoring {input_path.name}", total=total) if progress else None
    position = predicted = bad = 0
    add_row_key = not serving.key_columns
    try:
        for frame in frames:
            result, problems = serving.predict_good_rows(frame)
            if add_row_key:
                good = sorted(set(range(len(frame))) - {p.row for p in problems})
                result.insert(0, "row", [position + i for i in good])
            writer.write(result)
            if problems:
                pd.DataFrame(
                    [{"row": position + p.row, "column": p.column, "problem": p.problem} for p in problems]
                ).to_csv(errors_path, mode="a", header=not errors_path.exists(), index=False)
            bad += len({p.row for p in problems})
            predicted += len(result)
            position += len(frame)
            if progress is not None:
                progress.advance(task_id, len(frame))
        writer.close((["row"] if add_row_key else []) + serving.key_columns + serving.output_columns)
    except BaseException:
        writer.abort()  # no half-written output is left behind
        errors_path.unlink(missing_ok=True)
        raise
    return PredictionSummary(position, predicted, bad, output_path, errors_path if bad else None)
