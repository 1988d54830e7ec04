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
refused (400) and then nothing of its request is held: a stream cannot change the windows
it already answered. With
``state`` (an online store URL) the events are kept there per event (write-through), so a
restarted server continues with the same windows. One process holds the state: serve a
bundle with windows from one worker. :func:`with_window_features` is the batch
counterpart (``mlpatterns predict``): the windows over the rows of the file scored.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from mlpatterns.bundles.format import Bundle, BundleError
from mlpatterns.reproducibility.feature_store.online_store import as_datetime, to_micros
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


class _SharedStream:
    """One stream processor per (state, declaration) in a process, shared by every served version using it."""

    def __init__(self, stream: StreamWindows) -> None:
        self.stream, self.lock, self.users = stream, threading.Lock(), 0


_STREAMS: dict[tuple[Any, ...], _SharedStream] = {}
_STREAMS_LOCK = threading.Lock()


def _declaration_digest(features: Sequence[WindowFeature]) -> str:
    text = json.dumps([[f.name, f.column, f.aggregate, f.width_us, f.key, f.time] for f in features])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class StreamedWindows:
    """Completes each row with its window features over the rows served before it (see the module docstring).

    Every served version of a model with the same declaration (a reload, a traffic split, two names for one
    bundle) shares one stream processor in the process, so each event is held once and every version sees
    the whole stream; with ``state``, the processor's state is named after the model and the declaration.
    """

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
        model = str(bundle.manifest["name"]).rsplit("/", 1)[0]  # the spec's name: every version of its models
        name = "serve_" + re.sub(r"\W", "_", model) + "_" + _declaration_digest(features)
        self._slot = (state, name)
        with _STREAMS_LOCK:
            shared = _STREAMS.get(self._slot)
            if shared is None:
                try:
                    kept = {"state": state, "name": name, "write_through": True} if state is not None else {}
                    shared = _SharedStream(StreamWindows(features, on_late="raise", **kept))
                except (TypeError, ValueError, RuntimeError) as error:
                    raise BundleError(f"{bundle.path}: the window state cannot be opened: {error}") from None
                _STREAMS[self._slot] = shared
            shared.users += 1
        self._shared: _SharedStream | None = shared

    @property
    def stream(self) -> StreamWindows:
        assert self._shared is not None, "closed"
        return self._shared.stream

    def _event(self, row: Mapping[str, Any], index: int) -> tuple[dict[str, Any], int]:
        event = dict(row)
        try:
            value = as_datetime(row[self.time], f"row {index}: {self.time}")
        except ValueError as error:
            raise InputError(str(error)) from None
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
        return event, to_micros(value, f"row {index}: {self.time}")

    def complete(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Each row as an event, in order: its features over the earlier events, then the event held.

        Every row is checked first (its time, key and values, and that it is not older than its key's
        latest time, counting the rows before it in the request): a bad request holds nothing.
        """
        events = [self._event(row, i) for i, row in enumerate(rows)]
        shared = self._shared
        if shared is None:
            raise InputError("the window features' stream is closed")
        completed = []
        with shared.lock:
            latest: dict[Any, int] = {}
            for i, (event, micros) in enumerate(events):
                key = event[self.key] if self.key is not None else None
                oldest = shared.stream.oldest_accepted_us(key)
                known = max(x for x in (oldest, latest.get(key)) if x is not None) if (
                    oldest is not None or key in latest) else None
                if known is not None and micros < known:
                    raise InputError(f"row {i}: {self.time}: {rows[i][self.time]!r} is older than the latest time "
                                     f"served for {self.key or 'the stream'} {key!r}; rows must reach the server "
                                     "in time order per key (nothing of this request was served)")
                latest[key] = max(micros, latest.get(key, micros))
            for row, (event, _) in zip(rows, events, strict=True):
                try:
                    scored = shared.stream.process(event)
                except LateEventError as error:  # checked above: only a bug gets here
                    raise InputError(str(error)) from None
                mine = next(s for s in scored if s.event is event)
                completed.append({**row, **mine.features})
        return completed

    def close(self) -> None:
        """Release this version's use of the shared stream; the last user closes it (a checkpoint with state)."""
        shared, self._shared = self._shared, None
        if shared is None:
            return
        with _STREAMS_LOCK:
            shared.users -= 1
            if shared.users > 0:
                return
            _STREAMS.pop(self._slot, None)
        with shared.lock:
            shared.stream.close()

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
