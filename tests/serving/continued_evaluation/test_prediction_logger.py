"""The prediction logger: cheap on the request path, bounded and counted loss (Continued Model Evaluation, 18)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mlpatterns.reproducibility.split_keys import row_key_text
from mlpatterns.serving.continued_evaluation.prediction_log import (
    PredictionLogError,
    open_prediction_log,
)
from mlpatterns.serving.continued_evaluation.prediction_log.files import ParquetPredictionLog
from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger

BINARY = {"task": "classification", "model": "flights", "version": "3", "source": "http"}


@pytest.fixture
def log(tmp_path):
    with open_prediction_log(tmp_path / "log") as log:
        yield log


def test_rows_are_in_the_log_after_flush(log):
    logger = PredictionLogger(log, flush_interval_s=60)
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [{"carrier": "AA", "flight": 17, "distance": np.float64(1.5), "when": "2024-01-02T03:04:05+01:00",
             "note": "日本", "missing": float("nan")}]
    assert logger.log_rows(rows=rows, outputs=[{"probability": np.float32(0.75), "prediction": np.int64(1)}],
                           key_columns=("carrier", "flight"), event_time_column="when", **BINARY) == 1
    assert log.predictions().num_rows == 0
    assert logger.flush() == 1
    (row,) = log.predictions().to_pylist()
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert before <= row["served_at"] <= after
    assert row["event_time"] == dt.datetime(2024, 1, 2, 2, 4, 5)
    assert row["key"] == row_key_text(rows[0], ["carrier", "flight"], separator="|") == "AA|17"
    assert json.loads(row["inputs"]) == {"carrier": "AA", "flight": 17, "distance": 1.5,
                                         "when": "2024-01-02T03:04:05+01:00", "note": "日本", "missing": None}
    assert '"note":"日本"' in row["inputs"] and " " not in row["outputs"]
    assert json.loads(row["outputs"]) == {"probability": 0.75, "prediction": 1}
    assert (row["prediction"], row["predicted_label"], row["sample_rate"]) == (0.75, "1", 1.0)
    assert (row["model"], row["version"], row["source"]) == ("flights", "3", "http")
    logger.close()
    assert not log.closed  # the caller's log stays open


@pytest.mark.parametrize(("task", "output", "prediction", "label"), [
    ("regression", {"prediction": 12.5, "q10": 3.0}, 12.5, None),
    ("multiclass", {"probability_a": 0.2, "probability_b": 0.8, "prediction": "b"}, None, "b"),
    ("multilabel", {"probability_x": 0.4, "prediction_x": 0}, None, None),
    ("classification", {"probability": float("nan"), "prediction": 0}, None, "0"),
])
def test_prediction_and_label_by_task(log, task, output, prediction, label):
    with PredictionLogger(log, flush_interval_s=60) as logger:
        logger.log_rows(model="m", version="1", source="batch", rows=[{"x": 1}], outputs=[output], task=task)
    (row,) = log.predictions().to_pylist()
    assert (row["prediction"], row["predicted_label"], row["key"], row["source"]) == (prediction, label, None, "batch")
    assert row["event_time"] == row["served_at"]


def test_event_times_of_every_kind_and_bad_ones_counted(log):
    times = [dt.datetime(2024, 5, 1, 8, 30, 0, 5), dt.date(2024, 5, 2), "2024-05-03T00:00:00Z", "not a time", None,
             dt.datetime(2024, 5, 4, 12, tzinfo=dt.timezone(dt.timedelta(hours=-2)))]
    with PredictionLogger(log, flush_interval_s=60) as logger:
        logger.log_rows(rows=[{"i": i, "at": t} for i, t in enumerate(times)], outputs=[{}] * len(times),
                        event_time_column="at", **BINARY)
        logger.log_rows(rows=[{"i": 9}], outputs=[{}], event_time_column="at", **BINARY)  # column missing
    assert logger.invalid_event_times == 3
    rows = {json.loads(r["inputs"])["i"]: r for r in log.predictions().to_pylist()}
    assert [rows[i]["event_time"] for i in (0, 1, 2, 5)] == [
        dt.datetime(2024, 5, 1, 8, 30, 0, 5), dt.datetime(2024, 5, 2), dt.datetime(2024, 5, 3),
        dt.datetime(2024, 5, 4, 14)]
    assert all(rows[i]["event_time"] == rows[i]["served_at"] for i in (3, 4, 9))


def test_close_loses_nothing(tmp_path):
    logger = PredictionLogger(str(tmp_path / "log"), flush_interval_s=60)
    for i in range(1000):
        logger.log_rows(rows=[{"i": i}], outputs=[{"probability": 0.5, "prediction": 1}], **BINARY)
    logger.close()
    logger.close()
    assert logger.log.closed  # opened from a URL, so closed with the logger
    assert (logger.written_rows, logger.dropped_rows) == (1000, 0)
    with open_prediction_log(tmp_path / "log") as log:
        assert sorted(json.loads(r)["i"] for r in log.predictions()["inputs"].to_pylist()) == list(range(1000))
    with pytest.raises(PredictionLogError, match="closed"):
        logger.log_rows(rows=[{"i": 0}], outputs=[{}], **BINARY)


def test_the_thread_flushes_within_the_interval(log):
    with PredictionLogger(log, flush_interval_s=0.2) as logger:
        logger.log_rows(rows=[{"i": 1}], outputs=[{}], **BINARY)
        start = time.monotonic()
        while log.predictions().num_rows == 0 and time.monotonic() - start < 5:
            time.sleep(0.01)
        waited = time.monotonic() - start
    assert log.predictions().num_rows == 1
    assert waited < 0.2 + 0.5  # the interval, plus one append and a busy machine's slack


_KILLED = """
import sys, time
from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger
logger = PredictionLogger(sys.argv[1], flush_interval_s=float(sys.argv[2]))
print("ready", flush=True)
i = 0
while True:
    logger.log_rows(model="m", version="1", source="http", task="regression",
                    rows=[{"i": i, "t": time.time()}], outputs=[{"prediction": 0.0}])
    i += 1
    time.sleep(0.002)
"""


def test_sigkill_loses_at_most_the_last_interval(tmp_path):
    """A process killed while logging keeps every row logged before its last flush interval (plus
    the time one append takes): the rows kept are a gapless prefix, the last of them logged at most
    ``flush_interval_s`` plus slack before the kill."""
    interval = 0.25
    url = str(tmp_path / "log")
    child = subprocess.Popen([sys.executable, "-c", _KILLED, url, str(interval)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(2.5 * interval * 4)
    finally:
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with open_prediction_log(url) as log:
        kept = sorted((json.loads(r)["i"], json.loads(r)["t"]) for r in log.predictions()["inputs"].to_pylist())
    assert kept, "nothing was flushed in 2.5 s"
    assert [i for i, _ in kept] == list(range(len(kept)))  # nothing lost before the last flush
    assert killed_at - kept[-1][1] < interval + 0.75  # loss bound: one interval + one append (+ a busy machine)


_LOGS_THEN_WAITS = """
import sys, time
from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger
logger = PredictionLogger(sys.argv[1], flush_interval_s=float(sys.argv[2]))
for i in range(500):
    logger.log_rows(model="m", version="1", source="http", task="regression", rows=[{"i": i}],
                    outputs=[{"prediction": 0.0}])
print("logged", flush=True)
time.sleep(600)
"""


def test_sigkill_after_two_intervals_keeps_everything(tmp_path):
    interval = 0.2
    url = str(tmp_path / "log")
    child = subprocess.Popen([sys.executable, "-c", _LOGS_THEN_WAITS, url, str(interval)], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout.readline().strip() == "logged"
        time.sleep(2.5 * interval + 0.5)  # no flush(), no close(): only the thread writes (+ one append's time)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    with open_prediction_log(url) as log:
        assert sorted(json.loads(r)["i"] for r in log.predictions()["inputs"].to_pylist()) == list(range(500))


def test_sampling_keeps_the_rate_and_is_deterministic_per_key(tmp_path):
    keys = [{"flight": f"F{i}", "x": i} for i in range(20_000)]
    kept = {}
    for rate in (0.3, 0.6):
        for run in range(2):
            with PredictionLogger(str(tmp_path / f"log-{rate}-{run}"), flush_interval_s=60,
                                  sample_rate=rate) as logger:
                count = sum(logger.log_rows(rows=keys[i:i + 100], outputs=[{}] * 100, key_columns=("flight",),
                                            **BINARY) for i in range(0, len(keys), 100))
            assert logger.sampled_out_rows == len(keys) - count
            with open_prediction_log(tmp_path / f"log-{rate}-{run}") as log:
                table = log.predictions()
                kept[rate, run] = set(table["key"].to_pylist())
                assert set(table["sample_rate"].to_pylist()) == {rate}
            assert abs(len(kept[rate, run]) / len(keys) - rate) < 0.02
    assert kept[0.3, 0] == kept[0.3, 1] and kept[0.6, 0] == kept[0.6, 1]  # a key is always in or always out
    assert kept[0.3, 0] < kept[0.6, 0]  # kept at a rate, kept at every higher rate


def test_sampling_without_a_key_is_random_at_the_rate(log):
    with PredictionLogger(log, flush_interval_s=60, sample_rate=0.25) as logger:
        kept = sum(logger.log_rows(rows=[{"i": i}], outputs=[{}], **BINARY) for i in range(20_000))
    assert abs(kept / 20_000 - 0.25) < 0.02
    assert log.predictions().num_rows == kept


def test_a_full_buffer_drops_and_counts_without_blocking(log):
    with PredictionLogger(log, flush_interval_s=60, max_buffer_rows=10) as logger:
        took = []
        for i in range(25):
            start = time.perf_counter()
            logger.log_rows(rows=[{"i": i}], outputs=[{}], **BINARY)
            took.append(time.perf_counter() - start)
        assert logger.log_rows(rows=[{"i": 99}, {"i": 100}], outputs=[{}, {}], **BINARY) == 0
        assert (logger.buffered_rows, logger.dropped_rows) == (10, 17)
        assert max(took) < 0.05
        logger.flush()
        assert logger.log_rows(rows=[{"i": 7}] * 12, outputs=[{}] * 12, **BINARY) == 10  # room again, part kept
        assert logger.dropped_rows == 19
    assert log.predictions().num_rows == 20


class _FlakyLog(ParquetPredictionLog):
    failures = 1

    def _append(self, columns, rows):
        if self.failures:
            self.failures -= 1
            raise OSError("disk full")
        super()._append(columns, rows)


def test_a_failed_write_is_retried(tmp_path):
    log = _FlakyLog(tmp_path / "log")
    logger = PredictionLogger(log, flush_interval_s=60)
    logger.log_rows(rows=[{"i": 1}, {"i": 2}], outputs=[{}, {}], **BINARY)
    with pytest.raises(OSError, match="disk full"):
        logger.flush()
    assert logger.buffered_rows == 2
    logger.log_rows(rows=[{"i": 3}], outputs=[{}], **BINARY)
    logger.close()
    assert sorted(json.loads(r)["i"] for r in log.predictions()["inputs"].to_pylist()) == [1, 2, 3]
    assert logger.dropped_rows == 0


def test_threads_log_at_once(log):
    threads, calls = 8, 400
    with PredictionLogger(log, flush_interval_s=0.05) as logger:
        def work(t):
            for n in range(calls):
                logger.log_rows(rows=[{"t": t, "n": n, "r": 0}, {"t": t, "n": n, "r": 1}], outputs=[{}, {}],
                                key_columns=("t", "n", "r"), **BINARY)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    keys = log.predictions()["key"].to_pylist()
    assert len(keys) == threads * calls * 2 == logger.written_rows
    assert set(keys) == {f"{t}|{n}|{r}" for t in range(threads) for n in range(calls) for r in (0, 1)}


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("flush_interval_s", 0, "flush_interval_s: expected a number > 0"),
    ("max_buffer_rows", -1, "max_buffer_rows: expected a number > 0"),
    ("sample_rate", 0, r"sample_rate: expected a number in \(0, 1\]"),
    ("sample_rate", 1.5, r"sample_rate: expected a number in \(0, 1\]"),
])
def test_bad_options(log, option, value, expected):
    with pytest.raises(PredictionLogError, match=expected):
        PredictionLogger(log, **{option: value})


def test_outputs_must_match_the_rows(log):
    with PredictionLogger(log) as logger, pytest.raises(PredictionLogError, match=r"one per input row \(2\), got 1"):
        logger.log_rows(rows=[{"i": 1}, {"i": 2}], outputs=[{}], **BINARY)


def test_keys_are_the_row_key_text_of_the_key_columns(log):
    rows = [{"a": "x", "b": 1, "c": 1.0}, {"a": "y", "b": None, "c": 2.5}, {"a": "日本", "b": np.int64(-3), "c": True},
            {"a": "z", "b": 4}]
    with PredictionLogger(log, flush_interval_s=60) as logger:
        logger.log_rows(rows=rows, outputs=[{}] * 4, key_columns=("a", "b", "c"), **BINARY)
        logger.log_rows(rows=rows[:3], outputs=[{}] * 3, key_columns=("c",), **BINARY)
    keys = sorted(log.predictions()["key"].to_pylist(), key=str)
    expected = [row_key_text(row, ["a", "b", "c"], separator="|") for row in rows[:3]] + [None]  # "c" missing: null
    expected += [row_key_text(row, "c") for row in rows[:3]]
    assert keys == sorted(expected, key=str)


def test_inputs_and_outputs_are_json_with_nan_as_null(log):
    rows = [{"n": np.float64("nan"), "l": [1.0, float("inf")], "d": {"x": float("-inf")}, "a": np.array([1, 2]),
             "t": dt.datetime(2024, 1, 1, 5), "i": np.int32(4)}]
    with PredictionLogger(log, flush_interval_s=60) as logger:
        logger.log_rows(rows=rows, outputs=[{"probability": np.float32("nan"), "prediction": np.int64(0)}], **BINARY)
    (row,) = log.predictions().to_pylist()
    assert json.loads(row["inputs"]) == {"n": None, "l": [1.0, None], "d": {"x": None}, "a": [1, 2],
                                         "t": "2024-01-01T05:00:00", "i": 4}
    assert row["outputs"] == '{"probability":null,"prediction":0}' and row["prediction"] is None


@pytest.mark.parametrize(("field", "value"), [("model", None), ("version", 3), ("source", b"http")])
def test_request_fields_must_be_text(log, field, value):
    with PredictionLogger(log, flush_interval_s=60) as logger:
        with pytest.raises(PredictionLogError, match=f"{field}: expected text"):
            logger.log_rows(rows=[{"i": 1}], outputs=[{}], **{**BINARY, field: value})
        assert logger.buffered_rows == 0


def test_a_refusing_log_drops_and_counts(log):
    logger = PredictionLogger(log, flush_interval_s=60)
    logger.log_rows(rows=[{"flight": "a"}], outputs=[{"prediction": [1, 2]}], key_columns="flight", **BINARY)
    log.close()
    with pytest.raises(PredictionLogError, match="closed log"):
        logger.flush()
    assert (logger.dropped_rows, logger.buffered_rows) == (1, 0)
    logger.close()
