"""A pool of single-connection httpx clients: O(1) to take and give back.

httpcore's connection pool rescans every connection (and polls each socket) whenever a
request starts or a response closes, so its cost grows with the square of the streams in
flight: at 64 streams it spent more CPU than parsing every token did.  Giving each
in-flight request its own one-connection client keeps the pool trivially small while
httpx still does all the HTTP.  Connections stay alive between requests, as in one pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx


class ClientPool:
    def __init__(self, factory: Callable[[], httpx.AsyncClient]) -> None:
        self._factory = factory
        self._idle: list[httpx.AsyncClient] = []
        self._all: list[httpx.AsyncClient] = []

    @property
    def size(self) -> int:
        return len(self._all)

    def prepare(self, n: int) -> None:
        """Create clients ahead of a stage, so building them is not timed as dispatch."""
        while len(self._all) < n:
            self._idle.append(self._new())

    def _new(self) -> httpx.AsyncClient:
        client = self._factory()
        self._all.append(client)
        return client

    @asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        client = self._idle.pop() if self._idle else self._new()
        try:
            yield client
        finally:
            self._idle.append(client)

    async def aclose(self) -> None:
        for client in self._all:
            await client.aclose()
        self._all.clear()
        self._idle.clear()
