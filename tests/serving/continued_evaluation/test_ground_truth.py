"""Ground truth joined to logged predictions by key, whenever it arrives (Continued Model Evaluation, 18)."""

from __future__ import annotations

import hashlib
import re

import pandas as pd
import pytest

from mlpatterns.reproducibility.split_keys import row_key_text
from mlpatterns.serving.continued_evaluation.ground_truth import (
    GroundTruthError,
    add_ground_truth,
    read_ground_truth,
)
from mlpatterns.serving.continued_evaluation.prediction_log import LabelCounts, open_prediction_log

TRUTH = pd.DataFrame({"carrier": ["AA", "UA", "AA", "DL"], "flight": [11, 1545, 11, 7],
                      "time_hour": ["2013-07-01 05:00:00", "2013-07-01 05:00:00", "2013-07-02 05:00:00",
                                    "2013-07-02 06:00:00"],
                      "arr_delay": [45.0, -3.0, 30.0, None], "late": [True, False, False, None]})
KEYS = ["carrier", "flight", "time_hour"]


@pytest.fixture
def truth_csv(tmp_path):
    path = tmp_path / "truth.csv"
    TRUTH.to_csv(path, index=False)
    return path


def test_rule_labels_and_keys_as_the_logger_writes_them(truth_csv):
    rows, info = read_ground_truth(truth_csv, KEYS, target="arr_delay", rule={"greater_than": 30})
    expected_keys = [row_key_text(row, KEYS, separator="|") for row in
                     TRUTH[KEYS].astype(object).to_dict("records")[:3]]
    assert rows == list(zip(expected_keys, ["1", "0", "0"], strict=True))  # 30 is not greater than 30
    assert rows[0][0] == "AA|11|2013-07-01 05:00:00"
    assert info == {"rows": 4, "no_label": 1, "repeated_keys": 0}


def test_label_column_and_positive_label(tmp_path, truth_csv):
    rows, _ = read_ground_truth(truth_csv, KEYS, label="late")
    assert [label for _, label in rows] == ["1", "0", "0"]  # true/false text -> "1"/"0", as label_text
    rows, _ = read_ground_truth(truth_csv, KEYS, target="carrier", rule={"positive_label": "AA"})
    assert [label for _, label in rows] == ["1", "0", "1", "0"]
    parquet = tmp_path / "truth.parquet"
    TRUTH.to_parquet(parquet, index=False)
    typed, _ = read_ground_truth(parquet, KEYS, target="arr_delay", rule={"at_least": 30})
    assert typed == [(k, v) for (k, _), v in zip(read_ground_truth(truth_csv, KEYS, target="arr_delay",
                                                                   rule={"at_least": 30})[0], ["1", "0", "1"],
                                                  strict=True)]


@pytest.mark.parametrize("backend", ["parquet", "sqlite"])
def test_the_same_file_twice_changes_nothing(tmp_path, truth_csv, backend):
    url = str(tmp_path / "log") if backend == "parquet" else f"sqlite:///{tmp_path / 'log.db'}"
    with open_prediction_log(url) as log:
        first = add_ground_truth(log, truth_csv, KEYS, target="arr_delay", rule={"greater_than": 30})
        labels_after_first = log.labels().to_pandas()
        second = add_ground_truth(log, truth_csv, KEYS, target="arr_delay", rule={"greater_than": 30})
        labels_after_second = log.labels().to_pandas()
    assert first.counts == LabelCounts(added=3, changed=0, unchanged=0) and first.labels == 3
    assert second.counts == LabelCounts(added=0, changed=0, unchanged=3)
    assert first.source == second.source == hashlib.sha256(truth_csv.read_bytes()).hexdigest()
    pd.testing.assert_frame_equal(labels_after_first.sort_values("key", ignore_index=True),
                                  labels_after_second.sort_values("key", ignore_index=True))


def test_a_corrected_label_changes_and_the_last_row_of_a_key_wins(tmp_path, truth_csv):
    corrected = TRUTH.copy()
    corrected.loc[1, "arr_delay"] = 80.0
    twice = pd.concat([corrected, corrected.iloc[[0]].assign(arr_delay=0.0)])
    path = tmp_path / "corrected.csv"
    twice.to_csv(path, index=False)
    with open_prediction_log(tmp_path / "log") as log:
        add_ground_truth(log, truth_csv, KEYS, target="arr_delay", rule={"greater_than": 30})
        result = add_ground_truth(log, path, KEYS, target="arr_delay", rule={"greater_than": 30})
    assert result.repeated_keys == 1
    assert result.counts == LabelCounts(added=0, changed=2, unchanged=1)  # UA now late, AA 11 now on time


def test_keys_of_a_csv_keep_their_text(tmp_path):
    path = tmp_path / "padded.csv"
    path.write_text("id,y\n007,1\n8,0\n")
    rows, _ = read_ground_truth(path, "id", label="y")
    assert rows == [("007", "1"), ("8", "0")]


@pytest.mark.parametrize(("content", "message"), [
    ("", "the truth file is empty"),
    ("carrier,flight,time_hour,arr_delay\n", "has a header but no rows"),
    ("carrier,flight,arr_delay\nAA,1,3\n", "no column(s) ['time_hour']; the file has ['carrier', 'flight', 'arr_delay']"),
    ("carrier,flight,time_hour,arr_delay\nAA,1,x,3\nAA,,x,4\nAA,,y,5\n",
     "key ['carrier', 'flight', 'time_hour'] is null in 2 row(s), the first in row 2"),
    ("carrier,flight,time_hour,arr_delay\nAA,1,x,late\n", "expected numbers for the rule, row 1 holds 'late'"),
])
def test_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(GroundTruthError, match=re.escape(message)):
        read_ground_truth(path, KEYS, target="arr_delay", rule={"greater_than": 30})


def test_unreadable_files_and_wrong_arguments(tmp_path, truth_csv):
    with pytest.raises(GroundTruthError, match="no such truth file"):
        read_ground_truth(tmp_path / "missing.csv", KEYS, label="late")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(GroundTruthError, match="cannot be read as a table"):
        read_ground_truth(junk, KEYS, label="late")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(GroundTruthError, match=r"expected a \.csv"):
        read_ground_truth(tmp_path / "x.json", KEYS, label="late")
    with pytest.raises(GroundTruthError, match="rule: expected exactly one of"):
        read_ground_truth(truth_csv, KEYS, target="arr_delay", rule={"above": 3})
    with pytest.raises(GroundTruthError, match="not both or neither"):
        read_ground_truth(truth_csv, KEYS)
