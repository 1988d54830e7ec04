"""Running one Workflow Pipeline (pattern 25) step and committing its outputs atomically.

:func:`execute_step` gives the step's function fresh output paths in a temporary folder of
the store, digests what it wrote, moves each output to ``artifacts/<digest>/`` and writes
the record last. The same function runs in the driver (local engine) and in a Ray worker.

Test hook: the environment variable ``MLPATTERNS_PIPELINE_PAUSE_BEFORE_RECORD``, set to
``<step name>:<seconds>``, sleeps that long after the step's artifacts are committed and
before its record is written, so that a test can kill the process inside a commit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlpatterns._processes import survives_pickling
from mlpatterns.reproducibility.workflow_pipeline.digests import (
    artifact_digest,
    canonical_json,
    stat_signature,
)
from mlpatterns.reproducibility.workflow_pipeline.records import StepRecord
from mlpatterns.reproducibility.workflow_pipeline.step import Step
from mlpatterns.reproducibility.workflow_pipeline.store import Store, remove

__all__ = ["PAUSE_VARIABLE", "StepError", "execute_step", "input_path"]

PAUSE_VARIABLE = "MLPATTERNS_PIPELINE_PAUSE_BEFORE_RECORD"


class StepError(RuntimeError):
    """A step failed, or broke the step contract; names the step (``.step``).

    ``original`` is the exception the step's function raised, if any; it travels with the
    error from a Ray worker (where ``__cause__`` is lost), so a caller can re-raise what
    the step said (a wrong spec, bad data) instead of a wrapper.
    """

    def __init__(self, step: str, message: str, original: BaseException | None = None) -> None:
        super().__init__(f"step {step!r}: {message}")
        self.step = step
        self.message = message
        self.original = original

    def __reduce__(self):
        # the original crosses to the Ray driver when it can
        return (type(self), (self.step, self.message, self.original if survives_pickling(self.original) else None))


def input_path(store: Store, entry: Mapping[str, Any]) -> Path:
    """Where a resolved input lives: a source's own path, or its artifact in the store."""
    return Path(entry["path"]) if entry["producer"] is None else store.root / entry["path"]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def pause_for_tests(step: str) -> None:
    """Sleep before writing the record when :data:`PAUSE_VARIABLE` names this step."""
    setting = os.environ.get(PAUSE_VARIABLE, "")
    name, _, seconds = setting.rpartition(":")
    if name == step:
        time.sleep(float(seconds))


def check_output(step: str, argument: str, path: Path) -> None:
    if not path.exists():
        raise StepError(step, f"did not write its output {argument!r} (expected at {path})")
    links = [path] if path.is_symlink() else [p for p in path.rglob("*") if p.is_symlink()]
    if links:
        raise StepError(step, f"output {argument!r} holds symbolic links ({links[0]}): write files")


def execute_step(
    store: Store,
    step: Step,
    key: str,
    code: Mapping[str, Any],
    inputs: Mapping[str, Mapping[str, Any]],
    environment: Mapping[str, Any],
) -> StepRecord:
    """Run ``step`` on resolved ``inputs``, commit its outputs and record; return the record.

    Raises :class:`StepError` when the function raises, returns something other than
    ``None`` or a JSON-able dict, leaves an output unwritten, or a source it read changed
    while it ran. Nothing is recorded then; the temporary folder is removed.
    """
    temporary = store.new_temp(step.name)
    try:
        paths = {argument: input_path(store, entry) for argument, entry in inputs.items()}
        sources = {a: stat_signature(p) for a, p in paths.items() if inputs[a]["producer"] is None}
        written = {argument: temporary / artifact for argument, artifact in step.outputs.items()}
        params = json.loads(json.dumps(step.params))  # as given: key order can matter to a step
        started, clock = now(), time.perf_counter()
        try:
            if step.runtime is None:
                facts = step.function(paths, dict(written), params)
            else:
                facts = step.function(paths, dict(written), params, dict(step.runtime))
        except Exception as error:
            raise StepError(step.name, f"failed: {type(error).__name__}: {error}", error) from error
        if facts is None:
            facts = {}
        if not isinstance(facts, Mapping):
            raise StepError(step.name, f"returned {type(facts).__name__}; return None or a dict")
        try:
            facts = json.loads(canonical_json(dict(facts)))
        except (TypeError, ValueError) as error:
            raise StepError(
                step.name,
                f"returned facts that are not JSON-able ({error}); NaN and infinity are not "
                "JSON, use None",
            ) from error
        for argument, signature in sources.items():
            if stat_signature(paths[argument]) != signature:
                raise StepError(step.name, f"source {paths[argument]} changed while the step ran")
        outputs = {}
        for argument, path in written.items():
            check_output(step.name, argument, path)
            digest, kind, size = artifact_digest(path)
            artifact = step.outputs[argument]
            relative = store.commit_artifact(path, digest, kind, artifact)
            outputs[argument] = {
                "artifact": artifact,
                "digest": digest,
                "kind": kind,
                "size": size,
                "path": relative,
            }
        pause_for_tests(step.name)
        record = StepRecord(
            step=step.name,
            key=key,
            code=dict(code),
            params=params,
            inputs={argument: dict(entry) for argument, entry in inputs.items()},
            outputs=outputs,
            facts=facts,
            started=started,
            finished=now(),
            duration_s=round(time.perf_counter() - clock, 6),
            environment=dict(environment),
        )
        store.write_record(record)
        return record
    finally:
        remove(temporary)
