"""Fairness Lens (30): slices by fairlearn MetricFrame checked against pandas, intervals, thresholds, Adult."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mlpatterns.datasets import load_adult
from mlpatterns.responsible.fairness_lens import (
    MISSING_SLICE,
    FairnessThresholdError,
    check_thresholds,
    data_balance,
    model_slices,
    plot_slices,
    raise_on_crossings,
    sensitive_slices,
    wilson_interval,
)


@pytest.fixture(scope="module")
def adult() -> pd.DataFrame:
    return load_adult()


def test_adult_loader_reads_both_files_as_uci_ships_them(adult):
    assert len(adult) == 48_842
    assert adult["source"].value_counts().to_dict() == {"train": 32_561, "test": 16_281}
    assert set(adult["income"]) == {"<=50K", ">50K"}  # the test file's trailing dot removed
    test = adult[adult["source"] == "test"]
    assert (test["income"] == ">50K").mean() == pytest.approx(0.2362, abs=0.0005)
    assert test["row_id"].min() == 32_561 and adult["row_id"].is_monotonic_increasing
    assert test.iloc[0]["age"] == 25 and test.iloc[0]["race"] == "Black"  # the first data line, not "|1x3 ..."
    assert adult["workclass"].isna().sum() == 2_799  # '?' is a missing value, not a category
    assert not (adult == "?").any().any()
    from mlpatterns.datasets import dataset_files

    assert [p.name for p in dataset_files("adult")] == ["adult.data.gz", "adult.test.gz"]


def _small_case(seed: int = 0, rows: int = 600):
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c"], size=rows, p=[0.6, 0.35, 0.05])
    y = (rng.random(rows) < np.where(group == "a", 0.4, 0.2)).astype(int)
    score = np.clip(0.35 * y + rng.random(rows) * 0.7, 0, 1)
    return group, y, score, (score >= 0.5).astype(int)


def test_model_slices_equal_a_direct_pandas_computation():
    group, y, score, pred = _small_case()
    result = model_slices({"g": group}, y, pred, "classification", y_score=score, min_rows=40)
    frame = pd.DataFrame({"g": group, "y": y, "p": pred})
    expected = frame.groupby("g").apply(lambda d: pd.Series({
        "rows": len(d), "selection_rate": d.p.mean(), "accuracy": (d.p == d.y).mean(),
        "false_positive_rate": ((d.p == 1) & (d.y == 0)).sum() / (d.y == 0).sum(),
        "false_negative_rate": ((d.p == 0) & (d.y == 1)).sum() / (d.y == 1).sum()}), include_groups=False)
    slices = {s["slice"]: s for s in result["columns"]["g"]["slices"]}
    for name, row in expected.iterrows():
        for metric in ("selection_rate", "accuracy", "false_positive_rate", "false_negative_rate"):
            assert slices[name][metric] == pytest.approx(row[metric]), (name, metric)
        assert slices[name]["rows"] == row["rows"]
        assert slices[name]["false_negative_rate_rows"] == int((frame[frame.g == name].y == 1).sum())
        assert slices[name]["accuracy_low"] <= slices[name]["accuracy"] <= slices[name]["accuracy_high"]
    assert slices["c"]["tiny"] and not slices["a"]["tiny"]  # 5 % of 600 rows < 40
    gap = result["columns"]["g"]["gaps"]["false_negative_rate"]
    kept = expected.loc[["a", "b"], "false_negative_rate"]  # the tiny slice stays out of the gap
    assert gap["difference"] == pytest.approx(kept.max() - kept.min())
    assert gap["ratio"] == pytest.approx(kept.min() / kept.max())
    assert result["overall"]["accuracy"] == pytest.approx((pred == y).mean())


def test_regression_slices_equal_pandas_and_intervals_hold_the_mean():
    rng = np.random.default_rng(1)
    group = rng.choice(["x", "y"], size=400)
    y = rng.normal(7, 1, size=400)
    pred = y + rng.normal(np.where(group == "x", 0.2, -0.1), 0.5)
    result = model_slices({"race": group}, y, pred, "regression", min_rows=10)
    for item in result["columns"]["race"]["slices"]:
        mask = group == item["slice"]
        assert item["mae"] == pytest.approx(np.mean(np.abs(pred[mask] - y[mask])))
        assert item["rmse"] == pytest.approx(np.sqrt(np.mean((pred[mask] - y[mask]) ** 2)))
        assert item["mean_prediction"] == pytest.approx(pred[mask].mean())
        assert item["mean_error"] == pytest.approx((pred[mask] - y[mask]).mean())
        assert item["rmse_low"] < item["rmse"] < item["rmse_high"]
    assert result["columns"]["race"]["gaps"]["mean_error"]["highest"] == "x"


def test_wilson_interval_known_values():
    low, high = wilson_interval(5, 10)
    assert (float(low), float(high)) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert float(low) == 0.0 and float(high) == pytest.approx(0.1611, abs=1e-4)


def test_sensitive_slices_name_missing_codes_and_intersections():
    frame = pd.DataFrame({"race": [1.0, 2.0, None, 1.0], "sex": ["F", "M", "F", None]})
    labels = sensitive_slices(frame, ["race", "sex"], intersections=True)
    assert labels["race"].tolist() == ["1", "2", MISSING_SLICE, "1"]
    assert labels["race & sex"].tolist() == ["1 & F", "2 & M", f"{MISSING_SLICE} & F", f"1 & {MISSING_SLICE}"]
    with pytest.raises(KeyError, match="mother_race"):
        sensitive_slices(frame, ["mother_race"])


def test_data_balance_on_adult_sample(adult, tmp_path):
    sample = adult.sample(5000, random_state=0)
    y = (sample["income"] == ">50K").to_numpy(int)
    result = data_balance(sensitive_slices(sample, ["sex", "race"]), y, "classification", min_rows=30)
    sex = {s["slice"]: s for s in result["columns"]["sex"]["slices"]}
    female = sample["sex"] == "Female"
    assert sex["Female"]["rows"] == female.sum()
    assert sex["Female"]["label_rate"] == pytest.approx(y[female.to_numpy()].mean())
    assert sex["Female"]["share"] == pytest.approx(female.mean())
    assert sex["Female"]["label_rate"] < sex["Male"]["label_rate"]  # the census's gap: ~11 % against ~31 %
    assert sum(s["rows"] for s in result["columns"]["race"]["slices"]) == 5000
    path = plot_slices(result, ["share", "label_rate"], tmp_path / "balance.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_thresholds_fail_with_a_message_naming_metric_slices_values_and_limit():
    group, y, score, pred = _small_case()
    result = model_slices({"g": group}, y, pred, "classification", min_rows=40)
    gap = result["columns"]["g"]["gaps"]["false_negative_rate"]
    crossings = check_thresholds(result, {"false_negative_rate_difference": gap["difference"] / 2,
                                          "selection_rate_ratio": 0.0, "accuracy_difference": 1.0})
    assert [c.threshold for c in crossings] == ["false_negative_rate_difference"]
    with pytest.raises(FairnessThresholdError) as raised:
        raise_on_crossings(crossings, "the model 'gbm' on the test split")
    message = str(raised.value)
    for part in ("false_negative_rate_difference", "'g'", repr(gap["lowest"]), repr(gap["highest"]),
                 f"{gap['difference']:.4g}", f"at most {gap['difference'] / 2:g}", "'gbm'"):
        assert part in message, part
    assert raised.value.crossings == crossings
    # the tiny slice 'c' never makes a gap, however far off it is
    assert not check_thresholds(result, {"false_negative_rate_difference": gap["difference"] + 1e-9})
    raise_on_crossings([], "nothing")


def test_min_share_threshold_names_the_smallest_slice():
    group = np.array(["a"] * 95 + ["b"] * 5)
    result = data_balance({"g": group}, np.zeros(100), "classification", min_rows=1)
    (crossing,) = check_thresholds(result, {"min_share": 0.1})
    assert crossing.slices == {"b": 0.05} and math.isclose(crossing.value, 0.05)
    assert "at least 0.1" in crossing.message()


def test_a_rate_over_few_positives_stays_out_of_its_gap():
    # slice b has 200 rows but only 5 positives: its false negative rate (4 of 5 missed) is noise
    group = np.array(["a"] * 400 + ["b"] * 200)
    y = np.r_[np.tile([1, 0], 200), np.ones(5), np.zeros(195)].astype(int)
    pred = np.r_[np.tile([1, 0], 200), [1, 0, 0, 0, 0], np.zeros(195)].astype(int)
    result = model_slices({"g": group}, y, pred, "classification", y_score=pred * 0.8 + 0.1, min_rows=30)
    b = next(s for s in result["columns"]["g"]["slices"] if s["slice"] == "b")
    assert b["false_negative_rate"] == pytest.approx(0.8) and not b["tiny"] and b["false_negative_rate_rows"] == 5
    gaps = result["columns"]["g"]["gaps"]
    assert "false_negative_rate" not in gaps and "roc_auc" not in gaps  # only slice a counts enough positives
    assert gaps["selection_rate"]["difference"] == pytest.approx(0.5 - 1 / 200)
    assert not check_thresholds(result, {"false_negative_rate_difference": 0.01})


def test_thresholds_leave_out_what_the_gaps_leave_out_and_min_share_sees_every_slice():
    """A 1,000-row slice with 3 positives has no ROC AUC in the gaps, so no ROC AUC threshold fails on it; a
    10-row slice is too small for a gap but its share is a count, so min_share does see it."""
    rng = np.random.default_rng(0)
    labels = np.array(["a"] * 2000 + ["b"] * 1000 + ["c"] * 10, dtype=object)
    y = np.concatenate([rng.random(2000) < 0.3, np.arange(1000) < 3, np.zeros(10, bool)]).astype(int)
    score = np.clip(0.5 * y + 0.5 * rng.random(len(y)), 0, 1)
    result = model_slices({"g": labels}, y, (score > 0.5).astype(int), "classification", y_score=score,
                          min_rows=30)
    assert "roc_auc" not in result["columns"]["g"]["gaps"]
    assert check_thresholds(result, {"roc_auc_difference": 0.0001}) == []
    balance = data_balance({"g": labels}, y, "classification", min_rows=30)
    (crossing,) = check_thresholds(balance, {"min_share": 0.01})
    assert crossing.slices == {"c": pytest.approx(10 / 3010)}
