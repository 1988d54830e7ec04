"""The prediction logger's column-at-a-time encoding writes what the row-at-a-time one writes
(Continued Model Evaluation, 18): the same JSON text byte for byte, the same key texts, labels
and predictions, on real flights rows and on every kind of cell."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from mlpatterns.reproducibility.split_keys import row_key_text
from mlpatterns.serving.continued_evaluation import prediction_log_encoding as encoding
from mlpatterns.serving.continued_evaluation import prediction_logger
from mlpatterns.serving.continued_evaluation.prediction_log import label_text, open_prediction_log
from mlpatterns.serving.continued_evaluation.prediction_log_encoding import (
    columns_of,
    encode,
    encode_rows,
    key_text,
    key_texts,
    label_texts,
    number,
    numbers,
)
from mlpatterns.serving.continued_evaluation.prediction_logger import PredictionLogger

KEYS = ("year", "month", "day", "carrier", "flight", "origin")


@pytest.fixture(scope="module")
def flights():
    """500 flights rows, some with missing times and tail numbers: as records (NaN, dates) and as a JSON
    request's rows (None, ISO dates)."""
    from mlpatterns.datasets import load_flights

    frame = load_flights()
    frame = frame[frame["tailnum"].isna() | frame["dep_time"].isna() | (frame.index < 300)].head(500)
    records = frame.to_dict("records")
    requests = json.loads(frame.to_json(orient="records", date_format="iso"))
    return records, requests


def _general(rows):
    return [encode(row) for row in rows]


def _no_general(monkeypatch):
    def refuse(row):
        raise AssertionError(f"the general path ran for {row!r:.80}")

    monkeypatch.setattr(encoding, "encode", refuse)


def test_flights_request_rows_take_the_column_path_and_match(flights, monkeypatch):
    _, rows = flights
    expected = _general(rows)
    assert any("null" in text for text in expected)  # missing tail numbers and times
    _no_general(monkeypatch)
    assert encode_rows(rows) == expected
    assert key_texts(rows, KEYS, columns_of(rows)) == [row_key_text(row, KEYS, separator="|") for row in rows]


def test_flights_records_with_nan_and_dates_match(flights):
    records, _ = flights
    assert any(isinstance(v, float) and math.isnan(v) for row in records for v in row.values())
    assert encode_rows(records) == _general(records)
    assert all("NaN" not in text for text in encode_rows(records))
    assert key_texts(records, KEYS, columns_of(records)) == [key_text(row, KEYS) for row in records]
    assert key_texts(records, ("date", "tailnum"), columns_of(records)) == [
        key_text(row, ("date", "tailnum")) for row in records]


CELLS = {
    "nan": [float("nan"), 1.5, float("inf"), -float("inf"), 0.1, -0.0, 1e300],
    "none": [None, 1, None, 2, 3, None, 4],
    "bools": [True, False, True, True, False, False, True],
    "mixed": [1, 1.5, True, None, "x", float("nan"), -7],
    "ints": [0, -1, 2**70, 10, 3, 4, 5],
    "floats": [0.1, 1.0, 2.5e-8, -3.0, 1e16, 123456789.123, 5e-324],
    "unicode": ["Zürich", "東京", "🛫", "\u2028\u2029", "\x00\n\t\x1f", 'a "quoted" \\ back', "100% %s %d"],
    "dates": [dt.date(2013, 1, 1), dt.datetime(2013, 1, 1, 5, 6, 7, 8), None, dt.date(2024, 2, 29),
              dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.time(5, 6), dt.date(1, 1, 1)],
    "nested": [[1, 2.5, None], {"a": [float("nan")]}, [], {}, [["x", True]], {"k": {"z": 1}}, [float("inf")]],
    "numpy": [np.int64(3), np.float64(0.25), np.float32(1.5), np.bool_(True), np.array([1, 2]), np.float64("nan"),
              np.int8(-1)],
}


@pytest.mark.parametrize("name", sorted(CELLS))
def test_every_kind_of_cell_matches_the_general_path(name):
    values = CELLS[name]
    rows = [{"id": i, name: value, "ü%\"key": "v"} for i, value in enumerate(values)]
    assert encode_rows(rows) == _general(rows)
    alone = [{name: value} for value in values]
    assert encode_rows(alone) == _general(alone)


def test_plain_cells_take_the_column_path(monkeypatch):
    rows = [{name: CELLS[name][i] for name in ("nan", "none", "bools", "mixed", "ints", "floats", "unicode")}
            for i in range(7)]
    expected = _general(rows)
    _no_general(monkeypatch)
    assert encode_rows(rows) == expected
    assert json.loads(expected[0])["nan"] is None and json.loads(expected[2])["nan"] is None


@pytest.mark.parametrize("rows", [
    [{"a": 1, "b": 2}, {"b": 2, "a": 1}],  # keys in another order
    [{"a": 1}, {"a": 1, "b": 2}],  # other keys
    [{1: "x", False: "y"}, {1: "z"}],  # keys that are not text
    [{None: float("nan"), "d": {False: 1, 2.5: 2}}],  # a NaN with keys that are not text, nested
    [{"a": 1}, {}],
    [{}, {}],
], ids=["order", "other-keys", "int-keys", "nan-and-odd-keys", "empty-row", "empty-rows"])
def test_rows_the_column_path_cannot_take_match(rows):
    assert encode_rows(rows) == _general(rows)


def test_mapping_rows_that_are_not_dicts_match():
    from mlpatterns.serving.http.prediction_logging import ColumnRows

    rows = ColumnRows({"a": [1, 2, 3], "b": ["x", "y", float("nan")]}, ["a", "b"], [2, 0, 1])
    assert encode_rows(rows) == _general(list(rows)) == ['{"a":3,"b":null}', '{"a":1,"b":"x"}', '{"a":2,"b":"y"}']


KEY_VALUES = {
    "text": ["a", "", "Zürich|x", "東京", "a", "b"],
    "int": [0, -5, 2**63, 7, 7, 1],
    "bool": [True, False, True, False, True, True],
    "float": [1.0, 0.5, -2.25, 1e20, float("inf"), 3.0],
    "date": [dt.date(2013, 1, 1), dt.date(2024, 2, 29), dt.date(2013, 1, 1), dt.date(1999, 12, 31),
             dt.date(2000, 1, 1), dt.date(2013, 1, 2)],
    "datetime": [dt.datetime(2013, 1, 1, 5), dt.datetime(2013, 1, 1, 5, 0, 0, 1), dt.datetime(2020, 6, 1),
                 dt.datetime(2013, 1, 1), dt.datetime(2013, 1, 1, 23, 59), dt.datetime(2001, 1, 1)],
    "numpy": [np.int64(1), np.int32(-2), np.float64(0.5), np.bool_(False), np.int64(5), np.uint8(9)],
    "bytes": [b"ab", "é".encode(), b"", b"x", b"y", b"z"],
    "null": [None, "a", float("nan"), 1, None, "b"],
}


@pytest.mark.parametrize("kind", sorted(KEY_VALUES))
def test_key_texts_of_every_kind_match_row_key_text(kind):
    values = KEY_VALUES[kind]
    rows = [{"k": value, "n": i, "s": "x"} for i, value in enumerate(values)]
    for columns in (("k",), ("k", "n"), ("s", "k", "n")):
        expected = [key_text(row, columns) for row in rows]
        assert key_texts(rows, columns, columns_of(rows)) == expected
        assert key_texts(rows, columns) == expected
        for row, text in zip(rows, expected, strict=True):
            reference = row_key_text(row, columns, separator="|")
            if isinstance(reference, bytes):
                reference = reference.decode("utf-8", "backslashreplace")
            assert text == reference


def test_a_missing_key_column_gives_no_key():
    rows = [{"a": 1}, {"a": 2, "b": 3}]
    assert key_texts(rows, ("a", "b"), columns_of(rows)) == [None, "2|3"]
    assert key_texts([{"a": 1}], ("b",), columns_of([{"a": 1}])) == [None]


@pytest.mark.parametrize("values", [[0, 1, 1, 0], [True, False], [1.0, 0.5, float("nan"), None], ["yes", None, "1"],
                                    [np.int64(1), np.bool_(True), np.float32(2.0)], [[1], {"a": 1}, 1],
                                    [1, True, "a", 2.5]])
def test_labels_and_numbers_match(values):
    def label(value):
        try:
            return label_text(value)
        except ValueError:
            return None

    assert label_texts(values) == [label(v) for v in values]
    assert numbers(values) == [number(v) for v in values]
    assert numbers([0.25, float("inf"), float("nan")]) == [0.25, float("inf"), None]


def _expected(row, output, keys, task):
    prediction = {"classification": "probability", "regression": "prediction"}.get(task)
    return (key_text(row, keys) if keys else None, encode(row), encode(output),
            number(output.get(prediction)) if prediction else None,
            label_texts([output.get("prediction")])[0] if task in ("classification", "multiclass") else None)


@pytest.mark.parametrize("url", ["parquet", "sqlite"])
def test_the_logger_writes_what_the_row_path_writes(flights, tmp_path, monkeypatch, url):
    monkeypatch.setattr(prediction_logger, "_CHUNK", 7)  # several chunks, with a pause between them
    records, requests = flights
    log = open_prediction_log(tmp_path / "log" if url == "parquet" else f"sqlite:///{tmp_path}/log.db")
    expected = []
    with PredictionLogger(log, flush_interval_s=3600) as logger:
        for start in range(0, 60, 4):  # requests of 4 rows, two models, three tasks, one with differing rows
            for rows, model, task, keys in ((requests[start:start + 4], "gb", "classification", KEYS),
                                            (records[start:start + 4], "other", "regression", ("date", "tailnum")),
                                            (requests[start:start + 2] + records[start:start + 2], "mixed",
                                             "multiclass", ("carrier",))):
                outputs = [{"probability": 0.125 * (i % 8), "prediction": i % 2 if task != "regression" else 1.5 * i}
                           for i in range(len(rows))]
                if start == 8:
                    outputs[0] = {"probability": float("nan"), "prediction": None}
                logger.log_rows(model=model, version="v1", source="http", rows=rows, outputs=outputs,
                                key_columns=list(keys), task=task)
                expected += [(model, *_expected(row, output, keys, task)) for row, output in zip(rows, outputs,
                                                                                             strict=True)]
    table = log.predictions().to_pylist()
    log.close()
    columns = ("model", "key", "inputs", "outputs", "prediction", "predicted_label")
    got = sorted((tuple(row[c] for c in columns) for row in table), key=repr)
    assert got == sorted(expected, key=repr)
