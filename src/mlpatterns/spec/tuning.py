"""Hyperparameter Tuning (15) from a spec: the ``tuning:`` section, its study and the tuned model.

::

    tuning:
      n_trials: 30                 # complete or pruned trials the study ends with
      metric: log_loss             # on the validation split; default roc_auc, rmse or macro_roc_auc
      sampler: tpe                 # random, gp, qmc, cmaes, bruteforce, or {type: tpe, n_startup_trials: 5}
      pruner: median               # none, hyperband, ...; wide_and_deep models report valid_loss per epoch
      storage: sqlite:///runs/flights/tuning.db   # default: memory (n_workers 1) or OUTPUT/tuning.db
      study_name: flights-boosting # default: "<spec name>.<model>"; an existing study resumes
      n_workers: 2                 # processes sharing the study
      timeout: 600                 # seconds per worker, optional
      start_from_spec: true        # trial 0 runs the values the spec declares (and the estimator defaults)
      space:                       # spec paths, or scikit-learn get_params keys after the model name
        models.boosting.params.learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
        models.stack.members.boosting.params.max_leaf_nodes: {type: int, low: 8, high: 128, log: true}
        models.stack.forest__min_samples_leaf: {type: int, low: 1, high: 20}

Every path names one model, the one the study tunes. Each trial trains that model
exactly as ``mlpatterns run`` does (same split, transform, seed and early stopping)
and scores its validation-split output; the lifecycle then trains the best trial's
model again and bundles it, with the study recorded in the manifest's ``tuning``.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlpatterns.metrics import METRIC_DIRECTIONS, TASK_METRICS
from mlpatterns.spec._checks import SpecError, expect, mapping, positive_int
from mlpatterns.spec.models import evaluate_model
from mlpatterns.spec.schema import Spec
from mlpatterns.training.hyperparameter_tuning.search_space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpaceError,
    parse_search_space,
)

__all__ = ["METRIC_DIRECTIONS", "SpecObjective", "TunedModel", "apply_params", "parse_tuning", "tune_spec_model",
           "tuning_from_json", "tuning_to_json"]

_FIELDS = ("n_trials", "metric", "sampler", "pruner", "storage", "study_name", "n_workers", "timeout",
           "start_from_spec", "space")
_PARTS = ("final", "router", "typical", "extreme")


def _task(target: dict[str, Any]) -> str:
    return "neutral" if "neutral" in target else target["task"]


def _spec_path(model: dict[str, Any], rest: list[str], where: str) -> tuple[str, ...]:
    """The path inside ``models.<name>`` that a space key sets, checked against the model's shape."""
    head = rest[0]
    if head == "params":
        expect(len(rest) == 2, where, "expected params.<parameter>")
    elif head == "members":
        expect(len(rest) == 4 and rest[2] == "params", where, "expected members.<member>.params.<parameter>")
        expect(rest[1] in model.get("members", {}), where,
               f"no member {rest[1]!r}; the model has {sorted(model.get('members', {}))}")
    elif head in _PARTS:
        expect(len(rest) == 3 and rest[1] == "params", where, f"expected {head}.params.<parameter>")
        expect(head in model, where, f"declare {head} in the model to tune its parameters")
    elif head in ("threshold", "rebalance"):
        inner = {"threshold": ("min_precision",), "rebalance": ("sampling_strategy", "n_estimators")}[head]
        expect(len(rest) == 1 and head == "threshold" or len(rest) == 2 and rest[1] in inner, where,
               f"expected {head}{'' if head == 'rebalance' else ' or ' + head}.<{'|'.join(inner)}>")
    elif head in ("extreme_above", "n_splits"):
        expect(len(rest) == 1, where, f"expected {head} alone")
    else:
        expect(len(rest) == 1, where, "expected params.<parameter>, members.<member>.params.<parameter>, "
               f"{'|'.join(_PARTS)}.params.<parameter>, threshold, rebalance.<field>, n_splits, extreme_above, "
               "or a scikit-learn get_params key such as boosting__learning_rate")
        return _sklearn_path(model, head, where)
    return tuple(rest)


def _sklearn_path(model: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A scikit-learn ``get_params`` key of the built (meta-)estimator as a path in the model section."""
    parts, kind = key.split("__"), model["type"]
    section: tuple[str, ...] = ()
    member = model
    if kind == "stacking" and parts[0] in model["members"]:
        section, member, parts = ("members", parts[0]), model["members"][parts[0]], parts[1:]
    elif kind == "stacking" and parts[0] == "final_estimator" or kind == "cascade" and parts[0] in _PARTS[1:]:
        part = "final" if parts[0] == "final_estimator" else parts[0]
        expect(part in model, where, f"declare {part} in the model to tune its parameters")
        section, member, parts = (part,), model[part], parts[1:]
    elif kind in ("stacking", "cascade"):
        raise SpecError(f"{where}: {parts[0]!r} is not a part of this {kind} model")
    else:
        while len(parts) > 1 and parts[0] in ("estimator", "detector"):  # rebalancing, neutral, multilabel
            parts = parts[1:]
    if member.get("type") == "linear" and len(parts) == 2 and parts[0] in ("logisticregression", "ridge"):
        parts = parts[1:]
    expect(len(parts) == 1 and parts[0] != "", where,
           "reaches below the parameters a spec declares; use a key ending in the parameter of a "
           "member or part (boosting__learning_rate)")
    return (*section, "params", parts[0])


def apply_params(model: dict[str, Any], values: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    """A copy of a model section with each path set to its value."""
    model = copy.deepcopy(model)
    for path, value in values.items():
        node = model
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # a number threshold replaced by {min_precision: ...}
                node = {}
        node[path[-1]] = value
    return model


def parse_tuning(raw: Any, models: dict[str, dict[str, Any]], target: dict[str, Any],
                 parse_model: Callable[[str, Any, dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """Validate a spec's ``tuning:`` section against its (parsed) models; errors name the field."""
    tuning = mapping(raw, "tuning", _FIELDS)
    expect("space" in tuning, "tuning", "missing field 'space' (the parameters to tune and their ranges)")
    raw_space = mapping(tuning["space"], "tuning.space")
    expect(bool(raw_space), "tuning.space", "expected at least one parameter")
    try:
        space = parse_search_space(raw_space, "tuning.space")
    except SearchSpaceError as error:
        raise SpecError(str(error)) from None
    names, paths = set(), {}
    for key in space:
        where, parts = f"tuning.space.{key}", key.split(".")
        expect(len(parts) >= 3 and parts[0] == "models", where, "expected a path models.<model>.<field>...")
        expect(parts[1] in models, where, f"no model {parts[1]!r}; the spec has {list(models)}")
        names.add(parts[1])
        paths[key] = _spec_path(models[parts[1]], parts[2:], where)
    expect(len(names) == 1, "tuning.space", f"a study tunes one model; the paths name {sorted(names)}")
    name = names.pop()
    expect("reframe" not in target, "tuning", "a reframed target's model reports no validation output to tune on")
    for key, param in space.items():  # the range's ends must make a valid model section
        for value in param.bounds():
            try:
                parse_model(name, apply_params(models[name], {paths[key]: value}), target)
            except SpecError as error:
                raise SpecError(f"tuning.space.{key}: with {value!r}, {error}") from None
    task = _task(target)
    metric = tuning.setdefault("metric", TASK_METRICS[task][0])
    expect(metric in TASK_METRICS[task], "tuning.metric",
           f"expected one of {list(TASK_METRICS[task])} for a {task} target, got {metric!r}")
    positive_int(tuning.setdefault("n_trials", 20), "tuning.n_trials")
    positive_int(tuning.setdefault("n_workers", 1), "tuning.n_workers")
    timeout = tuning.get("timeout")
    expect(timeout is None or isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout > 0,
           "tuning.timeout", f"expected a number of seconds above 0, got {timeout!r}")
    expect(isinstance(tuning.setdefault("start_from_spec", True), bool), "tuning.start_from_spec",
           f"expected true or false, got {tuning['start_from_spec']!r}")
    study_name = tuning.get("study_name")
    expect(study_name is None or isinstance(study_name, str) and study_name.strip() != "", "tuning.study_name",
           f"expected a non-empty name, got {study_name!r}")
    storage = tuning.get("storage")
    expect(storage is None or isinstance(storage, str), "tuning.storage", f"expected a config string, got {storage!r}")
    from mlpatterns.training.hyperparameter_tuning.samplers import make_pruner, make_sampler
    from mlpatterns.training.hyperparameter_tuning.storage import open_storage

    for field, make in (("sampler", make_sampler), ("pruner", make_pruner)):
        config = tuning.setdefault(field, {"sampler": "tpe", "pruner": "median"}[field])
        expect(isinstance(config, (str, Mapping)), f"tuning.{field}", f"expected a name or a mapping, got {config!r}")
        try:
            make(config, where=f"tuning.{field}")
        except ValueError as error:
            raise SpecError(str(error)) from None
    try:
        open_storage(storage)
    except ValueError as error:
        raise SpecError(f"tuning.{error}") from None
    return {**tuning, "model": name, "space": space, "paths": paths, "direction": METRIC_DIRECTIONS[metric]}


_PARAM_KINDS = {"int": IntParam, "float": FloatParam, "categorical": CategoricalParam}


def tuning_to_json(tuning: Mapping[str, Any]) -> dict[str, Any]:
    """A parsed ``tuning:`` section as JSON (the Workflow Pipeline keys its tune step on it)."""
    import dataclasses

    kinds = {kind: name for name, kind in _PARAM_KINDS.items()}
    space = {key: {"kind": kinds[type(param)], **dataclasses.asdict(param)} for key, param in tuning["space"].items()}
    return {**tuning, "space": space, "paths": {key: list(path) for key, path in tuning["paths"].items()}}


def tuning_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """The parsed ``tuning:`` section that :func:`tuning_to_json` wrote."""
    space = {}
    for key, value in data["space"].items():
        fields = {k: v for k, v in value.items() if k != "kind"}
        if value["kind"] == "categorical":
            fields["choices"] = tuple(fields["choices"])
        space[key] = _PARAM_KINDS[value["kind"]](**fields)
    return {**data, "space": space, "paths": {key: tuple(path) for key, path in data["paths"].items()}}


def validation_metrics(spec: Spec, y_valid: Any, trained: Any) -> dict[str, float]:
    """The lifecycle's test metrics, computed on the validation split's output."""
    return evaluate_model(spec, y_valid, replace(trained, test_output=trained.valid_output, test_metrics={}))


@dataclass
class SpecObjective:
    """One trial: train ``models.<name>`` with the sampled values; score it on the validation split."""

    spec: Spec
    name: str
    data: dict[str, Any]
    context: dict[str, Any]
    seed: int

    def __call__(self, params: dict[str, Any], trial: Any) -> float:
        import optuna

        from mlpatterns.spec.models import train_model
        from mlpatterns.training.hyperparameter_tuning.study import PruningCallback

        tuning = self.spec.tuning
        model = apply_params(self.spec.models[self.name], {tuning["paths"][k]: v for k, v in params.items()})
        if model["type"] == "wide_and_deep" and tuning["pruner"] != "none":  # valid_loss after each epoch
            model["params"]["callback"] = PruningCallback(trial, monitor="valid_loss", mode="min")
        try:
            trained = train_model(self.name, model, self.spec, self.data, self.context, None, self.seed)
        except (SpecError, optuna.TrialPruned):
            raise
        except ValueError as error:
            raise SpecError(f"tuning: trial {trial.number} with {params}: {error}") from error
        metrics = validation_metrics(self.spec, self.data["valid"][1], trained)
        trial.set_user_attr("valid", {k: float(v) for k, v in metrics.items()})
        return metrics[tuning["metric"]]


@dataclass
class TunedModel:
    """The study's outcome for the lifecycle: the model section to train and the manifest fields."""

    model: str
    model_spec: dict[str, Any]
    manifest: dict[str, Any]
    result: Any


def _estimator_keys(model: dict[str, Any], path: tuple[str, ...]) -> list[str]:
    """The ``get_params`` keys of the built estimator that a spec path may set."""
    if len(path) < 2 or path[-2] != "params":
        return []
    parameter, owner = path[-1], model
    if path[0] == "members":
        prefix, owner = f"{path[1]}__", model["members"][path[1]]
    elif path[0] in _PARTS:
        prefix, owner = ("final_estimator__" if path[0] == "final" else f"{path[0]}__"), model[path[0]]
    else:
        prefix = ""
    keys = [f"{prefix}{parameter}", f"{prefix}estimator__{parameter}", f"{prefix}estimator__estimator__{parameter}"]
    if owner.get("type") == "linear":
        keys += [f"{prefix}{final}__{parameter}" for final in ("logisticregression", "ridge")]
    return keys


def _in_space(param: Any, value: Any) -> bool:
    if isinstance(param, CategoricalParam):
        return value in param.choices
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not param.low <= value <= param.high:
        return False
    if param.step is None:
        return True
    steps = (value - param.low) / param.step
    return abs(steps - round(steps)) < 1e-9


def _start_values(spec: Spec, estimator_params: dict[str, Any]) -> dict[str, Any]:
    """Trial 0: each tuned value as the spec declares it, else the estimator's default, where in range."""
    tuning, model = spec.tuning, spec.models[spec.tuning["model"]]
    values = {}
    for key, path in tuning["paths"].items():
        node: Any = model
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            node = next((estimator_params[k] for k in _estimator_keys(model, path) if k in estimator_params), None)
        node = list(node) if isinstance(node, tuple) else node
        if _in_space(tuning["space"][key], node):
            values[key] = node
    return values


def tune_spec_model(spec: Spec, data: dict[str, Any], context: dict[str, Any], seed: int, output_dir: Path,
                    progress: Any = None, log: Any = print) -> TunedModel:
    """Run (or resume) the spec's study; return the best trial's model section and the manifest fields."""
    from mlpatterns.spec.models import build_estimator
    from mlpatterns.training.hyperparameter_tuning.study import plot_history, tune

    tuning, name = spec.tuning, spec.tuning["model"]
    train = data["train"][0]
    try:  # the scikit-learn (meta-)estimator, for its get_params keys and defaults
        estimator = build_estimator(name, spec.models[name], spec, seed,
                                    (train.numeric.shape[1], list(train.cardinalities)))
        known, built = estimator.get_params(deep=True), type(estimator).__name__
    except SpecError:  # a wide_and_deep model with training-loop options (patience) is no estimator
        known, built = {}, f"a {spec.models[name]['type']} model with these params"
    for key in tuning["space"]:
        last = key.split(".", 2)[2]
        if "." not in last and last not in known:
            raise SpecError(f"tuning.space.{key}: {built} has no parameter {last!r}; it has "
                            f"e.g. {sorted(k for k in known if not k.endswith('estimators'))[:12]}")
    storage = tuning.get("storage")
    if storage is None and tuning["n_workers"] > 1:  # worker processes need a shared file
        storage = f"sqlite:///{output_dir / 'tuning.db'}"
    study_name = tuning.get("study_name") or f"{spec.name}.{name}"
    enqueue = [_start_values(spec, known)] if tuning["start_from_spec"] else None
    outside = sorted(set(tuning["space"]) - set(enqueue[0])) if enqueue else []
    if outside:
        log(f"tuning {name}: trial 0 samples {outside}: the spec's value (or the default) is not in the range")
    objective = SpecObjective(spec, name, data, context, seed)
    short = ", ".join(key.removeprefix(f"models.{name}.") for key in tuning["space"])
    log(f"tuning {name}: {tuning['n_trials']} trials over {short} for the best validation {tuning['metric']} "
        f"({tuning['direction']}); study {study_name!r}, {tuning['n_workers']} worker(s)")
    result = tune(objective, tuning["space"], n_trials=tuning["n_trials"], direction=tuning["direction"],
                  storage=storage, study_name=study_name, sampler=tuning["sampler"], pruner=tuning["pruner"],
                  n_workers=tuning["n_workers"], seed=seed, timeout=tuning.get("timeout"), enqueue=enqueue,
                  progress=progress)
    if result.best_value is None:
        raise SpecError(f"tuning: study {study_name!r} has no complete trial ({result.pruned} pruned, "
                        f"{result.failed} failed)")
    best = apply_params(spec.models[name], {tuning["paths"][k]: v for k, v in result.best_params.items()})
    manifest = {**result.manifest(), "model": name, "metric": tuning["metric"],
                "space": {k: p.to_dict() for k, p in tuning["space"].items()},
                "start_from_spec": tuning["start_from_spec"]}
    if enqueue:
        first = result.study.trials[0]
        manifest["start_value"] = first.value if first.state.name == "COMPLETE" else None
    with contextlib.suppress(ImportError):  # matplotlib is optional (mlpatterns[plot])
        manifest["history_plot"] = Path(plot_history(result.study, output_dir / "tuning_history.png")).name
    return TunedModel(name, best, manifest, result)
