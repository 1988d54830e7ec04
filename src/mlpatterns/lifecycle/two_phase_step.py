"""The ``two_phase`` step of ``mlpatterns run``: Two-Phase Predictions (19) for one of the spec's models.

=============  =========================================  ===============================================
step           reads                                      writes
=============  =========================================  ===============================================
``two_phase``  ``table``, ``prepared``, phase 2's bundle  ``two_phase``: ``phase_one.onnx``,
                                                          ``two_phase.json``, ``tradeoff.png``
=============  =========================================  ===============================================

The spec's ``two_phase:`` section (:mod:`mlpatterns.spec.two_phase`) names phase 2 (one of
the spec's models, whose bundle the run has just written), phase 1's numeric columns and
the coarse question. The step calls the pattern's components: it fits phase 1 on the
train split (:func:`fit_phase_one`), quantizes it (:func:`quantize_phase_one`), chooses
the threshold on the valid split for the stated recall (:func:`choose_threshold`), draws
the trade-off curve there, and measures on the test split phase 1 alone, the share of
phase-2 calls spared and the combined answer against phase 2 alone (the bundle scores the
rows offline, as a ``ServingFunction``), with the sizes and one-row latencies. The run
publishes the folder as ``<output.dir>/two_phase``, which
:meth:`TwoPhaseModel.from_run` reads.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpatterns.spec import SpecError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["coarse_truth", "publish_two_phase", "remove_stale_two_phase", "two_phase"]

_CALIBRATION_ROWS = 2000  # static quantization: the training rows whose activations set the int8 ranges


def two_phase(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
              runtime: dict[str, Any]) -> dict[str, Any]:
    """Fit phase 1, choose its threshold on the valid split, measure both phases on the test split."""
    import numpy as np
    import pandas as pd

    from mlpatterns.lifecycle.artifacts import SPLITS, read_json
    from mlpatterns.lifecycle.steps import STEP_SECTIONS, step_spec
    from mlpatterns.serving.stateless_serving_function import ServingFunction
    from mlpatterns.serving.two_phase_predictions import (
        TwoPhaseModel,
        choose_threshold,
        fit_phase_one,
        quantize_phase_one,
        write_two_phase,
    )

    spec = step_spec(params["spec"], STEP_SECTIONS["two_phase"])
    section = spec.two_phase
    facts = read_json(inputs["prepared"] / "prepared.json")
    spec.target.update(facts["target"])
    table = pd.read_parquet(inputs["table"] / "table.parquet")
    with np.load(inputs["prepared"] / "rows.npz", allow_pickle=False) as arrays:
        kept, target = arrays["kept"], arrays["target"]
        masks = {s: arrays[s] for s in SPLITS}
    frame = table.iloc[kept].reset_index(drop=True)
    _check_features(section["features"], frame)
    coarse = coarse_truth(spec, frame, target)
    parts = {s: frame.loc[masks[s]].reset_index(drop=True) for s in SPLITS}
    flagged = {s: coarse[masks[s]] for s in SPLITS}
    answers = _answers(spec, target)  # the truth, in the served prediction's values
    truth = {s: answers[masks[s]] for s in SPLITS}
    for s in SPLITS:
        if not flagged[s].any() or (s == "train" and flagged[s].all()):
            raise SpecError(f"two_phase.coarse: {int(flagged[s].sum()):,} of the {len(flagged[s]):,} {s} rows are "
                            "worth a closer look; phase 1 needs both kinds in the train split and some such "
                            "rows in the valid and test splits")
    negative = _negative(spec, truth["train"][~flagged["train"]])

    columns = section["features"]
    train_rows = parts["train"][columns].astype(np.float64)
    started = time.perf_counter()
    float_model = fit_phase_one(train_rows, flagged["train"].astype(int), hidden_units=section["hidden_units"],
                                epochs=section["epochs"], seed=params["seed"])
    quantize = section["quantize"]
    model = float_model if quantize is False else quantize_phase_one(
        float_model, calibration=train_rows.iloc[:_CALIBRATION_ROWS] if quantize == "static" else None)
    fit_seconds = time.perf_counter() - started

    serving = ServingFunction.load(inputs["bundle"])
    scorer = TwoPhaseModel(model, 0.5, serving, negative=negative, keys=spec.keys, columns=columns)
    scores = {s: scorer.phase_one_scores(parts[s]) for s in ("valid", "test")}
    threshold = choose_threshold(scores["valid"], flagged["valid"], min_recall=section["recall"])
    phase_two = {s: serving.predict(parts[s])["prediction"].to_numpy(
        dtype=np.float64 if spec.task == "regression" else object) for s in ("valid", "test")}

    folder = outputs["two_phase"]
    folder.mkdir(parents=True)
    curve = _curve(spec, scores["valid"], flagged["valid"], truth["valid"], phase_two["valid"], negative)
    _plot(curve, folder / "tradeoff.png", threshold, section["recall"], f"{spec.name}/{params['model']}")
    figures = _figures(spec, scores["test"], flagged["test"], truth["test"], phase_two["test"], negative, threshold)
    figures["valid_recall"] = float((scores["valid"] >= threshold)[flagged["valid"]].mean())
    manifest = serving.bundle.manifest
    bundle_bytes = sum(len(content) for content in serving.bundle.files.values())
    sizes = {"phase_one_kb": len(model) / 1024, "phase_one_float_kb": len(float_model) / 1024,
             "phase_two_bundle_kb": bundle_bytes / 1024}
    if "model.onnx" in serving.bundle.files:
        sizes["phase_two_model_kb"] = len(serving.bundle.files["model.onnx"]) / 1024
    description = {
        "name": spec.name,
        "threshold": threshold, "columns": columns, "negative": _json_scalar(negative), "keys": list(spec.keys),
        "task": spec.task, "coarse": _coarse_description(spec),
        "recall_target": section["recall"],
        "phase_one": {"hidden_units": section["hidden_units"], "epochs": section["epochs"],
                      "quantize": quantize, "seed": params["seed"], "fit_seconds": round(fit_seconds, 2)},
        "phase_two": {"model": params["model"], "bundle": f"../bundles/{params['model']}",
                      "bundle_name": manifest.get("name"), "manifest_sha256": manifest.get("manifest_sha256")},
        "rows": {s: int(masks[s].sum()) for s in SPLITS},
        "test": figures, "sizes": {k: round(v, 2) for k, v in sizes.items()},
        "latency": _latency(scorer, serving, parts["test"]),
        "plot": "tradeoff.png",
    }
    write_two_phase(folder, model, description)
    return {"threshold": threshold, "calls_spared": figures["calls_spared"]}


def _check_features(columns: list[str], frame: pd.DataFrame) -> None:
    import pandas as pd

    for i, column in enumerate(columns):
        where = f"two_phase.features[{i}]"
        if column not in frame.columns:
            raise SpecError(f"{where}: unknown column {column!r}; the data has {list(frame.columns)}")
        dtype = frame[column].dtype
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise SpecError(f"{where}: phase 1 reads numbers on the device, but {column!r} has type {dtype}; "
                            "choose numeric or true/false columns")
        missing = int(frame[column].isna().sum())
        if missing:
            raise SpecError(f"{where}: {column!r} has {missing:,} missing value(s) among the rows with a target; "
                            "phase 1 needs a number in every row")


def coarse_truth(spec: Any, frame: pd.DataFrame, target: np.ndarray) -> np.ndarray:
    """Which rows are worth a closer look: the section's coarse question, or a binary target's positive class."""
    import numpy as np
    import pandas as pd

    from mlpatterns.tables import label_text, label_texts

    coarse = spec.two_phase["coarse"]
    if coarse is None:
        return target.astype(bool)
    column = coarse["column"]
    if column not in frame.columns:
        raise SpecError(f"two_phase.coarse.column: unknown column {column!r}; the data has {list(frame.columns)}")
    values = frame[column]
    if "in" in coarse or isinstance(coarse.get("equals"), str):
        wanted = [label_text(v) for v in coarse.get("in", [coarse.get("equals")])]
        texts = label_texts(values)
        seen = set(texts.dropna().unique())
        unseen = [w for w in wanted if w not in seen]
        if unseen == wanted:
            raise SpecError(f"two_phase.coarse: none of {wanted} occurs in {column!r}; its values include "
                            f"{sorted(seen)[:10]}")
        return texts.isin(wanted).to_numpy()
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if not pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        raise SpecError(f"two_phase.coarse.column: a comparison needs a numeric column, but {column!r} has type "
                        f"{values.dtype}; use 'in: [...]' for labels")
    (rule, value), = ((k, v) for k, v in coarse.items() if k != "column")
    compare = {"greater_than": np.greater, "at_least": np.greater_equal, "less_than": np.less,
               "at_most": np.less_equal, "equals": np.equal}[rule]
    with np.errstate(invalid="ignore"):
        return compare(numbers, float(value))  # a missing value is never worth a look by a comparison


def _answers(spec: Any, target: np.ndarray) -> np.ndarray:
    """The target in the values the served ``prediction`` takes: 0/1, the class name, or the number."""
    import numpy as np

    if spec.task == "regression":
        return target.astype(np.float64)
    if spec.task == "multiclass":
        return np.asarray(spec.target["classes"], dtype=object)[target.astype(np.int64)]
    return target.astype(np.int64).astype(object)


def _negative(spec: Any, others: np.ndarray) -> Any:
    """The section's ``negative``, else that of the training rows not worth a look: their mean (regression) or
    their most common answer."""
    import numpy as np

    section = spec.two_phase
    if "negative" in section:
        negative = section["negative"]
        if spec.task == "multiclass":
            from mlpatterns.tables import label_text

            classes = spec.target["classes"]
            if label_text(negative) not in classes:
                raise SpecError(f"two_phase.negative: expected one of the classes {classes}, got {negative!r}")
            return label_text(negative)
        return float(negative) if spec.task == "regression" else int(negative)
    if spec.task == "regression":
        return float(np.mean(others.astype(np.float64)))
    values, counts = np.unique(others.astype(str), return_counts=True)
    common = values[int(np.argmax(counts))]
    return int(common) if spec.task == "classification" else str(common)


def _json_scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _coarse_description(spec: Any) -> dict[str, Any]:
    coarse = spec.two_phase["coarse"]
    if coarse is None:  # the binary target's positive class, in the form of a coarse question
        column = spec.target.get("column")
        if "positive_when" in spec.target:
            return {"column": column, **spec.target["positive_when"]}
        return {"column": column, "equals": spec.target.get("positive_label")}
    return dict(coarse)


def _curve(spec: Any, scores: np.ndarray, flagged: np.ndarray, truth: np.ndarray, phase_two: np.ndarray,
           negative: Any) -> pd.DataFrame:

    from mlpatterns.serving.two_phase_predictions import regression_tradeoff_curve, tradeoff_curve

    if spec.task == "regression":
        return regression_tradeoff_curve(scores, flagged, truth, phase_two, negative=negative)
    return tradeoff_curve(scores, flagged, truth, phase_two, negative=negative)


def _plot(curve: pd.DataFrame, path: Path, threshold: float, recall: float, name: str) -> None:
    from mlpatterns.serving.two_phase_predictions import plot_tradeoff

    try:
        import matplotlib  # noqa: F401  (the plot extra)
    except ImportError:  # the figures stay in two_phase.json
        return
    plot_tradeoff(curve, path, chosen={f"threshold for recall {recall:g}": threshold},
                  title=f"{name}: two-phase trade-off on the validation split")


def _figures(spec: Any, scores: np.ndarray, flagged: np.ndarray, truth: np.ndarray, phase_two: np.ndarray,
             negative: Any, threshold: float) -> dict[str, Any]:
    """The test split: phase 1 alone on the coarse question, the calls spared, the combined answer."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    sent = scores >= threshold
    figures: dict[str, Any] = {
        "rows": int(len(scores)), "rows_worth_a_look": int(flagged.sum()),
        "phase_one": {"accuracy": float((sent == flagged).mean()),
                      "recall": float(sent[flagged].mean()) if flagged.any() else None,
                      "precision": float(flagged[sent].mean()) if sent.any() else None,
                      "roc_auc": float(roc_auc_score(flagged, scores)) if 0 < flagged.sum() < len(flagged)
                      else None},
        "calls_spared": float(1 - sent.mean()), "phase_two_calls": int(sent.sum()),
    }
    if spec.task == "regression":
        combined = np.where(sent, phase_two, float(negative))
        figures["combined"] = {"mae": float(np.abs(combined - truth).mean()),
                               "rmse": float(np.sqrt(((combined - truth) ** 2).mean())),
                               "agreement": float((combined == phase_two).mean())}
        figures["phase_two_alone"] = {"mae": float(np.abs(phase_two - truth).mean()),
                                      "rmse": float(np.sqrt(((phase_two - truth) ** 2).mean()))}
        return figures
    combined = np.where(sent, phase_two, np.asarray([negative] * len(sent), dtype=object))
    combined = np.asarray([str(v) for v in combined], dtype=object)
    phase_two, truth = (np.asarray([str(v) for v in a], dtype=object) for a in (phase_two, truth))

    def balanced(answer: np.ndarray) -> float:
        return float(np.mean([(answer[truth == c] == c).mean() for c in np.unique(truth)]))

    figures["combined"] = {"accuracy": float((combined == truth).mean()), "balanced_accuracy": balanced(combined),
                           "agreement": float((combined == phase_two).mean())}
    figures["phase_two_alone"] = {"accuracy": float((phase_two == truth).mean()),
                                  "balanced_accuracy": balanced(phase_two)}
    return figures


def _latency(scorer: Any, serving: Any, rows: pd.DataFrame) -> dict[str, Any]:
    """One-row latencies on the machine that ran the step: phase 1 (ONNX Runtime, one thread, an array row) and
    phase 2 in process (the bundle's ``ServingFunction``, a one-row DataFrame; an HTTP call adds its network)."""
    import numpy as np

    matrix = rows[scorer.columns].to_numpy(dtype=np.float32)
    picks = [matrix[i % len(matrix): i % len(matrix) + 1] for i in range(300)]
    phase_one = []
    for _ in range(3):
        started = time.perf_counter()
        for row in picks:
            scorer.phase_one_scores(row)
        phase_one.append((time.perf_counter() - started) / len(picks) * 1e6)
    phase_two = []
    for i in range(min(20, len(rows))):
        started = time.perf_counter()
        serving.predict(rows.iloc[i:i + 1])
        phase_two.append((time.perf_counter() - started) * 1e3)
    return {"phase_one_us_per_row": round(float(np.median(phase_one)), 1),
            "phase_two_in_process_ms_per_row": round(float(np.median(phase_two)), 2),
            "note": "measured once, on the machine that ran the step; varies with its load"}


def publish_two_phase(source: Path, folder: Path, log: Any) -> dict[str, Any]:
    """Swap the step's folder in as ``<output.dir>/two_phase``; the report's summary of it, also logged."""
    from mlpatterns.lifecycle.outputs import replace_folder

    replace_folder(source, folder)
    described = json.loads((folder / "two_phase.json").read_text())
    test = described["test"]
    summary = {"folder": str(folder), "phase_two": described["phase_two"]["model"],
               "threshold": described["threshold"], "recall_target": described["recall_target"],
               "phase_one_recall": test["phase_one"]["recall"], "calls_spared": test["calls_spared"],
               "combined": test["combined"], "phase_two_alone": test["phase_two_alone"],
               "phase_one_kb": described["sizes"]["phase_one_kb"]}
    measure = "accuracy" if "accuracy" in test["combined"] else "mae"
    log(f"two-phase: phase 1 ({summary['phase_one_kb']:.1f} KB, {', '.join(described['columns'])}) sends "
        f"{1 - test['calls_spared']:.1%} of the test rows to {summary['phase_two']!r} (threshold "
        f"{described['threshold']:.4f}, recall {test['phase_one']['recall']:.3f} of the rows worth a look); "
        f"{measure} {test['combined'][measure]:.4f} against {test['phase_two_alone'][measure]:.4f} for phase 2 "
        f"alone; {folder}")
    return summary


def remove_stale_two_phase(folder: Path, spec_name: str) -> bool:
    """Remove ``<output.dir>/two_phase`` left by an earlier run of this spec, now without a ``two_phase:`` section
    (its threshold was chosen for a bundle the run may have replaced); anything else stays."""
    import shutil

    from mlpatterns.serving.two_phase_predictions.artifact import DESCRIPTION, FORMAT

    try:
        described = json.loads((folder / DESCRIPTION).read_text())
    except (OSError, ValueError):
        return False
    if folder.is_symlink() or not isinstance(described, dict) or described.get("format") != FORMAT \
            or described.get("name") != spec_name:
        return False
    shutil.rmtree(folder)
    return True
