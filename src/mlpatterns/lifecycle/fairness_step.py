"""The Fairness Lens (30) steps of ``mlpatterns run``: the data by sensitive slice before training, and each
model's served decisions by slice after it, with the spec's thresholds enforced.

``fairness_data`` (reads ``table``, ``prepared``) measures the train split's rows, shares and
label rates (or target means) per slice of each ``fairness.sensitive`` column and fails the
run when a ``fairness.thresholds.data`` limit is crossed. ``fairness.<model>`` (reads
``bundle``, ``trained``, ``prepared``, ``table``) scores the raw test rows through the bundle itself
(:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction`, at the bundle's own
threshold), reads the sensitive columns from the same rows of the table (they need not be
model inputs), measures the slices, compares the spec's mitigations and records the
``fairness.thresholds.model`` limits crossed (``crossings``): the run fails on them once it has
written its report (:func:`mlpatterns.lifecycle.run.run_spec`), so the tables and plots are there to
read, and it registers nothing. Each writes ``result.json`` and its plots into its output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["fairness", "fairness_data"]

_DATA_PLOTS = {"classification": ["share", "label_rate"], "regression": ["share", "target_mean"]}
_MODEL_PLOTS = {"classification": ["selection_rate", "false_negative_rate", "false_positive_rate"],
                "regression": ["mae", "mean_prediction", "mean_target"]}


def _prepared(inputs: dict[str, Path], kind: str, params: dict[str, Any]) -> tuple[Any, Any, Any, dict, dict]:
    """The partial spec, the rows with a target, the target, the split masks and the fairness section."""
    from mlpatterns.lifecycle.artifacts import read_prepared, read_table
    from mlpatterns.lifecycle.steps import STEP_SECTIONS, step_spec
    from mlpatterns.spec import SpecError

    spec = step_spec(params["spec"], STEP_SECTIONS[kind])
    table, _ = read_table(inputs["table"])
    frame, target, masks, _ = read_prepared(inputs["prepared"], spec, table)
    section = spec.fairness
    for i, column in enumerate(section["sensitive"]):
        if column not in frame.columns:
            raise SpecError(f"fairness.sensitive[{i}]: column {column!r} is not in the data; it has "
                            f"{list(frame.columns)}")
    return spec, frame, target, masks, section


def _write(folder: Path, result: dict[str, Any]) -> None:
    from mlpatterns.lifecycle.artifacts import write_json

    write_json(folder / "result.json", result)


def fairness_data(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
                  runtime: dict[str, Any]) -> dict[str, Any]:
    """Before training: the train split's balance across the sensitive slices; fail on a crossed data threshold."""
    from mlpatterns.responsible.fairness_lens import (
        check_thresholds,
        data_balance,
        plot_slices,
        raise_on_crossings,
        sensitive_slices,
    )

    spec, frame, target, masks, section = _prepared(inputs, "fairness_data", params)
    train = masks["train"]
    slices = sensitive_slices(frame.loc[train], section["sensitive"], section["intersections"])
    result = data_balance(slices, target[train], spec.task, min_rows=section["min_rows"],
                          confidence=section["confidence"])
    result["split"] = "train"
    crossings = check_thresholds(result, section["thresholds"]["data"])
    result["thresholds"] = section["thresholds"]["data"]
    result["crossings"] = [c.to_dict() for c in crossings]
    folder = outputs["fairness_data"]
    folder.mkdir(parents=True)
    plot_slices(result, _DATA_PLOTS[spec.task], folder / "balance.png", title="train split by sensitive slice")
    _write(folder, result)
    for column, part in result["columns"].items():
        if part["tiny_slices"]:
            runtime["log"](f"fairness: {column}: tiny slice(s) under {section['min_rows']} rows "
                           f"{part['tiny_slices']} (left out of the gaps)")
    raise_on_crossings(crossings, "the train split")
    return {"slices": {c: len(p["slices"]) for c, p in result["columns"].items()}}


def _served(serving: Any, rows: Any) -> dict[str, Any]:
    """The bundle's scores and decisions for the rows it accepts, which rows those are, and their model inputs
    (computed only once asked for, by ``features()``)."""
    import numpy as np

    from mlpatterns.serving.stateless_serving_function import good_rows

    conformed, problems = serving.conform(rows)
    good = good_rows(len(rows), problems)
    conformed = conformed.iloc[good].reset_index(drop=True)
    features = serving.features(conformed)
    served = serving.predict_conformed(rows.iloc[good], conformed, features=features)
    scores = served["probability" if serving.task == "classification" else "prediction"].to_numpy(np.float64)
    return {"scores": scores, "decisions": served["prediction"].to_numpy(np.float64), "good": good,
            "features": features, "rows": rows.iloc[good].reset_index(drop=True)}


def _valid_output(trained: Path | None, rows: int) -> Any:
    """The model's validation output before any refit on train + valid (out of sample), or None."""
    import numpy as np

    if trained is None or not (trained / "outputs.npz").is_file():
        return None
    with np.load(trained / "outputs.npz", allow_pickle=False) as arrays:
        output = arrays["valid_output"] if "valid_output" in arrays.files else None
    return output if output is not None and output.ndim == 1 and len(output) == rows else None


def _mitigations(serving: Any, frame: Any, target: Any, masks: dict, section: dict, test: dict, seed: int,
                 log: Any, trained: Path | None = None) -> dict[str, Any]:
    """The spec's mitigations compared on the test rows (classification).

    The per-slice thresholds are chosen on validation scores. A model refit on train + valid (gradient
    boosting, the default) has seen those rows, so its served scores there are in-sample; the scores the
    training step kept from before the refit are used instead when they are there."""
    from mlpatterns.responsible.fairness_lens import compare_mitigations, sensitive_slices

    chosen = section["mitigation"]
    column = chosen["sensitive"]
    parts = {}
    for split in ("train", "valid"):
        served = _served(serving, frame.loc[masks[split]].reset_index(drop=True))
        parts[split] = {"y": target[masks[split]][served["good"]], "scores": served["scores"],
                        "features": served["features"].matrix() if split == "train" else None,
                        "slices": sensitive_slices(served["rows"], [column])[column], "good": served["good"]}
    before_refit = _valid_output(trained, int(masks["valid"].sum()))
    valid_scores = "the served model's (it was not refit on train + valid, or its earlier scores were not kept)"
    if before_refit is not None:
        parts["valid"]["scores"] = before_refit[parts["valid"]["good"]]
        valid_scores = "the trained model's before any refit on train + valid (out of sample)"
    return {"valid_scores": valid_scores} | compare_mitigations(
        y_test=test["y"], scores_test=test["scores"], sensitive_test=test["slices"][column],
        threshold=serving.threshold, methods=tuple(chosen["methods"]), metric=chosen["metric"],
        y_valid=parts["valid"]["y"], scores_valid=parts["valid"]["scores"], sensitive_valid=parts["valid"]["slices"],
        X_train=parts["train"]["features"], y_train=parts["train"]["y"], sensitive_train=parts["train"]["slices"],
        X_test=test["features"].matrix(), min_rows=section["min_rows"], random_state=seed,
        log=log) | {"sensitive": column}


def fairness(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
             runtime: dict[str, Any]) -> dict[str, Any]:
    """After training: the model's served decisions by sensitive slice on the test split, the mitigations
    compared, and the model thresholds crossed (the run fails on them after writing its report)."""
    import numpy as np

    from mlpatterns.responsible.fairness_lens import (
        check_thresholds,
        model_slices,
        plot_mitigations,
        plot_slices,
        sensitive_slices,
    )
    from mlpatterns.serving.stateless_serving_function import ServingFunction

    spec, frame, target, masks, section = _prepared(inputs, "fairness", params)
    log = runtime.get("log", print)
    serving = ServingFunction.load(inputs["bundle"])
    served = _served(serving, frame.loc[masks["test"]].reset_index(drop=True))
    good, rows, scores, decisions = served["good"], served["rows"], served["scores"], served["decisions"]
    dropped, y_test = int(len(good) - good.sum()), target[masks["test"]][good]
    slices = sensitive_slices(rows, section["sensitive"], section["intersections"])
    classification = spec.task == "classification"
    result = model_slices(slices, y_test, decisions, spec.task, y_score=scores if classification else None,
                          min_rows=section["min_rows"], confidence=section["confidence"])
    result.update(model=params["model"], split="test", rows_not_served=dropped,
                  threshold=serving.threshold if classification else None,
                  decisions="the bundle's served output" + (f" at its threshold {serving.threshold:.4g}"
                                                            if classification else ""))
    folder = outputs["fairness"]
    folder.mkdir(parents=True)
    if section.get("mitigation") and classification:
        test = {"y": y_test, "scores": scores, "slices": slices, "features": served["features"]}
        result["mitigation"] = _mitigations(serving, frame, target, masks, section, test,
                                            params.get("seed", 0), log, inputs.get("trained"))
        plot_mitigations(result["mitigation"]["rows"], folder / "mitigation.png",
                         title=f"{params['model']}: mitigations by {result['mitigation']['sensitive']}")
    crossings = check_thresholds(result, section["thresholds"]["model"])
    result["thresholds"] = section["thresholds"]["model"]
    result["crossings"] = [c.to_dict() for c in crossings]
    plot_slices(result, _MODEL_PLOTS[spec.task], folder / "slices.png",
                title=f"{params['model']} on the test split by sensitive slice")
    _write(folder, result)  # the run fails on the crossings once the report is written (lifecycle.run)
    return {"gaps": {c: {m: g["difference"] for m, g in p["gaps"].items()}
                     for c, p in result["columns"].items()}, "rows": int(np.sum(good))}
