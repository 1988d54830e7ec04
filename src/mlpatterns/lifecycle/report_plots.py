"""The ``diagnostics`` step of ``mlpatterns run``: the numbers and plots behind the report's model checks.

A metric is one number; a person deciding whether to trust a model wants to see *where* it
errs. For each model this Workflow Pipeline (25) step scores nothing again: it reads the
test outputs the training step kept and the test targets, and writes

=================  =====================================================================================
task               ``result.json`` (published at ``report["diagnostics"][model]``) and plots
=================  =====================================================================================
classification     calibration bins and the expected calibration error (``calibration.png``), the score
                   distribution of each class (``score_histogram.png``), the confusion matrix at the
                   bundle's served threshold (Rebalancing, 10; ``confusion.png``)
multiclass         the confusion matrix of the argmax decisions, the calibration of the top class's
                   probability (a Neutral Class (9) target: of P(positive | decisive))
multilabel         per label (Multilabel, 6): positive rate, mean score, the counts at the label's
                   threshold and its calibration error; one calibration curve per label
regression         a summary of the residuals (truth minus prediction) and their mean per prediction
                   decile, i.e. where the model is biased (``residuals.png``, ``residual_histogram.png``)
=================  =====================================================================================

The calibration curve is scikit-learn's :func:`~sklearn.calibration.calibration_curve`, the
confusion matrix its :func:`~sklearn.metrics.confusion_matrix`; the plots are matplotlib
figures drawn without pyplot (no global state).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["calibration_table", "confusion_table", "diagnose", "diagnostics", "residual_summary"]

#: plots that share an x-range of scores [0, 1] use this many equal-width bins
CALIBRATION_BINS = 10
_MAX_LABELS_PLOTTED = 12  # a multilabel calibration plot with more lines is unreadable


def calibration_table(y: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Calibration of scores in [0, 1] against 0/1 outcomes, over ``bins`` equal-width bins.

    Returns the non-empty bins (their range, row count, mean score and observed positive
    rate, as :func:`sklearn.calibration.calibration_curve` computes them: a score on an edge
    falls in the lower bin), the expected
    calibration error (the row-weighted mean of ``|positive rate - mean score|``) and the
    largest gap of a bin.

    >>> table = calibration_table(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]), bins=2)
    >>> [b["count"] for b in table["bins"]], round(table["expected_calibration_error"], 3)
    ([2, 2], 0.15)
    """
    from sklearn.calibration import calibration_curve

    y = np.asarray(y, dtype=float).ravel()
    scores = np.clip(np.asarray(scores, dtype=float).ravel(), 0.0, 1.0)
    positive_rate, mean_score = calibration_curve(y, scores, n_bins=bins, strategy="uniform", pos_label=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=bins)  # sklearn's binning
    used = np.flatnonzero(counts)
    gaps = np.abs(positive_rate - mean_score)
    weights = counts[used] / counts.sum()
    return {
        "strategy": "uniform",
        "bins": [{"lower": float(edges[i]), "upper": float(edges[i + 1]), "count": int(counts[i]),
                  "mean_score": float(s), "positive_rate": float(p)}
                 for i, s, p in zip(used, mean_score, positive_rate, strict=True)],
        "expected_calibration_error": float(np.sum(weights * gaps)),
        "max_calibration_error": float(gaps.max()) if len(gaps) else 0.0,
    }


def confusion_table(truth: np.ndarray, decided: np.ndarray, labels: list[str],
                    truth_rows: list[int] | None = None) -> dict[str, Any]:
    """The confusion matrix of integer class indexes: ``counts[i][j]`` rows of class ``labels[i]`` decided as
    ``labels[j]``, with the accuracy of the decisions. ``truth_rows`` keeps only those classes' rows (a
    class the truth never holds, such as a neutral class's: ``truth_labels`` then names the rows).

    >>> confusion_table(np.array([0, 1, 1]), np.array([0, 1, 0]), ["no", "yes"])["counts"]
    [[1, 0], [1, 1]]
    """
    from sklearn.metrics import confusion_matrix

    counts = confusion_matrix(truth, decided, labels=np.arange(len(labels)))
    total = int(counts.sum())
    table = {"labels": [str(label) for label in labels], "rows": "truth", "columns": "decision",
             "counts": counts.astype(int).tolist(),
             "accuracy": float(np.trace(counts) / total) if total else float("nan")}
    if truth_rows is not None:
        table["truth_labels"] = [table["labels"][i] for i in truth_rows]
        table["counts"] = [table["counts"][i] for i in truth_rows]
    return table


def residual_summary(y: np.ndarray, predicted: np.ndarray, groups: int = 10) -> dict[str, Any]:
    """Residuals (truth minus prediction): their spread, quantiles, and their mean in each prediction decile
    (a mean far from 0 in a decile is a bias there: the model predicts too low or too high).

    >>> summary = residual_summary(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.5, 4.0]), groups=2)
    >>> summary["mean"], [g["mean_residual"] for g in summary["by_prediction"]]
    (0.0, [-0.25, 0.25])
    """
    y = np.asarray(y, dtype=float).ravel()
    predicted = np.asarray(predicted, dtype=float).ravel()
    residual = y - predicted
    levels = (0.05, 0.25, 0.5, 0.75, 0.95)
    order = np.argsort(predicted, kind="stable")
    by_prediction = []
    for part in np.array_split(order, min(groups, len(order))):
        if len(part):
            by_prediction.append({"lower": float(predicted[part].min()), "upper": float(predicted[part].max()),
                                  "count": int(len(part)), "mean_prediction": float(predicted[part].mean()),
                                  "mean_residual": float(residual[part].mean())})
    return {
        "count": int(len(residual)), "mean": float(residual.mean()), "std": float(residual.std()),
        "mean_absolute": float(np.abs(residual).mean()), "min": float(residual.min()), "max": float(residual.max()),
        "quantiles": {f"p{round(q * 100):02d}": float(v) for q, v in zip(levels, np.quantile(residual, levels),
                                                                          strict=True)},
        "by_prediction": by_prediction,
    }


def diagnose(task: str, y: np.ndarray, output: np.ndarray, folder: Path, *, threshold: float | None = None,
             classes: list[str] | None = None, labels: list[str] | None = None,
             thresholds: list[float] | None = None, neutral: bool = False) -> dict[str, Any]:
    """The diagnostics of one model's test ``output`` against the test targets ``y``; writes the plots into
    ``folder`` and returns the numbers (JSON-able).

    ``task`` is the served task: ``classification`` (``output`` = P(positive); decisions at
    ``threshold``, 0.5 when None), ``multiclass`` (``output`` = one probability per class of
    ``classes``; ``neutral``: a Neutral Class target, ``y`` is 0/1 and the classes are
    negative, neutral, positive), ``multilabel`` (``output`` = one probability per label,
    decided at ``thresholds``) or ``regression``.
    """
    y, output = np.asarray(y), np.asarray(output, dtype=float)
    if task == "classification":
        result, drawings = _classification(y, output.ravel(), folder, threshold)
    elif task == "multiclass":
        result, drawings = _multiclass(y, output, folder, list(classes or range(output.shape[1])), neutral)
    elif task == "multilabel":
        result, drawings = _multilabel(y, output, folder, list(labels or range(output.shape[1])), thresholds)
    elif task == "regression":
        if output.ndim == 2:  # several outputs: the report shows the first
            output = output[:, 0]
        result, drawings = _regression(y.astype(float), output, folder)
    else:
        raise ValueError(f"diagnose: task must be classification, multiclass, multilabel or regression, "
                         f"not {task!r}")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the report extra is not installed: the numbers stay, the plots are left out
        result["plots_left_out"] = "matplotlib is not installed (pip install 'mlpatterns[report]')"
        return result
    for draw in drawings:
        draw()
    return result


def diagnostics(inputs: dict[str, Path], outputs: dict[str, Path], params: dict[str, Any],
                runtime: dict[str, Any]) -> dict[str, Any]:
    """The pipeline step: read ``trained``, ``features`` (the test targets) and ``prepared`` (the target's
    facts), write ``outputs["diagnostics"]`` (a folder: ``result.json`` and the PNGs)."""
    from mlpatterns.lifecycle.artifacts import read_json, read_trained, write_json
    from mlpatterns.lifecycle.steps import STEP_SECTIONS, step_spec
    from mlpatterns.spec.models import classes_of, served_task

    spec = step_spec(params["spec"], STEP_SECTIONS["diagnostics"])
    spec.target.update(read_json(inputs["prepared"] / "prepared.json")["target"])
    trained = read_trained(inputs["trained"])
    with np.load(inputs["features"] / "test.npz", allow_pickle=False) as arrays:
        y_test = arrays["target"]
    task, serving = served_task(spec), trained.serving
    folder = outputs["diagnostics"]
    result = diagnose(task, y_test, trained.test_output, folder, threshold=serving.get("threshold"),
                      classes=classes_of(spec) if task == "multiclass" else None, labels=serving.get("labels"),
                      thresholds=serving.get("thresholds"), neutral="neutral" in spec.target)
    write_json(folder / "result.json", result)
    log = runtime.get("log")
    if log is not None and "calibration" in result:
        log(f"{params.get('model', 'model')}: expected calibration error "
            f"{result['calibration']['expected_calibration_error']:.4f} on the test split")
    return {"task": task, "plots": sorted(path.name for path in folder.glob("*.png"))}


# -- each task -------------------------------------------------------------------------------------------
Drawings = list[Callable[[], None]]  # each task's plots, drawn when matplotlib is there


def _classification(y: np.ndarray, scores: np.ndarray, folder: Path,
                    threshold: float | None) -> tuple[dict[str, Any], Drawings]:
    y = y.astype(int)
    cut = 0.5 if threshold is None else float(threshold)
    calibration = calibration_table(y, scores)
    confusion = confusion_table(y, (scores >= cut).astype(int), ["negative", "positive"])
    return {"task": "classification", "rows": int(len(y)), "threshold": cut,
            "threshold_from": "bundle" if threshold is not None else "default 0.5",
            "calibration": calibration, "confusion": confusion}, [
        lambda: _plot_calibration({"model": calibration}, folder / "calibration.png", "Calibration on the test split"),
        lambda: _plot_score_histogram(y, scores, cut, folder / "score_histogram.png"),
        lambda: _plot_confusion(confusion, folder / "confusion.png", f"Decisions at threshold {cut:.3g}")]


def _multiclass(y: np.ndarray, proba: np.ndarray, folder: Path, classes: list[str],
                neutral: bool) -> tuple[dict[str, Any], Drawings]:
    decided = np.argmax(proba, axis=1)
    if neutral:  # the truth is binary: negative is class 0, positive class 2; calibrate P(positive | decisive)
        truth = np.where(y.astype(float) > 0.5, 2, 0)
        outcome, score = (truth == 2).astype(int), proba[:, 2] / np.maximum(proba[:, 0] + proba[:, 2], 1e-12)
        what = "P(positive | decisive)"
    else:
        truth = y.astype(int)
        outcome, score = (decided == truth).astype(int), proba.max(axis=1)
        what = "top class probability"
    calibration = {**calibration_table(outcome, score), "of": what}
    confusion = confusion_table(truth, decided, classes, truth_rows=[0, 2] if neutral else None)
    return {"task": "multiclass", "rows": int(len(y)), "calibration": calibration, "confusion": confusion}, [
        lambda: _plot_calibration({what: calibration}, folder / "calibration.png", f"Calibration of the {what}"),
        lambda: _plot_confusion(confusion, folder / "confusion.png", "Decisions: the most probable class")]


def _multilabel(Y: np.ndarray, proba: np.ndarray, folder: Path, labels: list[str],
                thresholds: list[float] | None) -> tuple[dict[str, Any], Drawings]:
    from sklearn.metrics import multilabel_confusion_matrix

    Y = Y.astype(int)
    cuts = np.full(len(labels), 0.5) if thresholds is None else np.asarray(thresholds, dtype=float)
    matrices = multilabel_confusion_matrix(Y, (proba >= cuts).astype(int))
    per_label, curves = {}, {}
    for j, label in enumerate(labels):
        calibration = calibration_table(Y[:, j], proba[:, j])
        (tn, fp), (fn, tp) = matrices[j].tolist()
        per_label[str(label)] = {"positive_rate": float(Y[:, j].mean()), "mean_score": float(proba[:, j].mean()),
                                 "threshold": float(cuts[j]), "true_positive": tp, "false_positive": fp,
                                 "false_negative": fn, "true_negative": tn,
                                 "expected_calibration_error": calibration["expected_calibration_error"]}
        if j < _MAX_LABELS_PLOTTED:
            curves[str(label)] = calibration
    return {"task": "multilabel", "rows": int(len(Y)), "threshold_from": "bundle" if thresholds else "default 0.5",
            "labels": per_label}, [
        lambda: _plot_calibration(curves, folder / "calibration.png", "Calibration of each label"),
        lambda: _plot_label_rates(per_label, folder / "label_rates.png")]


def _regression(y: np.ndarray, predicted: np.ndarray, folder: Path) -> tuple[dict[str, Any], Drawings]:
    summary = residual_summary(y, predicted)
    return {"task": "regression", "rows": int(len(y)), "residuals": summary}, [
        lambda: _plot_residuals(y - predicted, predicted, summary, folder)]


# -- plots -----------------------------------------------------------------------------------------------
def _figure(size: tuple[float, float] = (5.5, 4.0)) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, layout="constrained")


def _save(figure: Any, path: Path) -> None:
    figure.savefig(path, format="png", metadata={"Software": None})  # no version string: stable bytes


def _plot_calibration(curves: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    figure = _figure((5.5, 5.0))
    axes, below = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    axes.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfectly calibrated")
    width = 1 / CALIBRATION_BINS / max(len(curves), 1)
    for number, (name, table) in enumerate(curves.items()):
        bins = table["bins"]
        line, = axes.plot([b["mean_score"] for b in bins], [b["positive_rate"] for b in bins], marker="o",
                          markersize=4, label=f"{name} (ECE {table['expected_calibration_error']:.3f})")
        below.bar([b["lower"] + width * (number + 0.5) for b in bins], [b["count"] for b in bins], width=width,
                  color=line.get_color())
    axes.set(xlim=(0, 1), ylim=(0, 1), ylabel="observed frequency", title=title)
    axes.legend(loc="upper left", fontsize="small")
    below.set(yscale="log", xlabel="mean predicted probability", ylabel="rows per bin")
    _save(figure, path)


def _plot_score_histogram(y: np.ndarray, scores: np.ndarray, threshold: float, path: Path) -> None:
    figure = _figure()
    axes = figure.add_subplot()
    edges = np.linspace(0, 1, 41)
    for value, name, color in ((0, "negative", "tab:blue"), (1, "positive", "tab:orange")):
        chosen = scores[y == value]
        if len(chosen):  # each class as a share of its own rows: a rare class stays visible
            axes.hist(chosen, bins=edges, weights=np.full(len(chosen), 1 / len(chosen)), alpha=0.55, color=color,
                      label=f"{name} ({len(chosen):,} rows)")
    axes.axvline(threshold, color="black", linewidth=1, label=f"threshold {threshold:.3g}")
    axes.set(xlabel="predicted probability", ylabel="share of the class's test rows", title="Scores by true class")
    axes.legend(fontsize="small")
    _save(figure, path)


def _plot_confusion(confusion: dict[str, Any], path: Path, title: str) -> None:
    counts, labels = np.asarray(confusion["counts"]), confusion["labels"]
    rows = confusion.get("truth_labels", labels)
    side = min(3.5 + 0.45 * len(labels), 9.0)
    figure = _figure((side + 1, side))
    axes = figure.add_subplot()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    axes.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 3 else 0, ha="right"
                    if len(labels) > 3 else "center")
    axes.set_yticks(range(len(rows)), rows)
    if len(labels) <= 20:
        middle = counts.max() / 2 if counts.size else 0
        for (i, j), value in np.ndenumerate(counts):
            axes.text(j, i, f"{value:,}", ha="center", va="center", fontsize="small",
                      color="white" if value > middle else "black")
    axes.set(xlabel="decision", ylabel="truth", title=title)
    _save(figure, path)


def _plot_label_rates(per_label: dict[str, dict[str, Any]], path: Path) -> None:
    names = list(per_label)
    figure = _figure((max(5.5, 0.5 * len(names) + 2), 4.0))
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    axes.bar(positions - 0.2, [per_label[n]["positive_rate"] for n in names], width=0.4, label="observed rate")
    axes.bar(positions + 0.2, [per_label[n]["mean_score"] for n in names], width=0.4, label="mean score")
    axes.set_xticks(positions, names, rotation=45, ha="right")
    axes.set(ylabel="share of test rows", title="Each label: observed rate and mean score")
    axes.legend(fontsize="small")
    _save(figure, path)


def _plot_residuals(residual: np.ndarray, predicted: np.ndarray, summary: dict[str, Any], folder: Path) -> None:
    figure = _figure()
    axes = figure.add_subplot()
    if len(residual) > 5000:  # a scatter of many points hides their density
        axes.hexbin(predicted, residual, gridsize=40, cmap="Blues", mincnt=1)
    else:
        axes.scatter(predicted, residual, s=6, alpha=0.4)
    axes.axhline(0, color="black", linewidth=1)
    groups = summary["by_prediction"]
    axes.plot([g["mean_prediction"] for g in groups], [g["mean_residual"] for g in groups],
              color="tab:red", marker="o", markersize=4, label="mean residual per prediction decile")
    axes.set(xlabel="prediction", ylabel="truth - prediction", title="Residuals against the prediction")
    axes.legend(fontsize="small")
    _save(figure, folder / "residuals.png")
    figure = _figure()
    axes = figure.add_subplot()
    axes.hist(residual, bins=50, color="tab:blue", alpha=0.8)
    axes.axvline(0, color="black", linewidth=1)
    axes.set(xlabel="truth - prediction", ylabel="test rows",
             title=f"Residuals: mean {summary['mean']:.3g}, std {summary['std']:.3g}")
    _save(figure, folder / "residual_histogram.png")
