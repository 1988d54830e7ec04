"""Stateless Serving Function (16) with inputs the server completes: stored features (26) and windows (24).

Problem: some of a model's inputs are not the client's to send. Stored features come from
the feature store, window features from the history of events; asking every client to
compute them moves that computation out of the one place that keeps it equal to training.

Solution: :class:`CompletedInputsServing` wraps a bundle with *completers*, each of which
adds inputs to the request's rows before the bundle sees them:
:class:`~mlpatterns.serving.feature_store_serving.StoredFeatures` (read by key from the
online store) and :class:`~mlpatterns.serving.windowed_serving.StreamedWindows` (the
stateful stream processor over the requests served). The wrapper's signature is the
bundle's without the completed inputs and with what the completers need from the request
(join keys, an event time, the value columns of the windows); it answers rows (the online
path, :class:`~mlpatterns.serving.online.OnlinePredictor`) and frames (the batch path,
:class:`~mlpatterns.serving.stateless_serving_function.ServingFunction`) as a bundle does,
so :mod:`mlpatterns.serving.http` serves it unchanged (off its event loop: completers read
stores). A request that sends a completed input is refused as an unknown field: the server
is its one source.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from mlpatterns.bundles.format import Bundle
from mlpatterns.serving.online import InputError, OnlinePathUnsupported, OnlinePredictor, RowProblem

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CompletedInputsServing", "Completer", "completed_serving"]


class Completer(Protocol):
    """Adds the columns :attr:`supplied` to rows that hold the input items :attr:`required`."""

    supplied: list[str]
    required: list[dict[str, Any]]
    row_independent: bool  # whether a row's completion is the same whatever rows come before it

    def complete(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


def completed_serving(bundle: Bundle, *, online_store: str | None = None, window_state: str | None = None) -> Any:
    """``bundle`` itself, or wrapped in :class:`CompletedInputsServing` when its manifest has stored features
    (``feature_store``: read from ``online_store``, default the repository's) or ``windows`` (with their state
    kept in ``window_state``, an online store URL, when given)."""
    completers: list[Completer] = []
    try:
        if "windows" in bundle.manifest:  # first, as in training: windows read the request's own columns
            from mlpatterns.serving.windowed_serving import StreamedWindows

            completers.append(StreamedWindows(bundle, state=window_state))
        if "feature_store" in bundle.manifest:
            from mlpatterns.serving.feature_store_serving import StoredFeatures

            completers.append(StoredFeatures(bundle, online_store=online_store))
    except BaseException:
        for completer in completers:
            completer.close()
        raise
    if not completers:
        return bundle
    try:
        return CompletedInputsServing(bundle, completers)
    except BaseException:
        for completer in completers:
            completer.close()
        raise


class CompletedInputsServing:
    """A bundle whose completers fill some of its inputs (see the module docstring); :meth:`close` closes them."""

    def __init__(self, bundle: Bundle, completers: Sequence[Completer]) -> None:
        self.bundle, self.completers = bundle, list(completers)
        try:
            self._online: OnlinePredictor | None = OnlinePredictor(bundle)
        except OnlinePathUnsupported:
            self._online = None
        self._batch: Any = None
        self._lock = threading.Lock()
        inner = self._online.signature if self._online is not None else self._serving().signature
        self.name = str(bundle.manifest["name"])
        self.task = bundle.manifest["task"]
        # rows of several requests share one call only when no completer depends on the order they come in
        self.row_independent = bool(getattr(self._online, "row_independent", False)) and all(
            c.row_independent for c in self.completers)
        self.does_io = True  # completers read stores or wait for a lock: the server calls it off its event loop
        self.stateful = not all(c.row_independent for c in self.completers)  # a stream in this process
        supplied = {c for completer in self.completers for c in completer.supplied}
        inputs = [item for item in inner["inputs"] if item["name"] not in supplied]
        given = {item["name"] for item in inputs} | set(inner.get("keys", []))
        for completer in self.completers:
            for item in completer.required:
                if item["name"] not in given and item["name"] not in supplied:
                    inputs.append(item)
                    given.add(item["name"])
        self.signature = {**inner, "inputs": inputs, "completed_inputs": sorted(supplied)}

    @property
    def input_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["inputs"]]

    @property
    def key_columns(self) -> list[str]:
        return list(self.signature.get("keys", []))

    @property
    def output_columns(self) -> list[str]:
        return [item["name"] for item in self.signature["outputs"]]

    @property
    def null_values(self) -> list[str] | None:
        return self.signature.get("null_values")

    def _serving(self) -> Any:
        if self._batch is None:
            with self._lock:
                if self._batch is None:
                    from mlpatterns.serving.stateless_serving_function import ServingFunction

                    self._batch = ServingFunction(self.bundle)
        return self._batch

    def complete_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row with the completed inputs added (a row missing a field the completers need: InputError)."""
        fields = [*self.input_columns, *self.key_columns]
        for i, row in enumerate(rows):
            missing = [f for f in fields if f not in row]
            if missing:
                raise InputError(f"row {i}: missing field(s) {missing}; the model '{self.name}' expects inputs "
                                 f"{self.input_columns} and keys {self.key_columns}")
        if self.stateful:  # a bad input must not leave its row's event in a stream: check the rest first
            self._check_given_inputs(rows)
        completed = [dict(row) for row in rows]
        for completer in self.completers:
            completed = completer.complete(completed)
        return completed

    def _check_given_inputs(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """An InputError naming each bad value among the inputs the request gives (before any completer runs)."""
        supplied = set(self.signature["completed_inputs"])
        probe = [{**row, **dict.fromkeys(supplied)} for row in rows]
        if self._online is not None:
            _, problems = self._online.conform_rows(probe)
        else:
            import pandas as pd

            _, problems = self._serving().conform(pd.DataFrame(probe))
        problems = [p for p in problems if p.column not in supplied]
        if problems:
            named = "; ".join(f"row {p.row}, field '{p.column}': {p.problem}" for p in problems[:10])
            raise InputError(f"{len({p.row for p in problems})} bad row(s): {named} (nothing of this request was "
                             "served: the window features' stream holds none of its rows)")

    # -- the online path: rows of JSON values ------------------------------------------------------
    def predict_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], list[RowProblem]]:
        """The bundle's predictions of the completed rows, as :meth:`OnlinePredictor.predict_rows` gives them."""
        completed = self.complete_rows(rows)
        if self._online is not None:
            return self._online.predict_rows(completed)
        import pandas as pd

        result, problems = self._serving().predict_good_rows(pd.DataFrame(completed))
        return result.to_dict("records"), problems

    # -- the batch path: DataFrames ------------------------------------------------------------------
    def conform(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[RowProblem]]:
        """The frame's rows completed, then conformed by the bundle's ServingFunction."""
        import pandas as pd

        completed = pd.DataFrame(self.complete_rows(frame.to_dict("records")), index=frame.index)
        return self._serving().conform(completed)

    def predict_conformed(self, raw: pd.DataFrame, conformed: pd.DataFrame, **options: Any) -> pd.DataFrame:
        return self._serving().predict_conformed(raw, conformed, **options)

    def close(self) -> None:
        for completer in self.completers:
            completer.close()

    def __repr__(self) -> str:
        return f"CompletedInputsServing({self.name!r}, completed {self.signature['completed_inputs']})"

