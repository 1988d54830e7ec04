"""The predictions of the HTTP Stateless Serving Function (16), answered before FastAPI routes.

Problem: a one-row prediction on the online path costs about 0.1 ms of CPU, and FastAPI's
dispatch around it (its scope bookkeeping, the nested routers of both protocols, the
exception middleware and the per-route request handling) costs about as much again; at
concurrency 16 on two workers that halves the requests a server answers against a bare
echo endpoint.

Solution: :class:`DirectRoutes`, ASGI middleware that sits inside the server's own
middleware (metrics, access log, drain, bearer auth: they see every request as before) and
answers the POST routes it is given (``:predict`` and ``infer`` of both protocols) by
calling their endpoints itself, with :class:`~mlpatterns.serving.http._common.RequestError`
answered as the app's handler answers it (``{"error": ...}`` with its status). Every other
request, and a route's other methods (405), go on to FastAPI unchanged. The routes stay
registered in the app's routers, where they answer the same when this middleware is absent
(``tests/serving/http/test_http_direct_routes.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Match, Route

from mlpatterns.serving.http._common import RequestError

__all__ = ["DirectRoutes"]

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class DirectRoutes:
    """Answer POST requests to ``routes`` (Starlette routes with request-to-response endpoints) directly."""

    def __init__(self, app: ASGIApp, routes: Sequence[Route]) -> None:
        self.app = app
        self.routes = [r for r in routes if r.methods is not None and "POST" in r.methods]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    try:
                        response = await route.endpoint(Request(scope, receive))
                    except RequestError as error:
                        response = JSONResponse({"error": error.message}, status_code=error.status)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
