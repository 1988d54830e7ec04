"""``register:`` in a spec (Model Versioning, 27): a run registers its model only past the gate."""

from __future__ import annotations

import json

import pytest
from test_pipeline_run import carseats  # the same folder (pytest puts it on the path)

from mlpatterns.cli import main
from mlpatterns.reproducibility.model_versioning import open_registry


@pytest.fixture
def registry(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/registry/registry.db"
    monkeypatch.setenv("MLPATTERNS_REGISTRY", url)
    return url


def test_a_run_registers_its_best_model_once_and_moves_the_alias(tmp_path, registry, capsys):
    path = carseats(tmp_path, register={"name": "carseats-sales"})
    assert main(["run", str(path)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "register linear: registered as version 1 of 'carseats-sales'" in out  # the best by rmse here
    assert main(["run", str(path)]) == 0  # the same bundle: not again
    assert "already version 1 of 'carseats-sales'" in " ".join(capsys.readouterr().out.split())
    with open_registry(registry) as opened:
        version = opened.lookup("models:/carseats-sales@champion")
        assert version.version == 1 and version.metrics["test"]["rmse"] > 0
        assert "mlpatterns run" in opened.audit("carseats-sales")[-1].message
    scored = tmp_path / "scored.csv"
    assert main(["predict", "models:/carseats-sales@champion", str(tmp_path / "run" / "test.parquet"),
                 str(scored)]) == 0
    assert scored.read_text().count("\n") == 1 + json.loads((tmp_path / "run" / "report.json").read_text())[
        "rows"]["test"]
    assert main(["lineage", "models:/carseats-sales/1"]) == 0
    assert "step train.linear" in capsys.readouterr().out


def test_a_model_that_does_not_beat_the_champion_is_not_registered_unless_overridden(tmp_path, registry, capsys):
    path = carseats(tmp_path, register={"name": "carseats-sales", "model": "linear"})
    assert main(["run", str(path)]) == 0
    weaker = carseats(tmp_path, register={"name": "carseats-sales", "model": "linear"},
                      features={"numeric": ["Income"], "categorical": ["Urban"]})
    capsys.readouterr()
    assert main(["run", str(weaker)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "not registered: does not beat champion version 1" in out and "on this test split" in out
    with open_registry(registry) as opened:
        assert [v.version for v in opened.list_versions("carseats-sales")] == [1]
    # a changed interface (other inputs) is a new model: refused even when the gate is overridden
    assert main(["run", str(weaker), "--register-anyway", "seasonal test"]) == 2
    assert "interface" in capsys.readouterr().err


def test_the_gate_override_is_recorded_in_the_audit_trail(tmp_path, registry, capsys):
    path = carseats(tmp_path, register={"name": "carseats-sales", "model": "boosted", "gate": ["champion"]})
    assert main(["run", str(path)]) == 0
    models = {"linear": {"type": "linear"}, "boosted": {"type": "gradient_boosting", "params": {"max_iter": 2}}}
    weaker = carseats(tmp_path, models=models,
                      register={"name": "carseats-sales", "model": "boosted", "gate": ["champion"]})
    assert main(["run", str(weaker)]) == 0
    assert "not registered" in capsys.readouterr().out
    assert main(["run", str(weaker), "--register-anyway", "a smaller model for the edge devices"]) == 0
    with open_registry(registry) as opened:
        latest = opened.latest_version("carseats-sales")
        assert latest.version == 2 and latest.tags["gate_override"] == "a smaller model for the edge devices"
        assert "gate overridden" in opened.audit("carseats-sales")[-1].message


def test_a_wrong_register_section_is_named(tmp_path, capsys):
    path = carseats(tmp_path, register={"model": "nonexistent"})
    assert main(["validate", str(path)]) == 2
    assert "register.model: expected one of the spec's models" in capsys.readouterr().err
    path = carseats(tmp_path, register={"registry": "registry.db"})
    assert main(["validate", str(path)]) == 2
    assert "register.registry: expected a registry URL" in capsys.readouterr().err
