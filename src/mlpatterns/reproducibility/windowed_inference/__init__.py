"""Windowed Inference (24): one declaration of a window feature, computed in batch and on a stream.

Problem: a feature that needs state over time (the mean departure delay at this airport
over the previous hour) is computed with SQL over history when the model is trained and
with hand-written code over live events when it serves; the two drift apart and the model
sees skewed features. Solution: declare each window feature once (:class:`WindowFeature`)
and compute it from that declaration both ways, with the same exact semantics:
:func:`window_features` in batch (DuckDB window functions, for training and backfill) and
:class:`StreamWindows` incrementally (a stateful per-key processor for the server).

Semantics (both ways):

* **Frame.** An event at time ``t`` gets the aggregate of the values of the events of its
  key with time in ``[t - width, t)``: the start is included, the end is not, so events
  at the same timestamp (ties, the event itself included) are *never* in its window. A
  stream cannot know the other events of the same instant when it scores one, and DuckDB's
  ``RANGE ... CURRENT ROW`` would include them; the batch SQL therefore ends its frame at
  ``1 PRECEDING`` on integer microseconds. Times are naive timestamps truncated to whole
  microseconds (DuckDB's resolution); a time zone-aware time is converted to UTC first.
* **Aggregates.** ``count`` (non-missing values), ``sum`` (0.0 over an empty window),
  ``mean``, ``max``, ``min`` (missing over an empty window) and ``std``, the *sample*
  standard deviation (``ddof=1``; missing below two values). Missing values (None/NaN) in
  the value column take no part in any aggregate but their events still get features.
* **Lateness.** :class:`StreamWindows` keeps, per key, the largest time seen ``M``. An
  event with time ``t < M - allowed_lateness`` is too late: it is rejected (counted in
  ``rejected``, or raised as :class:`LateEventError`) and changes no state. An event
  within the lateness is inserted in time order. An event's features are *emitted* once
  its key's watermark ``M - allowed_lateness`` reaches its time; from then on no event of
  ``[t - width, t)`` can still be accepted, so the emitted features are final and equal
  the batch features of the accepted events, whatever their delivery order. With
  ``allowed_lateness=0`` every accepted event is emitted as it arrives.

Sliding windows with a period (:func:`sliding_window_features`,
:class:`StreamSlidingWindows`, module :mod:`.sliding`), from the same declarations:

* **Grid.** Window ends lie on ``e = origin + n * period`` (``origin``: the Unix epoch,
  1970-01-01 00:00 UTC, unless given), and each feature's window at ``e`` is
  ``[e - width, e)``: the same half-open frame, an event exactly at ``e`` belongs to the
  next windows. ``width`` need not be a multiple of ``period`` (``"25min"`` every
  ``"10min"`` is fine). The features of one call share one key and one time column.
* **Rows.** One row per key and end ``e`` whose *widest* window holds at least one event
  of the key (missing values included): windows with no event are not emitted, by batch
  and stream alike, so a narrower feature may report an empty window (count 0, NaN mean).
* **Emission.** The stream emits the window ending at ``e`` once its key's watermark
  ``M - allowed_lateness`` reaches ``e``; no event still accepted can fall before ``e``,
  so every emitted window is final and equals the batch row. Late events are rejected as
  above. Each window is emitted once, in end order per key.

State that outlives the process: both stream processors take ``state=`` (an online store
URL, ``sqlite:///PATH.db`` or ``redis://...``) and ``name=``, keep their per-key state there
(at each :meth:`~._common.KeyedStream.checkpoint`, or per event with ``write_through=True``)
and, built again on the same store with the same declaration, continue with exactly the
values of an uninterrupted run; a stored state of another declaration is refused, naming
what differs. The restart contract (which events the source must replay, late events across
a restart) is in the docstring of ``KeyedStream`` (module ``_common``).

Apache Beam: :mod:`.beam` (imported on its own, Beam kept out of the project's environment)
builds the sliding windows of a declaration as a Beam pipeline with the same results.

Not yet here: session windows.
"""

from ._common import AGGREGATES, LateEventError, WindowFeature
from .per_event import Scored, StreamWindows, window_features, window_features_sql
from .sliding import (
    EPOCH,
    StreamSlidingWindows,
    Window,
    sliding_window_features,
    sliding_window_features_sql,
)

__all__ = [
    "AGGREGATES",
    "EPOCH",
    "LateEventError",
    "Scored",
    "StreamSlidingWindows",
    "StreamWindows",
    "Window",
    "WindowFeature",
    "sliding_window_features",
    "sliding_window_features_sql",
    "window_features",
    "window_features_sql",
]
