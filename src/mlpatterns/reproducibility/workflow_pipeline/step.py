"""A Workflow Pipeline (pattern 25) step: a named function from input artifacts to output artifacts.

A notebook cell reads whatever the previous cells left in memory; a step declares what it
reads and writes, so that it can be cached, resumed, run elsewhere and traced. Its
function is called as ``function(inputs, outputs, params)``:

- ``inputs``: ``{argument: Path}``, the committed artifact of each declared input (a file
  or a directory, read-only by convention);
- ``outputs``: ``{argument: Path}``, a fresh path per declared output that does not exist
  yet; the function writes a file or creates a directory there;
- ``params``: a copy of the step's JSON-able parameters.

It returns ``None`` or a small JSON-able dict of *facts* (metrics, row counts, messages)
stored in the step's record and returned by the run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlpatterns.reproducibility.workflow_pipeline.digests import canonical_json

__all__ = ["Step", "check_name"]

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=@-]{0,127}")


def check_name(name: Any, what: str) -> str:
    """Return ``name`` if it is a valid step, artifact or argument name, else raise ``ValueError``.

    Names become file names in the store: letters, digits and ``_ . + = @ -``, not starting
    with a dot or a dash, at most 128 characters.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a valid name: use letters, digits and _ . + = @ - "
            "(not first: . + = @ -), at most 128 characters"
        )
    return name


@dataclass(frozen=True)
class Step:
    """One step of a :class:`~mlpatterns.reproducibility.workflow_pipeline.Pipeline`.

    Parameters
    ----------
    name : str
        Unique within the pipeline; names the step in records, plans and ``force``.
    function : callable
        ``function(inputs: dict[str, Path], outputs: dict[str, Path], params: dict)``
        returning ``None`` or a JSON-able dict of facts. Its source text is part of the
        step's key, so it must be defined in a file (a module, a script, a doctest).
    inputs : mapping of str to str
        ``{argument: artifact name}``: the artifacts this step reads, each produced by
        another step or given as a pipeline source.
    outputs : sequence of str, or mapping of str to str
        The artifacts this step writes: a list of artifact names (each also the argument
        name), or ``{argument: artifact name}`` so one function can serve several steps
        (``{"model": "model.gbm"}``). An artifact name with a suffix (``model.onnx``)
        keeps it in the output's path.
    params : mapping
        JSON-able parameters, part of the key as canonical JSON (``1`` and ``1.0`` differ).
        Anything else the function depends on (a seed, a threshold) belongs here.
    code : sequence of str
        Dotted names of modules whose source files count in the key besides the
        function's own source (a package counts all its ``.py`` files). List the modules
        of helpers the function calls, so that editing them reruns the step.
    runtime : mapping or None
        Options that cannot change the step's outputs, only how it runs (a progress
        display, a logger, where to keep checkpoints of an interrupted run). Not part of
        the key. When given (even empty), the function is called with a fourth argument,
        ``function(inputs, outputs, params, runtime)``. On Ray it must pickle.

    Notes
    -----
    What is *not* in the key: globals, closures and default values the function reads,
    library versions (recorded as lineage only). Put them into ``params`` or ``code``.
    """

    name: str
    function: Callable[..., Mapping[str, Any] | None]
    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Sequence[str] | Mapping[str, str] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    code: Sequence[str] = ()
    runtime: Mapping[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_name(self.name, "step name")
        if not callable(self.function):
            raise TypeError(f"step {self.name!r}: function must be callable")
        inputs = dict(self.inputs)
        if isinstance(self.outputs, str):
            raise TypeError(f"step {self.name!r}: outputs must be a list of names, not a string")
        if isinstance(self.outputs, Mapping):
            outputs = dict(self.outputs)
        else:
            outputs = {name: name for name in self.outputs}
            if len(outputs) != len(self.outputs):
                raise ValueError(f"step {self.name!r} lists an output twice")
        for argument, artifact in [*inputs.items(), *outputs.items()]:
            check_name(argument, f"step {self.name!r}: argument")
            check_name(artifact, f"step {self.name!r}: artifact")
        if len(set(outputs.values())) != len(outputs):
            raise ValueError(f"step {self.name!r} writes one artifact under two arguments")
        if read_and_written := set(inputs.values()) & set(outputs.values()):
            raise ValueError(
                f"step {self.name!r} reads and writes {sorted(read_and_written)}: artifacts "
                "are immutable, write a new one"
            )
        try:
            canonical_json(dict(self.params))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"step {self.name!r}: params must be JSON-able (str, int, float, bool, None, "
                f"lists, dicts with str keys): {error}"
            ) from error
        if isinstance(self.code, str):
            raise TypeError(f"step {self.name!r}: code must be a list of module names")
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "code", tuple(self.code))
