"""Requests that arrive together, predicted together (Stateless Serving Function, 16).

Problem: under concurrency a server answers many one-row requests at once, and each pays
the fixed cost of a model call: ONNX Runtime's dispatch, and, on a machine whose caches
other processes keep evicting, the first walk of the model's trees and of the transform's
code (measured on the flights gradient boosting with the caches flushed: 49 us for one row
in ONNX Runtime, 82 us for eight).

Solution: :class:`RowCoalescer` gathers the online-path requests to one model version
that are ready in the same turn of the event loop and predicts their rows in one call,
then hands each request its own predictions and its own bad rows (numbered within the
request). It never waits for traffic: the call runs as soon as the requests already
ready have joined (``loop.call_soon``), so a lone request is predicted at once. It is
only used where a row's scores do not depend on the other rows of a call
(:attr:`~mlpatterns.serving.online.OnlinePredictor.row_independent`: tree ensembles),
so that an answer never depends on who else was asking: networks and linear models take
ONNX Runtime's one-row path for one row, which rounds differently from its batched one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from mlpatterns.serving.serving_contract import InputError, RowProblem

__all__ = ["RowCoalescer"]

Rows = Sequence[Mapping[str, Any]]
Answer = tuple[list[dict[str, Any]], list[RowProblem]]


class RowCoalescer:
    """Predict the rows of the requests ready in one event-loop turn with one ``predict_rows`` call.

    ``predict_rows(rows)`` gives the predictions of the good rows, in order, and the problems of
    the bad ones (:meth:`~mlpatterns.serving.online.OnlinePredictor.predict_rows`). Use from one
    event loop (an app's); each worker process has its own.
    """

    def __init__(self, predict_rows: Callable[[Rows], Answer]) -> None:
        self._predict_rows = predict_rows
        self._pending: list[tuple[Rows, asyncio.Future[Answer]]] = []
        self.calls = 0  # model calls made, and requests answered: how much was coalesced
        self.requests = 0

    async def predict(self, rows: Rows) -> Answer:
        """This request's predictions and bad rows, as ``predict_rows(rows)`` alone would give them."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._pending.append((rows, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self.calls += 1
        self.requests += len(pending)
        try:
            answers = self._answers([rows for rows, _ in pending])
        except InputError:  # one request's rows lack a field: each request on its own, its own error
            for rows, future in pending:
                self._settle(future, lambda rows=rows: self._predict_rows(rows))
            return
        except Exception as error:  # the model failed: every request waiting on it learns why
            for _, future in pending:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), answer in zip(pending, answers, strict=True):
            if not future.done():  # a request whose client went away was cancelled
                future.set_result(answer)

    def _answers(self, requests: list[Rows]) -> list[Answer]:
        if len(requests) == 1:
            return [self._predict_rows(requests[0])]
        outputs, problems = self._predict_rows([row for rows in requests for row in rows])
        bad = {p.row for p in problems}
        answers, start, taken = [], 0, 0
        for rows in requests:
            end = start + len(rows)
            good = sum(1 for i in range(start, end) if i not in bad)
            mine = [dataclasses.replace(p, row=p.row - start) for p in problems if start <= p.row < end]
            answers.append((outputs[taken:taken + good], mine))
            start, taken = end, taken + good
        return answers

    @staticmethod
    def _settle(future: asyncio.Future[Answer], call: Callable[[], Answer]) -> None:
        if future.done():
            return
        try:
            future.set_result(call())
        except Exception as error:
            future.set_exception(error)
