"""A spec with no ``params`` is as accurate as plain scikit-learn on tables the examples never use.

The reference is what a user would otherwise write: ``HistGradientBoosting`` with default
parameters and native categorical splits, trained on every non-test row, scored on the same
test rows (benchmarks/bench_unseen_tables.py; the table of numbers is in docs/spec.md). Bounds:
RMSE and log loss at most 1.05x the reference, ROC-AUC at least the reference minus 0.005,
accuracy at least the reference minus 0.01.
"""

from __future__ import annotations

import pytest
from benchmarks.bench_unseen_tables import TABLES, compare, within_bounds


@pytest.mark.parametrize("table", ["diamonds", "default", "credit", "hpc"])
def test_a_spec_without_params_matches_plain_scikit_learn(table, tmp_path):
    row = compare(TABLES[table], tmp_path)
    assert within_bounds(row) == [], row
