"""Workflow Pipeline (pattern 25): content-addressed steps with caching, resumption and lineage.

Problem: a notebook or script that does everything is neither repeatable nor scalable:
any change reruns all of it, a crash loses all of it, independent parts cannot run in
parallel, and nobody can tell which data and code produced a model.

Solution: steps with declared input and output artifacts, joined into a DAG by artifact
names. A step's key is a SHA-256 over its code, parameters and input contents; a key with
a record is reused, so an edit reruns exactly the steps it affects and a rerun after a
crash resumes where it stopped. Outputs are committed atomically to a content-addressed
store; records keep lineage back to the source files. Steps run one at a time
(``engine="local"``) or in parallel on Ray (``engine="ray"``, ``mlpatterns[pipeline]``).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> def count(inputs, outputs, params):
...     lines = inputs["text"].read_text().splitlines()
...     outputs["count"].write_text(str(len(lines) * params["scale"]))
...     return {"lines": len(lines)}
>>> def report(inputs, outputs, params):
...     outputs["report.txt"].write_text("count=" + inputs["count"].read_text())
>>> with tempfile.TemporaryDirectory() as folder:
...     data = Path(folder, "data.txt")
...     _ = data.write_text("a\\nb\\nc\\n")
...     pipeline = Pipeline(
...         [Step("count", count, inputs={"text": "data"}, outputs=["count"], params={"scale": 2}),
...          Step("report", report, inputs={"count": "count"}, outputs=["report.txt"])],
...         sources={"data": data},
...     )
...     store = Store(Path(folder, "store"))
...     first = pipeline.run(store)
...     second = pipeline.run(store)
...     _ = data.write_text("a\\nb\\n")
...     plan = pipeline.plan(store)
...     third = pipeline.run(store)
...     print(first.statuses, first.records["count"].facts)
...     print(second.statuses)
...     print([(p.step, p.status, p.reasons) for p in plan])
...     print(third.artifacts["report.txt"].read_text())
{'count': 'ran', 'report': 'ran'} {'lines': 3}
{'count': 'cached', 'report': 'cached'}
[('count', 'run', ('input text changed',)), ('report', 'run', ('upstream step count reruns',))]
count=4
"""

from mlpatterns.reproducibility.workflow_pipeline.digests import (
    artifact_digest,
    directory_digest,
    file_digest,
)
from mlpatterns.reproducibility.workflow_pipeline.engines import init_ray
from mlpatterns.reproducibility.workflow_pipeline.execution import PAUSE_VARIABLE, StepError
from mlpatterns.reproducibility.workflow_pipeline.lineage import (
    ArtifactLineage,
    StepLineage,
    format_lineage,
)
from mlpatterns.reproducibility.workflow_pipeline.pipeline import Pipeline
from mlpatterns.reproducibility.workflow_pipeline.planning import PlannedStep, format_plan
from mlpatterns.reproducibility.workflow_pipeline.records import StepRecord
from mlpatterns.reproducibility.workflow_pipeline.scheduler import PipelineRun
from mlpatterns.reproducibility.workflow_pipeline.step import Step
from mlpatterns.reproducibility.workflow_pipeline.store import ClearReport, Store, StoreEntry

__all__ = [
    "PAUSE_VARIABLE",
    "ArtifactLineage",
    "ClearReport",
    "Pipeline",
    "PipelineRun",
    "PlannedStep",
    "Step",
    "StepError",
    "StepLineage",
    "StepRecord",
    "Store",
    "StoreEntry",
    "artifact_digest",
    "directory_digest",
    "file_digest",
    "format_lineage",
    "format_plan",
    "init_ray",
]
