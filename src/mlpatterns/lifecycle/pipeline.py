"""``mlpatterns run`` as a Workflow Pipeline (25): the spec's steps, their cache keys and their order.

:func:`build_pipeline` turns a spec into steps (:mod:`mlpatterns.lifecycle.steps`),
each keyed by the spec sections it reads, its own code and the modules it calls, and
its input artifacts' bytes. So re-running an unchanged spec finishes from the cache,
changing one model's parameters retrains that model only, and changing a feature re-runs
from the transform. Building the pipeline reads no data and imports neither pandas nor
scikit-learn: only a cache miss does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlpatterns.lifecycle import steps

__all__ = ["STEP_CODE", "build_pipeline", "data_sources", "spec_state"]

# The modules whose code each step runs besides its own function: editing one re-runs the step.
_DATA = ["mlpatterns.spec.data", "mlpatterns.tables", "mlpatterns.input_types", "mlpatterns.datasets"]
_SPLIT = ["mlpatterns.lifecycle.splits", "mlpatterns.reproducibility.repeatable_splitting",
          "mlpatterns.lifecycle.bridging", "mlpatterns.spec.bridged_schema", "mlpatterns.reproducibility.bridged_schema",
          "mlpatterns.reproducibility.time_splitting", "mlpatterns.hashing"]
_TRANSFORM = ["mlpatterns.reproducibility.transform", "mlpatterns.reproducibility.categorical_encoding",
              "mlpatterns.reproducibility.categorical_declaration",
              "mlpatterns.data"]
_MODELS = ["mlpatterns.spec.models", "mlpatterns.spec.network", "mlpatterns.spec.emulator", "mlpatterns.models",
           "mlpatterns.problem", "mlpatterns.training", "mlpatterns.export", "mlpatterns.metrics",
           "mlpatterns.tolerance", "mlpatterns.reproducibility.transform"]
STEP_CODE = {
    "load": [*_DATA, "mlpatterns.lifecycle.artifacts", "mlpatterns.solar_day_length",
             "mlpatterns.reproducibility.repeatable_splitting", "mlpatterns.spec.feature_store",
             "mlpatterns.spec.windowed_inference"],
    "validate": ["mlpatterns.reproducibility.data_statistics", "mlpatterns.lifecycle.artifacts"],
    "split": [*_DATA, *_SPLIT, "mlpatterns.lifecycle.artifacts"],
    "transform": [*_DATA, *_SPLIT, *_TRANSFORM, "mlpatterns.lifecycle.artifacts"],
    "benchmark": ["mlpatterns.lifecycle.evaluation", "mlpatterns.responsible.heuristic_benchmark",
                  "mlpatterns.spec.heuristic_benchmark", "mlpatterns.responsible.heuristic_rules",
                  "mlpatterns.responsible.heuristic_selection", "mlpatterns.responsible.heuristic_fitting",
                  "mlpatterns.metrics", "mlpatterns.lifecycle.artifacts", "mlpatterns.reproducibility.transform"],
    "tune": [*_MODELS, "mlpatterns.spec.tuning", "mlpatterns.lifecycle.artifacts"],
    "train": [*_MODELS, "mlpatterns.lifecycle.artifacts", "mlpatterns.lifecycle.outputs"],
    "evaluate": ["mlpatterns.spec.models", "mlpatterns.metrics", "mlpatterns.lifecycle.artifacts",
                 "mlpatterns.lifecycle.evaluation", "mlpatterns.responsible.heuristic_comparison",
                 "mlpatterns.responsible.heuristic_selection", "mlpatterns.responsible.heuristic_fitting"],
    "export": ["mlpatterns.bundles", "mlpatterns.lifecycle.artifacts", "mlpatterns.serving.continued_evaluation.reference_statistics"],
    "two_phase": ["mlpatterns.lifecycle.two_phase_step", "mlpatterns.serving.two_phase_predictions",
                  "mlpatterns.serving.stateless_serving_function", "mlpatterns.bundles", "mlpatterns.spec.data",
                  "mlpatterns.lifecycle.artifacts"],
    "diagnostics": ["mlpatterns.lifecycle.report_plots", "mlpatterns.lifecycle.artifacts", "mlpatterns.spec.models"],
    "explain": ["mlpatterns.lifecycle.explanation_step", "mlpatterns.responsible.explainable_predictions",
                "mlpatterns.spec.explainable_predictions", "mlpatterns.serving", "mlpatterns.bundles",
                "mlpatterns.lifecycle.artifacts"],
    "fairness_data": ["mlpatterns.lifecycle.fairness_step", "mlpatterns.responsible.fairness_lens",
                      "mlpatterns.spec.fairness_lens", "mlpatterns.lifecycle.artifacts"],
    "fairness": ["mlpatterns.lifecycle.fairness_step", "mlpatterns.responsible.fairness_lens",
                 "mlpatterns.spec.fairness_lens", "mlpatterns.serving", "mlpatterns.bundles",
                 "mlpatterns.lifecycle.artifacts"],
    "verify": ["mlpatterns.lifecycle.evaluation", "mlpatterns.serving", "mlpatterns.bundles", "mlpatterns.tables",
               "mlpatterns.tolerance", "mlpatterns.input_types", "mlpatterns.reproducibility.transform",
               "mlpatterns.lifecycle.artifacts"],
}


def spec_state(spec: Any) -> dict[str, Any]:
    """The spec's sections as JSON (what the step keys are made of).

    A tuning study's storage URL is left out: where the study lives does not change its
    trials, and the URL may hold a password (the tune step gets it at run time).
    """
    state = {name: getattr(spec, name) for name in ("name", "data", "target", "split", "features", "models", "keys",
                                                    "baseline")}
    if spec.tuning:
        from mlpatterns.spec.tuning import tuning_to_json

        state["tuning"] = {k: v for k, v in tuning_to_json(spec.tuning).items() if k != "storage"}
    if spec.two_phase:  # Two-Phase Predictions (19): only the two_phase step reads it
        state["two_phase"] = spec.two_phase
    for name in ("fairness", "explain"):  # Fairness Lens (30), Explainable Predictions (29)
        if getattr(spec, name):
            state[name] = getattr(spec, name)
    state["target_declared"] = list(spec.target_declared)
    return json.loads(json.dumps(state))


def _sections(state: dict[str, Any], step: str) -> dict[str, Any]:
    chosen = {name: state[name] for name in steps.STEP_SECTIONS[step] if name in state}
    if "data" in chosen:  # the file's bytes are the step's input; its path is not part of the key
        chosen["data"] = {k: v for k, v in chosen["data"].items() if k != "path"}
    if step == "load" and "sample_fraction" not in state["data"]:
        chosen.pop("split")  # the split only draws a sample: without one, a new split reads nothing again
    chosen["target_declared"] = state["target_declared"]
    return chosen


def data_sources(spec: Any) -> dict[str, Path]:
    """The files the data comes from: the spec's ``data.path``, or a built-in data set's shipped file, and (with
    ``data.feature_store``) the feature repository and the sources of the views it uses."""
    from mlpatterns.datasets import dataset_files
    from mlpatterns.spec.feature_store import store_sources
    from mlpatterns.spec.schema import data_path

    stored = store_sources(spec)  # Feature Store (26): the repository file and each used view's source
    path = data_path(spec)
    if path is not None:
        return {"data": path, **stored}
    files = dataset_files(spec.data["dataset"])  # adult: adult.data, then adult.test
    return {**({"data": files[0]} if files else {}), **{f"data_{i}": f for i, f in enumerate(files[1:], 1)},
            **stored}


def build_pipeline(spec: Any, *, seed: int, runtime: dict[str, Any] | None = None, models: list[str] | None = None,
                   train_only: bool = False, world_size: int = 1) -> Any:
    """The steps of ``mlpatterns run`` for ``spec`` (see :mod:`mlpatterns.lifecycle.steps`), in order.

    Each bundle records the data's digest (part of the export steps' keys) and
    ``runtime["lineage"]`` (where the spec was, the git commit: what produced it, not part
    of any key, like the rest of ``runtime``: output folder, resume, progress, log). ``models``
    chooses and orders the models (default: the spec's); ``train_only`` stops each model
    at its training step (the other ranks of a data-parallel job).
    """
    from mlpatterns.reproducibility.workflow_pipeline import Pipeline, Step, file_digest

    state = spec_state(spec)
    sources = data_sources(spec)
    lineage = {"data": _sections(state, "load")["data"],
               "data_sha256": file_digest(sources["data"]) if "data" in sources else None}
    data_input = {name: name for name in sources if name == "data" or name.startswith("data_")}
    store_input = {name: name for name in sources if name.startswith("feature_")}  # their bytes key the load
    if store_input:
        lineage["feature_repository_sha256"] = file_digest(sources["feature_repository"])
    runtime = {**(runtime or {}), "spec_name": spec.name}  # a plot's title: renaming a spec retrains nothing

    def step(step_name: str, function: Any, inputs: dict[str, str], outputs: Any, kind: str | None = None,
             sections: dict[str, Any] | None = None, **params: Any) -> Any:
        kind = kind or step_name
        sections = {**_sections(state, kind), **(sections or {})}
        code = STEP_CODE[kind]  # the point-in-time join's and the windows' code key only the specs using them
        if kind == "load":
            code = code + (["mlpatterns.reproducibility.feature_store"] if store_input else []) + \
                (["mlpatterns.reproducibility.windowed_inference"] if "windows" in spec.data else [])
        return Step(step_name, function, inputs=inputs, outputs=outputs, code=code,
                    params={"spec": sections, **params}, runtime=runtime)

    shared = {"table": "table", "prepared": "prepared"}
    training = {"features": "features", "transform": "transform", "prepared": "prepared"}
    pipeline = [
        step("load", steps.load, {**data_input, **store_input}, ["table"]),
        step("validate", steps.validate, {"table": "table"}, ["statistics"]),
        step("split", steps.split, {"table": "table"}, ["prepared"]),
        step("transform", steps.transform, {**shared, **data_input}, ["transform", "features", "signature"]),
    ]
    if spec.fairness and not train_only:  # Fairness Lens (30): the data's balance by slice, before training
        from mlpatterns.lifecycle.fairness_step import fairness, fairness_data

        pipeline.append(step("fairness_data", fairness_data, shared, ["fairness_data"]))
    if not train_only:
        pipeline.append(step("benchmark", steps.benchmark,
                             {**shared, "features": "features", "transform": "transform"},
                             ["benchmark_metrics", "benchmark_report"]))
    tuned_model = spec.tuning.get("model") if spec.tuning else None
    from mlpatterns.lifecycle.report_plots import diagnostics

    # on unless the spec says explain: false; attributions of one score (a class's share or a number)
    explained = spec.explain.get("enabled", True) and spec.task in ("classification", "regression")
    if explained:
        from mlpatterns.lifecycle.explanation_step import explain
    if tuned_model:  # the study sees the tuned model's section only: editing another model keeps it
        pipeline.append(step("tune", steps.tune, training, ["tuned"], seed=seed,
                             sections={"models": {tuned_model: state["models"][tuned_model]}}))
    for name in models if models is not None else list(spec.models):
        tuned = {"tuned": "tuned"} if name == tuned_model else {}
        pipeline.append(step(f"train.{name}", steps.train, {**training, **tuned}, {"trained": f"trained.{name}"},
                             kind="train", model=name, model_spec=state["models"][name], seed=seed,
                             **({"world_size": world_size} if spec.models[name]["type"] == "wide_and_deep" else {})))
        if train_only:
            continue
        pipeline += [
            step(f"evaluate.{name}", steps.evaluate,
                 {"trained": f"trained.{name}", "features": "features", "prepared": "prepared",
                  "benchmark_report": "benchmark_report"},
                 {"metrics": f"metrics.{name}", "comparison": f"comparison.{name}"}, kind="evaluate", model=name),
            step(f"export.{name}", steps.export,
                 {"trained": f"trained.{name}", "transform": "transform", "metrics": f"metrics.{name}",
                  "signature": "signature", "benchmark_metrics": "benchmark_metrics", "prepared": "prepared",
                  "statistics": "statistics", **tuned,
                  **({"table": "table"} if store_input or "windows" in spec.data else {})},
                 {"bundle": f"bundle.{name}"}, kind="export", model=name, seed=seed, lineage=lineage),
            step(f"verify.{name}", steps.verify,
                 {"bundle": f"bundle.{name}", "trained": f"trained.{name}", "features": "features",
                  "prepared": "prepared"},
                 {"verified": f"verified.{name}"}, kind="verify"),
            step(f"diagnostics.{name}", diagnostics,  # the report's calibration, confusion or residual plots
                 {"trained": f"trained.{name}", "features": "features", "prepared": "prepared"},
                 {"diagnostics": f"diagnostics.{name}"}, kind="diagnostics", model=name),
        ]
        if explained:  # Explainable Predictions (29): global importance by raw column, from the bundle
            pipeline.append(step(f"explain.{name}", explain, {"bundle": f"bundle.{name}", **shared},
                                 {"explanation": f"explain.{name}"}, kind="explain", model=name, seed=seed))
        if spec.fairness:  # Fairness Lens (30): the bundle's errors and decisions by slice, on the test split
            pipeline.append(step(f"fairness.{name}", fairness, {"bundle": f"bundle.{name}",
                                                                "trained": f"trained.{name}", **shared},
                                 {"fairness": f"fairness.{name}"}, kind="fairness", model=name, seed=seed))
    if spec.two_phase and not train_only:  # Two-Phase Predictions (19): phase 1 for phase 2's bundle
        phase_two = spec.two_phase["model"]
        if models is None or phase_two in models:
            from mlpatterns.lifecycle.two_phase_step import two_phase

            pipeline.append(step("two_phase", two_phase, {**shared, "bundle": f"bundle.{phase_two}"}, ["two_phase"],
                                 model=phase_two, seed=seed))
    return Pipeline(pipeline, sources=sources)
