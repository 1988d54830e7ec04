"""A drain before the graceful shutdown of the HTTP Stateless Serving Function (16).

Problem: on SIGTERM uvicorn stops listening, finishes the requests it has started reading
and closes every other keep-alive connection at once, even one holding a request the
client wrote a moment before the signal but the event loop had not read yet (it was busy
predicting). The client gets a reset and no answer: under load, requests sent before the
signal were lost (tests/serving/http/test_http_reliability.py, docs/patterns/serving_reliability.md).

Solution: :class:`Drain` puts a grace period between the signal and uvicorn's shutdown,
as a load balancer's connection draining does. On the first SIGTERM (or SIGINT) the app
stops being ready (``/v2/health/ready`` answers 503, so a balancer takes it out), answers
every request with ``Connection: close`` (each client's next request opens a new
connection), and keeps serving for ``seconds``; then uvicorn's own handler runs and its
graceful shutdown proceeds as before. A request written before the signal is read and
answered within the grace, as long as the requests waiting then fit in it (raise
``seconds`` for slow models); a second signal ends the grace at once. The grace is
installed in the app's lifespan, in the process that serves it (each worker of
``--workers N``), and only in the main thread, where signals arrive.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_DRAIN_SECONDS", "Drain", "DrainingConnections"]

DEFAULT_DRAIN_SECONDS = 1.0  # between SIGTERM and uvicorn's shutdown
SIGNALS = (signal.SIGTERM, signal.SIGINT)
_logger = logging.getLogger("mlpatterns.serving.http.drain")


class Drain:
    """The grace period of one app: ``seconds`` after the first signal before uvicorn's handler runs.

    ``on_start`` is called (in the event loop) when the grace begins. :attr:`draining`
    says whether it has; :meth:`install` chains the signal handlers (uvicorn's, installed
    before the app's lifespan starts, run after the grace) and returns what restores them.
    """

    def __init__(self, seconds: float = DEFAULT_DRAIN_SECONDS, on_start: Callable[[], None] | None = None) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
            raise ValueError(f"drain: expected seconds >= 0 (0: no grace), got {seconds!r}")
        self.seconds, self.on_start = float(seconds), on_start
        self.draining = False
        self._ending: asyncio.TimerHandle | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Chain the handlers of SIGTERM and SIGINT (main thread only; elsewhere nothing is changed).

        Each install starts undrained (an app whose lifespan runs again serves again)."""
        self.draining, self._ending = False, None
        if self.seconds == 0 or threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}

        def handler(sig: int, frame: Any) -> None:
            following = previous[sig]
            if self.draining:  # a second signal: no more grace
                loop.call_soon_threadsafe(self._end_now, following, sig)
                return
            self.draining = True
            loop.call_soon_threadsafe(self._start, following, sig)

        for sig in SIGNALS:
            signal.signal(sig, handler)

        def restore() -> None:
            for sig, handler_before in previous.items():
                if signal.getsignal(sig) is handler:
                    signal.signal(sig, handler_before)

        return restore

    def _start(self, following: Any, sig: int) -> None:
        _logger.info("signal %s: draining for %.1f s before shutting down", signal.Signals(sig).name, self.seconds)
        if self.on_start is not None:
            self.on_start()
        self._ending = asyncio.get_running_loop().call_later(self.seconds, _call, following, sig)

    def _end_now(self, following: Any, sig: int) -> None:
        if self._ending is not None:
            self._ending.cancel()
        _call(following, sig)


def _call(handler: Any, sig: int) -> None:
    """Run the handler that was there before (uvicorn's), or do what a default handler would."""
    if callable(handler):
        handler(sig, None)
    elif handler == signal.SIG_DFL:
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)


class DrainingConnections:
    """ASGI middleware: while ``drain`` drains, every answer says ``Connection: close``."""

    def __init__(self, app: Any, drain: Drain) -> None:
        self.app, self.drain = app, drain

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and self.drain.draining:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await self.app(scope, receive, closing)
