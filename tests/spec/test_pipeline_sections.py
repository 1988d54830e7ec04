"""The spec's ``validation:`` and ``register:`` sections are checked when the spec loads."""

import pytest

from mlpatterns.reproducibility.data_validation import ANOMALY_KINDS, DEFAULT_THRESHOLDS
from mlpatterns.spec import SpecError
from mlpatterns.spec.pipeline_sections import (
    ANOMALY_KINDS as SPEC_KINDS,
)
from mlpatterns.spec.pipeline_sections import (
    THRESHOLDS,
    parse_register,
    parse_validation,
)


def test_the_names_the_spec_accepts_are_the_validators():
    assert tuple(ANOMALY_KINDS) == SPEC_KINDS and tuple(DEFAULT_THRESHOLDS) == THRESHOLDS


@pytest.mark.parametrize(("section", "message"), [
    ({"fail_on": ["eror"]}, r"validation\.fail_on: expected a list of severities"),
    ({"fail_on": 3}, r"validation\.fail_on"),
    ({"thresholds": {"psii": 0.3}}, r"validation\.thresholds"),
    ({"thresholds": {"psi": -1}}, r"validation\.thresholds\.psi: expected a number of at least 0"),
    ({"columns": {"fare": {"psi": "high"}}}, r"validation\.columns\.fare\.psi"),
    ({"columns": {"fare": {"pssi": 0.1}}}, r"validation\.columns\.fare"),
    ({"fail": ["error"]}, r"validation"),
])
def test_a_wrong_validation_section_is_named(section, message):
    with pytest.raises(SpecError, match=message):
        parse_validation(section)


def test_validation_defaults_report_only():
    assert parse_validation(None) == {"fail_on": [], "thresholds": {}, "columns": {}}
    assert parse_validation({"fail_on": "error", "thresholds": {"psi": None}})["fail_on"] == ["error"]


def test_register_defaults_and_errors():
    section = parse_register(True, "flights", {"gbm": {}})
    assert section == {"name": "flights", "alias": "champion", "gate": ["heuristic_benchmark", "champion"],
                       "tags": {}}
    for raw, message in [({"name": "a/b"}, r"register\.name"), ({"alias": "1x"}, r"register\.alias"),
                         ({"gate": ["everything"]}, r"register\.gate"), ({"metric": "acc"}, r"register\.metric"),
                         ({"tags": {"a": [1]}}, r"register\.tags"), ({"allow_interface_change": "yes"},
                                                                     r"register\.allow_interface_change")]:
        with pytest.raises(SpecError, match=message):
            parse_register(raw, "flights", {"gbm": {}})
