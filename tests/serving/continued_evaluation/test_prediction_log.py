"""Every prediction log backend passes the conformance suite (Continued Model Evaluation, 18).

The Parquet folder and SQLite always run; PostgreSQL runs where ``MLPATTERNS_TEST_POSTGRES_URL``
names a database (``.ci/run`` sets it), each test in a schema of its own
(``?options=-csearch_path=...`` in the log's URL, so worker processes open the same one),
dropped afterwards.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest

from mlpatterns.serving.continued_evaluation.prediction_log import (
    PredictionLogError,
    label_text,
    open_prediction_log,
)
from mlpatterns.serving.continued_evaluation.prediction_log.files import ParquetPredictionLog
from mlpatterns.serving.continued_evaluation.prediction_log.sqlite import SQLitePredictionLog
from mlpatterns.testing.postgres import fresh_schema_url
from mlpatterns.testing.prediction_log_conformance import PredictionLogConformance, make_rows

POSTGRES_URL = os.environ.get("MLPATTERNS_TEST_POSTGRES_URL")
_NO_POSTGRES = pytest.mark.skipif(not POSTGRES_URL, reason="MLPATTERNS_TEST_POSTGRES_URL is not set")


@pytest.fixture
def schema_url():
    """A URL of the test database whose connections use a fresh schema."""
    with fresh_schema_url(POSTGRES_URL, "prediction_log") as url:
        yield url


@pytest.fixture(params=["files", "sqlite", pytest.param("postgresql", marks=_NO_POSTGRES)])
def prediction_log(request, tmp_path):
    if request.param == "files":
        url = str(tmp_path / "log")
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/log.db"
    else:
        url = request.getfixturevalue("schema_url")
    with open_prediction_log(url) as log:
        yield log


class TestPredictionLogs(PredictionLogConformance):
    pass


# -- opening by URL ---------------------------------------------------------------------------------
def test_a_folder_path_and_a_file_url_open_parquet_files(tmp_path, monkeypatch):
    folder = tmp_path / "a folder"
    with open_prediction_log(str(folder)) as log:
        assert isinstance(log, ParquetPredictionLog) and log.root == folder
        log.append(make_rows(3))
    for url in (folder, log.url, f"file://{folder}"):
        with open_prediction_log(url) as again:
            assert again.predictions().num_rows == 3
    monkeypatch.chdir(tmp_path)
    with open_prediction_log() as default:
        assert default.root == tmp_path / "predictions"
    assert open_prediction_log(log) is log


def test_sqlite_url(tmp_path):
    with open_prediction_log(f"sqlite:///{tmp_path}/logs/p.db") as log:
        assert isinstance(log, SQLitePredictionLog)
        assert log.url == f"sqlite:///{tmp_path}/logs/p.db"
        journal = log._connection.execute("PRAGMA journal_mode").fetchone()[0]
        assert journal == "wal"
    with pytest.raises(PredictionLogError, match="unknown option"):
        open_prediction_log(f"sqlite:///{tmp_path}/p.db?files=x")
    with pytest.raises(PredictionLogError, match="expected 'sqlite:///PATH.db'"):
        open_prediction_log("sqlite:///:memory:")


@pytest.mark.parametrize("url", ["redis://localhost/0", "s3://bucket/predictions", "mysql://u@h/db"])
def test_an_unknown_scheme_names_the_schemes(url):
    with pytest.raises(PredictionLogError, match="unknown scheme") as error:
        open_prediction_log(url)
    for form in ("file:///FOLDER", "sqlite:///PATH.db", "postgresql+psycopg://"):
        assert form in str(error.value)


@pytest.mark.parametrize(("url", "options", "backend", "takes"), [
    ("FOLDER", {"timeout": 5}, "Parquet folder", "it takes none"),
    ("file://FOLDER", {"timeout": 5}, "Parquet folder", "it takes none"),
    ("sqlite:///FOLDER/p.db", {"engine_kwargs": {}}, "SQLite", "it takes 'timeout'"),
    ("postgresql+psycopg://u@localhost/db", {"timeout": 5}, "PostgreSQL", "it takes 'engine_kwargs'"),
])
def test_an_option_the_backend_does_not_take_is_refused_by_name(tmp_path, url, options, backend, takes):
    url = url.replace("FOLDER", str(tmp_path / "log"))
    with pytest.raises(PredictionLogError, match=f"the {backend} backend does not take the option") as error:
        open_prediction_log(url, **options)
    assert str(sorted(options)) in str(error.value) and takes in str(error.value)
    assert not (tmp_path / "log").exists()  # refused before anything is made
    with open_prediction_log(f"sqlite:///{tmp_path}/ok.db", timeout=2.0) as log:  # an option it takes
        assert isinstance(log, SQLitePredictionLog)


def test_a_plain_sqlite_name_is_refused_with_the_url_to_write():
    with pytest.raises(PredictionLogError, match="write 'sqlite:///predictions.db'"):
        open_prediction_log("predictions.db")


def test_a_relative_file_url_is_refused():
    with pytest.raises(PredictionLogError, match="expected file:///absolute/path"):
        open_prediction_log("file://relative/folder")


def test_parquet_files_per_writer_and_labels_per_source(tmp_path):
    with open_prediction_log(tmp_path / "log") as log:
        log.append(make_rows(2))
        log.append(make_rows(2, prefix="again"))
        names = sorted(p.name for p in (tmp_path / "log" / "predictions").iterdir())
        assert len(names) == 2 and all(n.endswith(".parquet") for n in names)
        assert names[0].rsplit("-", 1)[0] == names[1].rsplit("-", 1)[0]  # host-pid-random, then the sequence
        source = "ab" * 32
        log.add_labels([("a", "1")], source=source)
        label_file = tmp_path / "log" / "labels" / f"{source}.parquet"
        written = label_file.stat().st_mtime_ns
        assert log.add_labels([("a", "1")], source=source).unchanged == 1
        assert label_file.stat().st_mtime_ns == written  # the same source twice writes nothing
        assert [p.name for p in (tmp_path / "log" / "labels").iterdir()] == [f"{source}.parquet"]


# -- label text ------------------------------------------------------------------------------------
def test_label_text():
    import numpy as np
    import pandas as pd

    assert [label_text(v) for v in (True, False, np.bool_(True), 1, 1.0, np.int64(0), np.float32(2.0))] == \
        ["1", "0", "1", "1", "1", "0", "2"]
    assert [label_text(v) for v in (0.5, np.float64(0.1), float("inf"), "yes", "")] == \
        ["0.5", "0.1", "inf", "yes", ""]
    assert [label_text(v) for v in (None, float("nan"), np.nan, pd.NA, pd.NaT)] == [None] * 5
    with pytest.raises(PredictionLogError, match="label: expected a number, a boolean, text or null"):
        label_text(dt.date(2024, 1, 1))


# -- PostgreSQL specifics --------------------------------------------------------------------------
@_NO_POSTGRES
def test_postgresql_scheme_means_psycopg_3_and_hides_the_password(schema_url):
    plain = "postgresql://" + schema_url.split("://", 1)[1]
    with open_prediction_log(plain) as log:
        assert log._engine.dialect.driver == "psycopg"
        log.append(make_rows(2))
        assert log.predictions().num_rows == 2
        if log._engine.url.password:
            assert f":{log._engine.url.password}@" not in repr(log)
    with pytest.raises(PredictionLogError, match="psycopg driver"):
        open_prediction_log("postgresql+psycopg2://" + schema_url.split("://", 1)[1])
