"""The Workflow Pipeline (pattern 25): steps joined by artifact names into a DAG, run with caching.

Problem: one script or notebook that loads, splits, transforms, trains, evaluates and
exports redoes everything after any change, cannot resume after a crash, cannot run its
independent parts in parallel, and cannot say which data and code made a model.
Solution: declare steps with their input and output artifacts; the pipeline orders them
by those names, skips a step whose key (code, parameters, input contents) has a record,
commits each step atomically, and records lineage, so a rerun after an edit or a crash
redoes exactly the steps it must.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlpatterns.reproducibility.workflow_pipeline.digests import (
    artifact_digest,
    code_digests,
    combined_digest,
)
from mlpatterns.reproducibility.workflow_pipeline.engines import LocalEngine, RayEngine
from mlpatterns.reproducibility.workflow_pipeline.planning import PlannedStep, plan_step
from mlpatterns.reproducibility.workflow_pipeline.records import DEFAULT_PACKAGES
from mlpatterns.reproducibility.workflow_pipeline.scheduler import (
    PipelineRun,
    outputs_known,
    schedule,
)
from mlpatterns.reproducibility.workflow_pipeline.step import Step, check_name
from mlpatterns.reproducibility.workflow_pipeline.store import Store

__all__ = ["Pipeline", "PipelineRun"]

Progress = Callable[[str, str], None]


def open_store(store: Store | str | os.PathLike[str], create: bool = True) -> Store:
    return store if isinstance(store, Store) else Store(store, create=create)


class Pipeline:
    """Steps joined by the artifacts they read and write.

    Parameters
    ----------
    steps : sequence of Step
        In any order; they run in dependency order (declaration order between
        independent steps).
    sources : mapping of str to path, optional
        External input artifacts by name (a data file, a folder), hashed by content at
        each plan or run; not copied into the store.
    packages : sequence of str
        Distributions whose versions each record keeps as lineage (not part of keys).

    Raises
    ------
    ValueError
        Two steps with one name, an artifact with two producers (or a source also
        produced by a step), an input that nothing provides, or a cycle; each message
        names the steps and artifacts involved.
    """

    def __init__(
        self,
        steps: Sequence[Step],
        sources: Mapping[str, str | os.PathLike[str]] | None = None,
        *,
        packages: Sequence[str] = DEFAULT_PACKAGES,
    ) -> None:
        self.sources = {
            check_name(name, "source"): Path(path) for name, path in (sources or {}).items()
        }
        self.packages = tuple(packages)
        by_name: dict[str, Step] = {}
        self.producers: dict[str, str] = {}
        for step in steps:
            if not isinstance(step, Step):
                raise TypeError(f"pipeline steps must be Step objects, got {step!r}")
            if step.name in by_name:
                raise ValueError(f"two steps are named {step.name!r}")
            by_name[step.name] = step
            for artifact in step.outputs.values():
                if artifact in self.sources:
                    raise ValueError(
                        f"artifact {artifact!r} is a source and is produced by step {step.name!r}"
                    )
                if artifact in self.producers:
                    raise ValueError(
                        f"artifact {artifact!r} is produced by steps {self.producers[artifact]!r} "
                        f"and {step.name!r}"
                    )
                self.producers[artifact] = step.name
        self.dependencies: dict[str, set[str]] = {}
        for step in steps:
            for artifact in step.inputs.values():
                if artifact not in self.producers and artifact not in self.sources:
                    raise ValueError(
                        f"step {step.name!r} reads artifact {artifact!r}, which no step produces "
                        "and no source provides"
                    )
            self.dependencies[step.name] = {
                self.producers[a] for a in step.inputs.values() if a in self.producers
            }
        self.steps = tuple(by_name[name] for name in self.order(list(by_name)))

    def order(self, names: list[str]) -> list[str]:
        """Dependency order (stable); ``ValueError`` naming a cycle."""
        ordered: list[str] = []
        done: set[str] = set()
        remaining = list(names)
        while remaining:
            ready = [name for name in remaining if self.dependencies[name] <= done]
            if not ready:
                raise ValueError(f"steps form a cycle: {' -> '.join(self.cycle(remaining))}")
            ordered.append(ready[0])
            done.add(ready[0])
            remaining.remove(ready[0])
        return ordered

    def cycle(self, names: list[str]) -> list[str]:
        """One cycle among ``names`` (each has an unfinished dependency)."""
        path, current = [], names[0]
        while current not in path:
            path.append(current)
            current = sorted(self.dependencies[current] & set(names))[0]
        return [*path[path.index(current) :], current]

    def __repr__(self) -> str:
        return f"Pipeline([{', '.join(step.name for step in self.steps)}])"

    def upto(self, artifacts: Iterable[str]) -> Pipeline:
        """The smaller pipeline of the steps that ``artifacts`` need (their producers and all upstream).

        Run it to check an early result (the data's statistics) before the costly steps;
        running the whole pipeline next reuses its records.
        """
        wanted = list(artifacts)
        if unknown := sorted(a for a in wanted if a not in self.producers):
            raise ValueError(f"no step produces {unknown}; the artifacts are {sorted(self.producers)}")
        needed: set[str] = set()
        pending = [self.producers[a] for a in wanted]
        while pending:
            name = pending.pop()
            if name not in needed:
                needed.add(name)
                pending.extend(self.dependencies[name])
        return Pipeline([s for s in self.steps if s.name in needed], self.sources, packages=self.packages)

    # shared by plan and run ----------------------------------------------------------

    def source_entries(self) -> dict[str, dict[str, Any]]:
        """Digest, kind, size and path of every source (hashing their bytes)."""
        entries = {}
        for name, path in self.sources.items():
            if not path.exists():
                raise FileNotFoundError(f"pipeline source {name!r} does not exist: {path}")
            digest, kind, size = artifact_digest(path)
            entries[name] = {
                "digest": digest,
                "kind": kind,
                "size": size,
                "producer": None,
                "path": str(path.absolute()),
            }
        return entries

    def code(self) -> dict[str, dict[str, Any]]:
        """Each step's code digests (its function's source, its ``code`` modules)."""
        codes = {}
        for step in self.steps:
            try:
                code = code_digests(step.function, step.code)
            except ValueError as error:
                raise ValueError(f"step {step.name!r}: {error}") from error
            function = step.function
            qualified = (
                f"{getattr(function, '__module__', '?')}:{getattr(function, '__qualname__', '?')}"
            )
            codes[step.name] = {"digest": combined_digest(code), "name": qualified, **code}
        return codes

    def forced(self, force: bool | str | Iterable[str]) -> set[str]:
        names = {step.name for step in self.steps}
        if force is True:
            return names
        if not force:
            return set()
        chosen = {force} if isinstance(force, str) else set(force)
        if unknown := sorted(chosen - names):
            raise ValueError(f"force names unknown steps {unknown}; the steps are {sorted(names)}")
        return chosen

    # plan and run --------------------------------------------------------------------

    def plan(
        self,
        store: Store | str | os.PathLike[str],
        force: bool | Iterable[str] = (),
        codes: Mapping[str, dict[str, Any]] | None = None,
    ) -> list[PlannedStep]:
        """What :meth:`run` would do, in execution order, without running or writing anything.

        A step whose input comes from a step that reruns has no key yet (``None``) and
        the reason ``"upstream step <name> reruns"``. ``codes``: see :meth:`run`.
        """
        store, forced = open_store(store, create=False), self.forced(force)
        known, codes = self.source_entries(), codes or self.code()
        plan = []
        for step in self.steps:
            planned = plan_step(
                step, codes[step.name], store, known, self.producers, step.name in forced
            )
            if planned.record is not None:
                known.update(outputs_known(planned.record))
            plan.append(planned)
        return plan

    def run(
        self,
        store: Store | str | os.PathLike[str],
        engine: str = "local",
        force: bool | Iterable[str] = (),
        progress: Progress | None = None,
        log: Callable[[str], None] | None = None,
        num_cpus: int | None = None,
        codes: Mapping[str, dict[str, Any]] | None = None,
    ) -> PipelineRun:
        """Run the steps whose keys have no usable record; reuse the others.

        Parameters
        ----------
        store : Store or path
        engine : {"local", "ray"}
            ``"local"``: one step at a time in this process. ``"ray"``: each ready step
            as a Ray task, independent steps in parallel (needs ``mlpatterns[pipeline]``).
        force : bool or iterable of str
            Steps to rerun even when cached (``True``: all). Steps reading their outputs
            rerun only if the outputs' bytes change.
        progress : callable, optional
            ``progress(step_name, status)`` with status ``"start"``, ``"done"``,
            ``"cached"`` or ``"failed"``.
        log : callable, optional
            Receives one line per step (why it runs, how long it took); nothing is
            printed otherwise.
        num_cpus : int, optional
            CPUs of the local Ray instance the ``"ray"`` engine starts (default: all).
        codes : mapping, optional
            The steps' code digests from :meth:`code` (a superset is fine), for a caller
            that plans and runs the same steps in one go: the source files are read once.
            Default: read now.

        Raises
        ------
        StepError
            When a step fails; steps already running finish and are committed first.
        """
        store, forced = open_store(store), self.forced(force)
        if engine not in ("local", "ray"):
            raise ValueError(f"engine must be 'local' or 'ray', not {engine!r}")
        store.clean_temp()
        runner = LocalEngine(store) if engine == "local" else RayEngine(store, num_cpus)
        try:
            return schedule(self, store, runner, forced, progress, log, codes)
        finally:
            runner.close()
