"""``mlpatterns run``: the lifecycle of one spec as a Workflow Pipeline (25).

load data -> validate its schema and statistics -> repeatable split by key hash or time
(22) -> fit the transform on the train split only (21, using 1-3) -> the heuristic
benchmark (28) -> [tune one model (15)] -> train each model -> evaluate on the test split
-> export the bundle (the stateless serving function, 16) -> verify that the reloaded
bundle computes the training-time features bit for bit and the same predictions ->
publish into the output folder -> register (Model Versioning, 27) when the spec says so.

Each step is a function from input artifacts to output artifacts
(:mod:`mlpatterns.lifecycle.steps`), cached by the digest of its code, its spec sections
and its inputs' bytes (:mod:`mlpatterns.reproducibility.workflow_pipeline`), so a run
resumes where it stopped and every bundle traces back to its data.
"""

from mlpatterns.lifecycle.result import RunResult
from mlpatterns.lifecycle.run import open_cache, plan_spec, run_spec

__all__ = ["RunResult", "open_cache", "plan_spec", "run_spec"]
