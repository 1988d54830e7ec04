"""The ``explain.<model>`` step of ``mlpatterns run``: Explainable Predictions (29) for every model.

========================  ==============================  ====================================================
step                      reads                           writes
========================  ==============================  ====================================================
``explain.<model>``       ``bundle.<model>``, ``table``,  ``explanation.<model>``: ``result.json`` (global
                          ``prepared``                    importance by raw column, the baseline, the
                                                          completeness and stability figures) and
                                                          ``importance.png``; a wide-and-deep bundle's
                                                          integrated gradients too
                                                          (``integrated_gradients.png``)
========================  ==============================  ====================================================

The bundle is explained as it is served (:class:`~mlpatterns.responsible.explainable_predictions.bundle_explainer.BundleExplainer`):
TreeSHAP from its ONNX trees where it is one tree ensemble, SHAP's permutation explainer
over the serving function otherwise, relative to the spec's baseline (the training mean by
default), on a bounded sample of test rows (``explain.rows``) so that the step stays cheap
enough to run for every model of every run. A model whose task has no attributions here
(multiclass, multilabel) gets a result that says so instead of failing the run. With
``method: auto``, TreeSHAP that fails the completeness check is set aside (logged, and kept
in ``result.json["tree_refused"]``) for the permutation explainer; with an explicit method,
an explanation that fails the check fails the step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

__all__ = ["explain"]

_STABILITY_ROWS = 20


def explain(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
            runtime: dict[str, Any]) -> dict[str, Any]:
    """Global importance of the raw input columns for one model's bundle, checked against its served output."""
    import pandas as pd

    from mlpatterns.lifecycle.artifacts import read_prepared, read_table, write_json
    from mlpatterns.lifecycle.steps import STEP_SECTIONS, step_spec
    from mlpatterns.responsible.explainable_predictions.attribution_checks import (
        CompletenessError,
        stability,
    )
    from mlpatterns.responsible.explainable_predictions.baselines import build_baseline
    from mlpatterns.responsible.explainable_predictions.bundle_explainer import (
        BundleExplainer,
        UnsupportedExplanation,
    )
    from mlpatterns.responsible.explainable_predictions.global_importance import (
        global_importance,
        importance_unit,
        plot_global_importance,
    )
    from mlpatterns.serving.stateless_serving_function import ServingFunction, good_rows
    from mlpatterns.spec.explainable_predictions import DEFAULTS

    started = time.perf_counter()
    log = runtime.get("log", print)
    spec = step_spec(params["spec"], STEP_SECTIONS["explain"])
    settings = {**DEFAULTS, **(spec.explain or {})}
    folder = outputs["explanation"]
    folder.mkdir(parents=True, exist_ok=True)
    model = params.get("model", "")
    if settings.get("enabled") is False:
        result = {"skipped": "explain: false in the spec"}
        write_json(folder / "result.json", result)
        return result
    serving = ServingFunction.load(inputs["bundle"])
    table, _ = read_table(inputs["table"])
    rows, _, masks, _ = read_prepared(inputs["prepared"], spec, table)
    train = rows[masks["train"]].reset_index(drop=True)
    test = pd.read_parquet(inputs["prepared"] / "test.parquet")
    baseline, described = build_baseline(serving, settings["baseline"], train, test)
    _, problems = serving.conform(test)
    test = test[good_rows(len(test), problems)].reset_index(drop=True)
    sample = test.sample(n=min(settings["rows"], len(test)), random_state=settings["seed"]).sort_index()
    background = train.sample(n=min(settings["background_rows"], len(train)), random_state=settings["seed"])
    try:
        explainer = BundleExplainer(serving, baseline, method=settings["method"],
                                    permutations=settings["permutations"], seed=settings["seed"],
                                    background=background, tolerance=settings["tolerance"])
    except UnsupportedExplanation as error:
        result = {"skipped": str(error)}
        write_json(folder / "result.json", result)
        log(f"{model}: no explanation ({error})")
        return result
    try:
        explanation = explainer.explain(sample)
    except CompletenessError as error:
        if settings["method"] != "auto":
            raise
        # auto: TreeSHAP that does not add up to the served output is not used; the permutation explainer
        # evaluates the serving function itself
        log(f"{model}: TreeSHAP refused ({error}); explaining with the permutation explainer")
        fallback = str(error)
        explainer = BundleExplainer(serving, baseline, method="permutation", permutations=settings["permutations"],
                                    seed=settings["seed"], tolerance=settings["tolerance"])
        explanation = explainer.explain(sample)
    else:
        fallback = None
    importance = global_importance(explanation.attributions)
    few = sample.head(_STABILITY_ROWS)
    moved = stability(lambda frame, seed: explainer.explain(frame, seed=seed).attributions.to_numpy(), few,
                      (settings["seed"], settings["seed"] + 1))
    unit = importance_unit(explanation.space)
    plot_global_importance(importance, folder / "importance.png", unit=unit,
                           title=f"{model}: mean |attribution| over {len(sample)} test rows ({explanation.method})")
    result = {
        "method": explanation.method,
        "space": explanation.space,
        "rows_explained": len(sample),
        "importance": importance,
        "ranking": list(importance),  # the columns by importance (the JSON's keys are sorted by name)
        "crossed_inputs": {name: float(abs(values).mean()) for name, values in explanation.crosses.items()},
        "baseline": {**described, "served": explainer.baseline_served, "score": explanation.baseline_score},
        "completeness": {"max_error": explanation.max_error, "tolerance": settings["tolerance"],
                         "compared_with": "the bundle's served output",
                         "link": "logistic of baseline + sum (log-odds)" if explanation.space == "log_odds"
                         else "baseline + sum"},
        "stability": {"rows": len(few), **moved},
        "settings": {k: settings[k] for k in ("method", "permutations", "seed", "background_rows")},
        **({"tree_refused": fallback} if fallback else {}),
        "seconds": {"explain": explanation.seconds, "total": time.perf_counter() - started},
    }
    if serving.bundle.manifest["model"].get("type") == "wide_and_deep":
        result["integrated_gradients"] = _integrated_gradients(serving, sample, background, folder, model, log)
    write_json(folder / "result.json", result)
    top = ", ".join(f"{k} {v:.3g}" for k, v in list(importance.items())[:3])
    log(f"{model}: explained {len(sample)} test rows ({explanation.method}, {unit}); most important: {top}")
    return {"method": explanation.method, "max_error": explanation.max_error, "rows": len(sample)}


def _integrated_gradients(serving: Any, sample: Any, background: Any, folder: Path, model: str,
                          log: Any) -> dict[str, Any]:
    """Captum's integrated gradients of a wide-and-deep bundle's network (rebuilt from its ONNX file) over the
    explained rows, relative to the training rows' mean numbers and zero embeddings, checked for completeness
    and against the ONNX network's served output; ``integrated_gradients.png`` draws them."""
    from mlpatterns.responsible.explainable_predictions.integrated_gradients import (
        bundle_integrated_gradients,
        plot_integrated_gradients,
    )

    started = time.perf_counter()
    ig = bundle_integrated_gradients(serving, sample, background)
    plot_integrated_gradients(ig, folder / "integrated_gradients.png",
                              title=f"{model}: integrated gradients ({len(sample)} test rows)")
    checks = ig.check
    log(f"{model}: integrated gradients over {len(sample)} rows, completeness max |delta| "
        f"{checks['completeness']['max_abs_delta']:.1e}, torch vs ONNX {checks['onnx']['max_abs_difference']:.1e}")
    return {**ig.summary(), "space": "probability" if serving.task == "classification" else "value",
            "seconds": time.perf_counter() - started}
