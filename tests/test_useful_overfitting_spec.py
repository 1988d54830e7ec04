"""Useful Overfitting (11) from a spec: `mlpatterns run` trains an emulator on the whole grid, with no
split, to its max-error tolerance, and `mlpatterns predict` serves it within that tolerance."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mlpatterns.cli import main
from mlpatterns.datasets import load_solar_day_length
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.solar_day_length import day_length_hours
from mlpatterns.spec import SpecError, parse_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "solar_day_length.yaml"
SPEC = yaml.safe_load(EXAMPLE.read_text())
TOL = SPEC["models"]["emulator"]["params"]["tol"]


@pytest.fixture(scope="module")
def solar_run(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    tmp_path = tmp_path_factory.mktemp("solar")
    spec = {**copy.deepcopy(SPEC), "output": {"dir": str(tmp_path / "run")}}
    path = tmp_path / "solar_day_length.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path)]) == 0
    return tmp_path / "run"


def test_the_grid_is_the_formula_on_every_point():
    grid = load_solar_day_length()
    assert len(grid) == 61 * 183 and not grid.duplicated(["latitude", "day_of_year"]).any()
    assert (grid.latitude.min(), grid.latitude.max()) == (-60, 60)
    assert (grid.day_of_year.min(), grid.day_of_year.max()) == (1, 365)
    assert np.array_equal(grid.day_length_hours, day_length_hours(grid.latitude, grid.day_of_year))


def test_run_trains_on_the_whole_grid_to_tolerance(solar_run):
    report = json.loads((solar_run / "report.json").read_text())
    assert report["rows"] == {"train": 61 * 183, "valid": 61 * 183, "test": 61 * 183}
    metrics = report["metrics"]["emulator"]
    assert metrics["converged"] == 1.0 and metrics["tol"] == TOL
    assert metrics["grid_max_abs_error"] <= TOL
    assert metrics["grid_mean_abs_error"] < metrics["grid_max_abs_error"]
    assert metrics["rmse"] < report["metrics"]["heuristic_benchmark"]["rmse"]
    # the bundle computes in float64, as the emulator did when its max error was measured
    assert report["skew"]["emulator"]["max_score_difference"] < 1e-9


def test_predict_serves_every_grid_point_within_tolerance(solar_run, tmp_path):
    out = tmp_path / "predictions.parquet"
    assert main(["predict", str(solar_run / "bundles" / "emulator"), str(solar_run / "test.parquet"), str(out)]) == 0
    predictions = pd.read_parquet(out)
    assert list(predictions.columns) == ["latitude", "day_of_year", "prediction"]
    truth = day_length_hours(predictions.latitude, predictions.day_of_year)
    assert len(predictions) == 61 * 183
    assert np.max(np.abs(predictions.prediction - truth)) <= TOL


def test_the_period_is_in_raw_units_although_the_transform_standardises(solar_run):
    serving = ServingFunction.load(solar_run / "bundles" / "emulator")
    latitudes = np.arange(-60, 61, 20)
    days = {day: serving.predict(pd.DataFrame({"latitude": latitudes, "day_of_year": day}))["prediction"]
            for day in (0, 1, 172, 365, 366)}
    # a day of year enters as an angle that turns a full circle every 365 days (not every 365 standard deviations)
    np.testing.assert_allclose(days[366], days[1], atol=1e-4)
    np.testing.assert_allclose(days[0], days[365], atol=1e-4)
    assert np.max(np.abs(days[172] - days[1])) > 5  # and the day matters: June against January at 60 degrees


EMULATOR = {
    "name": "t", "data": {"dataset": "solar_day_length"},
    "target": {"column": "day_length_hours", "task": "regression"}, "split": "none",
    "features": {"numeric": ["latitude", "day_of_year"]},
    "models": {"emulator": {"type": "emulator", "params": {"tol": 0.05, "periods": {"day_of_year": 365}}}},
}


def test_the_example_spec_parses_to_no_split():
    spec = parse_spec(SPEC)
    assert spec.split == {"none": True, "key": []}
    assert spec.models["emulator"]["params"]["periods"] == {"day_of_year": 365}


@pytest.mark.parametrize(("change", "message"), [
    ({"target": {"column": "day_length_hours", "positive_when": {"greater_than": 12}}},
     r"models.emulator.type: an emulator .* needs a regression target, got a classification target"),
    ({"split": "all"}, r"split: expected a mapping with 'key' .* or 'none' .* got 'all'"),
    ({"split": None}, r"split: expected a mapping with 'key' .* or 'none'"),
    ({"split": {"key": "latitude"}}, r"split: models.emulator is an emulator .* expected 'split: none'"),
    ({"models": {"emulator": {"type": "emulator", "params": {"periods": {"day": 365}}}}},
     r"models.emulator.params.periods.day: not a numeric feature; expected one of \['latitude', 'day_of_year'\]"),
    ({"models": {"emulator": {"type": "emulator", "params": {"periods": {"day_of_year": 0}}}}},
     r"models.emulator.params.periods.day_of_year: expected a positive period"),
    ({"models": {"emulator": {"type": "emulator", "params": {"periods": [1]}}}},
     r"models.emulator.params.periods: expected a mapping of numeric feature to its period"),
    ({"models": {"emulator": {"type": "emulator", "params": {"dropout": 0.1}}}},
     r"models.emulator.params: unknown parameter\(s\) \['dropout'\]; expected some of \['tol'"),
    ({"models": {"emulator": {"type": "emulator", "params": {"tol": -1}}}},
     r"models.emulator.params: tol must be a positive number"),
    ({"models": {"emulator": {"type": "emulator", "params": {"solver": "sgd"}}}},
     r"models.emulator.params: solver must be one of"),
    ({"features": {"numeric": ["latitude"], "categorical": {"day_of_year": 8}}},
     r"features.categorical: an emulator \(models.emulator\) reads numeric features only"),
    ({"data": {"dataset": "solar_day_length", "sample_fraction": 0.5}},
     r"data.sample_fraction: a spec with 'split: none' trains on the whole enumerated data set"),
])
def test_spec_errors_name_the_field(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**copy.deepcopy(EMULATOR), **change})


def test_no_split_runs_an_ordinary_model_on_every_row(tmp_path):
    # split: none is not only for emulators; every split is every row, and nothing is empty
    grid = load_solar_day_length(latitude_step=20, day_step=30)
    grid.to_csv(tmp_path / "grid.csv", index=False)
    spec = {**copy.deepcopy(EMULATOR), "data": {"path": str(tmp_path / "grid.csv")},
            "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 20}}},
            "output": {"dir": str(tmp_path / "run")}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp_path / "spec.yaml")]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["rows"] == {"train": len(grid), "valid": len(grid), "test": len(grid)}
