"""docs/spec.md stays complete: every spec field, model type, task and command is documented,
the defaults it states are the code's, and the complete specs it shows are valid.

The field names are collected from the code itself: the ``allowed`` tuples passed to
``mapping(value, where, allowed)`` in ``mlpatterns.spec.schema`` and ``mlpatterns.spec.tuning``
(read with ``ast``, since most are literals inside functions), so a field added to the
parser without a line in the docs fails here.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from mlpatterns.metrics import TASK_METRICS
from mlpatterns.spec import parse_spec
from mlpatterns.spec import schema as spec_module
from mlpatterns.spec import tuning as tuning_spec
from mlpatterns.training.hyperparameter_tuning import search_space as tuning_search_space

DOC = Path(__file__).resolve().parents[1] / "docs" / "spec.md"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text()


def _resolve(node: ast.expr, module: ModuleType) -> list[str] | None:
    """The names an ``allowed`` argument holds: a tuple of strings, a module constant, or ``tuple(CONSTANT)``."""
    if isinstance(node, (ast.Tuple, ast.List)):
        if all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            return [e.value for e in node.elts]
        return None
    if isinstance(node, ast.Name) and hasattr(module, node.id):
        return [str(name) for name in getattr(module, node.id)]  # a tuple, or a dict's keys
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("tuple", "list") \
            and len(node.args) == 1:
        return _resolve(node.args[0], module)
    return None


def mapping_fields(module: ModuleType) -> tuple[set[str], list[str]]:
    """Every field name ``module`` allows in a ``mapping`` call, and the arguments it could not read."""
    tree = ast.parse(Path(module.__file__).read_text())
    found: set[str] = set()
    unresolved: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "mapping"):
            continue
        allowed = node.args[2] if len(node.args) >= 3 else next(
            (k.value for k in node.keywords if k.arg == "allowed"), None)
        if allowed is None:
            continue
        names = _resolve(allowed, module)
        if names is None:
            unresolved.append(ast.unparse(allowed))
        else:
            found.update(names)
    return found, unresolved


def _search_space_fields() -> set[str]:
    """The fields of one distribution of ``tuning.space``: the tuples assigned to ``allowed``."""
    tree = ast.parse(Path(tuning_search_space.__file__).read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "allowed" for t in node.targets):
            for inner in ast.walk(node.value):
                names = _resolve(inner, tuning_search_space) if isinstance(inner, ast.Tuple) else None
                found.update(names or [])
    return found


def _missing(doc: str, names: Any) -> list[str]:
    return sorted({str(n) for n in names} - {n for n in map(str, names) if f"`{n}`" in doc})


def spec_fields() -> set[str]:
    """Every field a spec can hold: the ``mapping`` calls of the parsers and a categorical column's mapping,
    which the transform's own declaration check reads."""
    from mlpatterns.reproducibility.categorical_encoding import CATEGORICAL_FIELDS

    return (mapping_fields(spec_module)[0] | mapping_fields(tuning_spec)[0] | _search_space_fields()
            | set(CATEGORICAL_FIELDS))


def test_the_field_collection_finds_the_fields_of_every_level():
    """A guard for the guard: the ast walk must read every ``mapping`` call and find fields of all levels."""
    names, unresolved = mapping_fields(spec_module)
    names |= spec_fields()
    assert unresolved == []
    assert {"null_values", "positive_label", "cutoffs", "min_frequency", "init_from", "extreme_above",
            "sampling_strategy", "relative_to_spec", "rendezvous", "greater_than", "quantiles"} <= names
    assert set(spec_module._TOP_LEVEL) | set(spec_module._MODEL_FIELDS) | set(spec_module._CHECKPOINT_FIELDS) <= names
    tuning, unresolved = mapping_fields(tuning_spec)
    assert unresolved == [] and {"n_trials", "space", "start_from_spec"} <= tuning
    assert {"type", "low", "high", "step", "log", "choices"} <= _search_space_fields()
    assert _missing("`a` and `b`", ["a", "b", "c"]) == ["c"]


def test_every_spec_field_is_documented(doc):
    assert _missing(doc, spec_fields()) == [], "docs/spec.md does not mention these spec fields as `code`"


def test_every_model_type_task_and_choice_is_documented(doc):
    from mlpatterns.spec.emulator import EMULATOR_PARAMS
    from mlpatterns.spec.params import MEMBER_NETWORK_PARAMS, NETWORK_PARAMS
    from mlpatterns.training.hyperparameter_tuning.samplers import PRUNERS, SAMPLERS

    s = spec_module
    choices = {
        "model types": s.MODEL_TYPES, "tasks": s.TASKS, "member types": s.MEMBER_TYPES,
        "rebalance methods": s.REBALANCE_METHODS + s.NETWORK_REBALANCE_METHODS, "date parts": s.DATE_PARTS,
        "categorical encodings": s.CATEGORICAL_ENCODINGS, "data sets": s.DATASETS, "text encoders": s.TEXT_ENCODERS,
        "network params": NETWORK_PARAMS + MEMBER_NETWORK_PARAMS, "emulator params": EMULATOR_PARAMS,
        "samplers": SAMPLERS, "pruners": PRUNERS,
        "tuning metrics": [m for metrics in TASK_METRICS.values() for m in metrics],
    }
    missing = {what: _missing(doc, names) for what, names in choices.items()}
    assert {what: names for what, names in missing.items() if names} == {}


def test_every_command_and_flag_is_documented(doc):
    from mlpatterns.cli import CHUNK_ROWS, RAY_BLOCK_ROWS, build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    section = _section(doc, "## The commands")
    for name, parser in commands.items():
        assert f"`mlpatterns {name} " in section, name
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in ("-h", "--help") or flag in section, f"{name} {flag}"
    run = commands["run"]
    seed = next(a.default for a in run._actions if "--seed" in a.option_strings)
    assert f"`--seed` (default `{seed}`)" in section and f"`--chunk-rows {CHUNK_ROWS}`" in section
    assert f"default {RAY_BLOCK_ROWS} there" in section


# -- the defaults the docs state are the code's ------------------------------------------------------
def _section(doc: str, heading: str) -> str:
    """The text under ``heading`` (a whole line) up to the next heading of the same or a higher level."""
    lines, level, out, fenced = doc.splitlines(), heading.count("#", 0, heading.index(" ")), [], False
    start = lines.index(heading)
    for line in lines[start + 1:]:
        fenced ^= line.startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", line):
            break
        out.append(line)
    return "\n".join(out)


def _rows(section: str, field: str) -> list[str]:
    rows = [line for line in section.splitlines() if line.startswith(f"| `{field}` |")]
    assert rows, f"no table row for `{field}`"
    return rows


def _yaml(value: Any) -> str:
    """A value as the docs write it: YAML flow style."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return value if isinstance(value, str) else repr(value)


def _states(doc: str, heading: str, defaults: dict[str, Any]) -> dict[str, str]:
    """The fields whose table row under ``heading`` does not show the default as `code`."""
    section = _section(doc, heading)
    return {field: _yaml(value) for field, value in defaults.items()
            if not any(f"`{_yaml(value)}`" in row for row in _rows(section, field))}


def _spec(**changes: Any) -> Any:
    raw = {"name": "t", "data": {"path": "t.csv"}, "target": {"column": "y"}, "split": {"key": "k"},
           "features": {"numeric": ["a"]}, "models": {"m": {"type": "gradient_boosting"}}, **changes}
    return parse_spec(raw)


def test_the_parsers_defaults_are_documented(doc):
    from mlpatterns.reproducibility.repeatable_splitting import hash_split
    from mlpatterns.responsible.heuristic_benchmark import HeuristicBenchmark

    hashed = _spec().split
    split = inspect.signature(hash_split).parameters
    assert _states(doc, "### Hash split", {"fractions": hashed["fractions"], "nulls": hashed["nulls"],
                                           "num_buckets": split["num_buckets"].default,
                                           "separator": f'"{split["separator"].default}"'}) == {}
    timed = _spec(split={"by": "time", "column": "d"}).split
    assert _states(doc, "### Time split", {"fractions": timed["fractions"], "nulls": timed["nulls"]}) == {}
    reframe = _spec(target={"column": "y", "reframe": {}}).target["reframe"]
    assert _states(doc, "### `target.reframe`", reframe) == {}
    stack = _spec(models={"s": {"type": "stacking", "members": {"a": {"type": "linear"}, "b": {"type": "linear"}}}})
    assert _states(doc, "## `models`", {"n_splits": stack.models["s"]["n_splits"], "refit": True}) == {}
    assert _states(doc, "## `distribution`", spec_module.parse_distribution({})) == {}
    baseline = inspect.signature(HeuristicBenchmark).parameters
    assert _states(doc, "## `baseline`", {k: baseline[k].default for k in ("min_count", "statistic")}) == {}
    assert _spec().output_dir == Path("runs", "t") and _states(doc, "## `output`", {"dir": "runs/<name>"}) == {}


def test_the_tuning_defaults_are_documented(doc):
    space = {"models.m.params.learning_rate": {"type": "float", "low": 0.01, "high": 0.3}}
    tuning = _spec(tuning={"space": space}).tuning
    fields = ("n_trials", "n_workers", "start_from_spec", "sampler", "pruner")
    assert _states(doc, "## `tuning`", {k: tuning[k] for k in fields}) == {}
    section = _section(doc, "## `tuning`")
    for task, metrics in TASK_METRICS.items():  # in order: the first is the default
        assert ", ".join(f"`{m}`" for m in metrics) in section, task
    assert tuning["metric"] == TASK_METRICS["regression"][0]


def test_the_model_defaults_are_documented(doc):
    from mlpatterns.models import WideAndDeepClassifier
    from mlpatterns.models.training_loop import train_network
    from mlpatterns.models.wide_and_deep import WideAndDeep
    from mlpatterns.spec.models import DEFAULT_MAX_ITER, build_estimator, sklearn_model
    from mlpatterns.spec.network import DEFAULT_EPOCHS, MAX_BATCH_SIZE, network_defaults
    from mlpatterns.training.trainer.loop import DEFAULT_CHECKPOINT_EVERY
    from mlpatterns.training.useful_overfitting import OverfitEmulator

    loop, net = inspect.signature(train_network).parameters, inspect.signature(WideAndDeep).parameters
    from mlpatterns.spec.params import NETWORK_PARAMS  # what a spec may set, checked at load

    assert set(NETWORK_PARAMS) == ({"hidden", "dropout"} & set(net)) | (set(NETWORK_PARAMS) & set(loop))
    network = {k: loop[k].default for k in ("learning_rate", "weight_decay", "patience", "examples_per_epoch")}
    # a spec network's epochs and batch size follow the training rows (network_defaults)
    assert network_defaults(1_000) == {"batch_size": 32, "epochs": DEFAULT_EPOCHS}
    assert network_defaults(10**6) == {"batch_size": MAX_BATCH_SIZE, "epochs": DEFAULT_EPOCHS}
    network["epochs"] = DEFAULT_EPOCHS
    assert f"`{MAX_BATCH_SIZE}` rows at most" in _section(doc, "#### `wide_and_deep`")
    network.update(hidden=net["hidden"].default, dropout=net["dropout"].default)
    network["weight_decay"] = float(network["weight_decay"])
    assert _states(doc, "#### `wide_and_deep`", network) == {}
    member_dropout = inspect.signature(WideAndDeepClassifier).parameters["dropout"].default
    assert f"`dropout` defaults to `{member_dropout}`" in _section(doc, "#### `wide_and_deep`")
    emulator = inspect.signature(OverfitEmulator).parameters
    assert _states(doc, "#### `emulator`", {k: emulator[k].default for k in (
        "hidden", "activation", "solver", "loss", "max_steps", "check_every")}) == {}
    assert _states(doc, "### `checkpoints`", {"every": DEFAULT_CHECKPOINT_EVERY,
                                              "keep_last": loop["keep_last"].default}) == {}
    types = _section(doc, "### Model types")
    forest = sklearn_model("random_forest", {}, True, 0, "m", (1, []), inner=True).get_params()
    linear = sklearn_model("linear", {}, True, 0, "m", (1, []), inner=True).steps[-1][1].get_params()
    single = sklearn_model("gradient_boosting", {}, True, 0, "m", (1, []), inner=False).get_params()
    expected = {"random_forest": [f"`{k}: {forest[k]}`" for k in ("n_estimators", "min_samples_leaf")],
                "linear": [f"`max_iter: {linear['max_iter']}`"],
                "gradient_boosting": [f"`max_iter: {DEFAULT_MAX_ITER}`", f"`early_stopping: {_yaml(single['early_stopping'])}`"]}
    for kind, phrases in expected.items():
        assert any(all(p in row for p in phrases) for row in _rows(types, kind)), kind
    assert f"**{DEFAULT_MAX_ITER}**" in _section(doc, "#### `gradient_boosting`")
    binary = _spec(target={"column": "y", "positive_label": "a"},
                   models={"m": {"type": "gradient_boosting", "rebalance": {"method": "downsampled_ensemble"}}})
    ensemble = build_estimator("m", binary.models["m"], binary, 0, (1, []))
    assert _states(doc, "### `rebalance`", {"n_estimators": ensemble.get_params()["n_estimators"]}) == {}


def test_the_categorical_defaults_and_bucket_formula_are_the_codes(doc):
    from mlpatterns.reproducibility import categorical_encoding as encoding

    section = _section(doc, "### `features.categorical`")
    assert _states(doc, "### `features.categorical`", {"min_frequency": encoding.DEFAULT_MIN_FREQUENCY,
                                                       "max_categories": encoding.VOCABULARY_CUTOFF}) == {}
    assert f"**{encoding.VOCABULARY_CUTOFF}**" in section
    cap = int(math.log2(encoding.MAX_AUTO_BUCKETS))
    assert f"`min(2**ceil(log2(8 * d)), 2**{cap})`" in section
    for distinct in (1, 3, 125, 1000, 1001, 131_072, 200_000):  # the formula the docs state
        assert encoding.auto_bucket_count(distinct) == min(2 ** math.ceil(math.log2(8 * distinct)), 2 ** cap)


def test_the_complete_specs_in_the_docs_are_valid(doc):
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    complete = [yaml.safe_load(block) for block in blocks if re.match(r"name: ", block)]
    assert len(complete) >= 3
    tasks = {parse_spec(raw).task for raw in complete}
    assert {"regression", "classification", "multiclass"} <= tasks
