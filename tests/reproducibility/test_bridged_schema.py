"""Bridged Schema (23): SchemaBridge, bootstrap_interval, choose_bridged_count and the natality example."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import root_mean_squared_error

from mlpatterns.reproducibility.bridged_schema import (
    SchemaBridge,
    bootstrap_interval,
    choose_bridged_count,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridged_schema_natality.py"
MAPPING = {
    "Single(1)": ["Single(1)"],
    "Multiple(2+)": ["Twins(2)", "Triplets(3)", "Quadruplets(4)"],
}
NEW_SHARES = {"Twins(2)": 0.7, "Triplets(3)": 0.2, "Quadruplets(4)": 0.1}


def new_schema(n_multiple: int = 100) -> pd.DataFrame:
    values = ["Single(1)"] * 50 + [
        v for v, share in NEW_SHARES.items() for _ in range(round(share * n_multiple))
    ]
    return pd.DataFrame({"age": np.arange(len(values), dtype=float), "plurality": values})


def old_schema(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": np.arange(n, dtype=float),
            "plurality": ["Multiple(2+)"] * (n - 2) + ["Single(1)"] * 2,
        }
    )


# scikit-learn's estimator checks run on both strategies in tests/test_common.py (SchemaBridge is exported).


def test_fit_learns_the_new_schema_distribution_per_old_value() -> None:
    bridge = SchemaBridge(column="plurality", mapping=MAPPING).fit(new_schema())
    assert bridge.distributions_["Single(1)"] == {"Single(1)": 1.0}
    assert bridge.distributions_["Multiple(2+)"] == pytest.approx(NEW_SHARES)
    assert bridge.categories_ == ["Single(1)", "Twins(2)", "Triplets(3)", "Quadruplets(4)"]


def test_probabilistic_draws_follow_the_fitted_distribution() -> None:
    bridge = SchemaBridge(column="plurality", mapping=MAPPING, random_state=0).fit(new_schema())
    old = old_schema(20_002)
    out = bridge.transform(old)
    assert list(out.columns) == ["age", "plurality"]
    assert out["age"].tolist() == old["age"].tolist()
    assert out["plurality"].iloc[-2:].tolist() == ["Single(1)", "Single(1)"]
    shares = out["plurality"].iloc[:-2].value_counts(normalize=True)
    for value, share in NEW_SHARES.items():  # 20,000 draws: standard error at most 0.0033
        assert shares[value] == pytest.approx(share, abs=0.015)
    assert set(out["plurality"]) <= set(bridge.categories_)


def test_probabilistic_draws_are_reproducible_with_random_state() -> None:
    new, old = new_schema(), old_schema(500)
    first = (
        SchemaBridge(column="plurality", mapping=MAPPING, random_state=7).fit(new).transform(old)
    )
    again = (
        SchemaBridge(column="plurality", mapping=MAPPING, random_state=7).fit(new).transform(old)
    )
    other = (
        SchemaBridge(column="plurality", mapping=MAPPING, random_state=8).fit(new).transform(old)
    )
    pd.testing.assert_frame_equal(first, again)
    assert not first["plurality"].equals(other["plurality"])


def test_static_gives_expected_one_hot_that_sums_to_one() -> None:
    bridge = SchemaBridge(column="plurality", mapping=MAPPING, strategy="static").fit(new_schema())
    mixed = pd.DataFrame(
        {"age": [1.0, 2.0, 3.0], "plurality": ["Multiple(2+)", "Single(1)", "Triplets(3)"]}
    )
    out = bridge.transform(mixed)
    names = [
        "plurality_Single(1)",
        "plurality_Twins(2)",
        "plurality_Triplets(3)",
        "plurality_Quadruplets(4)",
    ]
    assert list(out.columns) == ["age", *names]
    assert list(bridge.get_feature_names_out()) == ["age", *names]
    np.testing.assert_allclose(
        out[names].to_numpy(), [[0, 0.7, 0.2, 0.1], [1, 0, 0, 0], [0, 0, 1, 0]]
    )
    np.testing.assert_allclose(out[names].sum(axis=1), 1.0)


def test_static_on_arrays_replaces_the_column_in_place() -> None:
    X = np.array([[0.0, 5.0], [1.0, 6.0], [1.0, 7.0], [9.0, 8.0]])
    bridge = SchemaBridge(column=0, mapping={9.0: [0.0, 1.0]}, strategy="static").fit(X[:3])
    np.testing.assert_allclose(bridge.transform(X[3:]), [[1 / 3, 2 / 3, 8.0]])
    assert list(bridge.get_feature_names_out()) == ["x0_0.0", "x0_1.0", "x1"]


def test_an_unmapped_old_value_is_refused_naming_the_column() -> None:
    bridge = SchemaBridge(column="plurality", mapping=MAPPING).fit(new_schema())
    old = pd.DataFrame({"age": [1.0, 2.0], "plurality": ["Single(1)", "Unknown(9)"]})
    with pytest.raises(
        ValueError, match=r"column 'plurality': value 'Unknown\(9\)' \(row 1\) is neither"
    ):
        bridge.transform(old)


def test_an_old_value_without_new_rows_is_refused() -> None:
    singles = pd.DataFrame({"age": [1.0], "plurality": ["Single(1)"]})
    with pytest.raises(
        ValueError,
        match=r"column 'plurality': none of the new values .* of old value 'Multiple\(2\+\)'",
    ):
        SchemaBridge(column="plurality", mapping=MAPPING).fit(singles)


def test_column_errors_name_the_column_and_what_was_expected() -> None:
    with pytest.raises(
        ValueError, match=r"column 'plural' not found; expected one of .*'plurality'"
    ):
        SchemaBridge(column="plural", mapping=MAPPING).fit(new_schema())
    with pytest.raises(ValueError, match=r"column 5 out of range; expected a position in \[0, 2\)"):
        SchemaBridge(column=5).fit(np.zeros((3, 2)))
    missing = pd.DataFrame({"age": [1.0, 2.0], "plurality": ["Single(1)", None]})
    with pytest.raises(
        ValueError, match=r"column 'plurality' has 1 missing value\(s\), first at row 1"
    ):
        SchemaBridge(column="plurality", mapping=MAPPING).fit(missing)
    with pytest.raises(ValueError, match="strategy must be one of"):
        SchemaBridge(strategy="mean").fit(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"mapping\['a'\] must be a non-empty list of new values"):
        SchemaBridge(mapping={"a": "b"}).fit(np.zeros((3, 2)))


def test_bootstrap_interval_brackets_the_score() -> None:
    rng = np.random.RandomState(0)
    y = rng.normal(size=2000)
    predicted = y + rng.normal(scale=0.5, size=2000)
    low, high = bootstrap_interval(y, predicted, random_state=0, n_bootstrap=300)
    assert low < root_mean_squared_error(y, predicted) < high
    assert high - low < 0.05
    assert bootstrap_interval(y, predicted, random_state=0, n_bootstrap=300) == (low, high)


def test_choose_bridged_count_returns_what_it_measured() -> None:
    rng = np.random.RandomState(0)
    X_old, X_new, X_val = (pd.DataFrame({"x": rng.normal(size=n)}) for n in (400, 10, 200))
    y_old, y_new, y_val = (
        2 * X["x"].to_numpy() + rng.normal(scale=0.1, size=len(X)) for X in (X_old, X_new, X_val)
    )
    choice = choose_bridged_count(
        LinearRegression(),
        X_new,
        y_new,
        X_old,
        y_old,
        X_val,
        y_val,
        [0, 50, 400],
        n_bootstrap=100,
        random_state=3,
    )
    assert list(choice.scores.columns) == ["count", "score", "ci_low", "ci_high"]
    assert choice.scores["count"].tolist() == [0, 50, 400]
    order = np.random.RandomState(3).permutation(400)
    for count, score in zip(choice.scores["count"], choice.scores["score"], strict=True):
        taken = order[:count]
        X = pd.concat([X_new, X_old.iloc[taken]], ignore_index=True)
        model = LinearRegression().fit(X, np.concatenate([y_new, y_old[taken]]))
        assert score == pytest.approx(root_mean_squared_error(y_val, model.predict(X_val)))
    assert (choice.scores["ci_low"] <= choice.scores["score"]).all()
    assert (choice.scores["score"] <= choice.scores["ci_high"]).all()
    assert choice.best_count == int(choice.scores.loc[choice.scores["score"].idxmin(), "count"])
    with pytest.raises(ValueError, match=r"counts must be .* in \[0, 400\], got \[401\]"):
        choose_bridged_count(LinearRegression(), X_new, y_new, X_old, y_old, X_val, y_val, [0, 401])


def test_the_natality_example_bridges_and_beats_dropping_old_data() -> None:
    """One small run (about 3 s): old data helps; bridging stays as good as the union schema."""
    spec = importlib.util.spec_from_file_location("bridged_schema_natality", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    from mlpatterns.datasets import load_natality

    args = argparse.Namespace(old_fraction=0.75, max_iter=30, counts="0,all")
    run = example.experiment(load_natality(), example.SEED, args, verbose=False)
    rmse = {
        name: root_mean_squared_error(run["y"], predicted)
        for name, predicted in run["predictions"].items()
    }
    assert run["multiple"].sum() > 300
    assert rmse["new only (old dropped)"] > rmse["union schema (baseline)"] + 0.01
    for name in ("probabilistic bridge", "static bridge"):
        assert rmse[name] < rmse["new only (old dropped)"]
        assert abs(rmse[name] - rmse["union schema (baseline)"]) < 0.01
    assert run["tv"][0] < 0.05  # the fitted shares are close to the old multiples' true plurality


def test_choose_bridged_count_breaks_a_tie_towards_the_smallest_count_whatever_the_order_given() -> None:
    rng = np.random.default_rng(0)
    new_X, bridged_X, valid_X = (pd.DataFrame({"x": rng.normal(size=n)}) for n in (30, 20, 15))
    constant = pd.Series(np.ones(len(valid_X)))
    choice = choose_bridged_count(
        LinearRegression(), new_X, np.ones(30), bridged_X, np.ones(20), valid_X, constant,
        counts=[20, 10, 0, 10], n_bootstrap=20, random_state=0,
    )
    assert list(choice.scores["count"]) == [0, 10, 20]  # sorted, once each
    assert choice.best_count == 0  # every count predicts the constant exactly: a tie
    with pytest.raises(ValueError, match="bridged_y"):
        choose_bridged_count(LinearRegression(), new_X, np.ones(30), bridged_X, np.ones(19), valid_X, constant,
                             counts=[0])


def test_a_fitted_bridge_pickles_and_transforms_alike() -> None:
    import pickle

    new = pd.DataFrame({"c": ["a", "b", "b", "x"]})
    old = pd.DataFrame({"c": ["A", "x", "A"]})
    for strategy in ("probabilistic", "static"):
        bridge = SchemaBridge(column="c", mapping={"A": ["a", "b"]}, strategy=strategy, random_state=3).fit(new)
        again = pickle.loads(pickle.dumps(bridge))
        pd.testing.assert_frame_equal(again.transform(old), bridge.transform(old))


def test_feature_names_out_follow_scikit_learn_for_arrays_and_frames() -> None:
    new = np.array([["a", 1], ["b", 2], ["b", 3]], dtype=object)
    bridge = SchemaBridge(column=0, mapping={"A": ["a", "b"]}, strategy="static").fit(new)
    assert list(bridge.get_feature_names_out()) == ["x0_a", "x0_b", "x1"]
    assert list(bridge.get_feature_names_out(["plurality", "w"])) == ["plurality_a", "plurality_b", "w"]
    with pytest.raises(ValueError, match="expected 2 names"):
        bridge.get_feature_names_out(["only"])
    frame = pd.DataFrame({"p": ["a", "b"], "w": [1, 2]})
    fitted = SchemaBridge(column="p", mapping={"A": ["a", "b"]}, strategy="static").fit(frame)
    assert list(fitted.get_feature_names_out()) == ["p_a", "p_b", "w"]
    with pytest.raises(ValueError, match="differ from the fitted columns"):
        fitted.get_feature_names_out(["q", "w"])


def test_a_categorical_split_column_stays_categorical_over_the_new_schema() -> None:
    new = pd.DataFrame({"c": pd.Categorical(["a", "b", "b"])})
    old = pd.DataFrame({"c": pd.Categorical(["A", "a", "A"])})
    out = SchemaBridge(column="c", mapping={"A": ["a", "b"]}, random_state=0).fit(new).transform(old)
    assert isinstance(out["c"].dtype, pd.CategoricalDtype)
    assert list(out["c"].cat.categories) == ["a", "b"] and out["c"].notna().all()
