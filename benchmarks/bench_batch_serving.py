"""Batch Serving (17): ``predict_file`` against ONNX Runtime alone, and its memory on 10 million rows.

Speed. The flights test rows (``runs/flights/test.parquet``, written by
``mlpatterns run examples/flights.yaml``) are repeated to ``ROWS`` rows
(``MLPATTERNS_BENCH_ROWS``, default 500,000) with a unique ``flight`` number, so that
every key is distinct, and written to Parquet and to CSV. The baseline is the model
alone: ONNX Runtime's ``session.run`` on the feature matrix already transformed (a
session of the bundle's model file, one thread as served), chunk by chunk as ``predict_file`` runs
it. Each ``predict_file`` row does everything a batch run does: read the file,
conform the types, transform, run that same model, count duplicate keys and unseen
categories, and write keys and predictions. ``vs_onnxruntime`` is its throughput over
the baseline's (issue 11's target: at least 0.5); ``cpu_vs_onnxruntime`` the same ratio in
CPU seconds (every thread of the process), which a busy machine disturbs less: the
model runs on a second thread while the next chunk is prepared, so the wall-clock ratio
is the higher one when a core is free. Each figure is the best of ``REPEATS`` runs, the
baseline measured between them.

Memory. ``MEMORY_ROWS`` rows (``MLPATTERNS_BENCH_MEMORY_ROWS``, default 10 million;
0 skips it) of the same test rows, unique keys, in one Parquet file in a temporary
folder; ``mlpatterns predict`` scores it in a child process, and the row gives its peak
resident set size (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the child alone) against
issue 11's bound of 1 GB.

``BUNDLE`` (``MLPATTERNS_BENCH_BUNDLE``) defaults to the flights gradient-boosted bundle.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("MLPATTERNS_BENCH_ROWS", 500_000))
MEMORY_ROWS = int(os.environ.get("MLPATTERNS_BENCH_MEMORY_ROWS", 10_000_000))
BUNDLE = Path(os.environ.get("MLPATTERNS_BENCH_BUNDLE", ROOT / "runs/flights/bundles/gradient_boosting"))
TEST_ROWS = BUNDLE.parent.parent / "test.parquet"
CHUNK_ROWS = 100_000
REPEATS = 3


def repeated_rows(rows: int, path: Path, *, batch_rows: int = 1_000_000) -> None:
    """The flights test rows repeated to ``rows`` rows with unique flight numbers, as Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    test = pq.read_table(TEST_ROWS)
    block = pa.concat_tables([test] * -(-min(rows, batch_rows) // test.num_rows))
    where = block.schema.get_field_index("flight")
    with pq.ParquetWriter(path, block.schema) as writer:
        for start in range(0, rows, batch_rows):
            size = min(batch_rows, rows - start)
            piece = block.slice(0, size)
            writer.write_table(piece.set_column(where, "flight", pa.array(np.arange(start, start + size))))


def _timed(function: Any) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process's threads, DuckDB's and ONNX Runtime's included)."""
    started, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started, time.process_time() - cpu


def speed() -> list[dict[str, Any]]:
    import pandas as pd

    from mlpatterns.serving.keyed_predictions import predict_file
    from mlpatterns.serving.stateless_serving_function import ServingFunction, good_rows
    from mlpatterns.tables import iter_frames

    serving = ServingFunction.load(BUNDLE)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        parquet, csv = folder / "rows.parquet", folder / "rows.csv"
        repeated_rows(ROWS, parquet)
        pd.read_parquet(parquet).to_csv(csv, index=False)
        matrices = []
        for frame in iter_frames(parquet, CHUNK_ROWS)[1]:
            conformed, problems = serving.conform(frame)
            matrices.append(serving.features(conformed.iloc[good_rows(len(frame), problems)]).matrix())
        session = onnx_session(serving)
        name = session.get_inputs()[0].name

        def onnxruntime() -> None:
            for matrix in matrices:
                session.run(None, {name: matrix})

        cases = {
            "parquet -> parquet": (parquet, folder / "out.parquet"),
            "csv -> csv": (csv, folder / "out.csv"),
            "parquet -> sqlite": (parquet, folder / "out.sqlite"),
        }
        wall: dict[str, float] = {}
        cpu: dict[str, float] = {}

        def measure(case: str, function: Any) -> None:
            took, used = _timed(function)
            wall[case], cpu[case] = min(wall.get(case, took), took), min(cpu.get(case, used), used)

        for _ in range(REPEATS):
            measure("onnxruntime", onnxruntime)
            for case, (source, target) in cases.items():
                measure(case, lambda s=source, t=target: predict_file(serving, s, t, overwrite=True,
                                                                      chunk_rows=CHUNK_ROWS))
            measure("onnxruntime", onnxruntime)
        rows.append({"case": "ONNX Runtime session.run, transformed matrix", "rows": ROWS,
                     "rows_per_s": ROWS / wall["onnxruntime"], "vs_onnxruntime": 1.0, "cpu_vs_onnxruntime": 1.0})
        for case in cases:
            rows.append({"case": f"predict_file {case}", "rows": ROWS, "rows_per_s": ROWS / wall[case],
                         "vs_onnxruntime": wall["onnxruntime"] / wall[case],
                         "cpu_vs_onnxruntime": cpu["onnxruntime"] / cpu[case]})
    return rows


def onnx_session(serving: Any) -> Any:
    """An ONNX Runtime session of the bundle's model file, with the options a bundle is served with."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("MLPATTERNS_ONNX_THREADS", "1"))
    model = serving.bundle.manifest["model"]["file"]
    return ort.InferenceSession(serving.bundle.files[model], options, providers=["CPUExecutionProvider"])


def memory() -> list[dict[str, Any]]:
    if MEMORY_ROWS <= 0:
        return []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        source, target = folder / "rows.parquet", folder / "scores.parquet"
        started = time.perf_counter()
        repeated_rows(MEMORY_ROWS, source)
        print(f"wrote {MEMORY_ROWS:,} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        started = time.perf_counter()
        command = [str(Path(sys.executable).parent / "mlpatterns"), "predict", str(BUNDLE), str(source), str(target)]
        done = subprocess.run(command,
                              capture_output=True, text=True, check=False)
        took = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if done.returncode != 0:
            raise RuntimeError(f"mlpatterns predict failed ({done.returncode}): {done.stderr[-2000:]}")
        if peak <= before:
            print("the child's peak is not above an earlier child's: the figure is a bound", file=sys.stderr)
        return [{"case": f"mlpatterns predict, {MEMORY_ROWS:,} rows, parquet -> parquet", "rows": MEMORY_ROWS,
                 "rows_per_s": MEMORY_ROWS / took, "peak_rss_mb": peak / 1024, "bound_mb": 1024,
                 "input_mb": source.stat().st_size / 2**20}]


def run() -> list[dict[str, Any]]:
    if not BUNDLE.is_dir() or not TEST_ROWS.is_file():
        raise SystemExit(f"{BUNDLE} or {TEST_ROWS} is missing: run `mlpatterns run examples/flights.yaml` first")
    return speed() + memory()


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    print(format_table(run()))
