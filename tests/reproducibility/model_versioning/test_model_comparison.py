"""The interface rule and comparisons, on signatures alone."""

from __future__ import annotations

from types import SimpleNamespace

from mlpatterns.reproducibility.model_versioning import compare_versions, interface_diff
from mlpatterns.reproducibility.model_versioning.comparison import flatten
from mlpatterns.testing.registry import INPUTS, make_signature


def test_the_same_signature_is_compatible():
    diff = interface_diff(make_signature(), make_signature())
    assert diff.compatible and diff.describe() == [] and diff.details == ()


def test_every_kind_of_difference_is_named():
    before = make_signature(classes=("a", "b"))
    after = make_signature({"distance": "text", "carrier": "text", "origin": "text"}, keys=("date",),
                           classes=("a", "c"))
    diff = interface_diff(before, after)
    assert not diff.compatible
    assert diff.describe() == [
        "input 'origin' added",
        "input 'weekend' removed",
        "input 'distance' changed from {'type': 'number'} to {'type': 'text'}",
        "output 'probability_c' added",
        "output 'probability_b' removed",
        "output 'prediction' changed from {'values': ['a', 'b']} to {'values': ['a', 'c']}",
        "key 'date' added",
        "key 'flight' removed",
    ]
    assert diff.to_dict()["compatible"] is False
    assert "input 'distance' dtype: 'float64' -> 'str'" in diff.details


def test_input_order_does_not_matter():
    reordered = make_signature(dict(reversed(list(INPUTS.items()))))
    assert interface_diff(make_signature(), reordered).compatible


def test_flatten():
    assert flatten({"test": {"rmse": 1.0, "per_class": {"a": 2}}, "n": 3}) == {
        "test.rmse": 1.0, "test.per_class.a": 2, "n": 3}
    assert flatten(None) == {}


def test_compare_versions_handles_missing_and_non_numeric_metrics():
    first = SimpleNamespace(name="m", version=1, metrics={"test": {"rmse": 2.0, "note": "x"}}, lineage={"seed": 0},
                            signature=make_signature())
    second = SimpleNamespace(name="m", version=2, metrics={"test": {"rmse": 1.5, "mae": 1.0}}, lineage={"seed": 1},
                             signature=make_signature())
    comparison = compare_versions(first, second)
    assert comparison.metrics == {"test.rmse": (2.0, 1.5, -0.5), "test.note": ("x", None, None),
                                  "test.mae": (None, 1.0, None)}
    assert comparison.lineage == {"seed": (0, 1)} and comparison.lineage_changed == ("seed",)
