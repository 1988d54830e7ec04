"""Keys and dry runs of the Workflow Pipeline (pattern 25): which steps rerun, and why.

A step's key is the SHA-256 of the canonical JSON of its name, code digest, parameters (in their
given order, which a step may read),
input digests and output names. A key with a usable record is *cached*. Otherwise the
step *runs*, and the plan explains why by comparing the key's parts with the record the
step last used (``latest/<step>.json``): its code, a module's code, parameters or an input
changed; it was forced; an artifact of its record is missing; or an upstream step reruns,
so that the input's digest is only known once that step has run (a rerun that writes
the same bytes lets the step be cached after all).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlpatterns.reproducibility.workflow_pipeline.digests import canonical_json, combined_digest
from mlpatterns.reproducibility.workflow_pipeline.records import StepRecord
from mlpatterns.reproducibility.workflow_pipeline.step import Step
from mlpatterns.reproducibility.workflow_pipeline.store import Store

__all__ = ["PlannedStep", "format_plan", "plan_step", "step_key"]

KEY_FORMAT = "mlpatterns.pipeline.key/1"


@dataclass(frozen=True)
class PlannedStep:
    """One line of a plan.

    Attributes
    ----------
    step : str
    key : str or None
        ``None`` when an input is produced by a step that reruns (its digest is unknown).
    status : {"cached", "run"}
    reasons : tuple of str
        Why the step runs (``"no record for this key"``, ``"code of step changed"``,
        ``"params changed: a, b"``, ``"input data changed"``, ``"forced"``,
        ``"upstream step split reruns"``, ``"upstream steps a, b rerun"``, a missing
        artifact), or which record it reuses.
    record : StepRecord or None
        The record a cached step reuses.
    inputs : dict
        The resolved inputs (digest, kind, size, producer, path) when the key is known.
    """

    step: str
    key: str | None
    status: str
    reasons: tuple[str, ...]
    record: StepRecord | None = None
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)


def step_key(step: Step, code: Mapping[str, Any], inputs: Mapping[str, Mapping[str, Any]]) -> str:
    """The cache key of ``step`` given its code digests and resolved inputs."""
    return combined_digest(
        {
            "format": KEY_FORMAT,
            "step": step.name,
            "code": code["digest"],
            # in the order given, not sorted: a step may read an order (a split's fractions)
            "params": json.dumps(step.params, separators=(",", ":"), ensure_ascii=False, allow_nan=False),
            "inputs": {argument: entry["digest"] for argument, entry in inputs.items()},
            "outputs": dict(step.outputs),
        }
    )


def differences(
    step: Step, code: Mapping[str, Any], inputs: Mapping, previous: StepRecord
) -> list[str]:
    """What differs between the parts of a key and the record the step last used."""
    reasons = []
    if previous.code.get("function") != code["function"]:
        reasons.append("code of step changed")
    old_modules, new_modules = previous.code.get("modules", {}), code["modules"]
    for name in sorted(set(old_modules) | set(new_modules)):
        if name not in old_modules:
            reasons.append(f"code module {name} added")
        elif name not in new_modules:
            reasons.append(f"code module {name} removed")
        elif old_modules[name] != new_modules[name]:
            reasons.append(f"code of module {name} changed")
    names = set(previous.params) | set(step.params)
    changed = [
        name
        for name in sorted(names)
        if name not in previous.params
        or name not in step.params
        or canonical_json(previous.params[name]) != canonical_json(step.params[name])
    ]
    if changed:
        reasons.append(f"params changed: {', '.join(changed)}")
    for argument in sorted(set(previous.inputs) | set(inputs)):
        old = previous.inputs.get(argument, {}).get("digest")
        if old != inputs.get(argument, {}).get("digest"):
            reasons.append(f"input {argument} changed")
    if {a: o["artifact"] for a, o in previous.outputs.items()} != dict(step.outputs):
        reasons.append("outputs changed")
    return reasons


def plan_step(
    step: Step,
    code: Mapping[str, Any],
    store: Store,
    known: Mapping[str, Mapping[str, Any]],
    producers: Mapping[str, str],
    forced: bool = False,
) -> PlannedStep:
    """Plan one step given the artifacts whose digests are ``known`` so far.

    ``known`` maps artifact names to ``{"digest", "kind", "size", "producer", "path"}``;
    an input missing from it is produced by a step that reruns.
    """
    upstream = sorted({producers[a] for a in step.inputs.values() if a not in known})
    forced_reason = ("forced",) if forced else ()
    if upstream:
        rerun = (
            f"upstream step {upstream[0]} reruns"
            if len(upstream) == 1
            else f"upstream steps {', '.join(upstream)} rerun"
        )
        reasons = (*forced_reason, rerun)
        return PlannedStep(step.name, None, "run", reasons)
    inputs = {
        argument: {"artifact": artifact, **known[artifact]}
        for argument, artifact in step.inputs.items()
    }
    key = step_key(step, code, inputs)
    if forced:
        return PlannedStep(step.name, key, "run", forced_reason, inputs=inputs)
    record = store.read_record(key)
    if record is not None:
        if problems := store.missing_outputs(record):
            return PlannedStep(step.name, key, "run", tuple(problems), inputs=inputs)
        reason = f"record of {record.finished}"
        return PlannedStep(step.name, key, "cached", (reason,), record, inputs)
    previous = store.latest(step.name)
    reasons = differences(step, code, inputs, previous) if previous is not None else []
    if previous is not None and previous.key == key:
        reasons = ["the record of this key was removed"]
    return PlannedStep(
        step.name, key, "run", tuple(reasons or ["no record for this key"]), None, inputs
    )


def format_plan(plan: Sequence[PlannedStep]) -> str:
    """A plan as aligned text: status, step, short key, reasons.

    >>> print(format_plan([PlannedStep("load", "0123456789abcdef", "run", ("forced",))]))
    run     load  0123456789ab  forced
    """
    width = max((len(entry.step) for entry in plan), default=0)
    lines = []
    for entry in plan:
        key = entry.key[:12] if entry.key else "?" * 12
        lines.append(f"{entry.status:<7} {entry.step:<{width}}  {key}  {'; '.join(entry.reasons)}")
    return "\n".join(lines)
