"""A lean HTTP/1.1 load generator for the serving benchmarks: keep-alive connections on raw
asyncio streams, one request in flight per connection, every answer read and checked.

Why not httpx: the client shares the machine's two cores with the servers it measures, and
httpx's per-request work (about as much as a small FastAPI endpoint's) would cap every
server at the client's speed and flatten the ratios between a fast server and a slow one.
Here a request is bytes prepared once, and an answer is its status line, its
``Content-Length`` (or chunks) and its body: tens of microseconds a request. Bounded: a
fixed number of connections for a fixed time or number of requests; 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

__all__ = ["LoadResult", "in_turn", "post_request", "run"]


def post_request(path: str, body: bytes, *, host: str = "127.0.0.1", port: int,
                 content_type: str = "application/json") -> bytes:
    """The bytes of one keep-alive POST of ``body`` to ``path``."""
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode("ascii") + body


@dataclass
class LoadResult:
    """Latencies (seconds) of the answers, how many were not 200, and the wall time."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    first_error: str = ""

    @property
    def requests_per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One answer: its status, its body, and whether the server closes the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        body = await reader.readexactly(int(lower[at + 17:end]))
    elif b"transfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(p[:-2] for p in parts)
    else:
        body = b""
    return status, body, b"\r\nconnection: close" in lower


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes,
                    result: LoadResult) -> bool:
    """One request and its answer, timed and checked into ``result``; whether the server closes."""
    started = time.perf_counter()
    writer.write(request)
    status, body, closing = await _answer(reader)
    result.latencies.append(time.perf_counter() - started)
    if status != 200:
        result.errors += 1
        result.first_error = result.first_error or f"{status}: {body[:200]!r}"
    return closing


async def _connection(port: int, request: bytes, result: LoadResult, until: float, budget: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until and budget[0] > 0:
            budget[0] -= 1
            if await _exchange(reader, writer, request, result):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def run(port: int, request: bytes, *, concurrency: int = 1, seconds: float = 5.0,
              requests: int = 10**9) -> LoadResult:
    """``concurrency`` keep-alive connections to ``127.0.0.1:port`` sending ``request`` for
    ``seconds`` or until ``requests`` answers, whichever comes first."""
    result, budget = LoadResult(), [requests]
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(_connection(port, request, result, until, budget) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


async def in_turn(targets: dict[str, tuple[int, bytes]], *, seconds: float, warm_up: int = 20) -> dict[str, LoadResult]:
    """Concurrency 1 against several servers at once: one keep-alive connection each, one request
    to each in turn for ``seconds`` per server, so that the machine's other load weighs on all
    alike. ``targets``: name -> (port, request bytes). Each result counts that server's answers."""
    results = {name: LoadResult() for name in targets}
    streams = {name: await asyncio.open_connection("127.0.0.1", port) for name, (port, _) in targets.items()}
    try:
        for name, (_, request) in targets.items():
            for _ in range(warm_up):
                streams[name][1].write(request)
                await _answer(streams[name][0])
        started = time.perf_counter()
        until = started + seconds * len(targets)
        while time.perf_counter() < until:
            for name, (port, request) in targets.items():
                reader, writer = streams[name]
                if await _exchange(reader, writer, request, results[name]):
                    writer.close()
                    streams[name] = await asyncio.open_connection("127.0.0.1", port)
        for result in results.values():
            result.seconds = time.perf_counter() - started
    finally:
        for _, writer in streams.values():
            writer.close()
    return results
