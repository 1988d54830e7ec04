"""Compaction of the Parquet prediction log (Continued Model Evaluation, 18): the rows read after a
compaction are the rows read before (Arrow reads and DuckDB views), a reader in another process
never sees a row twice or loses one while writers append and compactions run, a crash at any step
loses or doubles nothing once compaction runs again, two compactions do not collide, stale
temporary files go, fresh ones stay, and labels are left alone."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mlpatterns.serving.continued_evaluation.prediction_log import (
    PredictionLogError,
    open_prediction_log,
)
from mlpatterns.serving.continued_evaluation.prediction_log import parquet_compaction as pc
from mlpatterns.serving.continued_evaluation.prediction_log.files import ParquetPredictionLog
from mlpatterns.testing.postgres import fresh_schema_url
from mlpatterns.testing.prediction_log_conformance import T0, make_rows, sorted_rows

POSTGRES_URL = os.environ.get("MLPATTERNS_TEST_POSTGRES_URL")
NOW = dt.timedelta(0)
HOUR = dt.timedelta(hours=1)


def fill(log: ParquetPredictionLog, appends: int = 12, rows: int = 20, prefix: str = "a") -> None:
    """``appends`` files whose event times cross midnight (two or three UTC days)."""
    for n in range(appends):
        log.append(make_rows(rows, prefix=f"{prefix}{n}", start=T0 + dt.timedelta(hours=3 * n), step_s=600))


def views(log: ParquetPredictionLog) -> dict[str, list[dict]]:
    import duckdb

    con = duckdb.connect()
    log.register(con)
    return {table: sorted_rows(con.sql(f"SELECT * FROM {table}").to_arrow_table()) for table in ("predictions", "labels")}


def reads(log: ParquetPredictionLog) -> dict[str, object]:
    since, until = T0 + dt.timedelta(hours=10), T0 + dt.timedelta(hours=30)
    return {"all": sorted_rows(log.predictions()), "window": sorted_rows(log.predictions(since, until)),
            "labels": sorted_rows(log.labels()), "views": views(log)}


def live_files(log: ParquetPredictionLog) -> list[str]:
    return sorted(p.name for p in (log.root / "predictions").glob("*.parquet"))


def compacted_files(log: ParquetPredictionLog) -> list[str]:
    return sorted(p.name for p in (log.root / "predictions" / pc.COMPACTED).iterdir())


def age(paths: list[Path], seconds: float) -> None:
    for path in paths:
        stamp = time.time() - seconds
        os.utime(path, (stamp, stamp))


@pytest.fixture
def log(tmp_path):
    with open_prediction_log(tmp_path / "log") as opened:
        yield opened


# -- every read is the same ---------------------------------------------------------------------------
def test_compaction_keeps_every_row_and_writes_a_sorted_file_per_day(log):
    import pyarrow.parquet as pq

    fill(log)
    log.add_labels([(f"a{n}-{i}", str(i % 2)) for n in range(12) for i in range(0, 20, 3)], source="s1")
    labels_before = sorted(p.name for p in (log.root / "labels").iterdir())
    before = reads(log)
    result = log.compact(older_than=NOW, grace=HOUR)
    assert (result.files_merged, result.rows, result.files_written) == (12, 240, 3)
    assert result.bytes_before > 0 and result.bytes_after > 0 and not result.skipped
    assert str(result).startswith("merged 12 file(s)")
    assert reads(log) == before
    manifest = pc.read_manifest(log.root / "predictions")
    assert sorted(manifest["files"]) == ["2024-03-01", "2024-03-02", "2024-03-03"]
    assert sorted(manifest["hidden"]) == live_files(log)  # kept for the grace, hidden from reads
    for name in manifest["files"].values():
        table = pq.read_table(log.root / "predictions" / pc.COMPACTED / name)
        times = table["event_time"].to_pylist()
        assert times == sorted(times) and {t.date().isoformat() for t in times} == {name[:10]}
    assert sorted(p.name for p in (log.root / "labels").iterdir()) == labels_before  # labels are not compacted
    again = log.compact(older_than=NOW, grace=HOUR)
    assert (again.files_merged, again.files_written, again.files_deleted) == (0, 0, 0)
    assert "no live file" in again.note


def test_late_rows_join_their_day_and_replaced_files_go_after_the_grace(log):
    fill(log, appends=4)
    log.compact(older_than=NOW, grace=HOUR)
    log.append(make_rows(7, prefix="late", start=T0 + dt.timedelta(hours=1)))  # into the first day again
    log.append(make_rows(3, prefix="new", start=T0 + dt.timedelta(days=5), step_s=86400 * 3))  # days 5, 8, 11
    before = reads(log)
    result = log.compact(older_than=NOW, grace=NOW)
    assert (result.files_merged, result.files_written) == (3, 4)  # two live files and the earlier day file
    assert result.files_deleted == 4 + 2 + 1  # every source and the replaced day file: the grace is over
    assert {"2024-03-06", "2024-03-09", "2024-03-12"} <= set(pc.read_manifest(log.root / "predictions")["files"])
    assert "2024-03-07" not in pc.read_manifest(log.root / "predictions")["files"]  # no row that day: no file
    assert reads(log) == before
    assert live_files(log) == []
    manifest = pc.read_manifest(log.root / "predictions")
    assert manifest["hidden"] == {} and manifest["retired"] == {} and manifest["generation"] == 2
    assert compacted_files(log) == sorted([".lock", "manifest.json", *manifest["files"].values()])
    assert manifest["files"]["2024-03-01"].endswith(".g000002.parquet")


def test_only_files_older_than_older_than_are_merged(log):
    fill(log, appends=6)
    old = sorted((log.root / "predictions").glob("*.parquet"))[:4]
    age(old, 3600)
    before = reads(log)
    result = log.compact(older_than=dt.timedelta(minutes=10))
    assert result.files_merged == 4
    assert reads(log) == before
    assert set(pc.read_manifest(log.root / "predictions")["hidden"]) == {p.name for p in old}
    with pytest.raises(PredictionLogError, match="older_than: expected a datetime.timedelta >= 0"):
        log.compact(older_than=600)
    with pytest.raises(PredictionLogError, match="grace: expected a datetime.timedelta >= 0"):
        log.compact(grace=-HOUR)


def test_a_view_registered_before_a_compaction_reads_the_same_rows_during_the_grace(log):
    import duckdb

    fill(log, appends=5)
    con = duckdb.connect()
    log.register(con)
    before = con.sql("SELECT count(*), count(DISTINCT key) FROM predictions").fetchall()
    log.compact(older_than=NOW, grace=HOUR)
    assert con.sql("SELECT count(*), count(DISTINCT key) FROM predictions").fetchall() == before == [(100, 100)]
    log.append(make_rows(3, prefix="after"))
    assert con.sql("SELECT count(*) FROM predictions").fetchall() == [(100,)]  # a snapshot: register again
    log.register(con)
    assert con.sql("SELECT count(*), count(DISTINCT key) FROM predictions").fetchall() == [(103, 103)]


# -- temporary files ------------------------------------------------------------------------------------
def test_stale_temp_files_go_and_fresh_ones_stay(log):
    folder = log.root / "predictions"
    fill(log, appends=2)
    names = {"dead": ".otherhost-123-0123456789ab-000000001.parquet.0badc0de.tmp",
             "fresh": ".otherhost-124-0123456789ab-000000001.parquet.0badc0df.tmp",
             "running": f".{log._file_prefix()}.parquet.0badc0e0.tmp"}  # a writer of this host that still runs
    for name in names.values():
        (folder / name).write_bytes(b"PAR1 half written")
    age([folder / names["dead"], folder / names["running"]], 3600)
    (folder / pc.COMPACTED).mkdir()
    leftovers = [folder / pc.COMPACTED / ".2024-03-01.g000001.parquet.12345678.tmp",
                 folder / pc.COMPACTED / "2024-03-01.g000001.parquet"]  # a killed compaction's, never committed
    labels = [log.root / "labels" / f".{'ab' * 32}.parquet.0badc0e{n}.tmp" for n in (1, 2)]  # a killed add_labels
    for path in leftovers + labels:
        path.write_bytes(b"junk")
    age(labels[:1], 3600)
    result = log.compact(older_than=dt.timedelta(minutes=10))
    assert result.files_deleted == 4 and result.files_merged == 0
    assert not (folder / names["dead"]).exists() and not any(p.exists() for p in leftovers + labels[:1])
    assert (folder / names["fresh"]).exists() and (folder / names["running"]).exists() and labels[1].exists()
    assert log.predictions().num_rows == 40


# -- crashes ----------------------------------------------------------------------------------------------
_CRASHING = """
import datetime as dt, os, sys
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
from mlpatterns.serving.continued_evaluation.prediction_log import parquet_compaction as pc
step = sys.argv[2]
pc.STEP_HOOK = lambda name: os._exit(17) if name == step else None
with open_prediction_log(sys.argv[1]) as log:
    log.compact(older_than=dt.timedelta(0), grace=dt.timedelta(0))
os._exit(0)
"""


@pytest.mark.parametrize("step", pc.COMPACTION_STEPS)
def test_a_crash_at_any_step_loses_and_doubles_nothing(log, step):
    fill(log, appends=4)
    log.compact(older_than=NOW, grace=HOUR)  # an earlier generation: a day file to replace, sources to delete
    fill(log, appends=3, prefix="b")
    expected = reads(log)
    crashed = subprocess.run([sys.executable, "-c", _CRASHING, str(log.root), step], timeout=120)
    assert crashed.returncode == 17, f"the compaction did not reach {step!r}"
    assert reads(log) == expected  # before the rerun: the state of a commit, before or after it
    result = log.compact(older_than=NOW, grace=NOW)
    assert not result.skipped  # the dead compactor's lock went with it
    assert reads(log) == expected
    manifest = pc.read_manifest(log.root / "predictions")
    assert live_files(log) == [] and manifest["hidden"] == {} and manifest["retired"] == {}
    assert compacted_files(log) == sorted([".lock", "manifest.json", *manifest["files"].values()])


# -- two compactions --------------------------------------------------------------------------------------
def test_a_second_compaction_while_one_holds_the_lock_does_nothing(log):
    import fcntl

    fill(log, appends=3)
    (log.root / "predictions" / pc.COMPACTED).mkdir()
    fd = os.open(log.root / "predictions" / pc.COMPACTED / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = log.compact(older_than=NOW)
        assert result.skipped and "another compaction" in str(result)
        assert live_files(log) and pc.read_manifest(log.root / "predictions")["generation"] == 0
    finally:
        os.close(fd)
    assert log.compact(older_than=NOW).files_merged == 3


def test_compactions_at_once_from_two_threads(log):
    fill(log, appends=10)
    expected = reads(log)
    results, barrier = [], threading.Barrier(4)

    def run():
        barrier.wait()
        with open_prediction_log(log.root) as own:
            for _ in range(3):
                results.append(own.compact(older_than=NOW, grace=NOW))
                own.append(make_rows(2, prefix=f"t{threading.get_ident()}-{len(results)}", start=T0))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    log.compact(older_than=NOW, grace=NOW)
    rows = log.predictions()
    assert rows.num_rows == 200 + 4 * 3 * 2 == len(set(rows["key"].to_pylist()))
    assert [r for r in sorted_rows(rows) if r["key"].startswith("a")] == expected["all"]
    assert sum(r.files_merged for r in results) >= 10 and live_files(log) == []


# -- readers and writers in other processes during compactions ------------------------------------------
_WRITER = """
import datetime as dt, sys, time
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
from mlpatterns.testing.prediction_log_conformance import T0, make_rows
url, name, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
n = 0
with open_prediction_log(url) as log:
    while (time.time() < until or n < 20) and time.time() < until + 30:  # some appends on a busy machine
        log.append(make_rows(10, prefix=f"{name}-{n}", start=T0 + dt.timedelta(hours=n % 40), step_s=900))
        n += 1
        time.sleep(0.01)
print(n)
"""
_READER = """
import json, sys, time
import duckdb
from mlpatterns.serving.continued_evaluation.prediction_log import open_prediction_log
url, until = sys.argv[1], float(sys.argv[2])
seen, report = set(), {"reads": 0, "doubled": [], "lost": [], "errors": []}
with open_prediction_log(url) as log:
    while (time.time() < until or report["reads"] < 6) and time.time() < until + 30:
        for how in ("arrow", "duckdb"):
            started = time.time()
            try:
                if how == "arrow":
                    keys = log.predictions()["key"].to_pylist()
                else:
                    con = duckdb.connect()
                    log.register(con)
                    keys = [k for (k,) in con.sql("SELECT key FROM predictions").fetchall()]
                    con.close()
            except Exception as error:
                report["errors"].append([repr(error)[:300], time.time() - started])
                continue
            now = set(keys)
            if len(now) != len(keys):
                report["doubled"].append(len(keys) - len(now))
            if seen - now:
                report["lost"].append(sorted(seen - now)[:5])
            seen |= now
            report["reads"] += 1
print(json.dumps(report))
"""


def test_a_reader_never_sees_a_row_twice_or_loses_one_while_writers_append_and_compactions_run(log):
    grace = 2.0
    start = time.time() + 3.0  # the children import pyarrow and DuckDB meanwhile
    until = start + 4.0
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(log.root), f"w{w}", str(until)],
                                stdout=subprocess.PIPE, text=True) for w in range(2)]
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(log.root), str(until + 0.5)],
                              stdout=subprocess.PIPE, text=True)
    compactions = []
    while reader.poll() is None:
        if time.time() >= start:
            compactions.append(log.compact(older_than=dt.timedelta(seconds=0.3), grace=dt.timedelta(seconds=grace)))
        time.sleep(0.2)
    counts = [int(w.communicate(timeout=60)[0]) for w in writers]
    report = json.loads(reader.communicate(timeout=60)[0])
    assert report["doubled"] == [] and report["lost"] == []
    assert report["reads"] >= 4
    assert [e for e in report["errors"] if e[1] < grace] == []  # only a read slower than the grace may fail
    assert sum(r.files_merged for r in compactions) > 0 and sum(r.files_deleted for r in compactions) > 0
    log.compact(older_than=NOW, grace=NOW)
    keys = log.predictions()["key"].to_pylist()
    assert len(keys) == len(set(keys)) == 10 * sum(counts)
    assert live_files(log) == []


# -- other backends and the command line ----------------------------------------------------------------
@pytest.fixture
def schema_url():
    """A URL of the test database whose connections use a fresh schema."""
    with fresh_schema_url(POSTGRES_URL, "prediction_log") as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not POSTGRES_URL, reason="MLPATTERNS_TEST_POSTGRES_URL is not set"))])
def test_database_backends_have_nothing_to_compact(tmp_path, backend, request):
    url = f"sqlite:///{tmp_path}/log.db" if backend == "sqlite" else request.getfixturevalue("schema_url")
    with open_prediction_log(url) as log:
        log.append(make_rows(5))
        before = sorted_rows(log.predictions())
        result = log.compact()
        assert (result.files_merged, result.files_written, result.skipped) == (0, 0, False)
        assert "nothing to compact" in str(result)
        assert sorted_rows(log.predictions()) == before
    with pytest.raises(PredictionLogError, match="compact on a closed log"):
        log.compact()


def test_monitor_compact_command(log, capsys):
    from mlpatterns.cli import main

    fill(log, appends=3)
    age(list((log.root / "predictions").glob("*.parquet")), 120)
    assert main(["monitor", "compact", "--log", str(log.root), "--older-than", "1min"]) == 0
    assert f"{log.url}: merged 3 file(s)" in capsys.readouterr().out
    assert main(["monitor", "compact", "--log", str(log.root), "--older-than", "soon"]) == 2
    assert "--older-than must be a duration" in capsys.readouterr().err
