"""The conformance suite that every prediction log backend passes (Continued Model Evaluation, 18).

In the style of Optuna's ``optuna/testing/pytest_storages.py``: a test class whose tests
need one fixture, ``prediction_log``, an empty :class:`PredictionLog` (its :attr:`url` must
open the same log in another process). A backend's test module provides it::

    @pytest.fixture
    def prediction_log(tmp_path):
        with open_prediction_log(f"sqlite:///{tmp_path}/log.db") as log:
            yield log

    class TestSQLitePredictionLog(PredictionLogConformance):
        pass

It checks that every column reads back exactly (microseconds, nulls, unicode, JSON text),
that an append is atomic (bad input writes nothing; a process killed while appending leaves
whole appends only), the ``[since, until)`` window on ``event_time``, idempotent labels whose
latest ingestion wins, DuckDB views equal to the Arrow reads (also on an empty log), four
processes appending at once (nothing lost or doubled), a closed log, clear errors for bad
rows, and a ``source`` that cannot become a path.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import pytest

from mlpatterns.serving.continued_evaluation.prediction_log import (
    PREDICTION_COLUMNS,
    LabelCounts,
    PredictionLog,
    PredictionLogError,
    arrow_schema,
    open_prediction_log,
)

__all__ = ["PredictionLogConformance", "latest_labels", "make_rows", "sorted_rows"]

T0 = dt.datetime(2024, 3, 1, 12, 0, 0, 123456)
PROCESSES, APPENDS, ROWS = 4, 20, 50
_KILLED_WRITER = """
import sys, datetime as dt
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
from mlpatterns.testing.prediction_log_conformance import make_rows
with open_prediction_log(sys.argv[1]) as log:
    log.append(make_rows(1, prefix="first"))
    print("ready", flush=True)
    for n in range(10**6):
        log.append(make_rows(int(sys.argv[2]), prefix=f"batch{n}"))
"""


def make_rows(count: int, *, prefix: str = "row", start: dt.datetime = T0, step_s: float = 1.0) -> list[tuple]:
    """``count`` prediction rows with keys ``{prefix}-{i}`` and event times ``start + i * step_s``."""
    rows = []
    for i in range(count):
        event = start + dt.timedelta(seconds=i * step_s)
        rows.append((event + dt.timedelta(microseconds=7), event, "flights", "3", f"{prefix}-{i}",
                     f'{{"distance":{i},"carrier":"AA"}}', f'{{"probability":{i / (count + 1)!r}}}',
                     i / (count + 1), str(i % 2), 1.0, "http"))
    return rows


def sorted_rows(table: Any) -> list[dict[str, Any]]:
    """An Arrow table's rows as dicts, in a fixed order."""
    return sorted(table.to_pylist(), key=lambda row: tuple(repr(value) for value in row.values()))


def latest_labels(table: Any) -> dict[str, str]:
    """The label that wins the join for each key: the latest ``labelled_at``, then the larger label."""
    best: dict[str, tuple] = {}
    for row in table.to_pylist():
        candidate = (row["labelled_at"], row["label"])
        if row["key"] not in best or candidate > best[row["key"]]:
            best[row["key"]] = candidate
    return {key: value[1] for key, value in best.items()}


def _append_worker(url: str, worker: int) -> None:
    with open_prediction_log(url) as log:
        for n in range(APPENDS):
            log.append(make_rows(ROWS, prefix=f"w{worker}-a{n}"))


class PredictionLogConformance:
    """Tests every prediction log backend passes; the test module provides a ``prediction_log`` fixture."""

    # -- reading back -------------------------------------------------------------------------------
    def test_every_column_reads_back_exactly(self, prediction_log: PredictionLog) -> None:
        text = 'a "quoted", tab\there, newline\nhere, backslash \\ and 日本語 é ✓'
        rows = [
            (T0, T0 - dt.timedelta(days=400, microseconds=1), "flights", "12", "AA|1", '{"a":null,"t":"x"}',
             '{"probability":0.25,"prediction":0}', 0.25, "0", 1.0, "http"),
            (T0 + dt.timedelta(microseconds=1), T0, "модель", "abcdef012345", None, '{"q":1}', "{}", None, None,
             0.125, "batch"),
            (T0, T0, "m", "1", text, json.dumps({"text": text}, ensure_ascii=False), "{}", -1e300, "ok", 0.5, "http"),
            (dt.datetime(2024, 3, 1, 13, 0, 0, 999999, tzinfo=dt.timezone(dt.timedelta(hours=1))), T0, "m", "1",
             "", "", "", 1.0, "", 1, "http"),
        ]
        prediction_log.append(rows)
        table = prediction_log.predictions()
        assert table.schema == arrow_schema("predictions")
        expected = [dict(zip(PREDICTION_COLUMNS, row, strict=True)) for row in rows]
        expected[3]["served_at"] = dt.datetime(2024, 3, 1, 12, 0, 0, 999999)  # +01:00 read as UTC
        expected[3]["sample_rate"] = 1.0
        assert sorted_rows(table) == sorted(expected, key=lambda r: tuple(repr(v) for v in r.values()))
        with open_prediction_log(prediction_log.url) as again:
            assert sorted_rows(again.predictions()) == sorted_rows(table)

    def test_append_columns_stores_what_append_stores(self, prediction_log: PredictionLog) -> None:
        """The logger's path (columns, no row tuples) writes the rows ``append`` would, on every backend."""
        rows = [*make_rows(3, prefix="cols"), (T0, T0, "m", "1", None, "{}", "{}", float("nan"), None, 0.5, "http")]
        prediction_log.append_columns({name: [row[i] for row in rows] for i, name in enumerate(PREDICTION_COLUMNS)})
        by_columns = sorted_rows(prediction_log.predictions())
        with open_prediction_log(prediction_log.url) as again:  # the same rows again, through append
            again.append(rows)
            both = sorted_rows(again.predictions())
        assert len(by_columns) == len(rows) and both == sorted(by_columns * 2, key=lambda r: tuple(
            repr(v) for v in r.values()))
        with pytest.raises(PredictionLogError, match="sample_rate"):
            prediction_log.append_columns({**{n: [row[i] for row in rows] for i, n in enumerate(PREDICTION_COLUMNS)},
                                           "sample_rate": ["all"] * len(rows)})

    def test_nan_prediction_reads_as_null(self, prediction_log: PredictionLog) -> None:
        row = make_rows(1)[0]
        prediction_log.append([(*row[:7], float("nan"), *row[8:])])
        assert prediction_log.predictions()["prediction"].to_pylist() == [None]

    def test_empty_log_and_empty_append(self, prediction_log: PredictionLog) -> None:
        prediction_log.append([])
        assert prediction_log.predictions().num_rows == 0
        assert prediction_log.predictions().schema == arrow_schema("predictions")
        assert prediction_log.labels().schema == arrow_schema("labels")
        assert prediction_log.labels().num_rows == 0

    # -- atomic appends -----------------------------------------------------------------------------
    def test_a_bad_row_writes_nothing(self, prediction_log: PredictionLog) -> None:
        rows = make_rows(5)
        rows[3] = rows[3][:-1]
        with pytest.raises(PredictionLogError, match=r"row 3: expected a tuple of 11 values"):
            prediction_log.append(rows)
        assert prediction_log.predictions().num_rows == 0

    @pytest.mark.parametrize(("column", "value", "expected"), [
        ("served_at", "2024-03-01T12:00:00", "expected a datetime.datetime"),
        ("event_time", 1709294400, "expected a datetime.datetime"),
        ("model", None, "expected text"),
        ("version", 3, "expected text"),
        ("key", 17, "expected text or None"),
        ("inputs", {"a": 1}, "expected text or None"),
        ("prediction", "0.5", "expected a number or None"),
        ("sample_rate", 0.0, r"expected a number in \(0, 1\]"),
        ("sample_rate", None, r"expected a number in \(0, 1\]"),
        ("source", None, "expected text"),
    ])
    def test_bad_values_name_the_column(self, prediction_log: PredictionLog, column: str, value: Any,
                                        expected: str) -> None:
        rows = [list(row) for row in make_rows(3)]
        rows[2][PREDICTION_COLUMNS.index(column)] = value
        with pytest.raises(PredictionLogError, match=rf"column '{column}' of row 2: {expected}"):
            prediction_log.append([tuple(row) for row in rows])
        assert prediction_log.predictions().num_rows == 0

    def test_a_killed_writer_leaves_whole_appends(self, prediction_log: PredictionLog) -> None:
        batch = 2000
        writer = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, prediction_log.url, str(batch)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert writer.stdout.readline().strip() == "ready"
            time.sleep(1.0)
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=60)
        with open_prediction_log(prediction_log.url) as log:
            keys = log.predictions()["key"].to_pylist()
        counts: dict[str, int] = {}
        for key in keys:
            counts[key.rsplit("-", 1)[0]] = counts.get(key.rsplit("-", 1)[0], 0) + 1
        assert counts.pop("first") == 1
        assert counts, "the writer appended no batch in a second"
        assert set(counts.values()) == {batch}, "an append was torn"

    def test_processes_append_at_once(self, prediction_log: PredictionLog) -> None:
        context = multiprocessing.get_context("spawn")
        workers = [context.Process(target=_append_worker, args=(prediction_log.url, w)) for w in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=300)
        assert [worker.exitcode for worker in workers] == [0] * PROCESSES
        keys = prediction_log.predictions()["key"].to_pylist()
        assert len(keys) == PROCESSES * APPENDS * ROWS
        assert set(keys) == {f"w{w}-a{n}-{i}" for w in range(PROCESSES) for n in range(APPENDS) for i in range(ROWS)}

    # -- windows ------------------------------------------------------------------------------------
    def test_window_is_on_event_time_since_inclusive_until_exclusive(self, prediction_log: PredictionLog) -> None:
        prediction_log.append(make_rows(10, step_s=60))  # event times T0, T0+1min, ... (served 7 us later)
        window = prediction_log.predictions(since=T0 + dt.timedelta(minutes=2), until=T0 + dt.timedelta(minutes=5))
        assert sorted(window["key"].to_pylist()) == ["row-2", "row-3", "row-4"]
        assert prediction_log.predictions(since=T0 + dt.timedelta(minutes=8)).num_rows == 2
        assert prediction_log.predictions(until=T0).num_rows == 0
        assert prediction_log.predictions(until=T0 + dt.timedelta(microseconds=1)).num_rows == 1
        aware = (T0 + dt.timedelta(minutes=2)).replace(tzinfo=dt.UTC)
        assert prediction_log.predictions(since=aware).num_rows == 8
        with pytest.raises(PredictionLogError, match="since: expected a datetime"):
            prediction_log.predictions(since="2024-03-01")

    # -- labels -------------------------------------------------------------------------------------
    def test_labels_are_idempotent(self, prediction_log: PredictionLog) -> None:
        rows = [("a", "1"), ("b", "0"), ("c", "1")]
        assert prediction_log.add_labels(rows, source="s1") == LabelCounts(added=3, changed=0, unchanged=0)
        before = prediction_log.labels()
        assert prediction_log.add_labels(rows, source="s1") == LabelCounts(added=0, changed=0, unchanged=3)
        assert sorted_rows(prediction_log.labels()) == sorted_rows(before)
        assert prediction_log.add_labels([], source="s1") == LabelCounts(0, 0, 0)
        assert before.schema == arrow_schema("labels")
        assert latest_labels(before) == {"a": "1", "b": "0", "c": "1"}
        assert set(before["source"].to_pylist()) == {"s1"}

    def test_a_changed_label_counts_and_wins(self, prediction_log: PredictionLog) -> None:
        prediction_log.add_labels([("a", "1"), ("b", "0")], source="s1")
        counts = prediction_log.add_labels([("a", "0"), ("b", "0"), ("c", "1")], source="s2")
        assert counts == LabelCounts(added=1, changed=1, unchanged=1)
        assert latest_labels(prediction_log.labels()) == {"a": "0", "b": "0", "c": "1"}
        # the latest ingestion wins, also when it brings back an older source's label
        assert prediction_log.add_labels([("a", "1")], source="s1") == LabelCounts(0, 1, 0)
        assert latest_labels(prediction_log.labels())["a"] == "1"
        with open_prediction_log(prediction_log.url) as again:
            assert latest_labels(again.labels()) == {"a": "1", "b": "0", "c": "1"}

    def test_a_key_twice_in_one_call_keeps_its_last_label(self, prediction_log: PredictionLog) -> None:
        assert prediction_log.add_labels([("a", "1"), ("a", "0")], source="s1") == LabelCounts(1, 0, 0)
        assert latest_labels(prediction_log.labels()) == {"a": "0"}

    @pytest.mark.parametrize("source", ["../escape", "a/b", "/abs", "..", ".hidden", "", "x" * 129, None, "a b"])
    def test_a_source_cannot_be_a_path(self, prediction_log: PredictionLog, source: Any) -> None:
        with pytest.raises(PredictionLogError, match="source: expected the sha256 hex"):
            prediction_log.add_labels([("a", "1")], source=source)
        assert prediction_log.labels().num_rows == 0

    @pytest.mark.parametrize(("rows", "expected"), [
        ([("a", 1)], "column 'label' of row 0: expected text"),
        ([("a", None)], "column 'label' of row 0: expected text"),
        ([(None, "1")], "column 'key' of row 0: expected text"),
        ([("a", "1"), ("b",)], r"row 1: expected a \(key, label\) pair"),
    ])
    def test_bad_labels_are_refused(self, prediction_log: PredictionLog, rows: Sequence[tuple], expected: str) -> None:
        with pytest.raises(PredictionLogError, match=expected):
            prediction_log.add_labels(rows, source="s1")
        assert prediction_log.labels().num_rows == 0

    # -- DuckDB -------------------------------------------------------------------------------------
    def test_views_equal_the_arrow_reads(self, prediction_log: PredictionLog) -> None:
        import duckdb

        prediction_log.append(make_rows(30, step_s=3600))
        prediction_log.append(make_rows(5, prefix="more"))
        prediction_log.add_labels([(f"row-{i}", str(i % 3)) for i in range(20)], source="s1")
        prediction_log.add_labels([("row-1", "9"), ("other", "1")], source="s2")
        con = duckdb.connect()
        prediction_log.register(con)
        for table, arrow in (("predictions", prediction_log.predictions()), ("labels", prediction_log.labels())):
            viewed = con.sql(f"SELECT * FROM {table}").to_arrow_table()
            assert viewed.schema.names == arrow.schema.names
            assert sorted_rows(viewed.cast(arrow.schema)) == sorted_rows(arrow)
        since, until = T0 + dt.timedelta(hours=5), T0 + dt.timedelta(hours=12)
        counted = con.execute("SELECT count(*) FROM predictions WHERE event_time >= ? AND event_time < ?",
                              [since, until]).fetchall()[0][0]
        assert counted == prediction_log.predictions(since, until).num_rows == 7
        joined = con.execute("SELECT count(*) FROM predictions p JOIN (SELECT key, arg_max(label, (labelled_at, label)) "
                         "AS label FROM labels GROUP BY key) l USING (key)").fetchall()[0][0]
        assert joined == 20

    def test_views_of_an_empty_log_have_the_schema(self, prediction_log: PredictionLog) -> None:
        import duckdb

        con = duckdb.connect()
        prediction_log.register(con)
        for table in ("predictions", "labels"):
            described = con.sql(f"DESCRIBE {table}").fetchall()
            assert [row[0] for row in described] == arrow_schema(table).names
            types = {row[0]: row[1] for row in described}
            assert types[table == "predictions" and "event_time" or "labelled_at"] == "TIMESTAMP"
            assert con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] == 0

    # -- closing ------------------------------------------------------------------------------------
    def test_a_closed_log_refuses_calls(self, prediction_log: PredictionLog) -> None:
        log = open_prediction_log(prediction_log.url)
        log.append(make_rows(2))
        log.close()
        log.close()
        assert log.closed
        for call in (lambda: log.append(make_rows(1)), lambda: log.add_labels([("a", "1")], source="s"),
                     lambda: log.predictions(), lambda: log.labels()):
            with pytest.raises(PredictionLogError, match="on a closed log"):
                call()
        assert prediction_log.predictions().num_rows == 2
