"""Hyperparameter Tuning (15) from a spec: the ``tuning:`` section, ``mlpatterns tune`` on real data,
nested meta-estimator parameters, pruning of wide-and-deep trials, and the tuned bundle."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import optuna
import pytest
import yaml
from threadpoolctl import threadpool_limits

from mlpatterns.cli import main
from mlpatterns.lifecycle import run_spec
from mlpatterns.serving.stateless_serving_function import ServingFunction
from mlpatterns.spec import SpecError, load_spec, parse_spec
from mlpatterns.spec.tuning import apply_params

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LEARNING_RATE = "models.gradient_boosting.params.learning_rate"


def example(name: str) -> dict:
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


@pytest.fixture(autouse=True)
def one_thread():
    with threadpool_limits(1):  # OpenMP on 2 shared cores: one thread per test worker is faster
        yield


# -- the tuning: section ---------------------------------------------------------------------------
def test_example_spec_declares_a_study():
    spec = load_spec(EXAMPLES / "tuning_flights.yaml")
    tuning = spec.tuning
    assert (tuning["model"], tuning["metric"], tuning["direction"]) == ("gradient_boosting", "log_loss", "minimize")
    assert (tuning["n_trials"], tuning["n_workers"], tuning["start_from_spec"]) == (30, 1, True)
    assert tuning["paths"][LEARNING_RATE] == ("params", "learning_rate")
    assert tuning["storage"].startswith("sqlite:///") and tuning["pruner"] == "median"


def _with_space(raw: dict, space: dict, **fields) -> dict:
    raw = copy.deepcopy(raw)
    raw["tuning"] = {"space": space, **fields}
    return raw


TAXI = example("taxi_fares")
LR = {"type": "float", "low": 0.01, "high": 0.3}


@pytest.mark.parametrize(("space", "fields", "message"), [
    ({"models.nope.params.x": [1]}, {}, r"tuning\.space\.models\.nope\.params\.x: no model 'nope'; the spec has"),
    ({"single.params.x": [1]}, {}, r"tuning\.space\.single\.params\.x: expected a path models\.<model>"),
    ({"models.single.params.learning_rate": LR, "models.stack.members.boosting.params.learning_rate": LR}, {},
     r"tuning\.space: a study tunes one model; the paths name \['single', 'stack'\]"),
    ({"models.stack.members.gbm.params.max_iter": [10]}, {}, r"members\.gbm\.params\.max_iter: no member 'gbm'"),
    ({"models.stack.members.boosting.max_iter": [10]}, {}, r"expected members\.<member>\.params\.<parameter>"),
    ({"models.stack.n_splits": {"type": "int", "low": 1, "high": 4}}, {},
     r"tuning\.space\.models\.stack\.n_splits: with 1, models\.stack\.n_splits: expected a whole number of at least 2"),
    ({"models.stack.final_estimator__alpha": [1.0]}, {}, r"declare final in the model"),
    ({"models.stack.trees__max_depth": [3]}, {}, r"'trees' is not a part of this stacking model"),
    ({"models.stack.boosting__a__b": [3]}, {}, r"reaches below the parameters a spec declares"),
    ({"models.single.params.learning_rate": {"type": "float", "low": 0.3, "high": 0.1}}, {},
     r"tuning\.space\.models\.single\.params\.learning_rate\.high: expected at least low"),
    ({"models.single.params.learning_rate": LR}, {"metric": "roc_auc"},
     r"tuning\.metric: expected one of \['rmse', 'mae', 'r2'\] for a regression target, got 'roc_auc'"),
    ({"models.single.params.learning_rate": LR}, {"sampler": "annealing"}, r"tuning\.sampler: expected one of"),
    ({"models.single.params.learning_rate": LR}, {"sampler": {"type": "tpe", "startup": 3}},
     r"tuning\.sampler: tpe: .*startup"),
    ({"models.single.params.learning_rate": LR}, {"pruner": "early"}, r"tuning\.pruner: expected one of"),
    ({"models.single.params.learning_rate": LR}, {"storage": "mysql://x"}, r"tuning\.storage: unknown scheme 'mysql'.*expected none"),
    ({"models.single.params.learning_rate": LR}, {"n_trials": 0}, r"tuning\.n_trials: expected a whole number"),
    ({"models.single.params.learning_rate": LR}, {"n_workers": "2"}, r"tuning\.n_workers: expected a whole number"),
    ({"models.single.params.learning_rate": LR}, {"timeout": -1}, r"tuning\.timeout: expected a number of seconds"),
    ({"models.single.params.learning_rate": LR}, {"trials": 3}, r"tuning: unknown field\(s\) \['trials'\]"),
    ({}, {}, r"tuning\.space: expected at least one parameter"),
])
def test_tuning_errors_name_the_field(space, fields, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(_with_space(TAXI, space, **fields))


def test_a_threshold_range_must_make_valid_models():
    raw = _with_space(example("flights"), {"models.gradient_boosting.threshold": {"type": "float", "low": 0.0,
                                                                                 "high": 0.5}})
    with pytest.raises(SpecError, match=r"with 0\.0, models\.gradient_boosting\.threshold: expected a number in"):
        parse_spec(raw)
    raw["tuning"]["space"]["models.gradient_boosting.threshold"]["low"] = 0.05
    assert parse_spec(raw).tuning["paths"]["models.gradient_boosting.threshold"] == ("threshold",)


def test_reframed_target_is_refused():
    raw = example("natality")
    raw["target"]["reframe"] = {"buckets": 10}
    raw["models"] = {"gradient_boosting": raw["models"]["gradient_boosting"]}
    with pytest.raises(SpecError, match="tuning: a reframed target"):
        parse_spec(_with_space(raw, {LEARNING_RATE: LR}))


def test_scikit_learn_keys_become_spec_paths():
    spec = parse_spec(_with_space(TAXI, {
        "models.stack.boosting__learning_rate": LR,
        "models.stack.linear__ridge__alpha": {"type": "float", "low": 0.01, "high": 100.0, "log": True},
        "models.stack.network__epochs": {"type": "int", "low": 1, "high": 3},
    }))
    assert spec.tuning["paths"] == {
        "models.stack.boosting__learning_rate": ("members", "boosting", "params", "learning_rate"),
        "models.stack.linear__ridge__alpha": ("members", "linear", "params", "alpha"),
        "models.stack.network__epochs": ("members", "network", "params", "epochs"),
    }
    cascade = parse_spec(_with_space(TAXI, {"models.cascade.router__max_leaf_nodes": [15, 31]}))
    assert cascade.tuning["paths"]["models.cascade.router__max_leaf_nodes"] == ("router", "params", "max_leaf_nodes")
    rebalanced = example("flights_rebalancing")
    single = parse_spec(_with_space(rebalanced, {"models.smote.estimator__max_iter": [50, 100]}))
    assert single.tuning["paths"]["models.smote.estimator__max_iter"] == ("params", "max_iter")
    model = apply_params(single.models["smote"], {("params", "max_iter"): 50, ("rebalance", "sampling_strategy"): 0.3})
    assert model["params"] == {"max_iter": 50} and model["rebalance"]["sampling_strategy"] == 0.3
    assert single.models["smote"]["params"] == {"max_iter": 200}  # a copy: the spec is unchanged


# -- mlpatterns tune on real data ------------------------------------------------------------------
@pytest.fixture(scope="module")
def natality_tuned(tmp_path_factory):
    """Natality birth weights (half the rows, repeatably sampled): 8 TPE trials over three parameters."""
    tmp = tmp_path_factory.mktemp("natality-tuning")
    raw = example("natality")
    raw["data"]["sample_fraction"] = 0.5
    raw["models"] = {"gradient_boosting": {"type": "gradient_boosting", "params": {"max_iter": 100}}}
    raw["output"] = {"dir": str(tmp / "run")}
    raw["tuning"] = {
        "n_trials": 8, "metric": "rmse", "storage": f"sqlite:///{tmp}/tuning.db",
        "sampler": {"type": "tpe", "n_startup_trials": 4},
        "space": {
            LEARNING_RATE: {"type": "float", "low": 0.02, "high": 0.5, "log": True},
            "models.gradient_boosting.params.max_leaf_nodes": {"type": "int", "low": 4, "high": 64, "log": True},
            "models.gradient_boosting.params.l2_regularization": {"type": "float", "low": 0.0, "high": 20.0},
        },
    }
    path = tmp / "natality.yaml"
    path.write_text(yaml.safe_dump(raw))
    with threadpool_limits(1):
        assert main(["tune", str(path)]) == 0
    return path, tmp / "run"


def test_tuned_bundle_records_the_study(natality_tuned):
    _, run = natality_tuned
    manifest = ServingFunction.load(run / "bundles" / "gradient_boosting").bundle.manifest
    tuning = manifest["tuning"]
    assert tuning["study_name"] == "natality-weight.gradient_boosting"
    assert (tuning["storage"], tuning["n_trials"], tuning["complete"], tuning["metric"]) == ("sqlite", 8, 8, "rmse")
    assert set(tuning["best_params"]) == set(tuning["space"])
    for key, value in tuning["best_params"].items():  # the bundled model is the best trial's
        assert manifest["model"]["params"][key.rsplit(".", 1)[1]] == value
    report = json.loads((run / "report.json").read_text())
    assert report["tuning"]["best_value"] == tuning["best_value"] and "tune" in report["timings_seconds"]
    assert (run / tuning["history_plot"]).is_file()


def test_tuned_beats_the_spec_values_on_validation(natality_tuned):
    """The direction of the effect on real data: trial 0 trains the spec's values (scikit-learn's
    defaults here, learning rate 0.1, 31 leaves, no L2); the study finds a lower validation RMSE."""
    _, run = natality_tuned
    tuning = json.loads((run / "report.json").read_text())["tuning"]
    assert tuning["start_from_spec"] and tuning["start_value"] is not None
    assert tuning["best_trial"] != 0 and tuning["best_value"] < tuning["start_value"]
    study = optuna.load_study(study_name=tuning["study_name"], storage=f"sqlite:///{run.parent}/tuning.db")
    first = study.trials[0]
    assert first.params == {LEARNING_RATE: 0.1, "models.gradient_boosting.params.max_leaf_nodes": 31,
                            "models.gradient_boosting.params.l2_regularization": 0.0}
    assert first.user_attrs["valid"]["rmse"] == first.value  # every validation metric is kept per trial


def test_tune_resumes_the_stored_study(natality_tuned, tmp_path, capsys):
    path, _ = natality_tuned
    out = ["--output", str(tmp_path / "again")]
    assert main(["run", str(path), *out]) == 0  # `run` tunes too; all 8 trials are stored: none runs
    assert "8 complete, 0 pruned, 0 failed trials (0 run now" in " ".join(capsys.readouterr().out.split())
    assert main(["tune", str(path), *out, "--trials", "9"]) == 0
    assert "9 complete, 0 pruned, 0 failed trials (1 run now" in " ".join(capsys.readouterr().out.split())
    assert main(["tune", str(path), "--workers", "0"]) == 2
    assert "--workers: expected a whole number" in capsys.readouterr().err


def test_tune_needs_a_tuning_section(tmp_path, capsys):
    path = tmp_path / "natality.yaml"
    path.write_text(yaml.safe_dump(example("natality")))
    assert main(["tune", str(path)]) == 2
    assert "tuning: the spec has no 'tuning:' section" in capsys.readouterr().err


def test_stack_member_and_scikit_learn_keys_through_the_lifecycle(tmp_path):
    """Ensembles (7) tuned: a member's learning rate by spec path, the linear member's ridge
    alpha by its get_params key; trial 0 takes the spec's value and Ridge's default alpha."""
    raw = copy.deepcopy(TAXI)
    raw["data"]["sample_fraction"] = 0.3
    raw["models"] = {"stack": {"type": "stacking", "n_splits": 2, "members": {
        "boosting": {"type": "gradient_boosting", "params": {"max_iter": 30, "learning_rate": 0.2}},
        "linear": {"type": "linear"}}}}
    raw["output"] = {"dir": str(tmp_path / "run")}
    raw["tuning"] = {"n_trials": 2, "sampler": "random", "space": {
        "models.stack.members.boosting.params.learning_rate": {"type": "float", "low": 0.05, "high": 0.3},
        "models.stack.linear__ridge__alpha": {"type": "float", "low": 0.1, "high": 10.0, "log": True}}}
    result = run_spec(parse_spec(raw), log=lambda *args: None)
    tuning = ServingFunction.load(result.bundles["stack"]).bundle.manifest["tuning"]
    assert (tuning["storage"], tuning["complete"], tuning["model"]) == ("memory", 2, "stack")
    assert tuning["start_value"] is not None
    best = tuning["best_params"]
    if tuning["best_trial"] == 0:
        assert best == {"models.stack.members.boosting.params.learning_rate": 0.2,
                        "models.stack.linear__ridge__alpha": 1.0}
    assert result.metrics["stack"]["rmse"] < result.metrics["heuristic_benchmark"]["rmse"]


def test_unknown_scikit_learn_key_is_named_when_the_model_is_built(tmp_path):
    raw = copy.deepcopy(TAXI)
    raw["data"]["sample_fraction"] = 0.2
    raw["models"] = {"single": {"type": "gradient_boosting", "params": {"max_iter": 5}}}
    raw["output"] = {"dir": str(tmp_path / "run")}
    raw["tuning"] = {"n_trials": 1, "space": {"models.single.learning_rat": [0.1, 0.2]}}
    with pytest.raises(SpecError, match=r"tuning\.space\.models\.single\.learning_rat: HistGradientBoostingRegressor "
                                        r"has no parameter 'learning_rat'"):
        run_spec(parse_spec(raw), log=lambda *args: None)


def test_wide_and_deep_trials_are_pruned_on_their_validation_loss(tmp_path):
    pytest.importorskip("torch")
    raw = example("natality")
    raw["data"]["sample_fraction"] = 0.1
    raw["models"] = {"wide_and_deep": {"type": "wide_and_deep",
                                       "params": {"epochs": 3, "batch_size": 512, "hidden": [16], "patience": 10}}}
    raw["output"] = {"dir": str(tmp_path / "run")}
    raw["tuning"] = {"n_trials": 5, "sampler": "random", "pruner": {"type": "median", "n_startup_trials": 2},
                     "start_from_spec": False, "space": {
                         "models.wide_and_deep.params.learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2,
                                                                       "log": True},
                         "models.wide_and_deep.params.hidden": [[16], [32, 16]]}}
    import torch

    torch.set_num_threads(1)
    result = run_spec(parse_spec(raw), seed=1, log=lambda *args: None)
    tuning = result.tuning
    assert tuning["pruned"] >= 1 and tuning["complete"] + tuning["pruned"] == 5
    assert tuning["best_params"]["models.wide_and_deep.params.hidden"] in ([16], [32, 16])
    manifest = ServingFunction.load(result.bundles["wide_and_deep"]).bundle.manifest
    assert manifest["model"]["architecture"]["hidden"] == tuning["best_params"]["models.wide_and_deep.params.hidden"]
