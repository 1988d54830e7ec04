"""Windowed Inference (24) in serving: a bundle's window features computed over the requests it answers.

Problem: a model trained with window features (``data.windows``: the mean delay at the
origin over the previous hour) needs them when it serves, from the events before each
request; computed by hand in the server they drift from the SQL of training.

Solution: :class:`StreamedWindows`, a completer of
:class:`~mlpatterns.serving.completed_inputs.CompletedInputsServing`, runs the bundle's
declaration through the stateful stream processor
(:class:`~mlpatterns.reproducibility.windowed_inference.StreamWindows`, no allowed
lateness): each request row is an event (its key, time and value columns); it gets the
aggregates over ``[t - width, t)`` of the events served before it, then joins them. Served
in time order per key, the features equal :func:`~mlpatterns.reproducibility.windowed_inference.window_features`
over the same events, as in training. A row older than its key's latest served time is
refused (400): a stream cannot change the windows it already answered. With
``state`` (an online store URL) the events are kept there per event (write-through), so a
restarted server continues with the same windows. One process holds the state: serve a
bundle with windows from one worker. :func:`with_window_features` is the batch
counterpart (``mlpatterns predict``): the windows over the rows of the file scored.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mlpatterns.bundles.format import Bundle, BundleError
from mlpatterns.reproducibility.windowed_inference import (
    LateEventError,
    StreamWindows,
    WindowFeature,
)
from mlpatterns.serving.online import InputError

__all__ = ["StreamedWindows", "window_declarations", "with_window_features"]


def window_declarations(bundle: Bundle) -> list[WindowFeature] | None:
    """The window features a bundle was trained with (its manifest's ``windows``), or None."""
    section = bundle.manifest.get("windows")
    if section is None:
        return None
    try:
        return [WindowFeature(name, body["column"], body["aggregate"], body["width"], key=section.get("key"),
                              time=section["time"]) for name, body in section["features"].items()]
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise BundleError(f"{bundle.path}: the manifest's windows cannot be read ({error})") from None


class StreamedWindows:
    """Completes each row with its window features over the rows served before it (see the module docstring)."""

    def __init__(self, bundle: Bundle, *, state: str | None = None) -> None:
        features = window_declarations(bundle)
        if features is None:
            raise BundleError(f"{bundle.path}: the bundle was not trained with window features (no windows)")
        self.features = features
        first = features[0]
        self.key, self.time = first.key, first.time
        self.columns = sorted({f.column for f in features})
        self.supplied = [f.name for f in features]
        self.row_independent = False  # a row's windows are the rows served before it: one request at a time
        self.required = [*([{"name": self.key, "type": "text"}] if self.key is not None else []),
                         {"name": self.time, "type": "date"},
                         *({"name": c, "type": "number"} for c in self.columns)]
        name = "serve_" + re.sub(r"\W", "_", str(bundle.manifest["name"]))
        try:
            kept = {"state": state, "name": name, "write_through": True} if state is not None else {}
            self.stream = StreamWindows(features, on_late="raise", **kept)
        except (TypeError, ValueError, RuntimeError) as error:
            raise BundleError(f"{bundle.path}: the window state cannot be opened: {error}") from None
        self._lock = threading.Lock()  # one processor: requests take their turn

    def _event(self, row: Mapping[str, Any], index: int) -> dict[str, Any]:
        event = dict(row)
        value = row[self.time]
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise InputError(f"row {index}: {self.time}: expected an ISO 8601 time such as "
                                 f"'2013-06-14T08:00:00Z', got {row[self.time]!r}") from None
        if value is None or not isinstance(value, (dt.datetime, dt.date)) and not hasattr(value, "to_pydatetime"):
            raise InputError(f"row {index}: {self.time}: expected a time, got {row[self.time]!r}")
        event[self.time] = value
        if self.key is not None and row[self.key] is None:
            raise InputError(f"row {index}: {self.key}: the window key is null; every row needs one")
        for column in self.columns:
            item = row[column]
            if item is None or isinstance(item, (int, float)) and not isinstance(item, bool):
                continue
            try:
                event[column] = float(item)
            except (TypeError, ValueError):
                raise InputError(f"row {index}: {column}: expected a number (or null), got {item!r}") from None
        return event

    def complete(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row as an event, in order: its features over the earlier events, then the event held."""
        events = [self._event(row, i) for i, row in enumerate(rows)]  # every row checked before any is held
        completed = []
        with self._lock:
            for i, (row, event) in enumerate(zip(rows, events, strict=True)):
                try:
                    scored = self.stream.process(event)
                except LateEventError as error:
                    raise InputError(f"row {i}: {self.time}: {error}; rows must reach the server in time order "
                                     f"per {self.key or 'stream'} (the rows before it were served)") from None
                mine = next(s for s in scored if s.event is event)
                completed.append({**row, **mine.features})
        return completed

    def close(self) -> None:
        with self._lock:
            self.stream.close()

    def __repr__(self) -> str:
        return f"StreamedWindows({self.supplied}, key {self.key!r}, time {self.time!r})"


def with_window_features(bundle: Bundle, frame: Any) -> Any:
    """Batch prediction's input: ``frame`` with the bundle's window features over its own rows (DuckDB, as in
    training); ``frame`` itself without any."""
    from mlpatterns.reproducibility.windowed_inference import window_features

    features = window_declarations(bundle)
    if features is None:
        return frame
    clash = [f.name for f in features if f.name in frame.columns]
    if clash:
        raise InputError(f"the input already has the column(s) {clash} that the window features compute")
    try:
        return frame.join(window_features(frame, features))
    except (TypeError, ValueError) as error:
        raise InputError(str(error)) from None
