"""The driver loop of the Workflow Pipeline (pattern 25): reuse a ready step or start it.

A step is ready when the steps producing its inputs have finished; it is then planned
with the now-known input digests (so a rerun upstream step that wrote the same bytes
lets it be reused), reused when its key has a usable record, or started on the engine.
After a failure nothing new starts; steps already running finish and are committed,
then the failure is raised.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlpatterns.reproducibility.workflow_pipeline.execution import input_path
from mlpatterns.reproducibility.workflow_pipeline.planning import plan_step
from mlpatterns.reproducibility.workflow_pipeline.records import StepRecord, environment
from mlpatterns.reproducibility.workflow_pipeline.step import Step
from mlpatterns.reproducibility.workflow_pipeline.store import Store

if TYPE_CHECKING:
    from mlpatterns.reproducibility.workflow_pipeline.pipeline import Pipeline

__all__ = ["PipelineRun", "outputs_known", "schedule"]


@dataclass(frozen=True)
class PipelineRun:
    """What :meth:`Pipeline.run` returns.

    Attributes
    ----------
    artifacts : dict of str to Path
        Each artifact's committed path (a source's own path).
    digests : dict of str to str
        Each artifact's SHA-256 digest.
    records : dict of str to StepRecord
        Each step's record (its ``facts``, timings, inputs, outputs), in execution order.
    statuses : dict of str to str
        ``"ran"`` or ``"cached"`` per step, in execution order.
    """

    artifacts: dict[str, Path]
    digests: dict[str, str]
    records: dict[str, StepRecord]
    statuses: dict[str, str]


def outputs_known(record: StepRecord) -> dict[str, dict[str, Any]]:
    """A record's outputs as resolved artifacts for the steps that read them."""
    return {
        output["artifact"]: {
            "digest": output["digest"],
            "kind": output["kind"],
            "size": output["size"],
            "producer": record.step,
            "producer_key": record.key,  # the very record: equal bytes may come from several runs
            "path": output["path"],
        }
        for output in record.outputs.values()
    }


def schedule(
    pipeline: Pipeline,
    store: Store,
    runner,
    forced: set[str],
    progress: Callable[[str, str], None] | None,
    log: Callable[[str], None] | None,
    codes: Mapping[str, dict[str, Any]] | None = None,
) -> PipelineRun:
    """Run ``pipeline`` on ``runner`` (``LocalEngine``, ``RayEngine``); see ``Pipeline.run``."""
    known, codes = pipeline.source_entries(), codes or pipeline.code()
    lineage = environment(pipeline.packages)
    notify = progress or (lambda name, status: None)
    say = log or (lambda line: None)
    records: dict[str, StepRecord] = {}
    running: set[str] = set()
    ran: set[str] = set()
    failure: BaseException | None = None

    def finish(name: str, record: StepRecord, status: str) -> None:
        records[name] = record
        if status == "done":
            ran.add(name)
        known.update(outputs_known(record))
        notify(name, status)

    def next_ready() -> Step | None:
        waiting = (s for s in pipeline.steps if s.name not in records and s.name not in running)
        return next((s for s in waiting if pipeline.dependencies[s.name] <= set(records)), None)

    while True:
        ready = None if failure or len(running) >= runner.capacity else next_ready()
        if ready is not None:
            code = codes[ready.name]
            planned = plan_step(ready, code, store, known, pipeline.producers, ready.name in forced)
            if planned.record is not None:
                latest = store.latest(ready.name)
                if latest is None or latest.key != planned.key:
                    store.set_latest(planned.record)
                say(f"{ready.name}: cached ({planned.key[:12]}, {planned.reasons[0]})")
                finish(ready.name, planned.record, "cached")
            else:
                say(f"{ready.name}: run ({'; '.join(planned.reasons)})")
                notify(ready.name, "start")
                running.add(ready.name)
                runner.start(ready, planned.key, code, planned.inputs, lineage)
            continue
        if not running:
            break
        name, outcome = runner.wait()
        running.discard(name)
        if isinstance(outcome, BaseException):
            failure = failure or outcome
            say(f"{name}: failed ({outcome})")
            notify(name, "failed")
        else:
            say(f"{name}: done in {outcome.duration_s:.2f} s")
            finish(name, outcome, "done")
    if failure is not None:
        raise failure
    artifacts = {name: input_path(store, entry) for name, entry in known.items()}
    digests = {name: entry["digest"] for name, entry in known.items()}
    ordered = {step.name: records[step.name] for step in pipeline.steps}
    statuses = {name: "ran" if name in ran else "cached" for name in ordered}
    return PipelineRun(artifacts, digests, ordered, statuses)
