"""Step records of the Workflow Pipeline (pattern 25): what ran, on what, with what result.

A record is the JSON file ``steps/<key>.json`` of a store. It names the step, its key and
the parts of the key (code digests, parameters, input digests), the artifacts it wrote
(digest, kind, size, path in the store), the facts its function returned, its timings,
and the environment it ran in (Python, a few package versions, the git commit), which is
lineage, not part of the key.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["RECORD_FORMAT", "StepRecord", "environment"]

RECORD_FORMAT = "mlpatterns.pipeline.step/1"

DEFAULT_PACKAGES = ("mlpatterns", "numpy", "pandas", "scikit-learn")


@dataclass(frozen=True)
class StepRecord:
    """The record of one committed step (``steps/<key>.json``).

    Attributes
    ----------
    step, key : str
        The step's name and its cache key.
    code : dict
        ``{"digest", "function", "modules": {name: digest}}``.
    params : dict
        The parameters the function received.
    inputs : dict
        ``{argument: {"artifact", "digest", "kind", "size", "producer", "path"}}``;
        ``producer`` is the step that wrote it (``None`` for a source, whose ``path`` is the
        source's path, not in the store).
    outputs : dict
        ``{argument: {"artifact", "digest", "kind", "size", "path"}}``, ``path`` relative to
        the store root (``artifacts/<digest>/<artifact>``).
    facts : dict
        What the function returned.
    started, finished : str
        ISO-8601 UTC times with microseconds; ``duration_s`` their difference.
    environment : dict
        ``{"python", "platform", "packages": {name: version}, "git_commit"}``.
    """

    step: str
    key: str
    code: dict[str, Any]
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]
    facts: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    duration_s: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    format: str = RECORD_FORMAT

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepRecord:
        """Read a record written by :meth:`to_dict`; ``ValueError`` on another format."""
        if data.get("format") != RECORD_FORMAT:
            raise ValueError(f"not a pipeline step record (format {data.get('format')!r})")
        names = set(cls.__dataclass_fields__)
        return cls(**{name: value for name, value in data.items() if name in names})

    @property
    def start_time(self) -> datetime:
        """``started`` as an aware datetime."""
        return datetime.fromisoformat(self.started)

    @property
    def end_time(self) -> datetime:
        """``finished`` as an aware datetime."""
        return datetime.fromisoformat(self.finished)

    @property
    def size(self) -> int:
        """Total bytes of this step's output artifacts."""
        return sum(int(output["size"]) for output in self.outputs.values())


def package_versions(names: Iterable[str]) -> dict[str, str | None]:
    """Installed versions of the named distributions (``None`` when not installed)."""
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(cwd: str | None = None) -> str | None:
    """``git rev-parse HEAD`` in ``cwd``; ``None`` outside a git work tree or without git."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        completed = subprocess.run(
            [git, "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit if completed.returncode == 0 and commit else None


def environment(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """The lineage of a run: Python version, platform, package versions, git commit."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(packages),
        "git_commit": git_commit(),
    }
