"""The spec sections of the Workflow Pipeline (25) and Model Versioning (27): ``validation:`` and ``register:``.

::

    validation:                  # the data's statistics against the last successful run's
      fail_on: [error]           # severities (error, warning) or anomaly kinds that fail the run;
                                 # default []: anomalies are reported, in the log and report.json
      thresholds: {psi: 0.25, unseen_categories: 0.05}   # by anomaly kind; null turns one off
      columns: {tailnum: {jensen_shannon: null}}         # per-column overrides

    register:                    # register the run's model in a model registry
      name: flights-delay        # the registered model; default: the spec's name
      model: gradient_boosting   # which of the spec's models; default: the best by the metric
      alias: champion            # moved to the new version; default champion
      registry: sqlite:///registry/registry.db   # default: $MLPATTERNS_REGISTRY, else this one
      metric: roc_auc            # the gate's metric; default: the task's headline metric
      gate: [heuristic_benchmark, champion]      # what the model must beat on the test split
      allow_interface_change: false
      description: "..."
      tags: {team: ops}

Loading a spec checks these fields only; the registry is opened when the run registers.
"""

from __future__ import annotations

from typing import Any

from mlpatterns.spec._checks import check_plain_name, expect, mapping

__all__ = ["ANOMALY_KINDS", "GATES", "SEVERITIES", "THRESHOLDS", "parse_register", "parse_validation"]

SEVERITIES = ("error", "warning")
# mlpatterns.reproducibility.data_validation's ANOMALY_KINDS and DEFAULT_THRESHOLDS, named here so that loading a
# spec imports no pandas (tests/spec/test_pipeline_sections.py holds them equal)
ANOMALY_KINDS = ("row_count", "missing_column", "new_column", "kind_change", "type_change", "missing_values",
                 "out_of_range", "unseen_categories", "drift")
THRESHOLDS = ("row_count_ratio", "missing_increase", "missing_ratio", "missing_ratio_floor", "out_of_range",
              "unseen_categories", "psi", "jensen_shannon")
GATES = ("heuristic_benchmark", "champion")


def parse_validation(raw: Any) -> dict[str, Any]:
    """``validation:``: which anomalies fail the run, and the thresholds."""
    section = mapping(raw or {}, "validation", ("fail_on", "thresholds", "columns"))
    fail_on = section.get("fail_on", [])
    fail_on = [fail_on] if isinstance(fail_on, str) else fail_on
    expect(isinstance(fail_on, list) and all(v in (*SEVERITIES, *ANOMALY_KINDS) for v in fail_on),
           "validation.fail_on", f"expected a list of severities {list(SEVERITIES)} or anomaly kinds "
           f"{list(ANOMALY_KINDS)}, got {section.get('fail_on')!r}")
    section["fail_on"] = list(fail_on)
    thresholds = mapping(section.get("thresholds", {}) or {}, "validation.thresholds", THRESHOLDS)
    for name, value in thresholds.items():
        _threshold(value, f"validation.thresholds.{name}")
    section["thresholds"] = thresholds
    columns = mapping(section.get("columns", {}) or {}, "validation.columns")
    for column, values in columns.items():
        values = mapping(values, f"validation.columns.{column}", THRESHOLDS)
        for name, value in values.items():
            _threshold(value, f"validation.columns.{column}.{name}")
        columns[column] = values
    section["columns"] = columns
    return section


def _threshold(value: Any, where: str) -> None:
    expect(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0), where,
           f"expected a number of at least 0, or null to turn the check off, got {value!r}")


def parse_register(raw: Any, spec_name: str, models: dict[str, Any]) -> dict[str, Any]:
    """``register:``: the registered model's name, which model, the alias, the registry and the gate."""
    if raw is True:
        raw = {}
    section = mapping(raw, "register", ("name", "model", "alias", "registry", "metric", "gate",
                                        "allow_interface_change", "description", "tags"))
    section.setdefault("name", spec_name)
    check_plain_name(section["name"], "register.name")
    if "model" in section:
        expect(section["model"] in models, "register.model",
               f"expected one of the spec's models {list(models)}, got {section['model']!r}")
    section.setdefault("alias", "champion")
    expect(isinstance(section["alias"], str) and section["alias"][:1].isalpha(), "register.alias",
           f"expected a name that starts with a letter (champion, challenger, ...), got {section['alias']!r}")
    if "registry" in section:
        expect(isinstance(section["registry"], str) and "://" in section["registry"], "register.registry",
               "expected a registry URL: sqlite:///PATH.db or postgresql+psycopg://...?files=/shared/folder, "
               f"got {section['registry']!r}")
    if "metric" in section:
        from mlpatterns.metrics import METRIC_DIRECTIONS

        expect(section["metric"] in METRIC_DIRECTIONS, "register.metric",
               f"expected one of {sorted(METRIC_DIRECTIONS)}, got {section['metric']!r}")
    gate = section.get("gate", list(GATES))
    expect(isinstance(gate, list) and all(g in GATES for g in gate), "register.gate",
           f"expected a list of {list(GATES)} (what the model must beat; [] for none), got {gate!r}")
    section["gate"] = list(gate)
    expect(isinstance(section.get("allow_interface_change", False), bool), "register.allow_interface_change",
           "expected true or false")
    expect(isinstance(section.get("description", ""), str), "register.description", "expected text")
    tags = mapping(section.get("tags", {}) or {}, "register.tags")
    expect(all(isinstance(v, (str, int, float, bool)) for v in tags.values()), "register.tags",
           "expected text values")
    section["tags"] = {k: str(v) for k, v in tags.items()}
    return section
