"""A pool of single-connection transports: O(1) to take and give back.

httpcore's connection pool rescans every connection (and polls each socket) whenever a
request starts or a response closes, so its cost grows with the square of the streams in
flight: at 64 streams it spent more CPU than parsing every token did.  Here each in-flight
request borrows a transport that owns exactly one keep-alive connection
(``lens.run.http11.LeanHTTP11Transport``), so the pool is a plain free list.

Requests go to the transport directly, httpx's public seam, rather than through an
``AsyncClient``: lens needs none of the client's redirects, cookies, auth flows or event
hooks, and skipping them saves ~0.3 ms of CPU per request on a small machine, which at
hundreds of requests per second is the difference between keeping a schedule and not.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import trio


class TransportPool:
    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport]) -> None:
        self._factory = factory
        self._idle: list[httpx.AsyncBaseTransport] = []
        self._all: list[httpx.AsyncBaseTransport] = []

    def prepare(self, n: int) -> None:
        """Create transports ahead of a stage, so building them is not timed as dispatch."""
        while len(self._all) < n:
            self._idle.append(self._new())

    async def warm(self, url: httpx.URL) -> None:
        """Connect every idle transport that can (lens's own) to ``url``, concurrently."""
        async with trio.open_nursery() as nursery:
            for transport in self._idle:
                warm = getattr(transport, "warm", None)
                if warm is not None:
                    nursery.start_soon(warm, url)

    def _new(self) -> httpx.AsyncBaseTransport:
        transport = self._factory()
        self._all.append(transport)
        return transport

    def take(self) -> httpx.AsyncBaseTransport:
        """An idle transport (a new one if none is idle); ``give`` it back when done.  Two
        plain calls rather than an async context manager: that costs a generator and its
        frames per request, on the path of every dispatch."""
        return self._idle.pop() if self._idle else self._new()

    def give(self, transport: httpx.AsyncBaseTransport) -> None:
        self._idle.append(transport)

    async def aclose(self) -> None:
        for transport in self._all:
            await transport.aclose()
        self._all.clear()
        self._idle.clear()
