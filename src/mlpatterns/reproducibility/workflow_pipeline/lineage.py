"""Lineage in the Workflow Pipeline (pattern 25): from an artifact back to the data it came from.

A model file alone cannot say which data, split and code made it. Each step record names
its inputs by digest and producer, so walking records backwards from an artifact's digest
reaches the source files, with the path, size and digest they had when they were read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlpatterns.reproducibility.workflow_pipeline.records import StepRecord

if TYPE_CHECKING:
    from mlpatterns.reproducibility.workflow_pipeline.store import Store

__all__ = ["ArtifactLineage", "StepLineage", "format_lineage", "lineage"]

HEX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class StepLineage:
    """A step in a lineage tree: its record's identity and the lineage of each input."""

    step: str
    key: str
    params: dict[str, Any]
    code: dict[str, Any]
    facts: dict[str, Any]
    finished: str
    environment: dict[str, Any]
    inputs: dict[str, ArtifactLineage] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ArtifactLineage:
    """An artifact in a lineage tree; ``producer`` is ``None`` for a source.

    ``path`` is relative to the store for a produced artifact and the recorded path of a
    source. ``note`` says when the producer's record is no longer in the store.
    """

    artifact: str
    digest: str
    kind: str
    size: int
    path: str
    producer: StepLineage | None = None
    source: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Tracer:
    """Walks the records of one store, each record once."""

    def __init__(self, records: Iterable[StepRecord]) -> None:
        self.records = sorted(records, key=lambda record: record.finished)
        self.by_key = {record.key: record for record in self.records}
        self.memo: dict[str, StepLineage] = {}

    def producer_of(self, digest: str, step: str | None = None) -> StepRecord | None:
        """The latest record (of ``step``, if given) with an output of this digest."""
        matches = [
            record
            for record in self.records
            if (step is None or record.step == step)
            and any(output["digest"] == digest for output in record.outputs.values())
        ]
        return matches[-1] if matches else None

    def step(self, record: StepRecord) -> StepLineage:
        if record.key not in self.memo:
            inputs = {argument: self.artifact(entry) for argument, entry in record.inputs.items()}
            self.memo[record.key] = StepLineage(
                record.step, record.key, record.params, record.code, record.facts,
                record.finished, record.environment, inputs,
            )  # fmt: skip
        return self.memo[record.key]

    def artifact(
        self, entry: dict[str, Any], producer: StepRecord | None = None
    ) -> ArtifactLineage:
        common = (
            entry["artifact"],
            entry["digest"],
            entry["kind"],
            int(entry["size"]),
            entry["path"],
        )
        if entry.get("producer", "") is None:
            return ArtifactLineage(*common, source=True)
        # the record the step read (recorded with the input), else the latest that wrote those bytes
        producer = producer or self.by_key.get(entry.get("producer_key", "")) or self.producer_of(
            entry["digest"], entry.get("producer"))
        if producer is None:
            note = f"the record of step {entry.get('producer')!r} that wrote it was cleared"
            return ArtifactLineage(*common, note=note)
        return ArtifactLineage(*common, producer=self.step(producer))


def lineage(store: Store, target: str | StepRecord) -> ArtifactLineage | StepLineage:
    """The lineage tree of an artifact digest (or unique prefix, 8+ characters), a key or a record.

    A digest gives an :class:`ArtifactLineage` rooted at that artifact (the latest record
    that wrote it); a key or record gives a :class:`StepLineage`. Raises ``LookupError``
    when nothing in the store matches and ``ValueError`` when a prefix is ambiguous.
    """
    tracer = Tracer(store.records())
    if isinstance(target, StepRecord):
        return tracer.step(target)
    if not isinstance(target, str) or not HEX.fullmatch(target):
        raise ValueError(f"give a record or a hex digest/key of 8-64 characters, not {target!r}")
    outputs = {
        output["digest"]: (output, record)
        for record in tracer.records
        for output in record.outputs.values()
        if output["digest"].startswith(target)
    }
    sources = {
        entry["digest"]: entry
        for record in tracer.records
        for entry in record.inputs.values()
        if entry["producer"] is None and entry["digest"].startswith(target)
    }
    keys = [key for key in tracer.by_key if key.startswith(target)]
    found = len(set(outputs) | set(sources)) + len(keys)
    if found > 1:
        raise ValueError(f"{target!r} matches several digests or keys; give more characters")
    if outputs:
        [(output, record)] = outputs.values()
        return tracer.artifact({**output, "producer": record.step}, record)
    if sources:
        [entry] = sources.values()
        return tracer.artifact(entry)
    if keys:
        return tracer.step(tracer.by_key[keys[0]])
    raise LookupError(f"no artifact, source or step key in {store.root} starts with {target!r}")


def human_size(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"  # pragma: no cover


def format_lineage(node: ArtifactLineage | StepLineage, indent: str = "  ") -> str:
    """Render a lineage tree as indented text; a step reached twice is shown once.

    Each artifact shows its digest (12 characters), kind and size; a source shows its
    recorded path (a stored artifact's path is ``artifacts/<digest>/<name>``).
    """
    lines: list[str] = []
    shown: set[str] = set()

    def step(node: StepLineage, depth: int) -> None:
        pad = indent * depth
        if node.key in shown:
            lines.append(f"{pad}step {node.step} (key {node.key[:12]}), shown above")
            return
        shown.add(node.key)
        params = ", ".join(f"{k}={v!r}" for k, v in sorted(node.params.items())) or "no params"
        lines.append(f"{pad}step {node.step} (key {node.key[:12]}, {node.finished}; {params})")
        for argument, child in node.inputs.items():
            artifact(child, depth + 1, f"input {argument}: ")

    def artifact(node: ArtifactLineage, depth: int, label: str = "") -> None:
        pad = indent * depth
        kind = "source" if node.source else "artifact"
        where = f" {node.path}" if node.source or node.producer is None else ""
        lines.append(
            f"{pad}{label}{kind} {node.artifact} (sha256 {node.digest[:12]}, {node.kind}, "
            f"{human_size(node.size)}){where}"
        )
        if node.producer is not None:
            step(node.producer, depth + 1)
        elif node.note:
            lines.append(f"{pad}{indent}({node.note})")

    if isinstance(node, StepLineage):
        step(node, 0)
    else:
        artifact(node, 0)
    return "\n".join(lines)
