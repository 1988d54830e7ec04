"""The registry with bundles that `mlpatterns run` writes: register, serve from the registry, refuse
a run whose inputs changed, compare two runs."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from mlpatterns.cli import main
from mlpatterns.reproducibility.model_versioning import InterfaceChangeError, open_registry
from mlpatterns.serving.stateless_serving_function import ServingFunction

SPEC = {
    "name": "natality-small",
    "data": {"dataset": "natality", "sample_fraction": 0.1},
    "target": {"column": "weight_pounds", "task": "regression"},
    "keys": ["row_id"],
    "split": {"key": "row_id"},
    "features": {"numeric": ["mother_age", "gestation_weeks"], "categorical": ["is_male", "plurality"]},
    "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 10}}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs: the spec above, and the same without the plurality input."""
    root = tmp_path_factory.mktemp("natality")
    fewer_inputs = {**SPEC, "features": {**SPEC["features"], "categorical": ["is_male"]}}
    bundles = []
    for name, spec in (("first", SPEC), ("second", fewer_inputs)):
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**spec, "output": {"dir": str(root / name)}}))
        assert main(["run", str(path)]) == 0
        bundles.append(root / name / "bundles" / "gbm")
    return root, bundles


def test_a_run_bundle_is_registered_and_served_from_the_registry(runs, tmp_path):
    root, (first, second) = runs
    with open_registry(f"sqlite:///{tmp_path}/registry/registry.db") as registry:
        version = registry.register(first, "natality", alias="champion", message="first run")
        assert version.metrics["test"]["rmse"] > 0 and version.lineage["data"]["dataset"] == "natality"
        assert [c["name"] for c in version.signature["inputs"]] == ["mother_age", "gestation_weeks", "is_male",
                                                                    "plurality"]
        test_rows = pd.read_parquet(root / "first" / "test.parquet").head(20)
        served = ServingFunction.load(registry.resolve("models:/natality@champion")).predict(test_rows)
        expected = ServingFunction.load(first).predict(test_rows)
        pd.testing.assert_frame_equal(served, expected)

        with pytest.raises(InterfaceChangeError, match="input 'plurality' removed"):
            registry.register(second, "natality")
        changed = registry.register(second, "natality", allow_interface_change=True, message="drop plurality")
        comparison = registry.compare("natality", 1, changed.version)
        assert comparison.interface.describe() == ["input 'plurality' removed"]
        rmse = comparison.metrics["test.rmse"]
        assert rmse[2] == pytest.approx(rmse[1] - rmse[0]) and rmse[2] != 0
        assert "spec" in comparison.lineage_changed
