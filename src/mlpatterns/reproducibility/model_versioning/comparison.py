"""What changed between two model versions: interface, metrics, lineage (Model Versioning, 27).

The book's rule: a version may change how well a model predicts, never what a client
sends or gets back. :func:`interface_diff` compares two bundle signatures on exactly
that: the inputs (by name and kind of value), the outputs (by name, kind and, for a
class output, the classes) and the key columns passed through. Any difference makes a
new model, not a new version; the registry refuses it unless told otherwise.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["InterfaceDiff", "VersionComparison", "compare_versions", "flatten", "interface_diff"]

_INPUT_FIELDS = ("type",)  # what a client must send
_OUTPUT_FIELDS = ("type", "values")  # what a client gets back; values are a class output's classes


@dataclass(frozen=True)
class InterfaceDiff:
    """The differences between two signatures; ``changed`` maps a column to its fields before and after.

    ``details`` lists differences that keep the interface (a column's pandas dtype, the
    text accepted for booleans, null markers): shown by a comparison, never refused.
    """

    inputs_added: tuple[str, ...] = ()
    inputs_removed: tuple[str, ...] = ()
    inputs_changed: Mapping[str, tuple[dict, dict]] = field(default_factory=dict)
    outputs_added: tuple[str, ...] = ()
    outputs_removed: tuple[str, ...] = ()
    outputs_changed: Mapping[str, tuple[dict, dict]] = field(default_factory=dict)
    keys_added: tuple[str, ...] = ()
    keys_removed: tuple[str, ...] = ()
    details: tuple[str, ...] = ()

    @property
    def compatible(self) -> bool:
        return not any((self.inputs_added, self.inputs_removed, self.inputs_changed, self.outputs_added,
                        self.outputs_removed, self.outputs_changed, self.keys_added, self.keys_removed))

    def describe(self) -> list[str]:
        """One line per difference that breaks the interface, e.g. ``input 'distance' removed``."""
        lines = [f"input {n!r} added" for n in self.inputs_added]
        lines += [f"input {n!r} removed" for n in self.inputs_removed]
        lines += [f"input {n!r} changed from {a} to {b}" for n, (a, b) in self.inputs_changed.items()]
        lines += [f"output {n!r} added" for n in self.outputs_added]
        lines += [f"output {n!r} removed" for n in self.outputs_removed]
        lines += [f"output {n!r} changed from {a} to {b}" for n, (a, b) in self.outputs_changed.items()]
        lines += [f"key {n!r} added" for n in self.keys_added]
        lines += [f"key {n!r} removed" for n in self.keys_removed]
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {"compatible": self.compatible, "differences": self.describe(), "details": list(self.details)}


def _columns(signature: Mapping[str, Any], part: str) -> dict[str, dict]:
    return {column["name"]: column for column in signature.get(part) or []}


def _side(before: Mapping[str, dict], after: Mapping[str, dict], fields: tuple[str, ...]):
    added = tuple(n for n in after if n not in before)
    removed = tuple(n for n in before if n not in after)
    changed, details = {}, []
    for name in before.keys() & after.keys():
        old, new = before[name], after[name]
        keep = {f: old.get(f) for f in fields if old.get(f) != new.get(f)}
        if keep:
            changed[name] = (keep, {f: new.get(f) for f in keep})
        details += [f"{name!r} {f}: {old.get(f)!r} -> {new.get(f)!r}"
                    for f in sorted((old.keys() | new.keys()) - {"name", *fields}) if old.get(f) != new.get(f)]
    return added, removed, dict(sorted(changed.items())), details


def interface_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> InterfaceDiff:
    """How the signature ``after`` differs from ``before`` (see :class:`InterfaceDiff`).

    >>> old = {"inputs": [{"name": "distance", "type": "number"}], "keys": ["id"],
    ...        "outputs": [{"name": "prediction", "type": "number"}]}
    >>> new = {**old, "inputs": [{"name": "distance", "type": "text"}]}
    >>> interface_diff(old, new).describe()
    ["input 'distance' changed from {'type': 'number'} to {'type': 'text'}"]
    """
    i_added, i_removed, i_changed, i_details = _side(_columns(before, "inputs"), _columns(after, "inputs"),
                                                     _INPUT_FIELDS)
    o_added, o_removed, o_changed, o_details = _side(_columns(before, "outputs"), _columns(after, "outputs"),
                                                     _OUTPUT_FIELDS)
    keys_before, keys_after = list(before.get("keys") or []), list(after.get("keys") or [])
    details = [f"input {d}" for d in i_details] + [f"output {d}" for d in o_details]
    if before.get("null_values") != after.get("null_values"):
        details.append(f"null_values: {before.get('null_values')!r} -> {after.get('null_values')!r}")
    return InterfaceDiff(
        inputs_added=i_added, inputs_removed=i_removed, inputs_changed=i_changed,
        outputs_added=o_added, outputs_removed=o_removed, outputs_changed=o_changed,
        keys_added=tuple(k for k in keys_after if k not in keys_before),
        keys_removed=tuple(k for k in keys_before if k not in keys_after),
        details=tuple(details),
    )


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as one level with dotted keys: ``{"test": {"rmse": 1}}`` -> ``{"test.rmse": 1}``."""
    if not isinstance(values, Mapping):
        return {prefix: values} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@dataclass(frozen=True)
class VersionComparison:
    """Two versions of one model side by side.

    ``metrics`` maps each dotted metric name to ``(first, second, second - first)`` (the
    difference is ``None`` unless both are numbers); ``lineage`` maps each dotted lineage
    field to ``(first, second)``, and ``lineage_changed`` names those that differ.
    """

    name: str
    versions: tuple[int, int]
    metrics: Mapping[str, tuple[Any, Any, float | None]]
    interface: InterfaceDiff
    lineage: Mapping[str, tuple[Any, Any]]

    @property
    def lineage_changed(self) -> tuple[str, ...]:
        return tuple(k for k, (a, b) in self.lineage.items() if a != b)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "versions": list(self.versions),
                "metrics": {k: list(v) for k, v in self.metrics.items()}, "interface": self.interface.to_dict(),
                "lineage": {k: list(v) for k, v in self.lineage.items()}, "lineage_changed": list(self.lineage_changed)}


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def compare_versions(first: Any, second: Any) -> VersionComparison:
    """Compare two :class:`~mlpatterns.reproducibility.model_versioning.ModelVersion` of one model."""
    m1, m2 = flatten(first.metrics), flatten(second.metrics)
    metrics = {}
    for key in [*m1, *(k for k in m2 if k not in m1)]:
        a, b = m1.get(key), m2.get(key)
        metrics[key] = (a, b, float(b - a) if _number(a) and _number(b) else None)
    l1, l2 = flatten(first.lineage), flatten(second.lineage)
    lineage = {key: (l1.get(key), l2.get(key)) for key in [*l1, *(k for k in l2 if k not in l1)]}
    return VersionComparison(name=first.name, versions=(first.version, second.version), metrics=metrics,
                             interface=interface_diff(first.signature, second.signature), lineage=lineage)
