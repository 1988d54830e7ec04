"""Chapter 4 from a spec: the spec's networks train with the Trainer, with Checkpoints (12) that
resume bit for bit, fine-tuning from another run's checkpoint, and data-parallel ranks
(Distribution Strategy, 14) started by `mlpatterns run --processes 2`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from mlpatterns.cli import main
from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import SpecError, load_spec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def flights_spec(output: Path, *, epochs: int = 3, checkpoints=None, **edits) -> dict:
    """The flights example, a twentieth of the days, with only its network."""
    spec = yaml.safe_load((EXAMPLES / "flights.yaml").read_text())
    spec["data"]["sample_fraction"] = 0.05
    # fine-tuning one run's network on another's data needs the same feature layout: hash buckets, not
    # vocabularies learned from each run's own rows
    spec["features"]["categorical"] = {"carrier": 32, "origin": 8, "dest": 256, "tailnum": 2048}
    network = spec["models"]["wide_and_deep"]
    network["params"].update(epochs=epochs, batch_size=512, hidden=[16])
    if checkpoints is not None:
        network["checkpoints"] = checkpoints
    spec["models"] = {"wide_and_deep": network, **edits.pop("models", {})}
    spec["output"] = {"dir": str(output)}
    spec.update(edits)
    return spec


def write(tmp_path: Path, spec: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def served(run: Path) -> np.ndarray:
    serving = ServingFunction.load(run / "bundles" / "wide_and_deep")
    import pandas as pd

    return serving.predict(pd.read_parquet(run / "test.parquet"))["probability"].to_numpy()


def manifest(run: Path) -> dict:
    return json.loads((run / "bundles" / "wide_and_deep" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run, checkpointing every 10 steps."""
    tmp = tmp_path_factory.mktemp("reference")
    spec = parse_spec(flights_spec(tmp / "run", checkpoints={"every": 10}))
    result = run_spec(spec, log=lambda *a: None)
    return tmp / "run", result


# -- the spec section ------------------------------------------------------------------------------
@pytest.mark.parametrize(("edit", "field", "expected"), [
    ({"checkpoints": {"every": 0}}, "models.wide_and_deep.checkpoints.every", "at least 1"),
    ({"checkpoints": {"keep_last": "3"}}, "models.wide_and_deep.checkpoints.keep_last", "at least 1"),
    ({"checkpoints": {"keep_last": None}}, "models.wide_and_deep.checkpoints.keep_last", "at least 1"),
    ({"checkpoints": {"every": None}}, "models.wide_and_deep.checkpoints.every", "at least 1"),
    ({"checkpoints": {"dir": ""}}, "models.wide_and_deep.checkpoints.dir", "a path"),
    ({"checkpoints": {"init_from": 3}}, "models.wide_and_deep.checkpoints.init_from", "a path"),
    ({"checkpoints": {"every_steps": 3}}, "models.wide_and_deep.checkpoints", "unknown field"),
    ({"checkpoints": [1]}, "models.wide_and_deep.checkpoints", "expected a mapping"),
])
def test_checkpoints_section_errors_name_the_field(tmp_path, edit, field, expected):
    spec = flights_spec(tmp_path)
    spec["models"]["wide_and_deep"].update(edit)
    with pytest.raises(SpecError, match=rf"{field}: .*{expected}"):
        parse_spec(spec)


def test_an_empty_checkpoints_section_means_the_defaults(tmp_path):
    spec = flights_spec(tmp_path, checkpoints=None)
    spec["models"]["wide_and_deep"]["checkpoints"] = None
    assert parse_spec(spec).models["wide_and_deep"]["checkpoints"] == {"enabled": True}


def test_checkpoints_only_apply_to_networks(tmp_path):
    spec = flights_spec(tmp_path, models={"boosted": {"type": "gradient_boosting", "checkpoints": {"every": 5}}})
    with pytest.raises(SpecError, match="models.boosted.checkpoints: applies to a network"):
        parse_spec(spec)


@pytest.mark.parametrize(("section", "field", "expected"), [
    ({"processes": 0}, "distribution.processes", "at least 1"),
    ({"nodes": 2}, "distribution.rendezvous", "HOST:PORT"),
    ({"nodes": 2, "rendezvous": "node0"}, "distribution.rendezvous", "HOST:PORT"),
    ({"rendezvous": "node0:29500"}, "distribution.rendezvous", "several nodes"),
    ({"gpus": 2}, "distribution", "unknown field"),
    ({"backend": "nccl"}, "distribution", "unknown field"),
    ({"nodes": 2, "rendezvous": ":"}, "distribution.rendezvous", "HOST:PORT"),
    ({"nodes": 2, "rendezvous": "node0:port"}, "distribution.rendezvous", "HOST:PORT"),
])
def test_distribution_section_errors_name_the_field(tmp_path, section, field, expected):
    with pytest.raises(SpecError, match=rf"{field}: .*{expected}"):
        parse_spec(flights_spec(tmp_path, distribution=section))


def test_tuning_and_distribution_do_not_mix(tmp_path):
    spec = yaml.safe_load((EXAMPLES / "tuning_flights.yaml").read_text())
    spec["distribution"] = {"processes": 2}
    with pytest.raises(SpecError, match="distribution: a spec with a tuning: section"):
        parse_spec(spec)


# -- Checkpoints (12) ------------------------------------------------------------------------------
def test_run_checkpoints_the_network_and_records_where(reference):
    run, result = reference
    folder = run / "checkpoints" / "wide_and_deep"
    files = sorted(p.name for p in folder.glob("ckpt-*.pt"))
    assert files and (folder / "manifest.json").is_file()
    info = manifest(run)["model"]
    assert info["checkpoints"] == {"dir": str(folder), "resumed_from": None, "init_from": None}
    assert [record["epoch"] for record in info["history"]] == [1, 2, 3]
    assert result.skew["wide_and_deep"]["features_identical"]
    plot = run / "plots" / "wide_and_deep_learning_curves.png"  # the history, plotted
    assert result.plots == {"wide_and_deep": plot} and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interrupted_run_resumes_bit_for_bit(reference, tmp_path, monkeypatch):
    from mlpatterns.training.trainer.loop import Trainer

    reference_run, _ = reference
    spec = flights_spec(tmp_path / "run", checkpoints={"every": 10})
    original = Trainer._train_step

    def dies_in_epoch_two(self, rows):
        original(self, rows)
        if self.step == self.steps_per_epoch + 15:  # 5 steps after a mid-epoch checkpoint
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_train_step", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_spec(parse_spec(spec), log=lambda *a: None)
    monkeypatch.undo()
    assert list((tmp_path / "run" / "checkpoints" / "wide_and_deep").glob("ckpt-*.pt"))
    run_spec(parse_spec(spec), log=lambda *a: None, resume=True)
    info = manifest(tmp_path / "run")["model"]
    assert info["checkpoints"]["resumed_from"] is not None
    assert info["history"] == manifest(reference_run)["model"]["history"]
    np.testing.assert_array_equal(served(tmp_path / "run"), served(reference_run))


def test_a_fresh_run_starts_afresh(reference, tmp_path):
    spec = flights_spec(tmp_path / "run", epochs=1, checkpoints={"every": 10})
    run_spec(parse_spec(spec), log=lambda *a: None)
    run_spec(parse_spec(spec), log=lambda *a: None)  # the first run's checkpoints are cleared, not resumed
    assert manifest(tmp_path / "run")["model"]["checkpoints"]["resumed_from"] is None


def test_an_own_checkpoint_dir_is_never_cleared(tmp_path):
    folder = tmp_path / "kept"
    spec = flights_spec(tmp_path / "run", epochs=1, checkpoints={"dir": str(folder)})
    run_spec(parse_spec(spec), log=lambda *a: None)
    assert run_spec(parse_spec(spec), log=lambda *a: None).steps["train.wide_and_deep"] == "cached"
    with pytest.raises(SpecError, match=r"models.wide_and_deep.checkpoints: .*already holds checkpoints"):
        run_spec(parse_spec(spec), log=lambda *a: None, force=("train.wide_and_deep",))  # trains afresh: refused
    run_spec(parse_spec(spec), log=lambda *a: None, resume=True, force=("train.wide_and_deep",))  # continues
    assert list(folder.glob("ckpt-*.pt"))


def test_checkpoints_can_be_switched_off(tmp_path):
    spec = flights_spec(tmp_path / "run", epochs=1, checkpoints=False)
    run_spec(parse_spec(spec), log=lambda *a: None)
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert "checkpoints" not in manifest(tmp_path / "run")["model"]


def other_days(tmp_path: Path) -> Path:
    """Flights of about 15 % of the days, none of them among the reference run's days."""
    from mlpatterns.datasets import load_flights
    from mlpatterns.reproducibility.repeatable_splitting import repeatable_sample

    flights = load_flights()
    seen = set(repeatable_sample(flights, ["date"], 0.05, num_buckets=10_000)["date"])
    wider = repeatable_sample(flights, ["date"], 0.20, num_buckets=10_000)
    path = tmp_path / "other_days.parquet"
    wider[~wider["date"].isin(seen)].to_parquet(path, index=False)
    return path


def test_fine_tuning_starts_from_another_runs_weights(reference, tmp_path):
    reference_run, _ = reference
    folder = reference_run / "checkpoints" / "wide_and_deep"
    data = {"path": str(other_days(tmp_path))}
    spec = flights_spec(tmp_path / "run", epochs=1, checkpoints={"init_from": str(folder)}, data=data)
    run_spec(parse_spec(spec), log=lambda *a: None)
    tuned = manifest(tmp_path / "run")["model"]
    assert tuned["checkpoints"]["init_from"] == str(folder)
    run_spec(parse_spec(flights_spec(tmp_path / "fresh", epochs=1, data=data)), log=lambda *a: None)
    # on days it never saw, the pretrained network starts far closer to a good model than random weights
    assert tuned["history"][0]["train_loss"] < manifest(tmp_path / "fresh")["model"]["history"][0]["train_loss"] - 0.05


def test_an_interrupted_fine_tuning_run_resumes(reference, tmp_path, monkeypatch):
    from mlpatterns.training.trainer.loop import Trainer

    reference_run, _ = reference
    source = str(reference_run / "checkpoints" / "wide_and_deep")
    spec = flights_spec(tmp_path / "run", epochs=2, checkpoints={"every": 10, "init_from": source})
    run_spec(parse_spec(spec), log=lambda *a: None)
    uninterrupted = served(tmp_path / "run")
    original = Trainer._train_step

    def dies_in_epoch_two(self, rows):
        original(self, rows)
        if self.step == self.steps_per_epoch + 12:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_train_step", dies_in_epoch_two)
    force = ("train.wide_and_deep",)  # trained before: the cache would skip it
    with pytest.raises(KeyboardInterrupt):
        run_spec(parse_spec(spec), log=lambda *a: None, force=force)
    monkeypatch.undo()
    run_spec(parse_spec(spec), log=lambda *a: None, resume=True, force=force)  # from its checkpoint, not init_from
    assert manifest(tmp_path / "run")["model"]["checkpoints"]["resumed_from"] is not None
    np.testing.assert_array_equal(served(tmp_path / "run"), uninterrupted)


def test_a_fresh_run_never_deletes_what_it_fine_tunes_from(reference, tmp_path):
    import shutil

    reference_run, _ = reference
    own = tmp_path / "run" / "checkpoints" / "wide_and_deep"
    shutil.copytree(reference_run / "checkpoints" / "wide_and_deep", own)
    spec = flights_spec(tmp_path / "run", epochs=1, checkpoints={"init_from": str(own)})
    with pytest.raises(SpecError, match=r"models.wide_and_deep.checkpoints: .*already holds checkpoints.*--resume"):
        run_spec(parse_spec(spec), log=lambda *a: None)
    assert list(own.glob("ckpt-*.pt"))


def test_fine_tuning_a_different_architecture_names_the_field(reference, tmp_path):
    reference_run, _ = reference
    spec = flights_spec(tmp_path / "run", epochs=1,
                        checkpoints={"init_from": str(reference_run / "checkpoints" / "wide_and_deep")})
    spec["models"]["wide_and_deep"]["params"]["hidden"] = [8]
    with pytest.raises(SpecError, match="models.wide_and_deep.checkpoints: .*different model architecture"):
        run_spec(parse_spec(spec), log=lambda *a: None)


def test_resume_cli_flag(tmp_path, capsys):
    path = write(tmp_path, flights_spec(tmp_path / "run", epochs=1))
    assert main(["run", str(path)]) == 0
    assert main(["run", str(path), "--resume"]) == 0  # every step in the cache: nothing to resume
    assert main(["run", str(path), "--resume", "--force", "train.wide_and_deep"]) == 0
    assert manifest(tmp_path / "run")["model"]["checkpoints"]["resumed_from"] is not None


# -- Distribution Strategy (14) --------------------------------------------------------------------
def test_run_with_two_processes_trains_data_parallel(reference, tmp_path, capfd):
    """Two gloo ranks started by `mlpatterns run --processes 2` give a bundle like one process's."""
    reference_run, _ = reference
    spec = flights_spec(tmp_path / "run", checkpoints={"every": 10},
                        models={"boosted": {"type": "gradient_boosting", "params": {"max_iter": 10}}})
    spec["models"]["wide_and_deep"]["params"]["dropout"] = 0.0  # dropout masks differ by rank
    path = write(tmp_path, spec)
    assert main(["run", str(path), "--processes", "2"]) == 0
    assert "data-parallel: 2 ranks (gloo)" in capfd.readouterr().out
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert list(report["metrics"]) == ["heuristic_benchmark", "wide_and_deep", "boosted"]  # the spec's order
    single = tmp_path / "single"
    spec["output"] = {"dir": str(single)}
    run_spec(parse_spec(spec), log=lambda *a: None)
    two, one = manifest(tmp_path / "run")["model"]["history"], manifest(single)["model"]["history"]
    np.testing.assert_allclose([r["train_loss"] for r in two], [r["train_loss"] for r in one], rtol=1e-4)
    finished = served(tmp_path / "run")
    np.testing.assert_allclose(finished, served(single), atol=1e-3)
    # a data-parallel run continues with --resume (here: from the finished run's last checkpoint)
    assert main(["run", str(path), "--processes", "2", "--resume", "--force", "train.wide_and_deep"]) == 0
    assert manifest(tmp_path / "run")["model"]["checkpoints"]["resumed_from"] is not None
    np.testing.assert_array_equal(served(tmp_path / "run"), finished)


def test_processes_without_a_network_run_in_one_process(tmp_path, capsys):
    spec = flights_spec(tmp_path / "run", models={"boosted": {"type": "gradient_boosting", "params": {"max_iter": 5}}})
    del spec["models"]["wide_and_deep"]
    assert main(["run", str(write(tmp_path, spec)), "--processes", "2"]) == 0
    assert "no wide_and_deep network to train data-parallel" in " ".join(capsys.readouterr().out.split())


def test_distribution_flags_are_checked(tmp_path, capsys):
    path = write(tmp_path, flights_spec(tmp_path / "run", distribution={"nodes": 2, "rendezvous": "node0:29500"}))
    assert main(["run", str(path), "--nodes", "2", "--rendezvous", "node0"]) == 2
    assert "distribution.rendezvous: several nodes meet at HOST:PORT" in capsys.readouterr().err
    assert load_spec(path).distribution == {"nodes": 2, "rendezvous": "node0:29500", "processes": 1}
